package matchindex

import (
	"math"
	"math/bits"
	"slices"
)

// Adapting the slot layout to the data.
//
// Multi-index hashing's buckets are as small as n/2^w only when a slot's w bits are fair coins.
// Real PDQ bits are not: some are set for nearly every image, some for nearly none, so a slot
// made of such bits has few distinct keys and crowded buckets. A table therefore measures, on
// a sample of its hashes, how much each bit tells apart (its collision entropy:
// −log₂(p² + (1−p)²) for a bit set with probability p, 1 for a fair bit, 0 for a constant one)
// and, when the bits are biased, moves them so that every slot gets an equal share of the
// information: the most telling bits are dealt out to the slots in turn. The geometry (how
// many slots, how many flipped bits each probes) is then chosen by the cost model with each
// slot's effective width instead of its width. Moving bits changes no distance, so the search
// stays exact; the table stores its hashes with the bits moved and moves each query's the
// same way.

// layoutSample is how many hashes a table measures its bits on.
const layoutSample = 1 << 16

// skewedBelow is the total information of 256 bits (in bits) under which a table moves its
// bits: uniform hashes measure ≈255.9 on a full sample.
const skewedBelow = 250.0

// bitInfo measures the collision entropy of each of the 256 bit positions over a sample of the
// hashes in front and back (the halves of each, see pdqTable), and reports whether the bits
// are biased enough to move.
func bitInfo(front, back []uint64) (info [256]float64, skewed bool) {
	n := len(front) / 2
	if n == 0 {
		return info, false
	}
	step := max(1, n/layoutSample)
	var ones [256]int
	sampled := 0
	for i := 0; i < n; i += step {
		for w, x := range [4]uint64{front[2*i], front[2*i+1], back[2*i], back[2*i+1]} {
			for x != 0 {
				b := bits.TrailingZeros64(x)
				ones[64*w+b]++
				x &= x - 1
			}
		}
		sampled++
	}
	total := 0.0
	for b, k := range ones {
		p := float64(k) / float64(sampled)
		c := p*p + (1-p)*(1-p)
		info[b] = -math.Log2(c)
		total += info[b]
	}
	return info, total < skewedBelow
}

// byInformation orders the bits from the most telling to the least (new position j holds old
// bit order[j]).
func byInformation(info *[256]float64) (order [256]uint8) {
	for j, b := range sortedByInformation(info) {
		order[j] = uint8(b)
	}
	return order
}

// sortedByInformation lists the bit positions from the most telling to the least.
func sortedByInformation(info *[256]float64) []int {
	byInfo := make([]int, 256)
	for i := range byInfo {
		byInfo[i] = i
	}
	slices.SortStableFunc(byInfo, func(a, b int) int {
		switch {
		case info[a] > info[b]:
			return -1
		case info[a] < info[b]:
			return 1
		}
		return 0
	})
	return byInfo
}

// balance deals the bits out to slots of the given widths so that each slot carries as nearly
// the same information as it can (equal buckets, whatever the width): the most telling bits
// first, each to the slot whose information would end lowest if its remaining room were
// filled with bits of the average information still to deal. It returns the bit order (new position j holds old bit
// order[j]; slot s holds the next widths[s] positions) and each slot's effective width.
func balance(widths []uint, info *[256]float64) (order [256]uint8, eff []float64) {
	byInfo := sortedByInformation(info)
	members := make([][]uint8, len(widths))
	eff = make([]float64, len(widths))
	left := 0.0
	for _, v := range info {
		left += v
	}
	for i, b := range byInfo {
		mean := left / float64(256-i)
		best, bestEnd := -1, 0.0
		for s, w := range widths {
			room := float64(w) - float64(len(members[s]))
			if room <= 0 {
				continue
			}
			if end := eff[s] + room*mean; best < 0 || end < bestEnd {
				best, bestEnd = s, end
			}
		}
		members[best] = append(members[best], uint8(b))
		eff[best] += info[b]
		left -= info[b]
	}
	j := 0
	for _, m := range members {
		for _, b := range m {
			order[j] = b
			j++
		}
	}
	return order, eff
}

// bitPerm moves the bits of a hash: bit order[j] goes to bit j. A byte of the input selects,
// from a table of its own, the words its 8 bits become, so a hash moves in 32 lookups
// (256 KiB of tables, which stay in the cache of a core that queries).
type bitPerm struct {
	order [256]uint8
	tab   [32][256][4]uint64
}

func newBitPerm(order [256]uint8) *bitPerm {
	p := &bitPerm{order: order}
	var to [256]uint8 // old bit → new position
	for j, b := range order {
		to[b] = uint8(j)
	}
	for i := range p.tab {
		for v := range 256 {
			var w [4]uint64
			for k := range 8 {
				if v>>k&1 == 1 {
					d := to[8*i+k]
					w[d/64] |= 1 << (d % 64)
				}
			}
			p.tab[i][v] = w
		}
	}
	return p
}

// apply returns h with its bits moved.
func (p *bitPerm) apply(h *[4]uint64) [4]uint64 {
	var out [4]uint64
	for wi, x := range h {
		t := p.tab[8*wi : 8*wi+8]
		for k := range 8 {
			e := &t[k][byte(x>>(8*k))]
			out[0] ^= e[0]
			out[1] ^= e[1]
			out[2] ^= e[2]
			out[3] ^= e[3]
		}
	}
	return out
}

// inverse returns the permutation that puts the bits back.
func (p *bitPerm) inverse() *bitPerm {
	var back [256]uint8
	for j, b := range p.order {
		back[b] = uint8(j)
	}
	return newBitPerm(back)
}

// applyAll moves the bits of every hash in front and back (the halves of each, see
// pdqTable), in place, on up to workers goroutines.
func (p *bitPerm) applyAll(front, back []uint64, workers int) {
	n := len(front) / 2
	const chunk = 1 << 16
	parallel((n+chunk-1)/chunk, workers, func(c int) {
		for i := c * chunk; i < min(n, (c+1)*chunk); i++ {
			h := [4]uint64{front[2*i], front[2*i+1], back[2*i], back[2*i+1]}
			h = p.apply(&h)
			front[2*i], front[2*i+1], back[2*i], back[2*i+1] = h[0], h[1], h[2], h[3]
		}
	})
}
