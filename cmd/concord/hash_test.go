package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// referenceRow is a row of the PDQ reference vectors (hashing/pdq/testdata/expected.tsv).
type referenceRow struct {
	file, hex, tier string
	quality         int
}

func referenceRows(t *testing.T) []referenceRow {
	t.Helper()
	f, err := os.Open("../../hashing/pdq/testdata/expected.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	cols := map[string]int{}
	for i, c := range strings.Split(sc.Text(), "\t") {
		cols[c] = i
	}
	var rows []referenceRow
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		q, _ := strconv.Atoi(fields[cols["quality"]])
		rows = append(rows, referenceRow{file: fields[cols["filename"]], hex: fields[cols["pdq_hex"]], tier: fields[cols["tier"]], quality: q})
	}
	return rows
}

// TestHashCommandReproducesTheReference runs `concord hash --json` on every reference file and
// expects the reference's PDQ hash and quality, bit for bit on the lossless tiers.
func TestHashCommandReproducesTheReference(t *testing.T) {
	rows := referenceRows(t)
	args := []string{"hash", "--json"}
	for _, r := range rows {
		args = append(args, filepath.Join("../../hashing/pdq/testdata", r.file))
	}
	out, err := exec.Command(concordBinary, args...).Output()
	if err != nil {
		t.Fatalf("concord hash: %v", err)
	}
	var results []fileResult
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("concord hash --json: %v\n%s", err, out)
	}
	if len(results) != len(rows) {
		t.Fatalf("%d results for %d files", len(results), len(rows))
	}
	exact := 0
	for i, r := range rows {
		var got *jsonHash
		for j := range results[i].Hashes {
			if results[i].Hashes[j].Kind == "pdq" {
				got = &results[i].Hashes[j]
			}
		}
		if got == nil {
			t.Errorf("%s: no PDQ hash (%s)", r.file, results[i].PDQError)
			continue
		}
		switch r.tier {
		case "exact", "exact_prescale":
			exact++
			if got.Hex != r.hex || got.Quality != r.quality {
				t.Errorf("%s: %s quality %d, want %s quality %d", r.file, got.Hex, got.Quality, r.hex, r.quality)
			}
		case "decoder":
			if r.quality >= 80 && hexDistance(t, got.Hex, r.hex) > 10 {
				t.Errorf("%s: %d bits from the reference, want at most 10", r.file, hexDistance(t, got.Hex, r.hex))
			}
		}
	}
	if exact < 20 {
		t.Fatalf("only %d exact rows checked", exact)
	}
}

func hexDistance(t *testing.T, a, b string) int {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("hashes of different lengths: %s, %s", a, b)
	}
	d := 0
	for i := range a {
		x, _ := strconv.ParseUint(a[i:i+1], 16, 8)
		y, _ := strconv.ParseUint(b[i:i+1], 16, 8)
		for v := x ^ y; v != 0; v &= v - 1 {
			d++
		}
	}
	return d
}

func TestHashCommandURLAndErrors(t *testing.T) {
	out, err := exec.Command(concordBinary, "hash", "--url", "HTTPS://Example.ORG:443/a/../b#x", "--url", "https://example.org/b").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || strings.Fields(lines[0])[2] != strings.Fields(lines[1])[2] {
		t.Fatalf("two spellings of one URL should hash the same:\n%s", out)
	}
	cmd := exec.Command(concordBinary, "hash", "--url", "ftp://example.org/x")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "ftp") {
		t.Fatalf("an ftp URL: %v\n%s", err, out)
	}
}

func TestHashVideoWithoutFFmpegSaysSo(t *testing.T) {
	video := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(video, []byte("not really a video"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(concordBinary, "hash", "--json", video)
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir()) // no ffmpeg to be found
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var results []fileResult
	if err := json.Unmarshal(out, &results); err != nil || len(results) != 1 {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(results[0].PDQError, "ffmpeg") || len(results[0].Hashes) != 2 {
		t.Fatalf("a video without ffmpeg: %+v; want its SHA-256 and MD5, and a note naming ffmpeg", results[0])
	}
}
