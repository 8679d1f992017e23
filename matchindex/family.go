package matchindex

import (
	"cmp"
	"math/bits"
	"slices"
)

// Families of near-duplicates.
//
// Real collections hold the same picture many times over: re-encodes, resizes, crops, the
// frames of one scene of a video. In a multi-index such a family crowds the same bucket of
// every slot, so a query that probes one of its keys reads the whole family in every slot —
// the cost that kept the mild-skew corpus 3–5× slower than uniform hashes. A table therefore
// sets large families apart: each is stored as a pivot (the bitwise majority of its members,
// which need not be a stored hash), a radius (the farthest member's distance from it), and its
// members' rows, contiguous, farthest from the pivot first. A query compares the pivots, and
// reads a family only when its pivot is within r + radius, and then only the members at least
// d(query, pivot) − r from the pivot: by the triangle inequality no other member can be within
// r. The members are in no slot, so a family costs its members' 32 bytes and row numbers, one
// comparison a query, and nothing in the buckets.
//
// Exactness does not depend on how the families are found, only on every row being either in a
// family, with its distance to the pivot recorded, or in the slots. Finding them: the hashes are
// grouped by a key of their most telling bits; in a key shared by at least famMin hashes, a
// seed's close neighbours vote the pivot's bits. Every hash then joins a pivot within famRadius
// if it has one, found through a pigeonhole index of the pivots (pivotIndex), and families left
// smaller than famMin are dissolved. Uniform hashes have no family: a key crowded by chance holds
// hashes ≈128 bits apart, and the search costs a pass over the hashes' keys.

const (
	famMinTable = 1 << 12 // tables smaller than this look for no families
	famMin      = 16      // members a family needs
	famRadius   = 16      // the farthest a member may be from its pivot
	famSeeds    = 8       // seeds tried in one crowded key
	famVoters   = 64      // neighbours of a seed that vote a pivot's bits, at most
	famKeyMax   = 20      // bits of the grouping key, at most
	famLoose    = ^uint32(0)
)

// maxPivots is how many families a table of n hashes keeps, the largest first: every query
// compares every pivot (≈1.5 ns each with POPCNT, measured on the mild-skew corpus), which
// must stay well under what the slots would cost for the same hashes (≈25 µs a query at 1 M
// uniform hashes, ≈120 µs at 10 M).
func maxPivots(n int) int { return max(4096, n/64) }

// pdqFamilies are a table's families: family f has pivot f (bits moved as the table's), radius
// rad[f], and rows [start[f], start[f+1]), its members farthest from the pivot first: those at
// distance d or more from it are rows [start[f], ends[f·(famRadius+2)+d]).
type pdqFamilies struct {
	piv    [][4]uint64
	rad    []uint8
	start  []uint32
	ends   []uint32
	maxRad int
}

func (f *pdqFamilies) bytes() int64 {
	if f == nil {
		return 0
	}
	return int64(cap(f.piv))*32 + int64(cap(f.rad)) + int64(cap(f.start)+cap(f.ends))*4
}

// len is the number of families.
func (f *pdqFamilies) len() int { return len(f.rad) }

// searchFamilies appends every family member within r of q (bits moved as the table's) to
// dst, by row. A member m of a family with pivot p is within r of q only if
// d(q,p) − r ≤ d(m,p) ≤ radius, so a family is read only when d(q,p) ≤ r + radius, and then
// only its members at least d(q,p) − r from the pivot: a prefix of its rows. The pivots are
// compared whole, with one branch a pivot that is nearly always not taken: reading half of
// each first, as the scans do, passed so many pivots (the bound is up to 47) that
// mispredicted branches cost more than the other half.
func (t *pdqTable) searchFamilies(q *[4]uint64, r int, dst []pdqMatch) []pdqMatch {
	f := t.fam
	lim := r + f.maxRad
	for p := range f.piv {
		v := &f.piv[p]
		d := bits.OnesCount64(v[0]^q[0]) + bits.OnesCount64(v[1]^q[1]) +
			bits.OnesCount64(v[2]^q[2]) + bits.OnesCount64(v[3]^q[3])
		if d <= lim && d <= r+int(f.rad[p]) {
			end := f.start[p+1]
			if d > r {
				end = f.ends[p*(famRadius+2)+d-r]
			}
			dst = t.scanRows(q, r, f.start[p], end, dst)
		}
	}
	return dst
}

