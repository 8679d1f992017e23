package matchindex

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Merging keeps the number of segments small, since every query visits every segment
// (a 10 M-hash segment costs ≈110 µs a PDQ query, a 1 M one ≈25 µs, a few thousand ≈2 µs).
//
// The policy is the logarithmic method: segments are kept in age order with (live) sizes
// falling by more than MergeFactor F from one to the next; a run of segments that breaks
// that is merged into one. That bounds the count at ≈log_F(hashes/notice size) and
// rewrites each hash ≈log_F times over its life. A segment
// of which a quarter or more is removed notices is rewritten on its own to reclaim them. No
// background merge produces more than Options.MaxMergeShare of the index (half by default), so
// that holding its inputs and its output at once stays within 1.5× the steady state; a segment
// holding most of the index is therefore rewritten only once more than half of it is removed,
// and the rest of the index gathers in segments beside it rather than into it.
//
// Merges run on background goroutines in two lanes, so a long merge of millions of hashes
// (seconds) never holds up the small merges that fold new notices together: the big lane
// takes merges producing bigMerge hashes or more, the small lane the others; each runs one
// merge at a time, and they work on disjoint runs of segments. A merge reads immutable
// segments and the dead set of the view it started from, builds outside any lock, and then
// takes the writer's mutex only to swap its result in: O(segments) plus one bit test per
// notice of the result (to carry over removals made during the merge) — the worst case a
// writer waits on a merge, ≈1 ms per million notices.

const (
	smallLane = 0
	bigLane   = 1
	bigMerge  = 1 << 20 // hashes + frames
)

// mergeState is the merges' bookkeeping, guarded by Index.mu.
type mergeState struct {
	done    *sync.Cond // broadcast when a merge ends
	running [2]bool
	busy    map[*segment]bool // segments a running merge will replace
}

func (m *mergeState) init(mu *sync.Mutex) {
	m.done = sync.NewCond(mu)
	m.busy = map[*segment]bool{}
}

// scheduleMerges starts the merges the policy asks for in idle lanes. Called with x.mu held.
func (x *Index) scheduleMerges() {
	if x.opts.ManualMerge {
		return
	}
	v := x.cur.Load()
	for lane := range x.merges.running {
		if x.merges.running[lane] {
			continue
		}
		if plan := x.planMerge(v, lane); plan != nil {
			x.startMerge(plan, v.dead, lane)
		}
	}
}

// planMerge returns the run of segments of v the policy merges next in a lane, or nil.
func (x *Index) planMerge(v *view, lane int) []*segment {
	segs := v.segs
	live := func(i int) int { return segs[i].size - v.deadSize[i] }
	laneOf := func(size int) int {
		if size >= bigMerge {
			return bigLane
		}
		return smallLane
	}
	// A merge's output is held beside its inputs until it commits: the bound on the memory
	// peak (Options.MaxMergeShare) is a bound on the output.
	total := 0
	for _, s := range segs {
		total += s.size
	}
	fits := func(out int) bool {
		return out < x.opts.mergeFree || float64(out) <= x.opts.MaxMergeShare*float64(total)
	}
	// The policy holds when every segment is more than F times the size of the next newer
	// one. Merge at the newest pair that breaks it, taking in older segments while they
	// are within F times the run (the run's total can break the policy with them too).
	busy := func(i int) bool { return x.merges.busy[segs[i]] }
	for i := len(segs) - 1; i >= 1; i-- {
		if busy(i) || busy(i-1) || live(i)*x.opts.MergeFactor < live(i-1) || !fits(live(i-1)+live(i)) {
			continue
		}
		j, acc := i-1, live(i-1)+live(i)
		for j > 0 && !busy(j-1) && acc*x.opts.MergeFactor >= live(j-1) && fits(acc+live(j-1)) {
			j--
			acc += live(j)
		}
		for lane == smallLane && acc >= bigMerge && j < i-1 {
			acc -= live(j) // leave the big part to the big lane
			j++
		}
		if laneOf(acc) == lane {
			x.planned(acc, total)
			return slices.Clone(segs[j : i+1])
		}
	}
	for i, s := range segs {
		if !x.merges.busy[s] && v.deadSize[i] > 0 && v.deadSize[i]*4 >= s.size && laneOf(live(i)) == lane && fits(live(i)) {
			x.planned(live(i), total)
			return []*segment{s}
		}
	}
	return nil
}

