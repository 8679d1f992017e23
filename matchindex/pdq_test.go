package matchindex

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	hashcorpus "concord/matchindex/corpus"
)

// corpus is a randomised set of PDQ notices with near-duplicates of the queries planted at
// every distance 0..40, so both sides of the radius are exercised.
type corpus struct {
	queries [][]byte
	notices []Notice
}

const maxPlanted = 40

// genCorpus makes about n PDQ hashes. dist "uniform" draws them at random (the worst case for
// multi-index hashing: no slot key repeats more than chance allows); "clustered" draws them
// around 300 centres, so buckets are uneven and a query near a centre has many matches;
// "beta4" and "beta05" are the skewed models of package corpus (biased bits, 20 000 images
// each stored with ≈3 % of its bits flipped); "realistic" is testdata/realistic-12k.txt, made by
// pdqcorpus (images under transforms, video frames), whatever n says.
func genCorpus(rng *rand.Rand, n, queries int, dist string) corpus {
	var centres [][]byte
	for range 300 {
		centres = append(centres, randBytes(rng, PDQSize))
	}
	var skewed, real *hashcorpus.Gen
	if m, err := hashcorpus.Parse(dist); err == nil && (m == hashcorpus.MildSkew || m == hashcorpus.HarshSkew) {
		skewed = hashcorpus.New(m, rng.Uint64(), n)
	}
	if dist == "realistic" {
		g, err := hashcorpus.FromFile("testdata/realistic-12k.txt")
		if err != nil {
			panic(err)
		}
		real, skewed, n = g, g, g.Len()
	}
	draw := func() []byte {
		switch {
		case skewed != nil:
			h := skewed.Next()
			return wordsBytes(h)
		case dist == "uniform":
			return randBytes(rng, PDQSize)
		}
		return flipBits(rng, centres[rng.IntN(len(centres))], rng.IntN(48))
	}
	var c corpus
	var values [][]byte
	for range queries {
		q := draw()
		if real != nil {
			q = wordsBytes(real.Fresh()) // a held-out hash: its image's other copies are stored
		}
		c.queries = append(c.queries, q)
		for d := 0; d <= maxPlanted; d++ {
			v := flipBits(rng, q, d)
			values = append(values, v)
			if d%10 == 3 {
				values = append(values, v) // the same value in two notices
			}
		}
	}
	for len(values) < n {
		values = append(values, draw())
	}
	rng.Shuffle(len(values), func(i, j int) { values[i], values[j] = values[j], values[i] })
	c.notices = pdqNotices(rng, values, 300)
	return c
}

var testRadii = []int{0, 1, 7, 15, 16, 17, 24, 30, 31}

// checkPDQ compares every query at every radius with the oracle. It returns the number of
// hits at radius 31, so a caller can see the comparison was not vacuous.
func checkPDQ(t *testing.T, x *Index, o *oracle, queries [][]byte) int {
	t.Helper()
	v := x.View()
	total := 0
	for qi, q := range queries {
		all := o.matchPDQ(q, MaxRadius)
		for _, r := range testRadii {
			want := slices.DeleteFunc(slices.Clone(all), func(h Hit) bool { return h.Distance > r })
			got, err := v.MatchPDQ(q, r)
			if err != nil {
				t.Fatalf("query %d r=%d: %v", qi, r, err)
			}
			if d := diffHits(got, want); d != "" {
				t.Fatalf("query %d r=%d (segments %v): %s", qi, r, v.Stats().SegmentSizes, d)
			}
			if r == MaxRadius {
				total += len(got)
			}
		}
	}
	return total
}