// rowOf returns hash i of the halves front and back.
func rowOf(front, back []uint64, i int) [4]uint64 {
	f, b := front[2*i:2*i+2:2*i+2], back[2*i:2*i+2:2*i+2]
	return [4]uint64{f[0], f[1], b[0], b[1]}
}

func distance(a, b *[4]uint64) int {
	return bits.OnesCount64(a[0]^b[0]) + bits.OnesCount64(a[1]^b[1]) +
		bits.OnesCount64(a[2]^b[2]) + bits.OnesCount64(a[3]^b[3])
}

// findFamilies looks for families among the hashes in front and back (in their given order,
// bits in place). It returns nil when there are none, or the families and the rows' new order:
// ext[row] is the hash at that row, the families' members first, family by family, then the
// others in their given order (nil when that is the order they are in).
func findFamilies(front, back []uint64, workers int) (*pdqFamilies, []uint32) {
	n := len(front) / 2
	if n < famMinTable {
		return nil, nil
	}
	// The key: the w most telling bits, w such that uniform hashes fill a key with a few.
	w := min(max(bits.Len(uint(n))-2, 10), famKeyMax)
	info, _ := bitInfo(front, back)
	var keyBits [famKeyMax]uint8
	for j, b := range sortedByInformation(&info)[:w] {
		keyBits[j] = uint8(b)
	}
	keyOf := func(h *[4]uint64) uint32 {
		var k uint32
		for j := range w {
			b := keyBits[j]
			k |= uint32(h[b>>6]>>(b&63)&1) << j
		}
		return k
	}
	keys := make([]uint32, n)
	const chunk = 1 << 15
	parallel((n+chunk-1)/chunk, workers, func(c int) {
		for i := c * chunk; i < min(n, (c+1)*chunk); i++ {
			h := rowOf(front, back, i)
			keys[i] = keyOf(&h)
		}
	})
	count := make([]uint32, 1<<w)
	for _, k := range keys {
		count[k]++
	}
	// The crowded keys, and the hashes under each.
	var crowded []uint32
	for k, c := range count {
		if c >= famMin {
			crowded = append(crowded, uint32(k))
		}
	}
	if len(crowded) == 0 {
		return nil, nil
	}
	slot := count // reused: key → index+1 of its crowded list, 0 for the others
	clear(slot)
	offs := make([]uint32, len(crowded)+1)
	for i, k := range crowded {
		slot[k] = uint32(i + 1)
	}
	for _, k := range keys {
		if s := slot[k]; s != 0 {
			offs[s]++
		}
	}
	for i := 1; i < len(offs); i++ {
		offs[i] += offs[i-1]
	}
	members := make([]uint32, offs[len(offs)-1])
	fill := slices.Clone(offs[:len(offs)-1])
	for i, k := range keys {
		if s := slot[k]; s != 0 {
			members[fill[s-1]] = uint32(i)
			fill[s-1]++
		}
	}
	// Pivots, from each crowded key's hashes.
	found := make([][][4]uint64, len(crowded))
	parallel(len(crowded), workers, func(c int) {
		found[c] = pivotsAmong(front, back, members[offs[c]:offs[c+1]])
	})
	var pivots [][4]uint64
	for _, ps := range found {
		pivots = append(pivots, ps...)
	}
	if len(pivots) == 0 {
		return nil, nil
	}
	// Every hash joins a pivot within famRadius, if it has one.
	px := newPivotIndex(pivots, &info)
	fam := keys // reused: each hash's pivot, or famLoose
	dist := make([]uint8, n)
	parallel((n+chunk-1)/chunk, workers, func(c int) {
		for i := c * chunk; i < min(n, (c+1)*chunk); i++ {
			h := rowOf(front, back, i)
			fam[i], dist[i] = px.find(&h)
		}
	})
	// Families too small are dissolved, and so are the smallest beyond maxPivots(n); the
	// others are numbered in pivot order.
	size := make([]uint32, len(pivots))
	for _, p := range fam {
		if p != famLoose {
			size[p]++
		}
	}
	bySize := make([]int, len(pivots))
	for p := range bySize {
		bySize[p] = p
	}
	slices.SortStableFunc(bySize, func(a, b int) int { return cmp.Compare(size[b], size[a]) })
	keep := make([]bool, len(pivots))
	for i, p := range bySize {
		keep[p] = i < maxPivots(n) && size[p] >= famMin
	}
	number := make([]uint32, len(pivots))
	kept := 0
	for p := range number {
		number[p] = famLoose
		if keep[p] {
			number[p] = uint32(kept)
			kept++
		}
	}
	if kept == 0 {
		return nil, nil
	}
	// Rows: family by family, each family's members farthest from the pivot first; then the
	// loose hashes, in their given order.
	const levels = famRadius + 2
	f := &pdqFamilies{piv: make([][4]uint64, kept), rad: make([]uint8, kept), start: make([]uint32, kept+1),
		ends: make([]uint32, kept*levels)}
	for p, num := range number {
		if num != famLoose {
			f.piv[num] = pivots[p]
		}
	}
	cnt := make([]uint32, kept*levels) // members of family f at distance d: cnt[f*levels+d]
	for i, p := range fam {
		if p != famLoose && number[p] != famLoose {
			cnt[int(number[p])*levels+int(dist[i])]++
		}
	}
	next := make([]uint32, kept*levels) // the next row of family f at distance d
	row := uint32(0)
	for num := range kept {
		f.start[num] = row
		for d := famRadius; d >= 0; d-- {
			c := cnt[num*levels+d]
			if c > 0 && f.rad[num] == 0 {
				f.rad[num] = uint8(d)
			}
			next[num*levels+d] = row
			row += c
			f.ends[num*levels+d] = row
		}
		f.ends[num*levels+famRadius+1] = f.start[num]
		f.maxRad = max(f.maxRad, int(f.rad[num]))
	}
	f.start[kept] = row
	ext := make([]uint32, n)
	looseAt := row
	for i, p := range fam {
		if p == famLoose || number[p] == famLoose {
			ext[looseAt] = uint32(i)
			looseAt++
			continue
		}
		j := int(number[p])*levels + int(dist[i])
		ext[next[j]] = uint32(i)
		next[j]++
	}
	for row, e := range ext {
		if uint32(row) != e {
			return f, ext
		}
	}
	return f, nil // rows already in entry order (all one family at one distance, say)
}

