package matchindex

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Options tunes an Index. The zero value is the production setting.
type Options struct {
	// BuildWorkers is how many goroutines Build and Builder.Finish use to build tables: they
	// are on the restart path, so by default all of them (GOMAXPROCS).
	BuildWorkers int
	// MergeWorkers is how many goroutines one background merge uses; by default 1, so a
	// merge of millions of hashes leaves the other cores to queries.
	MergeWorkers int
	// MergeFactor F keeps segment sizes falling by more than F from the oldest segment to
	// the newest (default 8). Higher F: fewer segments to query, more rewriting. At 10 M
	// hashes in 1 000-hash notices, F=8 allows ≤5 segments (worst-case p50 ≈190 µs) and
	// rewrites a hash ≈21 times over its life; F=4 ≤6 segments (≈280 µs), ≈12 rewrites.
	// MaxMergeShare may keep a few more large segments (see there).
	MergeFactor int
	// ManualMerge turns background merging off: segments are then merged only by Compact.
	// For tests that need a fixed segment layout.
	ManualMerge bool
	// MaxMergeShare bounds what a background merge may produce, as a share of the hashes and
	// frames the index holds (removed ones included until reclaimed): while a merge builds,
	// its inputs are still held, so the index's memory peaks at about 1 + MaxMergeShare times
	// its steady state (plus a small merge under 1 M hashes, which may run at the same time in
	// the other lane). Default 0.5; 1 or more lifts the bound. The price: the index may keep
	// two or three large segments instead of one (queries visit every segment). Merges of
	// fewer than 1 M hashes are never held back.
	MaxMergeShare float64
	// mergeFree is the merge size below which MaxMergeShare does not apply (bigMerge; tests
	// lower it).
	mergeFree int
	// onMerge, if set, is told each background merge's planned output and the index's size.
	onMerge func(out, total int)
}

func (o Options) withDefaults() Options {
	if o.BuildWorkers <= 0 {
		o.BuildWorkers = runtime.GOMAXPROCS(0)
	}
	if o.MergeWorkers <= 0 {
		o.MergeWorkers = 1
	}
	if o.MergeFactor < 2 {
		o.MergeFactor = 8
	}
	if o.MaxMergeShare <= 0 {
		o.MaxMergeShare = 0.5
	}
	if o.mergeFree <= 0 {
		o.mergeFree = bigMerge
	}
	return o
}

// Index is the match index. Queries never block and never wait for writes: each reads the
// view current when it starts (an atomic pointer load). Writes (Add, AddBatch, Remove) are
// serialised by a mutex held only for bookkeeping and publication, never while tables are
// built; merges build in the background and take the mutex only to swap segments in.
type Index struct {
	cur  atomic.Pointer[view]
	opts Options

	mu     sync.Mutex // guards everything below
	names  []string   // notice id of each handle ever assigned
	byID   map[string]uint32
	merges mergeState
	// fallbacks counts the PDQ and frame searches answered by a scan (see Stats).
	fallbacks atomic.Uint64
}

// New returns an empty index.
func New(opts Options) *Index {
	x := &Index{opts: opts.withDefaults(), byID: map[string]uint32{}}
	x.merges.init(&x.mu)
	x.cur.Store(&view{fallbacks: &x.fallbacks})
	return x
}

// View returns the current consistent view, for a series of queries that must agree.
func (x *Index) View() View { return View{x.cur.Load()} }

// Lookup is View().Lookup: every stored hash of an exact kind equal to value.
func (x *Index) Lookup(kind Kind, value []byte) ([]Hit, error) { return x.View().Lookup(kind, value) }

// MatchPDQ is View().MatchPDQ: every stored PDQ hash within radius of hash, exactly.
func (x *Index) MatchPDQ(hash []byte, radius int) ([]Hit, error) {
	return x.View().MatchPDQ(hash, radius)
}

// MatchPDQDihedral is View().MatchPDQDihedral: MatchPDQ for the hash and its seven rotations
// and reflections, each stored hash once, with the transform it matched under.
func (x *Index) MatchPDQDihedral(hash []byte, radius int) ([]Hit, error) {
	return x.View().MatchPDQDihedral(hash, radius)
}

// MatchVideo is View().MatchVideo: the stored videos matching a query video by vPDQ's rule.
func (x *Index) MatchVideo(frames []byte) ([]VideoHit, error) { return x.View().MatchVideo(frames) }

// Add indexes a notice's hashes, all visible to queries at once. Adding an id the index
// holds is an error (ErrNoticeExists): a notice's hashes never change, so the caller
// removes the old notice first if it really means to replace it.
func (x *Index) Add(noticeID string, hashes []Hash) error {
	return x.AddBatch([]Notice{{ID: noticeID, Hashes: hashes}})
}

