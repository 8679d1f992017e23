package tlogwitness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"concord/translog"
)

// ContentTypeSize is the content type of a 409 answer: the size of the latest checkpoint the
// witness cosigned for the log, in decimal, and a newline.
const ContentTypeSize = "text/x.tlog.size"

// maxProofLines is the most consistency proof lines a request may carry, as the spec sets.
const maxProofLines = 63

// errMalformed reports an add-checkpoint body that does not follow the spec.
var errMalformed = errors.New("malformed add-checkpoint body")

// FormatAddCheckpoint is the body of an add-checkpoint request: the old size line, one line per
// consistency proof hash, an empty line, and the signed checkpoint.
func FormatAddCheckpoint(oldSize int64, proof []translog.Hash, signedCheckpoint string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", oldSize)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(signedCheckpoint)
	return b.Bytes()
}

// ParseAddCheckpoint reads an add-checkpoint body. It checks the syntax of the old size and proof
// lines only: the signed checkpoint after the empty line is returned as it came, unverified.
func ParseAddCheckpoint(body []byte) (oldSize int64, proof []translog.Hash, signedCheckpoint string, err error) {
	line, rest, ok := strings.Cut(string(body), "\n")
	if !ok {
		return 0, nil, "", fmt.Errorf("%w: no old size line", errMalformed)
	}
	oldSize, err = parseOldSize(line)
	if err != nil {
		return 0, nil, "", err
	}
	for {
		line, rest, ok = strings.Cut(rest, "\n")
		if !ok {
			return 0, nil, "", fmt.Errorf("%w: no empty line before the checkpoint", errMalformed)
		}
		if line == "" {
			break
		}
		if len(proof) == maxProofLines {
			return 0, nil, "", fmt.Errorf("%w: more than %d consistency proof lines", errMalformed, maxProofLines)
		}
		h, err := parseProofLine(line)
		if err != nil {
			return 0, nil, "", fmt.Errorf("%w: consistency proof line %d: %v", errMalformed, len(proof)+1, err)
		}
		proof = append(proof, h)
	}
	if rest == "" {
		return 0, nil, "", fmt.Errorf("%w: no checkpoint after the empty line", errMalformed)
	}
	return oldSize, proof, rest, nil
}

// parseOldSize reads "old <size>": a decimal without sign or leading zeros, so that one size has
// one encoding.
func parseOldSize(line string) (int64, error) {
	digits, ok := strings.CutPrefix(line, "old ")
	if !ok {
		return 0, fmt.Errorf("%w: the first line %q is not \"old <size>\"", errMalformed, line)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != digits {
		return 0, fmt.Errorf("%w: old size %q is not a decimal number without leading zeros", errMalformed, digits)
	}
	return n, nil
}

// parseProofLine reads one hash in canonical base64: the decoder also takes non-zero padding bits,
// and one proof must have one encoding.
func parseProofLine(line string) (translog.Hash, error) {
	var h translog.Hash
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil || len(b) != len(h) || base64.StdEncoding.EncodeToString(b) != line {
		return h, fmt.Errorf("%q is not a %d-byte hash in base64", line, len(h))
	}
	copy(h[:], b)
	return h, nil
}
