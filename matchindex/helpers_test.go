package matchindex

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"

	"concord/hashing/pdq"
)

// newRand returns a seeded generator, so a failure reproduces.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

// randBytes returns n random bytes.
func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// flipBits returns a copy of h with exactly d distinct bits flipped.
func flipBits(rng *rand.Rand, h []byte, d int) []byte {
	out := slices.Clone(h)
	for _, bit := range rng.Perm(len(h) * 8)[:d] {
		out[bit/8] ^= 1 << (bit % 8)
	}
	return out
}

// hamming is the reference distance, over little-endian words: another layout than the
// index's big-endian words and slot bit ranges.
func hamming(a, b []byte) int {
	d := 0
	for i := 0; i < len(a); i += 8 {
		d += bits.OnesCount64(binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]))
	}
	return d
}

// noticeID returns a ULID-shaped id (26 characters) for test notice i.
func noticeID(i int) string { return fmt.Sprintf("01TEST%020d", i) }

// oracle is the brute-force model of the index: the live notices, matched by scanning.
type oracle struct {
	notices map[string][]Hash
	pdq     map[string][]oraclePDQ   // decoded once: the scan runs millions of times
	videos  map[string][]oracleVideo // unique frames of each video
}

type oraclePDQ struct {
	pos  int
	hash [4]uint64 // little-endian words
}

type oracleVideo struct {
	pos    int
	frames [][]byte // unique, first occurrence kept
}

func newOracle() *oracle {
	return &oracle{notices: map[string][]Hash{}, pdq: map[string][]oraclePDQ{}, videos: map[string][]oracleVideo{}}
}

func (o *oracle) add(id string, hs []Hash) {
	o.notices[id] = hs
	for p, h := range hs {
		switch h.Kind {
		case PDQ:
			o.pdq[id] = append(o.pdq[id], oraclePDQ{p, leWords(h.Value)})
		case PDQVideo:
			o.videos[id] = append(o.videos[id], oracleVideo{p, uniqueOf(h.Value)})
		}
	}
}

func (o *oracle) remove(id string) {
	delete(o.notices, id)
	delete(o.pdq, id)
	delete(o.videos, id)
}

func leWords(v []byte) [4]uint64 {
	var w [4]uint64
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(v[8*i:])
	}
	return w
}

// uniqueOf splits a video value into frames, dropping repeats.
func uniqueOf(v []byte) [][]byte {
	var out [][]byte
	seen := map[string]bool{}
	for i := 0; i < len(v); i += PDQSize {
		if f := v[i : i+PDQSize]; !seen[string(f)] {
			seen[string(f)] = true
			out = append(out, f)
		}
	}
	return out
}

// all returns the live notices in id order (for Build).
func (o *oracle) all() []Notice {
	var ns []Notice
	for id, hs := range o.notices {
		ns = append(ns, Notice{ID: id, Hashes: hs})
	}
	slices.SortFunc(ns, func(a, b Notice) int { return cmp.Compare(a.ID, b.ID) })
	return ns
}

func (o *oracle) matchPDQ(q []byte, r int) []Hit {
	var hits []Hit
	qw := leWords(q)
	for id, hs := range o.pdq {
		for _, h := range hs {
			d := bits.OnesCount64(qw[0]^h.hash[0]) + bits.OnesCount64(qw[1]^h.hash[1]) +
				bits.OnesCount64(qw[2]^h.hash[2]) + bits.OnesCount64(qw[3]^h.hash[3])
			if d <= r {
				hits = append(hits, Hit{NoticeID: id, Position: h.pos, Distance: d})
			}
		}
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		if c := cmp.Compare(a.Distance, b.Distance); c != 0 {
			return c
		}
		return byNoticePosition(a, b)
	})
	return hits
}

// matchPDQDihedral is matchPDQ over the query's eight dihedral variants: each stored hash at
// its smallest distance under any, the first transform winning a tie.
func (o *oracle) matchPDQDihedral(q []byte, r int) []Hit {
	best := map[[2]any]Hit{}
	for t := range pdq.Transform(8) {
		th := pdq.Transformed(pdq.Hash(q), t.Inverse())
		for _, h := range o.matchPDQ(th[:], r) {
			k := [2]any{h.NoticeID, h.Position}
			if b, ok := best[k]; !ok || h.Distance < b.Distance {
				h.Transform = t
				best[k] = h
			}
		}
	}
	hits := slices.Collect(maps.Values(best))
	slices.SortFunc(hits, func(a, b Hit) int {
		return cmp.Or(cmp.Compare(a.Distance, b.Distance), byNoticePosition(a, b))
	})
	return hits
}