// pivotIndex finds a pivot within famRadius of a hash by the pigeonhole principle: cut into
// famRadius+1 slots, a hash within famRadius of a pivot agrees with it exactly on at least one
// slot, so looking up its key in every slot finds the pivot. The slots are balanced over the
// bits' information (layout.go), so that biased bits do not pile every pivot under one key; a
// key's list is read up to famChain pivots, which can only leave a hash out of a family.
type pivotIndex struct {
	perm   *bitPerm
	piv    [][4]uint64 // bits moved
	widths []uint
	mask   uint32
	off    [][]uint32 // per slot: key k lists ids[off[k]:off[k+1]]
	ids    [][]uint32
}

const famChain = 32

func newPivotIndex(pivots [][4]uint64, info *[256]float64) *pivotIndex {
	px := &pivotIndex{widths: slotWidths(famRadius + 1)}
	order, _ := balance(px.widths, info)
	px.perm = newBitPerm(order)
	px.piv = make([][4]uint64, len(pivots))
	for p := range pivots {
		px.piv[p] = px.perm.apply(&pivots[p])
	}
	kb := min(uint(bits.Len(uint(len(pivots)))), px.widths[len(px.widths)-1])
	px.mask = 1<<kb - 1
	off := uint(0)
	for _, w := range px.widths {
		o := make([]uint32, px.mask+2)
		for p := range px.piv {
			o[uint32(ringBits(&px.piv[p], off))&px.mask+1]++
		}
		for k := 1; k < len(o); k++ {
			o[k] += o[k-1]
		}
		ids := make([]uint32, len(px.piv))
		cur := slices.Clone(o)
		for p := range px.piv {
			k := uint32(ringBits(&px.piv[p], off)) & px.mask
			ids[cur[k]] = uint32(p)
			cur[k]++
		}
		px.off, px.ids = append(px.off, o), append(px.ids, ids)
		off += w
	}
	return px
}