// AddBatch indexes several notices as one new segment, all visible at once (one raft entry
// of notices, say). Nothing is added if any notice is invalid or already indexed.
func (x *Index) AddBatch(notices []Notice) error {
	if len(notices) == 0 {
		return nil
	}
	ids := make(map[string]struct{}, len(notices))
	for _, n := range notices {
		if err := checkNotice(n.ID, n.Hashes); err != nil {
			return err
		}
		if _, dup := ids[n.ID]; dup {
			return fmt.Errorf("%w: notice %s appears twice in the batch", ErrNoticeExists, n.ID)
		}
		ids[n.ID] = struct{}{}
	}
	// Reserve handles, so a concurrent Add of the same id fails; publish after the build.
	x.mu.Lock()
	for _, n := range notices {
		if _, ok := x.byID[n.ID]; ok {
			x.mu.Unlock()
			return fmt.Errorf("%w: %s (remove it first to replace it)", ErrNoticeExists, n.ID)
		}
	}
	first := uint32(len(x.names))
	for i, n := range notices {
		x.names = append(x.names, n.ID)
		x.byID[n.ID] = first + uint32(i)
	}
	x.mu.Unlock()

	b := segBuilder{fallbacks: &x.fallbacks}
	for i, n := range notices {
		b.addNotice(first+uint32(i), n.Hashes)
	}
	seg := b.build(1) // on the caller's goroutine only; bulk loads go through Builder, on every core

	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.cur.Load()
	nv := &view{
		segs:      append(old.segs[:len(old.segs):len(old.segs)], seg),
		deadSize:  append(old.deadSize[:len(old.deadSize):len(old.deadSize)], deadSizeOf(seg, old.dead)),
		dead:      old.dead,
		names:     x.names,
		fallbacks: old.fallbacks,
	}
	x.cur.Store(nv)
	x.scheduleMerges()
	return nil
}

// Remove takes a notice out of the index (a withdrawal): it is absent from every view
// taken afterwards. Its hashes stay in memory, filtered out, until a merge rewrites their
// segment. Removing an id the index does not hold returns ErrNoticeNotFound.
func (x *Index) Remove(noticeID string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	h, ok := x.byID[noticeID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoticeNotFound, noticeID)
	}
	delete(x.byID, noticeID)
	old := x.cur.Load()
	nv := &view{segs: old.segs, deadSize: old.deadSize, dead: old.dead.with(h), names: x.names, fallbacks: old.fallbacks}
	if i, j := old.segmentOf(h); i >= 0 {
		nv.deadSize = append([]int(nil), old.deadSize...)
		nv.deadSize[i] += int(old.segs[i].sizes[j])
	}
	x.cur.Store(nv)
	x.scheduleMerges()
	return nil
}

// Has reports whether the index holds a notice (added, not removed).
func (x *Index) Has(noticeID string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, ok := x.byID[noticeID]
	return ok
}

// Stats describes what the index holds and the memory its own arrays use.
type Stats struct {
	Notices int
	// Hashes counts the live hashes of each kind (index: Kind); PDQ_VIDEO counts videos,
	// Frames their unique frames.
	Hashes [numKinds]int
	Frames int
	// Removed counts hashes and frames of removed notices still held until a merge.
	Removed      int
	Segments     int
	SegmentSizes []int // hashes + frames per segment, oldest first
	Bytes        int64 // the index's arrays (not Go's allocator overhead or the query pools)
	// Dense counts the PDQ hashes and frames set apart from their table's slots, in a table of
	// their own, because they would have crowded its buckets (a hash set apart twice counts
	// twice).
	Dense int
	// ScanFallbacks counts the PDQ and frame searches answered by a scan because their probes
	// would have read more (crowded buckets), since the index was made.
	ScanFallbacks uint64
	// Families counts the families of near-duplicates the PDQ and frame tables set apart, and
	// InFamilies the hashes and frames in them, live or removed (see family.go).
	Families, InFamilies int
}

// Stats returns the figures of the current view. It walks every notice run: call it for
// monitoring, not per query.
func (x *Index) Stats() Stats { return x.View().Stats() }

// Stats returns the figures of the view.
func (v View) Stats() Stats {
	st := Stats{Segments: len(v.v.segs), Notices: v.Notices()}
	if v.v.fallbacks != nil {
		st.ScanFallbacks = v.v.fallbacks.Load()
	}
	for i, s := range v.v.segs {
		st.SegmentSizes = append(st.SegmentSizes, s.size)
		st.Removed += v.v.deadSize[i]
		st.Bytes += s.bytes()
		for _, t := range []*pdqTable{s.image, s.frames} {
			for ; t != nil; t = t.dense {
				if t.fam != nil {
					st.Families += t.fam.len()
					st.InFamilies += int(t.loose)
				}
				if t.dense != nil {
					st.Dense += t.len() - int(t.slotEnd)
				}
			}
		}
		for k := range s.cols {
			c := &s.cols[k]
			for r, h := range c.handles {
				if v.v.dead.has(h) {
					continue
				}
				lo, hi := c.starts[r], c.starts[r+1]
				st.Hashes[k] += int(hi - lo)
				if Kind(k) == PDQVideo {
					st.Frames += int(s.frameStart[hi] - s.frameStart[lo])
				}
			}
		}
	}
	st.Bytes += v.v.dead.bytes() + int64(cap(v.v.names))*16
	for _, id := range v.v.names {
		st.Bytes += int64(len(id))
	}
	return st
}