func (o *oracle) lookup(k Kind, v []byte) []Hit {
	var hits []Hit
	for id, hs := range o.notices {
		for p, h := range hs {
			if h.Kind == k && string(h.Value) == string(v) {
				hits = append(hits, Hit{NoticeID: id, Position: p})
			}
		}
	}
	slices.SortFunc(hits, byNoticePosition)
	return hits
}

// matchVideo is vPDQ's brute-force rule, written from its description: unique frames on
// both sides, a frame matches within 31, ≥ 80 % of the query's unique frames must match.
func (o *oracle) matchVideo(query []byte) []VideoHit {
	qs := uniqueOf(query)
	var hits []VideoHit
	for id, vs := range o.videos {
		for _, vid := range vs {
			p, ss := vid.pos, vid.frames
			qhit, shit := make([]bool, len(qs)), make([]bool, len(ss))
			for i, q := range qs {
				for j, s := range ss {
					if hamming(q, s) <= VideoFrameRadius {
						qhit[i], shit[j] = true, true
					}
				}
			}
			qm, sm := count(qhit), count(shit)
			if qm > 0 && qm*100 >= VideoMatchPercent*len(qs) {
				hits = append(hits, VideoHit{
					NoticeID: id, Position: p,
					QueryFrames: len(qs), QueryMatched: qm, StoredFrames: len(ss), StoredMatched: sm,
					QueryPercent:  100 * float64(qm) / float64(len(qs)),
					StoredPercent: 100 * float64(sm) / float64(len(ss)),
				})
			}
		}
	}
	slices.SortFunc(hits, func(a, b VideoHit) int {
		if c := cmp.Compare(b.QueryPercent, a.QueryPercent); c != 0 {
			return c
		}
		if c := cmp.Compare(a.NoticeID, b.NoticeID); c != 0 {
			return c
		}
		return cmp.Compare(a.Position, b.Position)
	})
	return hits
}

func count(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// diffHits describes how got differs from want, or returns "".
func diffHits(got, want []Hit) string {
	if slices.Equal(got, want) {
		return ""
	}
	key := func(h Hit) string { return fmt.Sprintf("%s/%d@%d/%v", h.NoticeID, h.Position, h.Distance, h.Transform) }
	w := map[string]bool{}
	for _, h := range want {
		w[key(h)] = true
	}
	g := map[string]bool{}
	var extra, missing []string
	for _, h := range got {
		if g[key(h)] {
			extra = append(extra, "dup "+key(h))
		}
		g[key(h)] = true
		if !w[key(h)] {
			extra = append(extra, key(h))
		}
	}
	for _, h := range want {
		if !g[key(h)] {
			missing = append(missing, key(h))
		}
	}
	return fmt.Sprintf("got %d hits, want %d; missing %v; unexpected %v", len(got), len(want),
		head(missing), head(extra))
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// mustAdd adds a notice to the index and the oracle.
func mustAdd(t testing.TB, x *Index, o *oracle, id string, hs []Hash) {
	t.Helper()
	if err := x.Add(id, hs); err != nil {
		t.Fatalf("Add %s: %v", id, err)
	}
	o.add(id, hs)
}

// mustRemove removes a notice from the index and the oracle.
func mustRemove(t testing.TB, x *Index, o *oracle, id string) {
	t.Helper()
	if err := x.Remove(id); err != nil {
		t.Fatalf("Remove %s: %v", id, err)
	}
	o.remove(id)
}

// wordsBytes is a PDQ value of four words, as mihbench writes them.
func wordsBytes(h [4]uint64) []byte {
	b := make([]byte, 0, PDQSize)
	for _, w := range h {
		b = binary.BigEndian.AppendUint64(b, w)
	}
	return b
}

// halvesOf splits hashes given 4 words each, in order, into a table's two halves.
func halvesOf(full []uint64) (front, back []uint64) {
	var c chunked[uint64]
	c.append(full...)
	return splitRows(&c)
}

// pdqNotices cuts values into PDQ notices of 1 to most hashes, in order.
func pdqNotices(rng *rand.Rand, values [][]byte, most int) []Notice {
	var notices []Notice
	for len(values) > 0 {
		k := min(len(values), 1+rng.IntN(most))
		var hs []Hash
		for _, v := range values[:k] {
			hs = append(hs, Hash{Kind: PDQ, Value: v})
		}
		notices = append(notices, Notice{ID: noticeID(len(notices)), Hashes: hs})
		values = values[k:]
	}
	return notices
}