// planned tells the test hook of a merge's planned output.
func (x *Index) planned(out, total int) {
	if x.opts.onMerge != nil {
		x.opts.onMerge(out, total)
	}
}

// startMerge marks a run busy and merges it on a new goroutine. Called with x.mu held.
func (x *Index) startMerge(run []*segment, dead *deadSet, lane int) {
	x.merges.running[lane] = true
	for _, s := range run {
		x.merges.busy[s] = true
	}
	go func() {
		seg := mergeSegments(run, dead, x.opts.MergeWorkers, &x.fallbacks)
		x.mu.Lock()
		defer x.mu.Unlock()
		x.commitMerge(run, seg)
		x.merges.running[lane] = false
		x.scheduleMerges()
		x.merges.done.Broadcast()
	}()
}

// mergeSegments builds one segment holding the notices of run that dead does not hold, its
// tables counting their scan fallbacks in fallbacks.
func mergeSegments(run []*segment, dead *deadSet, workers int, fallbacks *atomic.Uint64) *segment {
	b := segBuilder{fallbacks: fallbacks}
	for _, s := range run {
		b.addFrom(s, func(h uint32) bool { return !dead.has(h) })
	}
	return b.build(workers)
}

// commitMerge publishes a view with run (contiguous in the current view) replaced by seg,
// or dropped if seg is empty. Called with x.mu held.
func (x *Index) commitMerge(run []*segment, seg *segment) {
	old := x.cur.Load()
	i := slices.Index(old.segs, run[0])
	if i < 0 || i+len(run) > len(old.segs) || !slices.Equal(old.segs[i:i+len(run)], run) {
		panic("matchindex: merged segments are no longer contiguous in the current view")
	}
	nv := &view{dead: old.dead, names: old.names, fallbacks: old.fallbacks}
	nv.segs = append(nv.segs, old.segs[:i]...)
	nv.deadSize = append(nv.deadSize, old.deadSize[:i]...)
	if len(seg.handles) > 0 {
		nv.segs = append(nv.segs, seg)
		nv.deadSize = append(nv.deadSize, deadSizeOf(seg, old.dead))
	}
	nv.segs = append(nv.segs, old.segs[i+len(run):]...)
	nv.deadSize = append(nv.deadSize, old.deadSize[i+len(run):]...)
	for _, s := range run {
		delete(x.merges.busy, s)
	}
	x.cur.Store(nv)
}

// WaitMerges returns when no background merge is running or due: the segment layout is
// then the policy's steady state for the notices indexed so far. For tests and benchmarks.
func (x *Index) WaitMerges() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for x.merges.running[smallLane] || x.merges.running[bigLane] {
		x.merges.done.Wait()
	}
}

// Compact waits for background merges, then merges every segment into one, dropping removed
// notices, with BuildWorkers goroutines. Queries continue on the old segments meanwhile.
// Use it after a bulk load through Add, or to reclaim the memory of many removals.
func (x *Index) Compact() {
	x.mu.Lock()
	for x.merges.running[smallLane] || x.merges.running[bigLane] {
		x.merges.done.Wait()
	}
	v := x.cur.Load()
	if len(v.segs) == 0 || (len(v.segs) == 1 && v.deadSize[0] == 0) {
		x.mu.Unlock()
		return
	}
	run := slices.Clone(v.segs)
	// Both lanes are held, so no background merge starts until this one is in.
	x.merges.running = [2]bool{true, true}
	for _, s := range run {
		x.merges.busy[s] = true
	}
	x.mu.Unlock()

	seg := mergeSegments(run, v.dead, x.opts.BuildWorkers, &x.fallbacks)

	x.mu.Lock()
	defer x.mu.Unlock()
	x.commitMerge(run, seg)
	x.merges.running = [2]bool{}
	x.scheduleMerges()
	x.merges.done.Broadcast()
}
