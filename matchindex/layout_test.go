package matchindex

import (
	"math/bits"
	"slices"
	"testing"

	hashcorpus "concord/matchindex/corpus"
)

// TestBitPerm: moving the bits and putting them back gives the hash again, and distances do
// not change.
func TestBitPerm(t *testing.T) {
	rng := newRand(11)
	var order [256]uint8
	for j, b := range rng.Perm(256) {
		order[j] = uint8(b)
	}
	p := newBitPerm(order)
	back := p.inverse()
	for range 1000 {
		a := [4]uint64{rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()}
		b := [4]uint64{rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()}
		pa, pb := p.apply(&a), p.apply(&b)
		if back.apply(&pa) != a {
			t.Fatal("the inverse does not put the bits back")
		}
		for j, src := range order {
			if (pa[j/64]>>(j%64))&1 != (a[src/64]>>(src%64))&1 {
				t.Fatalf("bit %d of the moved hash is not bit %d of the hash", j, src)
			}
		}
		if dist(a, b) != dist(pa, pb) {
			t.Fatal("moving the bits changed a distance")
		}
	}
}

func dist(a, b [4]uint64) int {
	d := 0
	for i := range a {
		d += bits.OnesCount64(a[i] ^ b[i])
	}
	return d
}

// tableOf builds an index of the hashes and returns its one PDQ table.
func tableOf(t *testing.T, hs [][4]uint64) *pdqTable {
	t.Helper()
	var notices []Notice
	for i := 0; i < len(hs); i += 5000 {
		var list []Hash
		for _, h := range hs[i:min(len(hs), i+5000)] {
			list = append(list, Hash{Kind: PDQ, Value: wordsBytes(h)})
		}
		notices = append(notices, Notice{ID: noticeID(i), Hashes: list})
	}
	x, err := Build(notices, Options{})
	if err != nil {
		t.Fatal(err)
	}
	segs := x.View().v.segs
	if len(segs) != 1 {
		t.Fatalf("%d segments", len(segs))
	}
	return segs[0].image
}

// TestAdaptiveLayout builds tables on uniform hashes and near-duplicate families of uniform
// centres, whose bits stay in place; on the mild-skew corpus (biased bits), whose bits must
// move so that the slots carry nearly equal information, more evenly than slots of
// consecutive bits; and on the harsh-skew corpus, where no slot layout reads less than a scan
// (most bits nearly constant) and the table is scanned, without slots.
func TestAdaptiveLayout(t *testing.T) {
	const n = 100_000
	draw := func(m hashcorpus.Model) [][4]uint64 {
		g := hashcorpus.New(m, 3, n)
		hs := make([][4]uint64, n)
		for i := range hs {
			hs[i] = g.Next()
		}
		return hs
	}
	if tb := tableOf(t, draw(hashcorpus.Uniform)); tb.perm != nil || tb.slots == nil {
		t.Fatalf("uniform hashes: moved bits %v, slots %d; want slots over bits in place", tb.perm != nil, len(tb.slots))
	}
	if tb := tableOf(t, draw(hashcorpus.Clustered)); tb.perm != nil || tb.slots == nil {
		t.Fatal("near-duplicate families of uniform centres: bits moved, but they are fair")
	}
	harsh := draw(hashcorpus.HarshSkew)
	if tb := tableOf(t, harsh); tb.slots != nil || tb.perm == nil {
		t.Fatalf("harsh skew: %d slots, moved bits %v; want a scan (no layout reads less) with the most telling bits in front", len(tb.slots), tb.perm != nil)
	} else {
		hf := make([]uint64, 0, 4*n)
		for _, h := range harsh {
			hf = append(hf, h[:]...)
		}
		info, _ := bitInfo(halvesOf(hf))
		var inFront, inBack float64
		for j, b := range tb.perm.order {
			if j < 128 {
				inFront += info[b]
			} else {
				inBack += info[b]
			}
		}
		t.Logf("harsh skew: %.1f bits of information in the front half, %.1f in the back", inFront, inBack)
		if inFront < 3*inBack {
			t.Fatalf("the scanned table's front half carries %.1f bits, its back %.1f", inFront, inBack)
		}
	}

	skewed := draw(hashcorpus.MildSkew)
	full := make([]uint64, 0, 4*n)
	for _, h := range skewed {
		full = append(full, h[:]...)
	}
	info, isSkewed := bitInfo(halvesOf(full))
	if !isSkewed {
		t.Fatal("the mild-skew corpus is not measured as skewed")
	}
	tb := tableOf(t, skewed)
	if tb.perm == nil || tb.slots == nil {
		t.Fatalf("mild skew: moved bits %v, slots %d; want slots over moved bits", tb.perm != nil, len(tb.slots))
	}
	widths := make([]uint, len(tb.slots))
	for s := range tb.slots {
		widths[s] = tb.slots[s].width
	}
	inPlace := make([]float64, len(widths))
	off := 0
	for s, w := range widths {
		for b := off; b < off+int(w); b++ {
			inPlace[s] += info[b]
		}
		off += int(w)
	}
	_, balanced := balance(widths, &info)
	spread := func(eff []float64) float64 { return slices.Max(eff) / slices.Min(eff) }
	t.Logf("mild skew, %d slots: information per slot in place %.2f–%.2f bits, balanced %.2f–%.2f",
		len(widths), slices.Min(inPlace), slices.Max(inPlace), slices.Min(balanced), slices.Max(balanced))
	if spread(balanced) > 1.02 || spread(balanced) >= spread(inPlace) {
		t.Fatalf("balanced slots %v are not more even than slots in place %v", balanced, inPlace)
	}
	// Every stored hash is the given one with its bits moved.
	for i, h := range skewed[:1000] {
		if got := tb.at(uint32(i)); got != tb.perm.apply(&h) {
			t.Fatalf("stored hash %d is not the given one with its bits moved", i)
		}
	}
}