// TestPDQMatchesOracle runs an index through its life — bulk build, withdrawals, adds over
// many segments, merges, background merging, rebuild — and after each step compares every
// radius query with a brute-force scan of the live notices.
func TestPDQMatchesOracle(t *testing.T) {
	for _, dist := range []string{"uniform", "clustered", "beta4", "beta05", "realistic"} {
		t.Run(dist, func(t *testing.T) {
			t.Parallel()
			rng := newRand(1)
			c := genCorpus(rng, 100_000, 40, dist)
			o := newOracle()
			nBuild := len(c.notices) * 6 / 10
			for _, n := range c.notices[:nBuild] {
				o.add(n.ID, n.Hashes)
			}
			x, err := Build(c.notices[:nBuild], Options{ManualMerge: true})
			if err != nil {
				t.Fatal(err)
			}
			step := func(name string, wantSegments func(int) bool) {
				t.Helper()
				hits := checkPDQ(t, x, o, c.queries)
				st := x.Stats()
				if !wantSegments(st.Segments) {
					t.Fatalf("%s: %d segments %v", name, st.Segments, st.SegmentSizes)
				}
				if hits < len(c.queries)*16 {
					t.Fatalf("%s: only %d hits at r=31 for %d queries: planted duplicates lost?", name, hits, len(c.queries))
				}
				if st.Hashes[PDQ] != countPDQ(o) {
					t.Fatalf("%s: Stats says %d PDQ hashes, oracle %d", name, st.Hashes[PDQ], countPDQ(o))
				}
				t.Logf("%s: %d hits at r=31, segments %v", name, hits, st.SegmentSizes)
			}
			one := func(n int) bool { return n == 1 }
			many := func(n int) bool { return n > 10 }
			step("build", one)
			if dist == "realistic" && x.Stats().Families == 0 {
				t.Fatal("no families in the realistic corpus, whose images are stored 21 times each")
			}

			for _, n := range c.notices[:nBuild] {
				if rng.IntN(10) == 0 {
					mustRemove(t, x, o, n.ID)
				}
			}
			step("withdrawals", one)

			rest := c.notices[nBuild:]
			added := rest[:len(rest)/2]
			for i := 0; i < len(added); i++ {
				if i%5 == 0 && i+3 <= len(added) {
					if err := x.AddBatch(added[i : i+3]); err != nil {
						t.Fatal(err)
					}
					for _, n := range added[i : i+3] {
						o.add(n.ID, n.Hashes)
					}
					i += 2
					continue
				}
				mustAdd(t, x, o, added[i].ID, added[i].Hashes)
			}
			step("adds in many segments", many)

			for i, n := range c.notices[:nBuild+len(added)] {
				if _, live := o.notices[n.ID]; live && i%7 == 0 {
					mustRemove(t, x, o, n.ID)
				}
			}
			step("withdrawals across segments", many)

			x.Compact()
			step("compacted", one)
			if st := x.Stats(); st.Removed != 0 {
				t.Fatalf("compacted index still holds %d removed hashes", st.Removed)
			}

			// Background merging: the rest one notice at a time, with removals in between.
			bg, err := Build(o.all(), Options{MergeFactor: 2})
			if err != nil {
				t.Fatal(err)
			}
			x = bg
			for i, n := range rest[len(rest)/2:] {
				mustAdd(t, x, o, n.ID, n.Hashes)
				if i%9 == 4 {
					mustRemove(t, x, o, n.ID)
				}
			}
			x.WaitMerges()
			step("background merges", func(n int) bool { return n >= 1 && n <= 12 })

			x, err = Build(o.all(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			step("rebuilt", one)
		})
	}
}

func countPDQ(o *oracle) int {
	n := 0
	for _, hs := range o.notices {
		for _, h := range hs {
			if h.Kind == PDQ {
				n++
			}
		}
	}
	return n
}

// TestPDQTableGeometries checks the table itself against a scan for every radius 0..31 and
// for geometries the chooser may pick at any size: slots straddling words, 1 or 2 flipped
// bits per slot (≤15 slots need 2 at radius 31), and the scan plan. (11 slots, chosen only
// above ≈20 M hashes, differ only in width, and their 64 MiB directories are slow to build
// under -race.)
func TestPDQTableGeometries(t *testing.T) {
	rng := newRand(2)
	const n = 20_000
	full := make([]uint64, 0, 4*n)
	var queries [][4]uint64
	for len(queries) < 30 {
		q := [4]uint64{rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()}
		queries = append(queries, q)
		for d := 0; d <= maxPlanted; d++ {
			h := q
			for _, b := range rng.Perm(256)[:d] {
				h[b/64] ^= 1 << (b % 64)
			}
			full = append(full, h[:]...)
		}
	}
	for len(full) < 4*n {
		full = append(full, rng.Uint64())
	}
	for _, m := range []int{0, 12, 13, 14, 16, 19, 24, 32} {
		t.Run(fmt.Sprintf("slots=%d", m), func(t *testing.T) {
			var g *geometry
			stored := slices.Clone(full)
			if m > 0 {
				g = geometryFor(n, m)
				copy(stored[4*(n-1100):], boundaryHashes(rng, queries[0], g))
			}
			var tasks []func()
			front, back := halvesOf(stored)
			tb := plannedPDQTableGeometry(front, back, g, &tasks)
			parallel(len(tasks), 2, func(i int) { tasks[i]() })
			for qi := range queries {
				q := &queries[qi]
				for r := 0; r <= MaxRadius; r++ {
					got := tb.search(q, r, nil)
					want := tb.scan(q, r, nil)
					slices.SortFunc(got, func(a, b pdqMatch) int { return int(a.id) - int(b.id) })
					if !slices.Equal(got, want) {
						t.Fatalf("query %d r=%d: got %d matches, scan %d", qi, r, len(got), len(want))
					}
				}
			}
		})
	}
}

// boundaryHashes returns, for every radius's plan, the hashes multi-index hashing finds
// hardest: every slot s differs from q by exactly tₛ+1 bits (found by no slot: must be
// beyond the radius), and the same with one slot at tₛ (found by that slot alone).
func boundaryHashes(rng *rand.Rand, q [4]uint64, g *geometry) []uint64 {
	var out []uint64
	offs := make([]uint, len(g.widths))
	for s := 1; s < len(offs); s++ {
		offs[s] = offs[s-1] + g.widths[s-1]
	}
	flip := func(h *[4]uint64, s, k int) {
		for _, b := range rng.Perm(int(g.widths[s]))[:k] {
			p := (offs[s] + uint(b)) % 256
			h[p/64] ^= 1 << (p % 64)
		}
	}
	for r := range g.plan {
		plan := g.plan[r]
		for only := -1; only < len(plan); only++ {
			h := q
			for s := range plan {
				k := int(plan[s]) + 1
				if s == only {
					k--
				}
				flip(&h, s, k)
			}
			out = append(out, h[:]...)
		}
	}
	return out
}

// TestChooseGeometry checks the invariants exactness rests on, for the sizes the index
// meets: slots cover all 256 bits, and every radius's plan satisfies the pigeonhole bound.
func TestChooseGeometry(t *testing.T) {
	for _, n := range []int{0, 100, 1023, 1024, 5000, 65_536, 1 << 20, 10_000_000, 100_000_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			g := chooseGeometry(n, nil)
			if n < scanBelow && g != nil {
				t.Fatalf("%d hashes: want a scan, got %d slots", n, len(g.widths))
			}
			if g == nil {
				if n >= 1<<16 {
					t.Fatalf("%d hashes: no geometry (a scan would be slow)", n)
				}
				return
			}
			sum, dir := uint(0), 0.0
			for _, w := range g.widths {
				sum += w
				dir += float64(uint64(4) << w)
			}
			if sum != 256 {
				t.Fatalf("slot widths %v sum to %d bits", g.widths, sum)
			}
			if dir/float64(n) > maxDirPerHash {
				t.Fatalf("directories use %.1f bytes a hash", dir/float64(n))
			}
			for r, plan := range g.plan {
				s := 0
				for _, ts := range plan {
					if ts > 2 {
						t.Fatalf("r=%d: a slot flips %d bits; probes enumerate at most 2", r, ts)
					}
					s += int(ts)
				}
				if s < r+1-len(plan) {
					t.Fatalf("r=%d: Σt = %d < r+1-m = %d: matches could be missed", r, s, r+1-len(plan))
				}
			}
			t.Logf("%d hashes: %d slots %v, %.0f lines a query", n, len(g.widths), g.plan[MaxRadius], g.lines)
		})
	}
}

