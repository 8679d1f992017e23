package corpus

import (
	"encoding/hex"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModels: the generators draw what their models say: skewed bits on the skewed models
// (harsh far more than mild), fair bits otherwise, variants a few bits from their image.
func TestModels(t *testing.T) {
	const n = 20_000
	information := func(m Model) float64 {
		g := New(m, 1, n)
		var ones [256]int
		for range n {
			h := g.Next()
			for b := range 256 {
				ones[b] += int(h[b/64] >> (b % 64) & 1)
			}
		}
		fair := 0.0
		for _, k := range ones {
			p := float64(k) / n
			fair += 4 * p * (1 - p) // 1 for p = ½, 0 for p ∈ {0, 1}
		}
		return fair
	}
	uniform, mild, harsh := information(Uniform), information(MildSkew), information(HarshSkew)
	t.Logf("bits near fair (of 256): uniform %.0f, beta4 %.0f, beta05 %.0f", uniform, mild, harsh)
	if uniform < 250 || mild > uniform-20 || harsh > mild-40 {
		t.Fatalf("the models' bias is not as documented: uniform %.0f, beta4 %.0f, beta05 %.0f", uniform, mild, harsh)
	}
	g := New(HarshSkew, 2, n)
	a, b := g.Next(), g.Next()
	near := 0
	for _, c := range g.centres {
		d := 0
		for i := range c {
			d += bits.OnesCount64(c[i] ^ a[i])
		}
		if d <= 20 {
			near++
		}
	}
	if near == 0 || a == b {
		t.Fatalf("a stored variant is not within a few bits of any image (%d near)", near)
	}
}

// TestFromFile reads a real hash list, holding every hundredth hash out as a query, and
// refuses a line that is not a PDQ hash.
func TestFromFile(t *testing.T) {
	g := New(Uniform, 3, 0)
	var lines []string
	var all [][4]uint64
	for i := range 250 {
		h := g.Next()
		all = append(all, h)
		v := fmt.Sprintf("%016x%016x%016x%016x", h[0], h[1], h[2], h[3])
		if i%3 == 0 {
			v += ",50,photo.jpg" // pdq-photo-hasher's quality and name
		}
		lines = append(lines, v)
	}
	path := filepath.Join(t.TempDir(), "hashes.txt")
	if err := os.WriteFile(path, []byte("# exported\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := FromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Len() != 248 {
		t.Fatalf("%d stored, want 248 (250 less the 99th and 199th... held out)", f.Len())
	}
	if got := f.Fresh(); got != all[98] {
		t.Fatalf("the first held-out hash is not line 100 of the file")
	}
	if got := f.Next(); got != all[0] {
		t.Fatal("the first stored hash is not the file's first")
	}
	if again := f.Again(); again.Next() != all[0] {
		t.Fatal("Again does not start from the list's start")
	}
	bad := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(bad, []byte(hex.EncodeToString(make([]byte, 31))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := FromFile(bad); err == nil || !strings.Contains(err.Error(), "bad.txt:1") {
		t.Fatalf("a short hash: %v", err)
	}
}
