package pdq

// The Jarosz filter: two rounds of a 1-D box filter along rows then along columns, which
// approximates a tent (and, repeated, a Gaussian) blur, so that decimating to 64×64 afterwards
// averages every input pixel instead of sampling a few.
//
// Bit-exactness depends on the reference's running sum: a float32 accumulator to which the
// entering sample is added and from which the leaving sample is then subtracted, divided by the
// number of samples actually inside the window. Recomputing each window's sum from scratch, or
// multiplying by a reciprocal (except an exact one, see exactReciprocal), would round
// differently.

// jaroszWindow is the box size along a dimension of n pixels: ⌈n/128⌉, half of a 64th, since
// two passes together cover a full 64th of the image.
func jaroszWindow(n int) int {
	return (n + 2*64 - 1) / (2 * 64)
}

// boxPhases splits a pass of window w over n samples into the reference's four phases:
// accumulate without writing, write while the window grows, write with a full window (add the
// entering sample, then subtract the leaving one), write while the window shrinks.
func boxPhases(n, w int) (grow, growWrite, full, shrink int) {
	half := (w + 2) / 2
	return half - 1, w - half + 1, n - w, half - 1
}

// boxRows filters every row of in (rows×cols, row-major) into out. A row's running sum is one
// long chain of dependent additions, so rows are filtered four at a time, interleaved, to let
// the processor overlap four chains; each row still sees exactly the reference's operations.
func boxRows(in, out []float32, rows, cols, w int) {
	r := 0
	for ; r+4 <= rows; r += 4 {
		boxRows4(in[r*cols:(r+4)*cols], out[r*cols:(r+4)*cols], cols, w)
	}
	for ; r < rows; r++ {
		boxRow(in[r*cols:(r+1)*cols], out[r*cols:(r+1)*cols], w)
	}
}

// boxRow filters one row, phase by phase as the reference's box1DFloat does.
func boxRow(src, dst []float32, w int) {
	p1, p2, p3, p4 := boxPhases(len(src), w)
	var sum float32
	size, li, ri, oi := 0, 0, 0, 0
	for range p1 {
		sum += src[ri]
		size++
		ri++
	}
	for range p2 {
		sum += src[ri]
		size++
		dst[oi] = sum / float32(size)
		ri++
		oi++
	}
	n := float32(size)
	if exactReciprocal(size) {
		inv := 1 / n
		for range p3 {
			sum += src[ri]
			sum -= src[li]
			dst[oi] = sum * inv
			li++
			ri++
			oi++
		}
	} else {
		for range p3 {
			sum += src[ri]
			sum -= src[li]
			dst[oi] = sum / n
			li++
			ri++
			oi++
		}
	}
	for range p4 {
		sum -= src[li]
		size--
		dst[oi] = sum / float32(size)
		li++
		oi++
	}
}

// boxRows4 is boxRow on four consecutive rows at once (in and out hold 4×cols values).
func boxRows4(in, out []float32, cols, w int) {
	p1, p2, p3, p4 := boxPhases(cols, w)
	a, b, c, d := in[:cols], in[cols:2*cols], in[2*cols:3*cols], in[3*cols:4*cols]
	oa, ob, oc, od := out[:cols], out[cols:2*cols], out[2*cols:3*cols], out[3*cols:4*cols]
	var sa, sb, sc, sd float32
	size, li, ri, oi := 0, 0, 0, 0
	for range p1 {
		sa += a[ri]
		sb += b[ri]
		sc += c[ri]
		sd += d[ri]
		size++
		ri++
	}
	for range p2 {
		sa += a[ri]
		sb += b[ri]
		sc += c[ri]
		sd += d[ri]
		size++
		n := float32(size)
		oa[oi], ob[oi], oc[oi], od[oi] = sa/n, sb/n, sc/n, sd/n
		ri++
		oi++
	}
	n := float32(size)
	if exactReciprocal(size) {
		inv := 1 / n
		for range p3 {
			sa += a[ri]
			sb += b[ri]
			sc += c[ri]
			sd += d[ri]
			sa -= a[li]
			sb -= b[li]
			sc -= c[li]
			sd -= d[li]
			oa[oi], ob[oi], oc[oi], od[oi] = sa*inv, sb*inv, sc*inv, sd*inv
			li++
			ri++
			oi++
		}
	} else {
		for range p3 {
			sa += a[ri]
			sb += b[ri]
			sc += c[ri]
			sd += d[ri]
			sa -= a[li]
			sb -= b[li]
			sc -= c[li]
			sd -= d[li]
			oa[oi], ob[oi], oc[oi], od[oi] = sa/n, sb/n, sc/n, sd/n
			li++
			ri++
			oi++
		}
	}
	for range p4 {
		sa -= a[li]
		sb -= b[li]
		sc -= c[li]
		sd -= d[li]
		size--
		n := float32(size)
		oa[oi], ob[oi], oc[oi], od[oi] = sa/n, sb/n, sc/n, sd/n
		li++
		oi++
	}
}

