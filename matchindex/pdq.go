package matchindex

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"
)

// pdqEntry is one stored hash in one slot's table. The slot's own bits are implicit (they
// are the bucket); the 96 bits that follow the slot in the hash are inline, so a non-match
// is rejected by two popcounts without touching the master array: a uniform non-match is
// within 31 on 96 bits with probability ≈4·10⁻⁴.
type pdqEntry struct {
	a  uint64 // hash bits [end, end+64) of the 256-bit ring, end = the slot's last bit + 1
	b  uint32 // hash bits [end+64, end+96)
	id uint32 // the hash's entry number in the table's master array
}

// pdqSlot is one slot of the multi-index: bits [off, off+width) of the hash (cyclic), and
// every stored hash sorted by them.
type pdqSlot struct {
	off, width uint
	dir        []uint32 // bucket k is ents[dir[k]:dir[k+1]]
	ents       []pdqEntry
}

// pdqTable answers Hamming-radius queries over 256-bit hashes by multi-index hashing: the
// hash is cut into m slots, each with its own copy of every hash sorted by that slot's key
// (a counting sort) and a directory of bucket starts. Every hash within r of the query
// agrees with it within tₛ bits on at least one slot s whenever Σtₛ ≥ r+1−m (if every slot
// differed by tₛ+1 or more the distance would exceed r), so probing, in every slot, the keys
// within tₛ of the query's key finds every match, and the full check against the master
// array removes every non-match: the search is exact.
//
// The query time is the number of cache lines touched, not instructions (measured: see
// BENCHMARKS.md), so the geometry (m, and the tₛ for each radius) is chosen per table from
// a cost model of lines touched: directory reads, plus bucket lines. Wide slots mean few
// candidates but many probes and a large directory; chooseGeometry balances them.
//
// A table with no slots is scanned: for a few hundred hashes that is cheaper than any probe
// plan and costs no memory beyond the master array.
//
// The master array is kept in two halves: hash i is words front[2i], front[2i+1], back[2i],
// back[2i+1]. A scan reads the front half and the back only for the few hashes within the
// radius on the front: half the bytes and half the popcounts of reading whole hashes. A table
// of biased bits with no slots keeps its most telling bits in front (see layout.go).
type pdqTable struct {
	front, back []uint64
	// Rows [0, loose) belong to families of near-duplicates (fam), rows [loose, end()) are in
	// the slots, or scanned, rows [end(), len) in the dense table. ext[row] is the row's entry number (the order hashes were given
	// in, which hits report), nil when rows are in that order.
	loose uint32
	fam   *pdqFamilies
	ext   []uint32
	slots []pdqSlot // nil: scan
	// plan[r][s] is tₛ for radius r: probe the keys within plan[r][s] of the query's.
	plan [MaxRadius + 1][]uint8
	// perm, if set, moved the bits of every stored hash to balance the slots (see layout.go);
	// queries are moved the same way, and merges put them back.
	perm    *bitPerm
	unperm  *bitPerm
	unpermO sync.Once
	// Rows [slotEnd, len) would have crowded the slots' buckets (see splitCrowded): they are
	// the rows of dense, a table of their own over the same arrays, with its bits moved
	// further and its rows in this table's order (it has no ext). Only when dense is set.
	slotEnd uint32
	dense   *pdqTable
	// fallbacks, if set, counts the queries whose probes would have read more than a scan,
	// and were answered by one (see scanBeyond): the index's counter, which outlives merges.
	fallbacks *atomic.Uint64
}

// pdqMatch is one stored hash within the radius of a query.
type pdqMatch struct {
	id   uint32
	dist int32
}

// ringBits returns the 64 bits of h starting at bit p of the 256-bit ring (bit p of h is
// bit p%64 of word p/64), wrapping from the last word to the first.
func ringBits(h *[4]uint64, p uint) uint64 {
	p &= 255
	i, sh := p/64, p%64
	if sh == 0 {
		return h[i]
	}
	return h[i]>>sh | h[(i+1)&3]<<(64-sh)
}

