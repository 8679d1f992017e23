package matchindex

import (
	"slices"
	"testing"
)

// familyCorpus makes notices holding 120 families (a random centre, 150 variants 0–12 bits
// from it, and one variant repeated 20 times: the same picture in many notices) among 20 000
// uniform hashes, and queries at and around the families.
func familyCorpus(seed uint64) (notices []Notice, queries [][]byte) {
	rng := newRand(seed)
	var values [][]byte
	for range 120 {
		c := randBytes(rng, PDQSize)
		for range 150 {
			values = append(values, flipBits(rng, c, rng.IntN(13)))
		}
		rep := flipBits(rng, c, 5)
		for range 20 {
			values = append(values, rep)
		}
		queries = append(queries, c, flipBits(rng, c, 20), flipBits(rng, c, 35), flipBits(rng, values[len(values)-30], 31))
	}
	for range 20_000 {
		values = append(values, randBytes(rng, PDQSize))
	}
	rng.Shuffle(len(values), func(i, j int) { values[i], values[j] = values[j], values[i] })
	notices = pdqNotices(rng, values, 500)
	for range 40 {
		queries = append(queries, randBytes(rng, PDQSize))
	}
	return notices, queries
}

// TestPDQFamilies builds an index whose hashes are mostly near-duplicate families: the
// families must be set apart (their members in no slot) and every query at every radius
// must answer exactly as a brute-force scan, after the build, withdrawals, adds, a merge and
// a rebuild (a restart).
func TestPDQFamilies(t *testing.T) {
	notices, queries := familyCorpus(11)
	o := newOracle()
	half := len(notices) / 2
	for _, n := range notices[:half] {
		o.add(n.ID, n.Hashes)
	}
	x, err := Build(notices[:half], Options{ManualMerge: true})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, minFamilies int) {
		t.Helper()
		hits := checkPDQ(t, x, o, queries)
		st := x.Stats()
		t.Logf("%s: %d families holding %d of %d hashes; %d hits at r=31; %.0f B/hash", step, st.Families, st.InFamilies, st.Hashes[PDQ], hits, float64(st.Bytes)/float64(st.Hashes[PDQ]))
		if st.Families < minFamilies {
			t.Fatalf("%s: %d families, want at least %d", step, st.Families, minFamilies)
		}
		if hits < 120*100 {
			t.Fatalf("%s: only %d hits at r=31", step, hits)
		}
	}
	check("build", 100)
	if st := x.Stats(); st.InFamilies < 120*170*9/10/2 {
		t.Fatalf("only %d hashes in families", st.InFamilies)
	}
	for i, n := range notices[:half] {
		if i%6 == 0 {
			mustRemove(t, x, o, n.ID)
		}
	}
	check("withdrawals", 100)
	for _, n := range notices[half:] {
		mustAdd(t, x, o, n.ID, n.Hashes)
	}
	check("adds", 100)
	x.Compact()
	check("merged", 110)
	x, err = Build(o.all(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	check("rebuilt", 110)
}

// TestFamilyRadiusBound checks the triangle bound at its edge: a query exactly r from a
// family's farthest member and exactly r + radius from the pivot must find the member.
func TestFamilyRadiusBound(t *testing.T) {
	notices, _ := familyCorpus(12)
	x, err := Build(notices, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tb := x.View().v.segs[0].image
	if tb.fam == nil {
		t.Fatal("no families")
	}
	rng := newRand(13)
	tested := 0
	for f := range tb.fam.len() {
		rad := int(tb.fam.rad[f])
		pv := tb.fam.piv[f]
		for row := tb.fam.start[f]; row < tb.fam.start[f+1]; row++ {
			m := tb.at(row)
			if distance(&m, &pv) != rad {
				continue
			}
			for _, r := range []int{0, 7, 31} {
				// Flip r bits where the member agrees with the pivot: r from the member,
				// r + rad from the pivot (bits as the table stores them).
				q := m
				for flipped := 0; flipped < r; {
					b := rng.IntN(256)
					if (m[b/64]^pv[b/64])>>(b%64)&1 == 0 && (q[b/64]^m[b/64])>>(b%64)&1 == 0 {
						q[b/64] ^= 1 << (b % 64)
						flipped++
					}
				}
				if distance(&q, &pv) != r+rad || distance(&q, &m) != r {
					t.Fatalf("query built %d from the pivot, %d from the member", distance(&q, &pv), distance(&q, &m))
				}
				got := tb.searchFamilies(&q, r, nil)
				if !slices.ContainsFunc(got, func(p pdqMatch) bool { return p.id == row }) {
					t.Fatalf("family %d (radius %d): the member %d bits from a query at r=%d, %d from the pivot, not found", f, rad, r, r, r+rad)
				}
				tested++
			}
			break
		}
	}
	if tested < 100 {
		t.Fatalf("only %d boundary queries", tested)
	}
}

// TestVideoFramesInFamilies stores videos whose scenes are runs of near-identical frames: the
// frames of each scene must be set apart as a family (a video costs little more than its
// scenes), and matches must follow vPDQ's rule exactly.
func TestVideoFramesInFamilies(t *testing.T) {
	rng := newRand(21)
	o := newOracle()
	var notices []Notice
	var queries [][]byte
	for v := range 24 {
		var fs [][]byte
		for range 4 { // scenes
			base := randBytes(rng, PDQSize)
			for range 60 {
				fs = append(fs, flipBits(rng, base, rng.IntN(6)))
			}
		}
		hs := []Hash{{Kind: PDQVideo, Value: video(fs...)}}
		notices = append(notices, Notice{ID: noticeID(v), Hashes: hs})
		o.add(noticeID(v), hs)
		if v%3 == 0 {
			queries = append(queries, video(near(rng, fs[:200], 12)...), video(near(rng, fs[40:], 25)...))
		}
	}
	x, err := Build(notices, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := x.Stats()
	t.Logf("%d frames, %d families holding %d", st.Frames, st.Families, st.InFamilies)
	if st.Families < 24*4*9/10 || st.InFamilies < st.Frames*8/10 {
		t.Fatalf("%d families holding %d of %d frames: the scenes were not set apart", st.Families, st.InFamilies, st.Frames)
	}
	matched := 0
	for i, q := range queries {
		got, err := x.MatchVideo(q)
		if err != nil {
			t.Fatal(err)
		}
		if want := o.matchVideo(q); !slices.Equal(got, want) {
			t.Fatalf("query %d: got %v, want %v", i, got, want)
		}
		matched += len(got)
	}
	if matched < len(queries) {
		t.Fatalf("only %d videos matched %d queries", matched, len(queries))
	}
}

// TestNoFamiliesInUniformHashes: uniform hashes have no families, and keep their rows in
// the order given.
func TestNoFamiliesInUniformHashes(t *testing.T) {
	rng := newRand(31)
	hs := make([][4]uint64, 200_000)
	for i := range hs {
		hs[i] = [4]uint64{rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()}
	}
	tb := tableOf(t, hs)
	if tb.fam != nil || tb.ext != nil {
		t.Fatalf("uniform hashes: families %v, rows moved %v", tb.fam != nil, tb.ext != nil)
	}
}
