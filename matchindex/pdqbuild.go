package matchindex

import (
	"math"
	"math/bits"
	"slices"
	"sync"
)

// Building a PDQ table: choosing its geometry from a cost model, then sorting every hash
// into each slot's table.

// Geometry limits. Slots of up to 24 bits keep directories ≤ 64 MiB each; 11 slots at the
// least keep tₛ ≤ 2 for every radius ≤ 31 (Σtₛ ≥ 21 needs 2 on 10 of 11 slots).
const (
	minSlots       = 11
	maxSlots       = 32
	maxSlotWidth   = 24
	scanBelow      = 1024 // hashes: scan smaller tables
	maxDirPerHash  = 8.0  // bytes of directory per stored hash a geometry may use
	probeLineCost  = 1.0  // a directory read: one cache line
	bucketOverhang = 0.75 // lines a bucket touches beyond its bytes/64 (random alignment)
	scanLineRatio  = 4.0  // a probed line costs as much as this many lines of a scan
)

// geometry is a slot layout and its probe plans.
type geometry struct {
	widths []uint
	// eff is each slot's effective width: the information its bits carry (see layout.go);
	// its width for uniform hashes.
	eff   []float64
	order *[256]uint8 // the bits moved (see balance); nil: as they are
	plan  [MaxRadius + 1][]uint8
	lines float64 // modelled cache lines per query at radius MaxRadius
}

// slotWidths cuts 256 bits into m slots whose widths differ by at most one.
func slotWidths(m int) []uint {
	b, rem := 256/m, 256%m
	w := make([]uint, m)
	for i := range w {
		w[i] = uint(b)
		if i < rem {
			w[i]++
		}
	}
	return w
}

// probeLines models the cache lines touched by the probes at exactly distance t in a slot of
// the given width and effective width over n hashes: C(width, t) probes, each a directory line
// plus a bucket of n/2^eff hashes.
func probeLines(n int, width uint, eff float64, t int) float64 {
	per := float64(n) / math.Exp2(eff)
	bucket := per*16/64 + bucketOverhang*min(per, 1)
	return float64(binomial(int(width), t)) * (probeLineCost + bucket)
}

func binomial(n, k int) int {
	c := 1
	for i := range k {
		c = c * (n - i) / (i + 1)
	}
	return c
}

// planFor chooses tₛ for radius r greedily: start at 0 everywhere and raise, one step at a
// time, the slot where the next step costs the fewest lines, until Σtₛ ≥ r+1−m.
func planFor(n int, widths []uint, eff []float64, r int) []uint8 {
	m := len(widths)
	t := make([]uint8, m)
	for need := r + 1 - m; need > 0; need-- {
		best, bestCost := -1, 0.0
		for s, w := range widths {
			if t[s] >= 2 {
				continue
			}
			if c := probeLines(n, w, eff[s], int(t[s])+1); best < 0 || c < bestCost {
				best, bestCost = s, c
			}
		}
		t[best]++
	}
	return t
}

// chooseGeometry returns the slot layout with the fewest modelled lines per radius-31 query
// among those whose directories fit maxDirPerHash, or nil when a scan is cheaper. info, when
// not nil, is the measured information of each bit (biased hashes): each candidate layout
// then moves the bits to balance it (see balance), and is costed by its effective widths.
func chooseGeometry(n int, info *[256]float64) *geometry {
	if n < scanBelow {
		return nil
	}
	var best *geometry
	for m := minSlots; m <= maxSlots; m++ {
		widths := slotWidths(m)
		if widths[0] > maxSlotWidth {
			continue
		}
		dir := 0.0
		for _, w := range widths {
			dir += float64(uint64(4) << w)
		}
		if dir/float64(n) > maxDirPerHash {
			continue
		}
		if g := geometryWith(n, m, info); best == nil || g.lines < best.lines {
			best = g
		}
	}
	// A scan reads 32 bytes a hash in one stream, which the CPU prefetches: measured, a line of
	// it costs about a quarter of a probe's (mihbench, harsh-skew corpus at 1 M).
	if best == nil || best.lines >= float64(n)/2/scanLineRatio {
		return nil
	}
	return best
}

