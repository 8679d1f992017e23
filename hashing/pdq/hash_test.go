package pdq

import (
	"bufio"
	"encoding/json"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestHashHexRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string // want "" means ParseHash must fail
	}{
		{"reference", "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22",
			"d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22"},
		{"upper case accepted, printed lower", "D8F8F0CEE0F4A84F0637022A078F67F0B36E2ED596621E1D33E6339C4E9C9B22",
			"d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22"},
		{"zero", strings.Repeat("0", 64), strings.Repeat("0", 64)},
		{"ones", strings.Repeat("f", 64), strings.Repeat("f", 64)},
		{"empty", "", ""},
		{"63 digits", strings.Repeat("a", 63), ""},
		{"65 digits", strings.Repeat("a", 65), ""},
		{"not hex", strings.Repeat("g", 64), ""},
		{"0x prefix", "0x" + strings.Repeat("a", 62), ""},
		{"spaces", " " + strings.Repeat("a", 62) + " ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := ParseHash(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseHash(%q) = %v, want an error", tt.in, h)
				}
				if !strings.Contains(err.Error(), "64 hex digits") {
					t.Errorf("error %q does not say what a hash looks like", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := h.String(); got != tt.want {
				t.Errorf("String() = %s, want %s", got, tt.want)
			}
			again, err := ParseHash(h.String())
			if err != nil || again != h {
				t.Errorf("ParseHash(String()) = %v, %v; want %v", again, err, h)
			}
			// JSON uses the hex form both ways.
			js, err := json.Marshal(h)
			if err != nil || string(js) != `"`+tt.want+`"` {
				t.Errorf("json.Marshal = %s, %v", js, err)
			}
			var back Hash
			if err := json.Unmarshal(js, &back); err != nil || back != h {
				t.Errorf("json.Unmarshal = %v, %v; want %v", back, err, h)
			}
		})
	}
}

// TestBitLayout pins the reference's layout: bit k = 16·i + j lives in 16-bit word k>>4, and
// the words are printed from w[15] down to w[0].
func TestBitLayout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		bit  int
		want string
	}{
		{0, strings.Repeat("0", 63) + "1"},
		{3, strings.Repeat("0", 63) + "8"},
		{4, strings.Repeat("0", 62) + "10"},
		{15, strings.Repeat("0", 60) + "8000"},
		{16, strings.Repeat("0", 59) + "1" + "0000"},
		{255, "8" + strings.Repeat("0", 63)},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.bit), func(t *testing.T) {
			t.Parallel()
			var h Hash
			h.setBit(tt.bit)
			if got := h.String(); got != tt.want {
				t.Errorf("bit %d: %s, want %s", tt.bit, got, tt.want)
			}
		})
	}
}

func TestHashFromBytes(t *testing.T) {
	t.Parallel()
	want, _ := ParseHash("d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22")
	got, err := HashFromBytes(want[:])
	if err != nil || got != want {
		t.Fatalf("HashFromBytes = %v, %v; want %v", got, err, want)
	}
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := HashFromBytes(make([]byte, n)); err == nil {
			t.Errorf("HashFromBytes(%d bytes) succeeded, want an error", n)
		}
	}
}

func TestDistance(t *testing.T) {
	t.Parallel()
	zero := Hash{}
	var ones Hash
	for i := range ones {
		ones[i] = 0xff
	}
	a, _ := ParseHash("d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22")
	b := a
	b[0] ^= 0x81
	b[31] ^= 0x01
	b[17] ^= 0xf0
	tests := []struct {
		name string
		a, b Hash
		want int
	}{
		{"same", a, a, 0},
		{"zero and ones", zero, ones, 256},
		{"seven bits", a, b, 7},
		{"symmetric", b, a, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Distance(tt.a, tt.b); got != tt.want {
				t.Errorf("Distance = %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("matches a byte-wise count", func(t *testing.T) {
		t.Parallel()
		rng := rand.New(rand.NewPCG(1, 2))
		for range 1000 {
			var x, y Hash
			for i := range x {
				x[i], y[i] = byte(rng.Uint32()), byte(rng.Uint32())
			}
			want := 0
			for i := range x {
				want += bits.OnesCount8(x[i] ^ y[i])
			}
			if got := Distance(x, y); got != want {
				t.Fatalf("Distance(%v, %v) = %d, want %d", x, y, got, want)
			}
		}
	})
}

func readHashes(t *testing.T, name string) []Hash {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "matching", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Hash
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		h, err := ParseHash(strings.TrimSpace(sc.Text()))
		if err != nil {
			t.Fatalf("%s line %d: %v", name, len(out), err)
		}
		out = append(out, h)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMatchingVectors: every needle × haystack pair at distance ≤ 31, exactly the pairs the
// reference's mih-query -d 31 finds, no more, with the same distances.
func TestMatchingVectors(t *testing.T) {
	t.Parallel()
	needles := readHashes(t, "needles.txt")
	haystack := readHashes(t, "haystack.txt")

	type pair struct{ needle, hay int }
	want := map[pair]int{}
	f, err := os.Open(filepath.Join("testdata", "matching", "expected_matches.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		var p pair
		var d int
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 {
			t.Fatalf("expected_matches.tsv: bad row %q", sc.Text())
		}
		for i, dst := range []*int{&p.needle, &p.hay, &d} {
			if *dst, err = strconv.Atoi(fields[i]); err != nil {
				t.Fatalf("expected_matches.tsv: %v", err)
			}
		}
		if d <= MatchDistance {
			want[p] = d
		}
	}
	if len(want) == 0 {
		t.Fatal("no expected pairs at distance ≤ 31")
	}

	got := map[pair]int{}
	for i, n := range needles {
		for j, h := range haystack {
			if d := Distance(n, h); d <= MatchDistance {
				got[pair{i, j}] = d
			}
		}
	}
	for p, d := range want {
		if gd, ok := got[p]; !ok {
			t.Errorf("needle %d, haystack %d: expected a match at distance %d, not found", p.needle, p.hay, d)
		} else if gd != d {
			t.Errorf("needle %d, haystack %d: distance %d, want %d", p.needle, p.hay, gd, d)
		}
	}
	for p, d := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("needle %d, haystack %d: unexpected match at distance %d", p.needle, p.hay, d)
		}
	}
	t.Logf("%d needles × %d hashes: %d pairs at distance ≤ %d", len(needles), len(haystack), len(got), MatchDistance)
}

func TestTransformString(t *testing.T) {
	t.Parallel()
	tests := map[Transform]string{Original: "orig", Rotate90: "rot90", FlipMinus1: "flipminus1", 8: "Transform(8)", -1: "Transform(-1)"}
	for tr, want := range tests {
		if got := tr.String(); got != want {
			t.Errorf("Transform(%d).String() = %q, want %q", int(tr), got, want)
		}
	}
}
