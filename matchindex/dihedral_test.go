package matchindex

import (
	"slices"
	"testing"

	"concord/hashing/pdq"
)

// TestMatchPDQDihedral: rotated and mirrored queries (a stored hash transformed at the hash
// level, a few bits flipped) find their hash with the transform that made them, and every
// query's answer is the brute-force scan's over its eight variants, through withdrawals, adds
// into new segments and a merge.
func TestMatchPDQDihedral(t *testing.T) {
	rng := newRand(17)
	c := genCorpus(rng, 30_000, 0, "uniform")
	x, err := Build(c.notices, Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := newOracle()
	for _, n := range c.notices {
		o.add(n.ID, n.Hashes)
	}
	type probe struct {
		q      []byte
		stored Hit // the hash it was made from
	}
	var probes []probe
	for i := range 160 {
		n := c.notices[rng.IntN(len(c.notices))]
		pos := rng.IntN(len(n.Hashes))
		tr := pdq.Transform(i % 8)
		q := pdq.Transformed(pdq.Hash(n.Hashes[pos].Value), tr)
		q2 := flipBits(rng, q[:], rng.IntN(12))
		probes = append(probes, probe{q2, Hit{NoticeID: n.ID, Position: pos, Distance: hamming(q2, q[:]), Transform: tr}})
	}
	check := func(step string) {
		t.Helper()
		v := x.View()
		found := 0
		for i, p := range probes {
			all := o.matchPDQDihedral(p.q, MaxRadius) // the scan once; each radius a prefix of it
			for _, r := range []int{0, 12, 31} {
				got, err := v.MatchPDQDihedral(p.q, r)
				if err != nil {
					t.Fatal(err)
				}
				want := slices.DeleteFunc(slices.Clone(all), func(h Hit) bool { return h.Distance > r })
				if d := diffHits(got, want); d != "" {
					t.Fatalf("%s: probe %d r=%d: %s", step, i, r, d)
				}
				// As sent, the same hits as MatchPDQ, marked Original.
				plain, _ := v.MatchPDQ(p.q, r)
				for _, h := range plain {
					if !slices.Contains(got, Hit{h.NoticeID, h.Position, h.Distance, pdq.Original}) {
						t.Fatalf("%s: probe %d r=%d: MatchPDQ's %+v is not among the dihedral hits", step, i, r, h)
					}
				}
				if r == 31 && o.notices[p.stored.NoticeID] != nil {
					if !slices.Contains(got, p.stored) {
						t.Fatalf("%s: probe %d: %+v not found: %+v", step, i, p.stored, got[:min(len(got), 5)])
					}
					found++
				}
			}
		}
		if found < len(probes)/2 {
			t.Fatalf("%s: only %d probes' hashes are live: the check is vacuous", step, found)
		}
	}
	check("built")
	for _, n := range c.notices[:len(c.notices)/10] {
		mustRemove(t, x, o, n.ID)
	}
	check("after withdrawals")
	for i := range 30 {
		var hs []Hash
		for range 50 {
			hs = append(hs, Hash{Kind: PDQ, Value: randBytes(rng, PDQSize)})
		}
		p := probes[i]
		tr := pdq.Transformed(pdq.Hash(p.q), pdq.Rotate90)
		hs = append(hs, Hash{Kind: PDQ, Value: tr[:]}) // p.q is this hash rotated by 270° (reference naming)
		mustAdd(t, x, o, noticeID(100_000+i), hs)
		probes[i].stored = Hit{NoticeID: noticeID(100_000 + i), Position: 50, Distance: 0, Transform: pdq.Rotate270}
	}
	check("after adds")
	x.Compact()
	check("after a merge")
}

func TestMatchPDQDihedralErrors(t *testing.T) {
	x := New(Options{})
	if _, err := x.MatchPDQDihedral(make([]byte, 31), 31); err == nil {
		t.Fatal("a 31-byte hash was accepted")
	}
	if _, err := x.MatchPDQDihedral(make([]byte, 32), 32); err == nil {
		t.Fatal("radius 32 was accepted")
	}
}