// geometryFor returns m slots with their probe plans for n uniform hashes.
func geometryFor(n, m int) *geometry { return geometryWith(n, m, nil) }

// geometryWith returns m slots with their probe plans for n hashes whose bits carry info (nil:
// uniform hashes, bits left in place).
func geometryWith(n, m int, info *[256]float64) *geometry {
	g := &geometry{widths: slotWidths(m)}
	if info != nil {
		order, eff := balance(g.widths, info)
		g.order, g.eff = &order, eff
	} else {
		g.eff = make([]float64, m)
		for s, w := range g.widths {
			g.eff[s] = float64(w)
		}
	}
	for r := range g.plan {
		g.plan[r] = planFor(n, g.widths, g.eff, r)
	}
	g.lines = probeCost(n, g.widths, g.eff, g.plan[MaxRadius])
	return g
}

// probeCost is the modelled lines per query of a plan.
func probeCost(n int, widths []uint, eff []float64, plan []uint8) float64 {
	c := 0.0
	for s, w := range widths {
		for t := 0; t <= int(plan[s]); t++ {
			c += probeLines(n, w, eff[s], t)
		}
	}
	return c
}

// plannedPDQTable returns a table over the hashes in front and back (the halves of each,
// see pdqTable), whose slots are built when the tasks it appends have run: families of
// near-duplicates are found and set apart first (family.go), then the geometry
// chooseGeometry picks for the other hashes is laid over them. The table keeps the arrays
// (their rows reordered in place if it has families). It works on up to workers goroutines.
func plannedPDQTable(front, back []uint64, workers int, tasks *[]func()) *pdqTable {
	return plannedPDQTableAt(front, back, workers, tasks, 0)
}

// plannedPDQTableAt is plannedPDQTable for a table depth levels below a segment's (see
// splitCrowded).
func plannedPDQTableAt(front, back []uint64, workers int, tasks *[]func(), depth int) *pdqTable {
	t := &pdqTable{front: front, back: back}
	if len(front)/2 < scanBelow {
		return t
	}
	if fam, ext := findFamilies(front, back, workers); fam != nil {
		if ext != nil {
			reorderRows(front, back, ext)
		}
		t.fam, t.ext, t.loose = fam, ext, fam.start[len(fam.start)-1]
	}
	lf, lb := t.front[2*t.loose:], t.back[2*t.loose:]
	n := len(lf) / 2
	if n < scanBelow {
		return t
	}
	info, skewed := bitInfo(lf, lb)
	if !skewed {
		t.lay(chooseGeometry(n, nil), workers, tasks, depth)
		return t
	}
	g := chooseGeometry(n, &info)
	if g == nil {
		// Scanned: the most telling bits go to the front half, which the scan reads first.
		order := byInformation(&info)
		g = &geometry{order: &order}
	}
	t.lay(g, workers, tasks, depth)
	return t
}

// plannedPDQTableGeometry returns a table over the hashes in front and back with a given
// geometry (nil: scan, bits in place; a geometry with no widths: scan, bits moved) and no
// families.
func plannedPDQTableGeometry(front, back []uint64, g *geometry, tasks *[]func()) *pdqTable {
	t := &pdqTable{front: front, back: back}
	t.lay(g, 1, tasks, maxDepth)
	return t
}

// lay gives the table geometry g over its rows [loose, len) (nil: they are scanned, bits in
// place), moving the bits of every row and pivot if g moves them; the slots are built by the
// tasks it appends. Rows that would crowd the slots' buckets are set apart first, in a table
// of their own, unless the table is depth levels down already (see splitCrowded): the slots
// then hold rows [loose, end()). The geometry stays the one chosen for all of them.
func (t *pdqTable) lay(g *geometry, workers int, tasks *[]func(), depth int) {
	if g == nil {
		return
	}
	if g.order != nil {
		// The table keeps its hashes with the bits moved: slots, inline bits, pivots and the
		// master array agree, and distances are the same.
		t.perm = newBitPerm(*g.order)
		t.perm.applyAll(t.front, t.back, workers)
		if t.fam != nil {
			for p := range t.fam.piv {
				t.fam.piv[p] = t.perm.apply(&t.fam.piv[p])
			}
		}
	}
	if len(g.widths) == 0 {
		return
	}
	if depth < maxDepth {
		t.splitCrowded(g.widths, workers, tasks, depth)
	}
	t.plan = g.plan
	t.slots = make([]pdqSlot, len(g.widths))
	off := uint(0)
	scratch := &sync.Pool{} // *slotScratch, shared by the slot builds of this table
	for s, w := range g.widths {
		t.slots[s] = pdqSlot{off: off, width: w}
		off += w
		*tasks = append(*tasks, func() { t.buildSlot(&t.slots[s], scratch) })
	}
}

