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
type pdqTable struct {
	full  []uint64  // master array: 4 words per hash, in entry order
	slots []pdqSlot // nil: scan
	// plan[r][s] is tₛ for radius r: probe the keys within plan[r][s] of the query's.
	plan [MaxRadius + 1][]uint8
	// perm, if set, moved the bits of every stored hash to balance the slots (see layout.go);
	// queries are moved the same way, and merges put them back.
	perm    *bitPerm
	unperm  *bitPerm
	unpermO sync.Once
	// fallbacks counts the queries whose probes would have read more than a scan, and were
	// answered by one (see scanBeyond).
	fallbacks atomic.Uint64
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
func (t *pdqTable) len() int { return len(t.full) / 4 }

// appendOriginal appends stored hashes [lo, hi) to dst, with their bits where they were given
// (for a merge, which lays out a table of its own).
func (t *pdqTable) appendOriginal(dst *chunked[uint64], lo, hi uint32) {
	vals := t.full[4*int(lo) : 4*int(hi)]
	if t.perm == nil {
		dst.append(vals...)
		return
	}
	t.unpermO.Do(func() { t.unperm = t.perm.inverse() })
	for i := 0; i < len(vals); i += 4 {
		h := t.unperm.apply((*[4]uint64)(vals[i:]))
		dst.append(h[:]...)
	}
}

// probe is one bucket to scan: entries [lo, hi) of a slot, whose key is dist bits from the
// query's.
type probe struct {
	lo, hi     uint32
	slot, dist uint8
}

// probeBuf recycles probe lists (up to ≈3 000 probes a query) across queries.
var probeBuf = sync.Pool{New: func() any { s := make([]probe, 0, 4096); return &s }}

// search appends every stored hash within distance r (0..MaxRadius) of q to dst, each once.
//
// It runs in three passes so the cache misses of one pass are independent of each other and
// the CPU overlaps them (one pass of dependent misses ran ≈1.8× slower): read the directory
// entry of every probed key, then touch every line of every bucket, then scan the buckets,
// now in cache.
func (t *pdqTable) search(q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	if t.slots == nil {
		return t.scan(q, r, dst)
	}
	if t.perm != nil {
		moved := t.perm.apply(q)
		q = &moved
	}
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
	if float64(entries) > scanBeyond*float64(t.len()) {
		*bp = probes
		probeBuf.Put(bp)
		t.fallbacks.Add(1)
		return t.scanStored(q, r, dst)
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
	h := (*[4]uint64)(t.full[4*id:])
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

// scan compares q with every stored hash: the plan for tables too small to need slots.
func (t *pdqTable) scan(q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	if t.perm != nil {
		moved := t.perm.apply(q)
		q = &moved
	}
	return t.scanStored(q, r, dst)
}

// scanStored is scan for a query whose bits are already moved as the table's.
func (t *pdqTable) scanStored(q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	full := t.full
	for i := 0; i+4 <= len(full); i += 4 {
		h := full[i : i+4 : i+4]
		d := bits.OnesCount64(h[0]^q[0]) + bits.OnesCount64(h[1]^q[1]) +
			bits.OnesCount64(h[2]^q[2]) + bits.OnesCount64(h[3]^q[3])
		if d <= r {
			dst = append(dst, pdqMatch{id: uint32(i / 4), dist: int32(d)})
		}
	}
	return dst
}

// bytes returns the memory held by the table's arrays.
func (t *pdqTable) bytes() int64 {
	b := int64(cap(t.full)) * 8
	if t.perm != nil {
		b += int64(unsafe.Sizeof(*t.perm))
	}
	for _, sl := range t.slots {
		b += int64(cap(sl.dir))*4 + int64(cap(sl.ents))*16
	}
	return b
}