// key returns slot sl's key of h.
func (sl *pdqSlot) key(h *[4]uint64) uint32 {
	return uint32(ringBits(h, sl.off) & (uint64(1)<<sl.width - 1))
}

// inline returns the 96 bits of h stored inline in sl's entries.
func (sl *pdqSlot) inline(h *[4]uint64) (uint64, uint32) {
	end := sl.off + sl.width
	return ringBits(h, end), uint32(ringBits(h, end+64))
}

// len returns the number of hashes in the table.
func (t *pdqTable) len() int { return len(t.front) / 2 }

// end returns the end of the rows in the slots (or scanned): the dense table's come after.
func (t *pdqTable) end() uint32 {
	if t.dense != nil {
		return t.slotEnd
	}
	return uint32(t.len())
}

// at returns the hash in row id (bits moved, if the table moves them; by the dense table's
// moves too for its rows).
func (t *pdqTable) at(id uint32) [4]uint64 { return rowOf(t.front, t.back, int(id)) }

// original returns the hash in row id with its bits where they were given.
func (t *pdqTable) original(id uint32) [4]uint64 {
	var h [4]uint64
	if t.dense != nil && id >= t.slotEnd {
		h = t.dense.original(id - t.slotEnd)
	} else {
		h = t.at(id)
	}
	if t.perm != nil {
		t.unpermO.Do(func() { t.unperm = t.perm.inverse() })
		h = t.unperm.apply(&h)
	}
	return h
}

// setFallbacks makes the table and its dense ones count their scans in f.
func (t *pdqTable) setFallbacks(f *atomic.Uint64) {
	for ; t != nil; t = t.dense {
		t.fallbacks = f
	}
}

// entryRows returns the row of each entry (the inverse of ext), or nil when rows are in entry
// order: for a merge, which reads the table entry by entry. Each merge makes its own, so a
// table read by a merge is not written to.
func (t *pdqTable) entryRows() []uint32 {
	if t.ext == nil {
		return nil
	}
	pos := make([]uint32, len(t.ext))
	for row, e := range t.ext {
		pos[e] = uint32(row)
	}
	return pos
}

// appendOriginal appends the hashes of entries [lo, hi) to dst, with their bits where they
// were given (for a merge, which lays out a table of its own); pos is entryRows().
func (t *pdqTable) appendOriginal(dst *chunked[uint64], lo, hi uint32, pos []uint32) {
	for e := lo; e < hi; e++ {
		id := e
		if pos != nil {
			id = pos[e]
		}
		h := t.original(id)
		dst.append(h[:]...)
	}
}

// splitRows returns the two halves of the hashes in c (4 words each, in order), read straight
// from its chunks.
func splitRows(c *chunked[uint64]) (front, back []uint64) {
	n := c.n / 4
	front, back = make([]uint64, 2*n), make([]uint64, 2*n)
	j := 0
	put := func(vs []uint64) {
		for _, v := range vs {
			i, w := j/4, j%4
			if w < 2 {
				front[2*i+w] = v
			} else {
				back[2*i+w-2] = v
			}
			j++
		}
	}
	for _, d := range c.done {
		put(d)
	}
	put(c.cur)
	return front, back
}

// probe is one bucket to scan: entries [lo, hi) of a slot, whose key is dist bits from the
// query's.
type probe struct {
	lo, hi     uint32
	slot, dist uint8
}

// probeBuf recycles probe lists (up to ≈3 000 probes a query) across queries.
var probeBuf = sync.Pool{New: func() any { s := make([]probe, 0, 4096); return &s }}

// search appends every stored hash within distance r (0..MaxRadius) of q to dst, each once,
// by its entry number: the families' (see family.go), then the others' by the slots.
func (t *pdqTable) search(q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	start := len(dst)
	dst = t.searchRows(q, r, dst)
	t.toEntries(dst[start:])
	return dst
}

// searchRows is search by row: the families', the slots' (or a scan's), the dense table's.
func (t *pdqTable) searchRows(q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	if t.perm != nil {
		moved := t.perm.apply(q)
		q = &moved
	}
	if t.fam != nil {
		dst = t.searchFamilies(q, r, dst)
	}
	if t.slots == nil {
		dst = t.scanRows(q, r, t.loose, t.end(), dst)
	} else {
		dst = t.probe(q, r, dst)
	}
	if t.dense != nil {
		start := len(dst)
		dst = t.dense.searchRows(q, r, dst)
		for i := range dst[start:] {
			dst[start+i].id += t.slotEnd
		}
	}
	return dst
}