// parallel runs fn(0..n-1) on up to workers goroutines.
func parallel(n, workers int, fn func(i int)) {
	if workers <= 1 || n <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// crowdSample is about how many rows splitCrowded reads per slot to see whether it has a crowd.
const crowdSample = 1 << 16

// maxDepth bounds how many times a table's crowded rows are set apart in a table of their own,
// and that one's in another.
const maxDepth = 4

// splitCrowded sets apart the rows of [loose, len) that, laid out in slots of these widths
// (bits already moved), would fall in a crowded bucket of any slot: one of over 64 times the
// mean size and over 1/1024 of the rows, where 64 such buckets among a query's probes would
// make it scan the table (scanBeyond). Uniform hashes make none; images a platform sees do —
// look-alike pictures, many copies of a template with small changes, near-duplicates spread
// wider than a family — and every query near them would scan. Those rows move to the end of
// the table, [slotEnd, len), and become a table of their own (its bits measured and laid out
// for them alone, its families found among them), searched beside the slots: a query near
// them reads that table, or scans it, not all of this one.
func (t *pdqTable) splitCrowded(widths []uint, workers int, tasks *[]func(), depth int) {
	lo := t.loose
	n := t.len() - int(lo)
	crowded := make([]uint64, (n+63)/64)
	var mu sync.Mutex
	parallel(len(widths), workers, func(s int) {
		sl := pdqSlot{width: widths[s]}
		for _, w := range widths[:s] {
			sl.off += w
		}
		count := make([]uint32, 1<<sl.width)
		limit := uint32(max(64*n>>sl.width, n/1024))
		// A sample first, so that a table with no crowd (uniform hashes, the common case) pays
		// one pass over a fraction of its rows: a crowded bucket holds over a thousandth of them.
		if step := n / crowdSample; step > 1 {
			for i := 0; i < n; i += step {
				h := t.at(lo + uint32(i))
				count[sl.key(&h)]++
			}
			if slices.Max(count) <= limit/uint32(2*step) {
				return
			}
			clear(count)
		}
		for i := range n {
			h := t.at(lo + uint32(i))
			count[sl.key(&h)]++
		}
		if slices.Max(count) <= limit {
			return
		}
		marks := make([]uint64, len(crowded))
		for i := range n {
			h := t.at(lo + uint32(i))
			if count[sl.key(&h)] > limit {
				marks[i/64] |= 1 << (i % 64)
			}
		}
		mu.Lock()
		for w, m := range marks {
			crowded[w] |= m
		}
		mu.Unlock()
	})
	c := 0
	for _, w := range crowded {
		c += bits.OnesCount64(w)
	}
	if c < scanBelow || 4*c > 3*n {
		return // too few to matter, or the table is one crowd: as well searched as it is
	}
	// A table of them that every query would scan (too few of them for slots, or their bits
	// telling too little apart) would cost each query more than the scans of those near them.
	step := max(1, c/layoutSample)
	var sf, sb []uint64
	for i, k := 0, 0; i < n; i++ {
		if crowded[i/64]>>(i%64)&1 == 1 {
			if k%step == 0 {
				h := t.at(lo + uint32(i))
				sf, sb = append(sf, h[0], h[1]), append(sb, h[2], h[3])
			}
			k++
		}
	}
	info, skewed := bitInfo(sf, sb)
	ip := &info
	if !skewed {
		ip = nil
	}
	if chooseGeometry(c, ip) == nil {
		return
	}
	// The rows' new order: the others, then the crowded ones, each in their order.
	order := make([]uint32, 0, n)
	for pass := range 2 {
		for i := range n {
			if int(crowded[i/64]>>(i%64)&1) == pass {
				order = append(order, uint32(i))
			}
		}
	}
	if t.ext == nil {
		t.ext = make([]uint32, t.len())
		for i := range t.ext {
			t.ext[i] = uint32(i)
		}
	}
	reorderRows(t.front[2*lo:], t.back[2*lo:], order)
	moved := make([]uint32, n)
	for j, o := range order {
		moved[j] = t.ext[lo+o]
	}
	copy(t.ext[lo:], moved)
	t.slotEnd = lo + uint32(n-c)
	d := plannedPDQTableAt(t.front[2*t.slotEnd:], t.back[2*t.slotEnd:], workers, tasks, depth+1)
	if d.ext != nil {
		// The dense table reordered its rows (families first): this table's ext says which
		// entry each row is, so it takes the dense table's order in, and that one keeps none.
		for j, e := range d.ext {
			moved[j] = t.ext[t.slotEnd+e]
		}
		copy(t.ext[t.slotEnd:], moved[:len(d.ext)])
		d.ext = nil
	}
	t.dense = d
}

// buildSlot sorts the hashes of rows [loose, slotEnd) by the slot's key into a new entries
// array (counting sort: stable, so a bucket is in row order) and fills its directory.
func (t *pdqTable) buildSlot(sl *pdqSlot, scratch *sync.Pool) {
	lo := t.loose
	n := int(t.end() - lo)
	dir := make([]uint32, 1<<sl.width+1)
	for i := range n {
		h := t.at(lo + uint32(i))
		dir[sl.key(&h)+1]++
	}
	for k := 1; k < len(dir); k++ {
		dir[k] += dir[k-1]
	}
	ents := make([]pdqEntry, n)
	if n >= radixFrom && sl.width >= 12 {
		sc, _ := scratch.Get().(*slotScratch)
		if sc == nil {
			sc = &slotScratch{tmp: make([]pdqEntry, n), keys: make([]uint32, n)}
		}
		t.scatterTwoPass(sl, dir, ents, sc)
		scratch.Put(sc)
	} else {
		cur := slices.Clone(dir[:len(dir)-1])
		for i := range n {
			h := t.at(lo + uint32(i))
			k := sl.key(&h)
			a, b := sl.inline(&h)
			ents[cur[k]] = pdqEntry{a: a, b: b, id: lo + uint32(i)}
			cur[k]++
		}
	}
	sl.dir, sl.ents = dir, ents
}

// radixFrom is the table size from which slots are sorted in two passes: one write per
// entry to a random place among 160 MB costs a TLB miss as well as a cache miss (measured:
// ≈0.6 s a slot at 10 M in one pass, ≈0.15 s in two).
const radixFrom = 1 << 21

// slotScratch is the two-pass sort's buffer, reused from slot to slot: on the measured
// machine first-touching fresh memory costs 1.3–5 µs a 4 KiB page, so a new 200 MB buffer
// per slot cost more than the sort.
type slotScratch struct {
	tmp  []pdqEntry
	keys []uint32
}

// scatterTwoPass places every entry at its key's place in ents (dir is filled) in two
// passes that each write to few places at a time: first by the key's top 8 bits into tmp
// (256 sequential streams), then each of those 256 parts — whose destination in ents is a
// window small enough to stay in cache — by the whole key. Both passes are stable.
func (t *pdqTable) scatterTwoPass(sl *pdqSlot, dir []uint32, ents []pdqEntry, sc *slotScratch) {
	n := len(ents)
	low := sl.width - 8
	tmp, keys := sc.tmp, sc.keys
	var cur [256]uint32
	for p := range cur {
		cur[p] = dir[p<<low]
	}
	lo := t.loose
	for i := range n {
		h := t.at(lo + uint32(i))
		k := sl.key(&h)
		a, b := sl.inline(&h)
		j := cur[k>>low]
		tmp[j], keys[j] = pdqEntry{a: a, b: b, id: lo + uint32(i)}, k
		cur[k>>low]++
	}
	next := make([]uint32, 1<<low)
	for p := range 256 {
		base := uint32(p) << low
		copy(next, dir[base:base+1<<low])
		for j := dir[base]; j < dir[base+1<<low]; j++ {
			k := keys[j] - base
			ents[next[k]] = tmp[j]
			next[k]++
		}
	}
}