// boxCols filters every column of in into out. It runs all columns side by side, one row of
// running sums at a time, so memory is read in order; each column still sees exactly the
// reference's sequence of float32 operations. sums must hold cols values.
func boxCols(in, out, sums []float32, rows, cols, w int) {
	p1, p2, p3, p4 := boxPhases(rows, w)
	sums = sums[:cols]
	clear(sums)
	size, li, ri, oi := 0, 0, 0, 0
	for range p1 {
		add := in[ri*cols : ri*cols+cols]
		for j := range sums {
			sums[j] += add[j]
		}
		size++
		ri++
	}
	for range p2 {
		add := in[ri*cols : ri*cols+cols]
		size++
		n := float32(size)
		dst := out[oi*cols : oi*cols+cols]
		for j := range sums {
			sums[j] += add[j]
			dst[j] = sums[j] / n
		}
		ri++
		oi++
	}
	n, inv, mul := float32(size), 1/float32(size), exactReciprocal(size)
	for range p3 {
		add := in[ri*cols : ri*cols+cols]
		sub := in[li*cols : li*cols+cols]
		dst := out[oi*cols : oi*cols+cols]
		if mul {
			for j := range sums {
				sums[j] += add[j]
				sums[j] -= sub[j]
				dst[j] = sums[j] * inv
			}
		} else {
			for j := range sums {
				sums[j] += add[j]
				sums[j] -= sub[j]
				dst[j] = sums[j] / n
			}
		}
		li++
		ri++
		oi++
	}
	for range p4 {
		sub := in[li*cols : li*cols+cols]
		size--
		n := float32(size)
		dst := out[oi*cols : oi*cols+cols]
		for j := range sums {
			sums[j] -= sub[j]
			dst[j] = sums[j] / n
		}
		li++
		oi++
	}
}

// exactReciprocal reports whether dividing by n can be replaced by multiplying by 1/n without
// changing a single bit: true for powers of two, whose reciprocal is exact, so x/n and x·(1/n)
// are the same real number and IEEE arithmetic rounds both to the same float. Windows of 1, 2
// and 4 (images up to 256 px and from 385 to 512 px) then avoid the division, the slowest
// operation of the blur.
func exactReciprocal(n int) bool {
	return n > 0 && n&(n-1) == 0
}

// jarosz blurs buf1 in place (buf2 is scratch of the same size), as the reference does with
// two passes.
func jarosz(buf1, buf2, sums []float32, rows, cols int) {
	wRows, wCols := jaroszWindow(cols), jaroszWindow(rows)
	for range 2 {
		boxRows(buf1, buf2, rows, cols, wRows)
		boxCols(buf2, buf1, sums, rows, cols, wCols)
	}
}

// decimate samples the blurred image at the centres of a 64×64 grid:
// out[i][j] = in[⌊(i+0.5)·rows/64⌋][⌊(j+0.5)·cols/64⌋], computed in float64 as the reference does.
func decimate(in []float32, rows, cols int, out *[64 * 64]float32) {
	var colIdx [64]int
	for j := range 64 {
		colIdx[j] = int((float64(j) + 0.5) * float64(cols) / 64)
	}
	for i := range 64 {
		row := in[int((float64(i)+0.5)*float64(rows)/64)*cols:]
		for j, c := range colIdx {
			out[i*64+j] = row[c]
		}
	}
}