// toEntries replaces the rows of ms by their entry numbers.
func (t *pdqTable) toEntries(ms []pdqMatch) {
	if t.ext == nil {
		return
	}
	for i := range ms {
		ms[i].id = t.ext[ms[i].id]
	}
}

// probe appends every hash of the slots (rows [loose, end())) within distance r of q, whose
// bits are moved as the table's, to dst, each once, by row.
//
// It runs in three passes so the cache misses of one pass are independent of each other and
// the CPU overlaps them (one pass of dependent misses ran ≈1.8× slower): read the directory
// entry of every probed key, then touch every line of every bucket, then scan the buckets,
// now in cache.
func (t *pdqTable) probe(q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	plan := t.plan[r]
	bp := probeBuf.Get().(*[]probe)
	probes := (*bp)[:0]
	for s := range t.slots {
		sl := &t.slots[s]
		dir := sl.dir
		k := sl.key(q)
		probes = appendProbe(probes, dir, k, s, 0)
		if plan[s] == 0 {
			continue
		}
		for i := range sl.width {
			ki := k ^ 1<<i
			probes = appendProbe(probes, dir, ki, s, 1)
			if plan[s] < 2 {
				continue
			}
			for j := i + 1; j < sl.width; j++ {
				probes = appendProbe(probes, dir, ki^1<<j, s, 2)
			}
		}
	}
	// The probes' bucket sizes are known now: where the data crowds the query's buckets (biased
	// bits, a cluster of near-duplicates), reading them would cost more than a scan, which is
	// just as exact.
	entries := 0
	for _, p := range probes {
		entries += int(p.hi - p.lo)
	}
	if float64(entries) > scanBeyond*float64(t.end()-t.loose) {
		*bp = probes
		probeBuf.Put(bp)
		if t.fallbacks != nil {
			t.fallbacks.Add(1)
		}
		return t.scanRows(q, r, t.loose, t.end(), dst)
	}
	var sink uint32
	for _, p := range probes {
		sink += touch(t.slots[p.slot].ents[p.lo:p.hi])
	}
	if sink == 1<<31 {
		touchSink.Add(1) // the loads must look used; a shared write on every query would not scale
	}
	var qa [maxSlots]uint64
	var qb [maxSlots]uint32
	for s := range t.slots {
		qa[s], qb[s] = t.slots[s].inline(q)
	}
	for _, p := range probes {
		es := t.slots[p.slot].ents[p.lo:p.hi]
		a, b, lim := qa[p.slot], qb[p.slot], r-int(p.dist)
		for i := range es {
			e := &es[i]
			if bits.OnesCount64(e.a^a)+bits.OnesCount32(e.b^b) <= lim {
				dst = t.verify(e.id, q, r, int(p.slot), plan, dst)
			}
		}
	}
	*bp = probes
	probeBuf.Put(bp)
	return dst
}

// scanBeyond is the share of a table's hashes its probes may read before a scan is cheaper: a
// probed entry costs 16 bytes and two popcounts, read bucket by bucket, but the buckets'
// lines are scattered and the candidates verified; a scanned hash 32 bytes and four
// popcounts, read in one prefetched stream. Measured with mihbench on the harsh-skew corpus at
// 1 M: probes reading a quarter of the table took 3.5× a scan, a sixteenth about as long.
const scanBeyond = 1.0 / 16

// appendProbe adds bucket k of a slot to the probe list if it is not empty.
func appendProbe(probes []probe, dir []uint32, k uint32, s, dist int) []probe {
	lo, hi := dir[k], dir[k+1]
	if lo == hi {
		return probes
	}
	return append(probes, probe{lo: lo, hi: hi, slot: uint8(s), dist: uint8(dist)})
}

// touchSink keeps the touch pass's loads from being optimised away.
var touchSink atomic.Uint32

