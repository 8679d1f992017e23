package pdq

import (
	"math"
	"slices"
)

// dctMatrix is rows 1 to 16 of the 64-point DCT-II basis (the DC row 0 is skipped), row-major:
// dctMatrix[i*64+j] = float32(float64(float32(√(2/64))) · cos((π/128)(i+1)(2j+1))).
//
// The scale factor is rounded to float32 first and the product is taken in float64, because
// that is what the reference computes; doing the product in float32 changes 144 of the 1 024
// entries by one unit in the last place, and with them some hash bits.
var dctMatrix = func() (m [16 * 64]float32) {
	// Runtime variables, not constants: Go folds constant expressions exactly, C++ rounds each
	// operation to float64, and the table must see the C++ roundings.
	pi, cols := 3.14159265358979323846, 64.0
	scale := float32(math.Sqrt(2.0 / cols))
	step := pi / 2.0 / cols
	for i := range 16 {
		for j := range 64 {
			m[i*64+j] = float32(float64(scale) * math.Cos(step*float64(i+1)*float64(2*j+1)))
		}
	}
	return m
}()

// dct64To16 computes out = D·A·Dᵀ for the 64×64 block A and the 16×64 matrix D, keeping the
// 16×16 low-frequency corner (without DC). Each dot product accumulates in float32 with k
// ascending, and float32(x*y) rounds every product before it is added, which forbids the
// fused multiply-add Go may otherwise emit on arm64 or amd64 v3: the reference rounds twice.
func dct64To16(a *[64 * 64]float32, tmp *[16 * 64]float32, out *[16 * 16]float32) {
	d := &dctMatrix
	// tmp = D·A, row by row: tmp[i][j] = Σk D[i][k]·A[k][j]. Walking j innermost keeps the
	// reads of A sequential while each tmp[i][j] still sums its 64 terms in k order.
	for i := range 16 {
		row := (*[64]float32)(tmp[i*64 : i*64+64])
		*row = [64]float32{}
		for k := range 64 {
			dik := d[i*64+k]
			ak := (*[64]float32)(a[k*64 : k*64+64])
			for j := range 64 {
				row[j] += float32(dik * ak[j])
			}
		}
	}
	// out = tmp·Dᵀ: out[i][j] = Σk tmp[i][k]·D[j][k].
	for i := range 16 {
		ti := (*[64]float32)(tmp[i*64 : i*64+64])
		for j := range 16 {
			dj := (*[64]float32)(d[j*64 : j*64+64])
			var sum float32
			for k := range 64 {
				sum += float32(ti[k] * dj[k])
			}
			out[i*16+j] = sum
		}
	}
}

// qualityOf is the reference's image-domain quality metric on the 64×64 block: the sum of
// |int((u−v)·100/255)| over vertically then horizontally adjacent pairs (float32 arithmetic,
// truncated toward zero), divided by 90 and capped at 100. It counts strong gradients, so a
// flat or nearly flat picture scores low and its hash is noise.
func qualityOf(a *[64 * 64]float32) int {
	sum := 0
	for i := range 63 {
		for j := range 64 {
			d := int((a[i*64+j] - a[(i+1)*64+j]) * 100 / 255)
			sum += abs(d)
		}
	}
	for i := range 64 {
		for j := range 63 {
			d := int((a[i*64+j] - a[i*64+j+1]) * 100 / 255)
			sum += abs(d)
		}
	}
	return min(sum/90, 100)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// median256 returns the 128th smallest of the 256 values, which is what the reference's Torben
// median returns for an even count. scratch receives a sorted copy.
func median256(v *[256]float32, scratch *[256]float32) float32 {
	*scratch = *v
	slices.Sort(scratch[:])
	return scratch[127]
}

// bitsOf thresholds the 16×16 DCT output at its median: bit 16·i+j is set when
// out[i][j] is strictly greater than the median.
func bitsOf(v *[256]float32, scratch *[256]float32) Hash {
	m := median256(v, scratch)
	var h Hash
	for k, x := range v {
		if x > m {
			h.setBit(k)
		}
	}
	return h
}

// dihedralOf rewrites the DCT coefficients of the original image into those of its transform
// t, as the reference's dct16OriginalTo* functions do: a rotation or reflection of the picture
// transposes the coefficient block and/or flips the sign of the odd-frequency rows or columns.
//
//	rot90:  transpose, negate where j is even     rot180: negate where i+j is odd
//	rot270: transpose, negate where i is even     flipx:  negate where i is even
//	flipy:  negate where j is even                flip+1: transpose
//	flip−1: transpose, negate where i+j is odd
//
// (i, j) index the source block; "transpose" writes source [i][j] to destination [j][i].
func dihedralOf(t Transform, a, out *[256]float32) {
	for i := range 16 {
		for j := range 16 {
			v := a[i*16+j]
			negate, transpose := t.moves(i, j)
			if negate {
				v = -v
			}
			if transpose {
				out[j*16+i] = v
			} else {
				out[i*16+j] = v
			}
		}
	}
}

// moves says what t does to DCT coefficient (i, j) (see dihedralOf): whether it changes sign,
// and whether it moves to (j, i).
func (t Transform) moves(i, j int) (negate, transpose bool) {
	switch t {
	case Rotate90:
		return j%2 == 0, true
	case Rotate180:
		return (i+j)%2 == 1, false
	case Rotate270:
		return i%2 == 0, true
	case FlipX:
		return i%2 == 0, false
	case FlipY:
		return j%2 == 0, false
	case FlipPlus1:
		return false, true
	case FlipMinus1:
		return (i+j)%2 == 1, true
	}
	return false, false
}