// find returns a pivot within famRadius of h and its distance, or famLoose.
func (px *pivotIndex) find(h *[4]uint64) (uint32, uint8) {
	m := px.perm.apply(h)
	off := uint(0)
	for s, w := range px.widths {
		k := uint32(ringBits(&m, off)) & px.mask
		off += w
		o := px.off[s]
		lo, hi := o[k], o[k+1]
		for _, p := range px.ids[s][lo:min(hi, lo+famChain)] {
			if d := distance(&m, &px.piv[p]); d <= famRadius {
				return p, uint8(d)
			}
		}
	}
	return famLoose, 0
}

// pivotsAmong finds the pivots of the families among the hashes of rows ids (which share a
// key): a seed's neighbours within 2·famRadius vote each bit of a pivot, and the hashes
// within famRadius of it leave the pool; a pivot that gathers fewer than famMin is dropped.
func pivotsAmong(front, back []uint64, ids []uint32) [][4]uint64 {
	var pivots [][4]uint64
	pool := slices.Clone(ids)
	for try := 0; try < famSeeds && len(pool) >= famMin; try++ {
		seed := rowOf(front, back, int(pool[0]))
		var ones [256]uint32
		voters := uint32(0)
		for _, id := range pool {
			if voters == famVoters {
				break
			}
			h := rowOf(front, back, int(id))
			if distance(&h, &seed) > 2*famRadius {
				continue
			}
			voters++
			for wi, x := range h {
				for x != 0 {
					ones[64*wi+bits.TrailingZeros64(x)]++
					x &= x - 1
				}
			}
		}
		var pivot [4]uint64
		for b, c := range ones {
			if 2*c > voters {
				pivot[b/64] |= 1 << (b % 64)
			}
		}
		rest := pool[:0]
		joined := 0
		for i, id := range pool {
			h := rowOf(front, back, int(id))
			if i == 0 || distance(&h, &pivot) <= famRadius {
				joined++
				continue
			}
			rest = append(rest, id)
		}
		pool = rest
		if joined >= famMin {
			pivots = append(pivots, pivot)
		}
	}
	return pivots
}

// reorderRows moves the rows of the halves front and back, in place, so that row i holds the
// hash that was at row ext[i]: each cycle of the permutation is followed once, with a bit a row
// marking those done. In place, so that a table with families needs no second copy of its
// hashes while it is built (the build's peak memory).
func reorderRows(front, back []uint64, ext []uint32) {
	done := make([]uint64, (len(ext)+63)/64)
	for i := range ext {
		if done[i/64]>>(i%64)&1 == 1 || ext[i] == uint32(i) {
			continue
		}
		hold := rowOf(front, back, i)
		j := i
		for {
			done[j/64] |= 1 << (j % 64)
			k := int(ext[j])
			if k == i {
				front[2*j], front[2*j+1], back[2*j], back[2*j+1] = hold[0], hold[1], hold[2], hold[3]
				break
			}
			front[2*j], front[2*j+1], back[2*j], back[2*j+1] = front[2*k], front[2*k+1], back[2*k], back[2*k+1]
			j = k
		}
	}
}