// touch reads one word of every cache line of es (16-byte entries, 4 a line), so the lines
// are in cache when the bucket is scanned.
func touch(es []pdqEntry) uint32 {
	var x uint32
	for i := 0; i < len(es); i += 4 {
		x += es[i].id
	}
	if len(es) > 0 {
		x += es[len(es)-1].id // the last line when the bucket straddles one more
	}
	return x
}

// verify checks a candidate found in slot s against the master array. A match is reported
// only from the first slot whose key is within that slot's tₛ of the query's, so no hash is
// reported twice and no set of seen ids is needed.
func (t *pdqTable) verify(id uint32, q *[4]uint64, r, s int, plan []uint8, dst []pdqMatch) []pdqMatch {
	h := t.at(id)
	x := [4]uint64{h[0] ^ q[0], h[1] ^ q[1], h[2] ^ q[2], h[3] ^ q[3]}
	d := bits.OnesCount64(x[0]) + bits.OnesCount64(x[1]) + bits.OnesCount64(x[2]) + bits.OnesCount64(x[3])
	if d > r {
		return dst
	}
	for j := range s {
		if bits.OnesCount32(t.slots[j].key(&x)) <= int(plan[j]) {
			return dst // slot j finds it
		}
	}
	return append(dst, pdqMatch{id: id, dist: int32(d)})
}

// scan compares q with every stored hash, by entry number: what search must answer (tests
// compare the two).
func (t *pdqTable) scan(q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	start := len(dst)
	dst = t.scanAllRows(q, r, dst)
	t.toEntries(dst[start:])
	return dst
}

// scanAllRows is scan by row.
func (t *pdqTable) scanAllRows(q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	if t.perm != nil {
		moved := t.perm.apply(q)
		q = &moved
	}
	dst = t.scanRows(q, r, 0, t.end(), dst)
	if t.dense != nil {
		start := len(dst)
		dst = t.dense.scanAllRows(q, r, dst)
		for i := range dst[start:] {
			dst[start+i].id += t.slotEnd
		}
	}
	return dst
}

// scanRows appends the hashes of rows [lo, hi) within distance r of q, whose bits are moved
// as the table's, to dst, by row.
func (t *pdqTable) scanRows(q *[4]uint64, r int, lo, hi uint32, dst []pdqMatch) []pdqMatch {
	return scanHalves(t.front[2*lo:2*hi], t.back[2*lo:2*hi], lo, q, r, dst)
}

// scanHalves appends the hashes in front and back (the halves of each, see pdqTable) within
// distance r of q to dst, hash i as base+i, block by block: a block is read front half first,
// four hashes at a time with one branch for the four (a hash is rarely within r on its front
// alone), then the back half of those that are — measured at 1 M uniform hashes, 2.2–2.4×
// faster than reading whole hashes (GOAMD64 v1 and v2): the loop, not the memory, was the
// bound. Where the hashes crowd around q (near-duplicates of it, biased bits: what makes a
// query fall back to a scan), most fronts are within r and that branch goes either way; a
// block after one where more than an eighth of the fours passed on their fronts is read whole,
// with no branch but the hits', until a block's fronts are far again.
func scanHalves(front, back []uint64, base uint32, q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	n := len(front) / 2
	whole := false
	for lo := 0; lo < n; lo += scanBlock {
		hi := min(n, lo+scanBlock)
		var passed int
		if whole {
			dst, passed = scanWhole(front, back, base, lo, hi, q, r, dst)
		} else {
			dst, passed = scanFronts(front, back, base, lo, hi, q, r, dst)
		}
		whole = passed > scanBlock/4/8
	}
	return dst
}

// scanBlock is how many hashes scanHalves reads before choosing again how to read them.
const scanBlock = 256

