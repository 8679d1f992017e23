package matchindex

import (
	"slices"
	"sort"
	"sync/atomic"
)

// column lists the hashes of one kind in a segment in (notice, position) order: notice runs
// handles[k] owns entries [starts[k], starts[k+1]). An entry's notice is found by binary
// search over the runs, which only hits pay for, so an entry costs 2 bytes (its position)
// rather than 6.
type column struct {
	handles []uint32 // notice handle of each run
	starts  []uint32 // len(handles)+1 run boundaries; starts[0] == 0
	pos     []uint16 // position of each entry in its notice's hash list
}

// owner returns the notice handle and position of entry e.
func (c *column) owner(e uint32) (handle uint32, pos int) {
	k := sort.Search(len(c.handles), func(i int) bool { return c.starts[i+1] > e })
	return c.handles[k], int(c.pos[e])
}

func (c *column) bytes() int64 {
	return int64(cap(c.handles))*4 + int64(cap(c.starts))*4 + int64(cap(c.pos))*2
}

// segment is an immutable part of the index: the hashes of a set of whole notices. It is
// built once, outside any lock, and then only read (by any number of goroutines) until a
// merge replaces it.
type segment struct {
	cols  [numKinds]column
	exact [numKinds]*exactTable // for SHA256, MD5, URLSHA256
	image *pdqTable             // values of the PDQ column
	// frames holds the unique frames of every PDQ_VIDEO entry: video e's are frames
	// [frameStart[e], frameStart[e+1]).
	frames     *pdqTable
	frameStart []uint32
	// handles lists the segment's notices, sorted, with sizes[i] = hashes + frames of
	// notice handles[i]: Remove finds a notice's segment, and merges weigh removals, by it.
	handles []uint32
	sizes   []uint32
	size    int // hashes + frames: what merges and queries cost
}

// find returns the index of handle h in the segment's notice list, or -1.
func (s *segment) find(h uint32) int {
	i, ok := slices.BinarySearch(s.handles, h)
	if !ok {
		return -1
	}
	return i
}

// videoOf returns the PDQ_VIDEO entry that frame f belongs to.
func (s *segment) videoOf(f uint32) uint32 {
	return uint32(sort.Search(len(s.frameStart)-1, func(i int) bool { return s.frameStart[i+1] > f }))
}

// bytes returns the memory held by the segment's arrays.
func (s *segment) bytes() int64 {
	b := int64(cap(s.frameStart))*4 + int64(cap(s.handles))*4 + int64(cap(s.sizes))*4
	for k := range s.cols {
		b += s.cols[k].bytes()
		if s.exact[k] != nil {
			b += s.exact[k].bytes()
		}
	}
	return b + s.image.bytes() + s.frames.bytes()
}

// chunked is an append-only buffer that grows by whole chunks, so appending millions of
// values never copies what is already there (growing one slice by append copied ≈5× the
// final size: 1.6 s of a 10 M-hash build); flatten copies once into an exact-size array.
type chunked[T any] struct {
	done [][]T
	cur  []T
	n    int
}

func (c *chunked[T]) append(v ...T) {
	for len(v) > 0 {
		if len(c.cur) == cap(c.cur) {
			if c.cur != nil {
				c.done = append(c.done, c.cur)
			}
			c.cur = make([]T, 0, min(max(256, c.n/4), 1<<16)) // small for one notice, large for millions
		}
		k := min(len(v), cap(c.cur)-len(c.cur))
		c.cur = append(c.cur, v[:k]...)
		c.n += k
		v = v[k:]
	}
}

func (c *chunked[T]) flatten() []T {
	out := make([]T, 0, c.n)
	for _, d := range c.done {
		out = append(out, d...)
	}
	return append(out, c.cur...)
}

// colBuilder gathers a column.
type colBuilder struct {
	handles, starts []uint32
	pos             chunked[uint16]
}

func (c *colBuilder) addRun(h uint32, pos []uint16) {
	if len(c.starts) == 0 {
		c.starts = append(c.starts, 0)
	}
	c.handles = append(c.handles, h)
	c.pos.append(pos...)
	c.starts = append(c.starts, uint32(c.pos.n))
}

// segBuilder gathers whole notices, then builds a segment from them.
type segBuilder struct {
	cols       [numKinds]colBuilder
	words      [numKinds]chunked[uint64] // exact kinds and PDQ: values in entry order
	frames     chunked[uint64]           // video frames, 4 words each
	frameStart []uint32
	handles    []uint32
	sizes      []uint32
	size       int
	posBuf     [numKinds][]uint16
	seen       map[[4]uint64]struct{} // frames of the video being added
	// fallbacks is the index's count of searches answered by a scan, for the tables built.
	fallbacks *atomic.Uint64
}