// TestMatchPDQErrors checks that bad queries are refused with a message saying what to fix.
func TestMatchPDQErrors(t *testing.T) {
	x := New(Options{})
	tests := []struct {
		name   string
		hash   []byte
		radius int
		want   error
	}{
		{"short hash", make([]byte, 31), 31, ErrInvalidHash},
		{"negative radius", make([]byte, 32), -1, ErrRadius},
		{"radius above 31", make([]byte, 32), 32, ErrRadius},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := x.MatchPDQ(tc.hash, tc.radius); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// crowdIndex builds an index of eight notices of 10 000 PDQ hashes, uniform ones and a crowd
// drawn by near (the first notice whole and every eighth hash of the others, 23 %), and returns
// the index, its oracle and the crowd.
func crowdIndex(t *testing.T, rng *rand.Rand, near func() []byte) (*Index, *oracle, [][]byte) {
	t.Helper()
	o := newOracle()
	var notices []Notice
	var crowd [][]byte
	for i := range 8 {
		var hs []Hash
		for j := range 10_000 {
			v := randBytes(rng, PDQSize)
			if i < 1 || j%8 == 0 {
				v = near()
				crowd = append(crowd, v)
			}
			hs = append(hs, Hash{Kind: PDQ, Value: v})
		}
		notices = append(notices, Notice{ID: noticeID(i), Hashes: hs})
		o.add(noticeID(i), hs)
	}
	x, err := Build(notices, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return x, o, crowd
}

// checkOriginals: every PDQ hash of every segment, read back for a merge (appendOriginal, in
// entry order, bits where they were given), is the hash its notice gave at its position —
// whatever rows, bit moves and dense tables the segment's table made of them.
func checkOriginals(t *testing.T, x *Index, o *oracle) {
	t.Helper()
	v := x.cur.Load()
	for _, seg := range v.segs {
		tb, col := seg.image, &seg.cols[PDQ]
		var got chunked[uint64]
		tb.appendOriginal(&got, 0, uint32(tb.len()), tb.entryRows())
		words := got.flatten()
		for k, h := range col.handles {
			hs, live := o.notices[v.names[h]]
			for e := col.starts[k]; e < col.starts[k+1] && live; e++ {
				want := pdqWords(hs[col.pos[e]].Value)
				if !slices.Equal(words[4*e:4*e+4], want[:]) {
					t.Fatalf("entry %d (%s position %d) reads back as %x, was given as %x", e, v.names[h], col.pos[e], words[4*e:4*e+4], want)
				}
			}
		}
	}
}

// TestPDQCrowdSetApart: a crowd of near-copies of four pictures (every bit of one of four
// centres flipped with probability 0.12, ≈60 bits apart from each other), a quarter of the
// hashes, fills the bucket of its centre's key in every slot — while the bits over the whole
// table look fair, so no layout spreads them; one in four of the crowd is a closer copy (1–5
// bits) of one of 200 of the others, families among the crowd that the whole table is too
// large to notice. The crowd is set apart in a table of its own, with its own slots, bit
// layout and families, so a query near it probes that table instead of scanning everything,
// and answers as brute force — through adds, a withdrawal and a merge too; every hash reads
// back as given. Uniform hashes set nothing apart.
func TestPDQCrowdSetApart(t *testing.T) {
	rng := newRand(9)
	var centres, seeds [][]byte
	for range 4 {
		centres = append(centres, randBytes(rng, PDQSize))
	}
	x, o, crowd := crowdIndex(t, rng, func() []byte {
		if len(seeds) == 200 && rng.IntN(4) == 0 {
			return flipBits(rng, seeds[rng.IntN(len(seeds))], 1+rng.IntN(5))
		}
		v := slices.Clone(centres[rng.IntN(len(centres))])
		for b := range 8 * PDQSize {
			if rng.Float64() < 0.12 {
				v[b/8] ^= 1 << (b % 8)
			}
		}
		if len(seeds) < 200 {
			seeds = append(seeds, v)
		}
		return v
	})
	tb := x.cur.Load().segs[0].image
	if tb.dense == nil || tb.dense.slots == nil || tb.dense.fam == nil || tb.dense.perm == nil {
		t.Fatalf("the crowd's own table: %+v; want one with slots, families and its own bit layout", tb.dense)
	}
	checkOriginals(t, x, o)
	st := x.Stats()
	if st.Dense < len(crowd)*60/100 || st.Dense > len(crowd)*105/100 {
		t.Fatalf("%d hashes set apart; the crowd is %d (some of it in families of the whole table, a few missing its centre's key in every slot)", st.Dense, len(crowd))
	}
	var near [][]byte
	for _, c := range crowd[:20] {
		near = append(near, flipBits(rng, c, rng.IntN(20)))
	}
	near = append(near, randBytes(rng, PDQSize), randBytes(rng, PDQSize))
	// The table's own scans counted apart from its dense table's: near its centres the crowd
	// still fills buckets of its own table, which may be scanned — a quarter of the hashes.
	var scans atomic.Uint64
	tb.fallbacks = &scans
	if hits := checkPDQ(t, x, o, near); hits < 20 {
		t.Fatalf("only %d hits near members of the crowd", hits)
	}
	if scans.Load() != 0 {
		t.Fatalf("%d searches near the crowd set apart scanned the whole table", scans.Load())
	}
	tb.fallbacks = &x.fallbacks
	mustAdd(t, x, o, noticeID(100), []Hash{{Kind: PDQ, Value: crowd[3]}, {Kind: PDQ, Value: randBytes(rng, PDQSize)}})
	if err := x.Remove(noticeID(3)); err != nil {
		t.Fatal(err)
	}
	o.remove(noticeID(3))
	checkPDQ(t, x, o, near)
	checkOriginals(t, x, o)
	x.Compact()
	checkPDQ(t, x, o, near)
	checkOriginals(t, x, o)
	if st := x.Stats(); st.Dense == 0 || st.Dense > len(crowd) {
		t.Fatalf("%d hashes set apart after the merge, of a crowd of %d less 1 250", st.Dense, len(crowd))
	}

	c := genCorpus(rng, 50_000, 20, "uniform")
	u, err := Build(c.notices, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st := u.Stats(); st.Dense != 0 {
		t.Fatalf("%d uniform hashes set apart as crowding the slots", st.Dense)
	}
}

// TestPDQScanFallback: a crowd (23 % of the hashes) agrees with a centre on its front half (a
// few bits flipped) and is random on its back half. The table's layout deals the front's bits out
// over the slots, so no bucket is crowded enough to be set apart, but a query near the centre
// finds many of its probed buckets fuller than usual: probing would read more than a scan, and
// the search must scan instead, and answer the same; a query elsewhere probes as usual. On
// uniform hashes alone no query scans.
func TestPDQScanFallback(t *testing.T) {
	rng := newRand(7)
	centre := randBytes(rng, PDQSize)
	x, o, crowd := crowdIndex(t, rng, func() []byte {
		return append(flipBits(rng, centre, rng.IntN(4))[:PDQSize/2], randBytes(rng, PDQSize/2)...)
	})
	if st := x.Stats(); st.Dense != 0 || st.Families != 0 {
		t.Fatalf("%d hashes set apart (no bucket is crowded enough: the layout spreads the front bits over the slots), %d families (the crowd's members are ≈64 bits apart)", st.Dense, st.Families)
	}
	notices := o.all()
	elsewhere := [][]byte{randBytes(rng, PDQSize), randBytes(rng, PDQSize), randBytes(rng, PDQSize)}
	checkPDQ(t, x, o, elsewhere)
	if got := x.Stats().ScanFallbacks; got != 0 {
		t.Fatalf("%d searches far from the family fell back to a scan", got)
	}
	// Queries near the centre on the front half, near one of the crowd on the back.
	var near [][]byte
	for _, n := range notices[0].Hashes[:3] {
		near = append(near, flipBits(rng, n.Value, 3))
	}
	if hits := checkPDQ(t, x, o, near); hits < 3 {
		t.Fatalf("only %d hits near members of the crowd", hits)
	}
	if got := x.Stats().ScanFallbacks; got == 0 {
		t.Fatal("no search near the crowd fell back to a scan, though its probes covered most of the table")
	}
	// The count is the index's, not its segments': a merge keeps it.
	before := x.Stats().ScanFallbacks
	mustAdd(t, x, o, noticeID(100), []Hash{{Kind: PDQ, Value: crowd[0]}})
	x.Compact()
	if got := x.Stats().ScanFallbacks; got != before {
		t.Fatalf("scan fallbacks %d after a merge, %d before", got, before)
	}

	c := genCorpus(rng, 50_000, 20, "uniform")
	u, err := Build(c.notices, Options{})
	if err != nil {
		t.Fatal(err)
	}
	uo := newOracle()
	for _, n := range c.notices {
		uo.add(n.ID, n.Hashes)
	}
	checkPDQ(t, u, uo, c.queries)
	if got := u.Stats().ScanFallbacks; got != 0 {
		t.Fatalf("%d searches of uniform hashes fell back to a scan", got)
	}
}

// TestMatchPDQOrder: hits come sorted by distance, then notice id, then position, whatever
// order the notices were added in (their handles) and however many hits share a distance.
func TestMatchPDQOrder(t *testing.T) {
	rng := newRand(17)
	q := randBytes(rng, PDQSize)
	o := newOracle()
	x := New(Options{})
	for _, id := range []string{"01ZZZ", "01AAA", "01MMM", "01AAB", "01A"} {
		var hs []Hash
		for j := range 300 {
			v := flipBits(rng, q, j%5) // many hits at each distance 0..4, in every notice
			if j%3 == 0 {
				v = randBytes(rng, PDQSize)
			}
			hs = append(hs, Hash{Kind: PDQ, Value: v})
		}
		mustAdd(t, x, o, id, hs)
	}
	got, err := x.MatchPDQ(q, MaxRadius)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffHits(got, o.matchPDQ(q, MaxRadius)); d != "" {
		t.Fatal(d)
	}
	if len(got) < 5*150 || got[0].NoticeID != "01A" || got[len(got)-1].NoticeID != "01ZZZ" {
		t.Fatalf("%d hits, first %v, last %v", len(got), got[0], got[len(got)-1])
	}
}