// scanFronts appends the hashes of [lo, hi) within r of q to dst, reading their back halves
// only when their front is within r, and returns how many fours passed on their fronts.
func scanFronts(front, back []uint64, base uint32, lo, hi int, q *[4]uint64, r int, dst []pdqMatch) ([]pdqMatch, int) {
	q0, q1 := q[0], q[1]
	passed := 0
	i := lo
	for ; i+4 <= hi; i += 4 {
		d0, d1, d2, d3 := fronts(front[2*i:2*i+8:2*i+8], q0, q1)
		if min(d0, d1, d2, d3) <= r {
			passed++
			for k, d := range [4]int{d0, d1, d2, d3} {
				dst = scanBack(back, base, i+k, d, q, r, dst)
			}
		}
	}
	return scanRest(front, back, base, i, hi, q, r, dst), passed
}

// scanWhole appends the hashes of [lo, hi) within r of q to dst, reading whole hashes four at
// a time, and returns how many fours would have passed on their fronts.
func scanWhole(front, back []uint64, base uint32, lo, hi int, q *[4]uint64, r int, dst []pdqMatch) ([]pdqMatch, int) {
	q0, q1, q2, q3 := q[0], q[1], q[2], q[3]
	passed := 0
	i := lo
	for ; i+4 <= hi; i += 4 {
		d0, d1, d2, d3 := fronts(front[2*i:2*i+8:2*i+8], q0, q1)
		b := back[2*i : 2*i+8 : 2*i+8]
		if min(d0, d1, d2, d3) <= r {
			passed++
		}
		d0 += bits.OnesCount64(b[0]^q2) + bits.OnesCount64(b[1]^q3)
		d1 += bits.OnesCount64(b[2]^q2) + bits.OnesCount64(b[3]^q3)
		d2 += bits.OnesCount64(b[4]^q2) + bits.OnesCount64(b[5]^q3)
		d3 += bits.OnesCount64(b[6]^q2) + bits.OnesCount64(b[7]^q3)
		if min(d0, d1, d2, d3) <= r {
			for k, d := range [4]int{d0, d1, d2, d3} {
				if d <= r {
					dst = append(dst, pdqMatch{id: base + uint32(i+k), dist: int32(d)})
				}
			}
		}
	}
	return scanRest(front, back, base, i, hi, q, r, dst), passed
}

// fronts returns the distances of four hashes' front halves, f, from q0 and q1.
func fronts(f []uint64, q0, q1 uint64) (d0, d1, d2, d3 int) {
	f = f[:8:8]
	return bits.OnesCount64(f[0]^q0) + bits.OnesCount64(f[1]^q1), bits.OnesCount64(f[2]^q0) + bits.OnesCount64(f[3]^q1),
		bits.OnesCount64(f[4]^q0) + bits.OnesCount64(f[5]^q1), bits.OnesCount64(f[6]^q0) + bits.OnesCount64(f[7]^q1)
}

// scanRest finishes a block's last hashes, [i, hi), fewer than four, one at a time.
func scanRest(front, back []uint64, base uint32, i, hi int, q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	for ; i < hi; i++ {
		dst = scanBack(back, base, i, bits.OnesCount64(front[2*i]^q[0])+bits.OnesCount64(front[2*i+1]^q[1]), q, r, dst)
	}
	return dst
}

// scanBack finishes hash i, d bits from q on its front half.
func scanBack(back []uint64, base uint32, i, d int, q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	if d > r {
		return dst
	}
	b := back[2*i : 2*i+2 : 2*i+2]
	if d += bits.OnesCount64(b[0]^q[2]) + bits.OnesCount64(b[1]^q[3]); d <= r {
		dst = append(dst, pdqMatch{id: base + uint32(i), dist: int32(d)})
	}
	return dst
}

// bytes returns the memory held by the table's arrays.
func (t *pdqTable) bytes() int64 {
	b := int64(cap(t.front)+cap(t.back))*8 + t.indexBytes()
	for d := t.dense; d != nil; d = d.dense {
		b += d.indexBytes() // its arrays are this table's
	}
	return b
}

// indexBytes is the memory of the table's arrays but the hashes'.
func (t *pdqTable) indexBytes() int64 {
	b := int64(cap(t.ext))*4 + t.fam.bytes()
	if t.perm != nil {
		b += int64(unsafe.Sizeof(*t.perm))
	}
	for _, sl := range t.slots {
		b += int64(cap(sl.dir))*4 + int64(cap(sl.ents))*16
	}
	return b
}
