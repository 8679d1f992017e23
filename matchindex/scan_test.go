package matchindex

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
)

// scanData makes n hashes as front and back halves: runs of hashes near q (each bit of q
// flipped with probability 7/32: most fronts are within the radius, few whole hashes are, as
// around a query that falls back to a scan) alternating with runs of random ones, the runs
// near q crowded share of them.
func scanData(rng *rand.Rand, q [4]uint64, n int, crowded float64) (front, back []uint64) {
	front, back = make([]uint64, 2*n), make([]uint64, 2*n)
	near := false
	for i := range n {
		if i%(4*scanBlock) == 0 {
			near = rng.Float64() < crowded
		}
		var h [4]uint64
		for w := range h {
			h[w] = rng.Uint64()
			if near {
				mask := ^uint64(0)
				for range 3 { // mask: each bit set with probability 1/8
					mask &= rng.Uint64()
				}
				h[w] = q[w] ^ (h[w] & ^mask & rng.Uint64()) // a bit flipped with probability 7/32
			}
		}
		front[2*i], front[2*i+1], back[2*i], back[2*i+1] = h[0], h[1], h[2], h[3]
	}
	return front, back
}

func bruteHalves(front, back []uint64, base uint32, q *[4]uint64, r int) []pdqMatch {
	var out []pdqMatch
	for i := range len(front) / 2 {
		d := bits.OnesCount64(front[2*i]^q[0]) + bits.OnesCount64(front[2*i+1]^q[1]) +
			bits.OnesCount64(back[2*i]^q[2]) + bits.OnesCount64(back[2*i+1]^q[3])
		if d <= r {
			out = append(out, pdqMatch{id: base + uint32(i), dist: int32(d)})
		}
	}
	return out
}

// TestScanHalves: a scan answers as brute force whichever way it reads a block — fronts first,
// whole hashes, or switching between them as the data crowds around the query and thins out
// again — at every radius and for lengths that are not multiples of four or of a block; and
// the crowded data does make the fronts pass often enough to switch.
func TestScanHalves(t *testing.T) {
	rng := newRand(31)
	for _, n := range []int{0, 3, 4, 255, 1000, 20*scanBlock + 7} {
		for _, crowded := range []float64{0, 0.5, 1} {
			q := [4]uint64{rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()}
			front, back := scanData(rng, q, n, crowded)
			for _, r := range []int{0, 8, 20, MaxRadius} {
				want := bruteHalves(front, back, 7, &q, r)
				if got := scanHalves(front, back, 7, &q, r, nil); !slices.Equal(got, want) {
					t.Fatalf("n=%d crowded=%g r=%d: %d hits, want %d", n, crowded, r, len(got), len(want))
				}
				fr, _ := scanFronts(front, back, 7, 0, n, &q, r, nil)
				wh, _ := scanWhole(front, back, 7, 0, n, &q, r, nil)
				if !slices.Equal(fr, want) || !slices.Equal(wh, want) {
					t.Fatalf("n=%d crowded=%g r=%d: fronts-first %d hits, whole %d, want %d", n, crowded, r, len(fr), len(wh), len(want))
				}
			}
		}
	}
	q := [4]uint64{1, 2, 3, 4}
	front, back := scanData(rng, q, scanBlock, 1)
	if _, passed := scanFronts(front, back, 0, 0, scanBlock, &q, MaxRadius, nil); passed <= scanBlock/4/8 {
		t.Fatalf("only %d fours of a crowded block passed on their fronts: the whole reading is never chosen", passed)
	}
	front, back = scanData(rng, q, scanBlock, 0)
	if _, passed := scanWhole(front, back, 0, 0, scanBlock, &q, MaxRadius, nil); passed > scanBlock/4/8 {
		t.Fatalf("%d fours of a random block passed on their fronts: the scan never goes back to fronts first", passed)
	}
}

// BenchmarkScan: the three ways to read a table, on 1 M uniform hashes and on 1 M crowded
// around the query (as on a query that falls back to a scan), side by side.
//
//	go test -run '^$' -bench Scan ./matchindex
func BenchmarkScan(b *testing.B) {
	rng := newRand(32)
	q := [4]uint64{rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()}
	for _, crowded := range []float64{0, 0.5, 1} {
		front, back := scanData(rng, q, benchN, crowded)
		n := len(front) / 2
		ways := []struct {
			name string
			scan func(dst []pdqMatch) []pdqMatch
		}{
			{"adaptive", func(dst []pdqMatch) []pdqMatch { return scanHalves(front, back, 0, &q, MaxRadius, dst) }},
			{"fronts-first", func(dst []pdqMatch) []pdqMatch {
				d, _ := scanFronts(front, back, 0, 0, n, &q, MaxRadius, dst)
				return d
			}},
			{"whole", func(dst []pdqMatch) []pdqMatch { d, _ := scanWhole(front, back, 0, 0, n, &q, MaxRadius, dst); return d }},
		}
		for _, w := range ways {
			b.Run(fmt.Sprintf("crowded=%g/%s", crowded, w.name), func(b *testing.B) {
				var dst []pdqMatch
				for b.Loop() {
					dst = w.scan(dst[:0])
				}
				b.ReportMetric(float64(len(dst)), "hits")
			})
		}
	}
}