// addNotice appends notice h's hashes, which checkNotice has accepted.
func (b *segBuilder) addNotice(h uint32, hashes []Hash) {
	for k := range b.posBuf {
		b.posBuf[k] = b.posBuf[k][:0]
	}
	size := 0
	for p, hh := range hashes {
		k := hh.Kind
		b.posBuf[k] = append(b.posBuf[k], uint16(p))
		if k == PDQVideo {
			size += b.addVideo(hh.Value)
			continue
		}
		var v [4]uint64
		w := k.words()
		loadWords(v[:w], hh.Value)
		b.words[k].append(v[:w]...)
		size++
	}
	for k, pos := range b.posBuf {
		if len(pos) > 0 {
			b.cols[k].addRun(h, pos)
		}
	}
	b.addHandle(h, size)
}

// addVideo appends a video's unique frames (vPDQ counts a repeated frame once) and returns
// how many there are.
func (b *segBuilder) addVideo(v []byte) int {
	if len(b.frameStart) == 0 {
		b.frameStart = append(b.frameStart, 0)
	}
	if b.seen == nil {
		b.seen = make(map[[4]uint64]struct{})
	}
	clear(b.seen)
	for i := 0; i < len(v); i += PDQSize {
		f := pdqWords(v[i:])
		if _, dup := b.seen[f]; dup {
			continue
		}
		b.seen[f] = struct{}{}
		b.frames.append(f[:]...)
	}
	b.frameStart = append(b.frameStart, uint32(b.frames.n/4))
	return len(b.seen)
}

func (b *segBuilder) addHandle(h uint32, size int) {
	b.handles = append(b.handles, h)
	b.sizes = append(b.sizes, uint32(size))
	b.size += size
}

// addFrom appends the notices of segment s that keep(handle) accepts, for a merge.
func (b *segBuilder) addFrom(s *segment, keep func(h uint32) bool) {
	imageRows, frameRows := s.image.entryRows(), s.frames.entryRows()
	for k := Kind(1); k < numKinds; k++ {
		c := &s.cols[k]
		var vals []uint64 // the column's values in entry order
		var w int
		switch {
		case k.exact() && s.exact[k] != nil:
			vals, w = s.exact[k].entryWords(), s.exact[k].w
		}
		for r, h := range c.handles {
			if !keep(h) {
				continue
			}
			lo, hi := c.starts[r], c.starts[r+1]
			b.cols[k].addRun(h, c.pos[lo:hi])
			if k == PDQVideo {
				for e := lo; e < hi; e++ {
					if len(b.frameStart) == 0 {
						b.frameStart = append(b.frameStart, 0)
					}
					s.frames.appendOriginal(&b.frames, s.frameStart[e], s.frameStart[e+1], frameRows)
					b.frameStart = append(b.frameStart, uint32(b.frames.n/4))
				}
				continue
			}
			if k == PDQ {
				s.image.appendOriginal(&b.words[k], lo, hi, imageRows)
				continue
			}
			b.words[k].append(vals[int(lo)*w : int(hi)*w]...)
		}
	}
	for i, h := range s.handles {
		if keep(h) {
			b.addHandle(h, int(s.sizes[i]))
		}
	}
}

// trim returns s in an array of its own length when appends left much spare capacity (up to
// a quarter for large slices): the master arrays live as long as the segment.
func trim[T any](s []T) []T {
	if cap(s)-len(s) <= len(s)/32 {
		return s
	}
	return slices.Clone(s)
}

// build makes the segment, building its tables on up to workers goroutines. The builder
// must not be used afterwards (the segment keeps its arrays).
func (b *segBuilder) build(workers int) *segment {
	s := &segment{frameStart: trim(b.frameStart), size: b.size}
	for k := range b.cols {
		c := &b.cols[k]
		s.cols[k] = column{handles: trim(c.handles), starts: trim(c.starts), pos: c.pos.flatten()}
	}
	// Notices arrive in handle order (handles grow with time, and merges take segments in
	// age order); sort anyway rather than rely on it.
	order := make([]int, len(b.handles))
	for i := range order {
		order[i] = i
	}
	if !slices.IsSorted(b.handles) {
		sort.Slice(order, func(i, j int) bool { return b.handles[order[i]] < b.handles[order[j]] })
	}
	s.handles = make([]uint32, len(order))
	s.sizes = make([]uint32, len(order))
	for i, o := range order {
		s.handles[i], s.sizes[i] = b.handles[o], b.sizes[o]
	}
	var tasks []func()
	for _, k := range []Kind{SHA256, MD5, URLSHA256} {
		if b.words[k].n > 0 {
			words := b.words[k].flatten()
			tasks = append(tasks, func() { s.exact[k] = newExactTable(words, k.words()) })
		}
	}
	// The builder's chunks are let go as soon as their halves are made: the build's peak
	// memory holds one copy of the hashes, not two.
	front, back := splitRows(&b.words[PDQ])
	b.words[PDQ] = chunked[uint64]{}
	s.image = plannedPDQTable(front, back, workers, &tasks)
	front, back = splitRows(&b.frames)
	b.frames = chunked[uint64]{}
	s.frames = plannedPDQTable(front, back, workers, &tasks)
	s.image.setFallbacks(b.fallbacks)
	s.frames.setFallbacks(b.fallbacks)
	parallel(len(tasks), workers, func(i int) { tasks[i]() })
	return s
}
