package matchindex

import (
	"cmp"
	"math/bits"
	"slices"
)

// exactTable finds stored values equal to a query: the values sorted, with a directory on
// their first bits. Cryptographic hashes are uniform, so the directory alone lands within a
// couple of entries of the answer: a lookup is two cache misses (directory, keys), with no
// per-entry overhead (a Go map[[32]byte]uint32 of 10 M keys costs 67 bytes an entry; this
// 40 with the position). Duplicates are adjacent and all returned; a non-uniform list only makes
// the final binary search longer, never wrong.
type exactTable struct {
	w     int      // 64-bit words per value: 4 (SHA-256) or 2 (MD5)
	shift uint     // a value's bucket is its first word >> shift (64: one bucket)
	dir   []uint32 // bucket b is keys [dir[b], dir[b+1])
	keys  []uint64 // sorted values, w words each (big-endian words: byte order)
	refs  []uint32 // refs[i]: the column entry holding keys[i]
}

// newExactTable sorts n = len(words)/w values given in entry order.
func newExactTable(words []uint64, w int) *exactTable {
	n := len(words) / w
	dbits := 0
	if n >= 4 {
		dbits = min(bits.Len(uint(n))-2, 24) // ≤ n/2 buckets: ≤ 2 bytes a value
	}
	t := &exactTable{w: w, shift: uint(64 - dbits)}
	t.dir = make([]uint32, 1<<dbits+1)
	for i := range n {
		t.dir[t.bucket(words[i*w])+1]++
	}
	for b := 1; b < len(t.dir); b++ {
		t.dir[b] += t.dir[b-1]
	}
	cur := slices.Clone(t.dir[:len(t.dir)-1])
	refs := make([]uint32, n)
	for i := range n {
		b := t.bucket(words[i*w])
		refs[cur[b]] = uint32(i)
		cur[b]++
	}
	byValue := func(x, y uint32) int {
		if c := slices.Compare(words[int(x)*w:int(x+1)*w], words[int(y)*w:int(y+1)*w]); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	}
	for b := 0; b+1 < len(t.dir); b++ {
		if run := refs[t.dir[b]:t.dir[b+1]]; len(run) > 1 {
			slices.SortFunc(run, byValue)
		}
	}
	t.keys = make([]uint64, n*w)
	for i, r := range refs {
		copy(t.keys[i*w:(i+1)*w], words[int(r)*w:int(r+1)*w])
	}
	t.refs = refs
	return t
}

func (t *exactTable) bucket(first uint64) uint64 {
	if t.shift >= 64 {
		return 0
	}
	return first >> t.shift
}

// lookup appends to dst the column entries whose value equals q (w words).
func (t *exactTable) lookup(q []uint64, dst []uint32) []uint32 {
	if len(t.refs) == 0 {
		return dst
	}
	b := t.bucket(q[0])
	lo, hi := int(t.dir[b]), int(t.dir[b+1])
	w := t.w
	// First key ≥ q in the bucket.
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if slices.Compare(t.keys[mid*w:(mid+1)*w], q) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for i := lo; i < len(t.refs) && slices.Equal(t.keys[i*w:(i+1)*w], q); i++ {
		dst = append(dst, t.refs[i])
	}
	return dst
}

// entryWords returns the values back in entry order, for a merge to rebuild from.
func (t *exactTable) entryWords() []uint64 {
	w := t.w
	out := make([]uint64, len(t.keys))
	for i, r := range t.refs {
		copy(out[int(r)*w:int(r+1)*w], t.keys[i*w:(i+1)*w])
	}
	return out
}

// bytes returns the memory held by the table's arrays.
func (t *exactTable) bytes() int64 {
	return int64(cap(t.dir))*4 + int64(cap(t.keys))*8 + int64(cap(t.refs))*4
}
