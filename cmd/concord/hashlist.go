package main

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	concordv1 "concord/gen/concord/v1"
)

// hashKindNames lists the kinds as the CLI spells them.
const hashKindNames = "sha256, md5, pdq, pdq_video, url_sha256"

// parseHashKind reads a kind as people write it: "sha256", "PDQ", "HASH_KIND_MD5".
func parseHashKind(s string) (concordv1.HashKind, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	name = strings.TrimPrefix(name, "HASH_KIND_")
	if v, ok := concordv1.HashKind_value["HASH_KIND_"+name]; ok && v != 0 {
		return concordv1.HashKind(v), nil
	}
	return 0, fmt.Errorf("unknown hash kind %q: use one of %s", s, hashKindNames)
}

// kindName is a kind as the CLI prints it.
func kindName(k concordv1.HashKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "HASH_KIND_"))
}

// parseHashArg reads --hash KIND:HEX[:QUALITY], e.g. "pdq:f8f8...:92".
func parseHashArg(arg string) (*concordv1.Hash, error) {
	parts := strings.Split(arg, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, usageErrorf("--hash %q: want KIND:HEX or KIND:HEX:QUALITY (kinds: %s)", arg, hashKindNames)
	}
	quality := ""
	if len(parts) == 3 {
		quality = parts[2]
	}
	h, err := newHash(parts[0], parts[1], quality)
	if err != nil {
		return nil, usageErrorf("--hash %q: %v", arg, err)
	}
	return h, nil
}

func newHash(kind, hexValue, quality string) (*concordv1.Hash, error) {
	k, err := parseHashKind(kind)
	if err != nil {
		return nil, err
	}
	v, err := hex.DecodeString(strings.TrimSpace(hexValue))
	if err != nil {
		return nil, fmt.Errorf("value is not hexadecimal: %w", err)
	}
	if err := checkHashLength(k, len(v)); err != nil {
		return nil, err
	}
	h := &concordv1.Hash{Kind: k, Value: v}
	if quality = strings.TrimSpace(quality); quality != "" {
		q, err := strconv.Atoi(quality)
		if err != nil || q < 0 || q > 100 {
			return nil, fmt.Errorf("quality %q: want a whole number from 0 to 100", quality)
		}
		h.Quality = int32(q)
	} else if k == concordv1.HashKind_HASH_KIND_PDQ || k == concordv1.HashKind_HASH_KIND_PDQ_VIDEO {
		return nil, errors.New("a PDQ hash needs its quality (KIND:HEX:QUALITY): Concord refuses PDQ hashes of quality below 50")
	}
	return h, nil
}

// checkHashLength refuses a value of the wrong length for its kind before anything is sent.
func checkHashLength(k concordv1.HashKind, n int) error {
	want := map[concordv1.HashKind]int{
		concordv1.HashKind_HASH_KIND_SHA256: 32, concordv1.HashKind_HASH_KIND_MD5: 16,
		concordv1.HashKind_HASH_KIND_PDQ: 32, concordv1.HashKind_HASH_KIND_URL_SHA256: 32,
	}[k]
	switch {
	case k == concordv1.HashKind_HASH_KIND_PDQ_VIDEO && (n == 0 || n%32 != 0):
		return fmt.Errorf("a pdq_video value is its frames' PDQ hashes, 64 hex digits each; this one has %d hex digits", 2*n)
	case want != 0 && n != want:
		return fmt.Errorf("a %s hash has %d hex digits; this one has %d", kindName(k), 2*want, 2*n)
	}
	return nil
}

// readHashList reads a bulk list of hashes: JSON (an array of {"kind", "hex", "quality"}) or CSV
// (kind,hex[,quality] per line, an optional header line). Lines are numbered in errors.
func readHashList(path string) ([]*concordv1.Hash, error) {
	data, err := readInput(path)
	if err != nil {
		return nil, fmt.Errorf("hash list: %w", err)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		type item struct {
			Kind    string          `json:"kind"`
			Hex     string          `json:"hex"`
			Value   string          `json:"value"`
			Quality json.RawMessage `json:"quality"`
			// The output of `concord hash --json`: one object per file, its hashes inside.
			Hashes []item `json:"hashes"`
		}
		var nested []item
		if err := json.Unmarshal(trimmed, &nested); err != nil {
			return nil, fmt.Errorf("hash list %s: not a JSON array of {\"kind\", \"hex\", \"quality\"} (or of 'concord hash --json' results): %w", path, err)
		}
		var items []item
		for _, it := range nested {
			if it.Hashes != nil {
				for _, h := range it.Hashes {
					if q, _ := strconv.Atoi(string(h.Quality)); strings.EqualFold(h.Kind, "pdq") && q < 50 {
						continue // not shareable: `concord hash` lists it for information
					}
					items = append(items, h)
				}
				continue
			}
			items = append(items, it)
		}
		out := make([]*concordv1.Hash, 0, len(items))
		for i, it := range items {
			v := it.Hex
			if v == "" {
				v = it.Value
			}
			h, err := newHash(it.Kind, v, strings.Trim(string(it.Quality), `"`))
			if err != nil {
				return nil, fmt.Errorf("hash list %s: item %d: %w", path, i, err)
			}
			out = append(out, h)
		}
		return out, nil
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.Comment = '#'
	var out []*concordv1.Hash
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("hash list %s: %w", path, err)
		}
		if len(rec) == 0 || (len(rec) == 1 && strings.TrimSpace(rec[0]) == "") {
			continue
		}
		if line == 1 && strings.EqualFold(strings.TrimSpace(rec[0]), "kind") {
			continue // header
		}
		if len(rec) < 2 || len(rec) > 3 {
			return nil, fmt.Errorf("hash list %s: line %d: want kind,hex[,quality], got %d fields", path, line, len(rec))
		}
		quality := ""
		if len(rec) == 3 {
			quality = rec[2]
		}
		h, err := newHash(rec[0], rec[1], quality)
		if err != nil {
			return nil, fmt.Errorf("hash list %s: line %d: %w", path, line, err)
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("hash list %s holds no hash", path)
	}
	return out, nil
}
