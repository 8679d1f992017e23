package pdq

import (
	"image"
	"image/color"
)

// lumaR, lumaG and lumaB hold float32(coeff)·v for every 8-bit v. The reference computes
// 0.299f·R + 0.587f·G + 0.114f·B in float32, each product rounded, then summed left to right;
// looking the products up gives the same roundings without the multiplications.
var lumaR, lumaG, lumaB = lumaTables()

func lumaTables() (r, g, b [256]float32) {
	// The C++ constants are double literals converted to float: round through float64 at run
	// time, since a Go constant expression would round the decimal straight to float32.
	coeffs := [3]float64{0.299, 0.587, 0.114}
	cr, cg, cb := float32(coeffs[0]), float32(coeffs[1]), float32(coeffs[2])
	for v := range 256 {
		fv := float32(v)
		r[v], g[v], b[v] = cr*fv, cg*fv, cb*fv
	}
	return r, g, b
}

// luma is the reference's float32 luma of one 8-bit RGB pixel, summed left to right.
func luma(r, g, b uint8) float32 {
	return lumaR[r] + lumaG[g] + lumaB[b]
}

// rgb8 is the 8-bit colour of c as the reference reads it from a file: non-premultiplied R, G,
// B with alpha ignored. Non-premultiplied colours are taken as stored (so a transparent pixel
// keeps its colour, as the reference's PNM conversion keeps it); premultiplied ones go through
// color.NRGBAModel, the only way back to the stored colour.
func rgb8(c color.Color) (r, g, b uint8) {
	switch c := c.(type) {
	case color.NRGBA:
		return c.R, c.G, c.B
	case color.NRGBA64:
		return uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8)
	case color.NYCbCrA:
		return ycbcr8(c.Y, c.Cb, c.Cr)
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return n.R, n.G, n.B
}

// ycbcr8 converts as color.NRGBAModel does for a YCbCr colour (its 16-bit RGBA, top byte), so
// the fast path and the generic path agree for every value.
func ycbcr8(y, cb, cr uint8) (r, g, b uint8) {
	r16, g16, b16, _ := color.YCbCr{Y: y, Cb: cb, Cr: cr}.RGBA()
	return uint8(r16 >> 8), uint8(g16 >> 8), uint8(b16 >> 8)
}

// greyness says how the reference may treat an image type: the reference (through
// ImageMagick) reads an image as single-channel, and uses the grey value itself as luma, when
// every pixel has R = G = B. That is not a detail: 0.299·v + 0.587·v + 0.114·v differs from v
// in float32 for 35 of the 256 values of v, enough to flip hash bits.
type greyness int

const (
	maybeGrey  greyness = iota // decided by the pixels
	alwaysGrey                 // a grey colour model
	neverGrey                  // CMYK: ImageMagick converts it to RGB without looking
)

// rowReader converts the pixels at columns xs of row y (both relative to the image's bounds)
// and writes one value per pixel into out: the luma, or with grey set the grey value (R).
// It returns the OR of R^G and G^B over those pixels, zero when they are all grey.
type rowReader func(y int, xs []int, out []float32, grey bool) (diff byte)

// value is what a pixel contributes: the grey value on the single-channel path, else its luma.
func value(r, g, b uint8, grey bool) float32 {
	if grey {
		return float32(r)
	}
	return luma(r, g, b)
}

// pixelReader returns a rowReader for img, specialised for the standard image types, and how
// grey it may be. Every specialised reader gives exactly what rgb8(img.At(x, y)) gives.
func pixelReader(img image.Image) (rowReader, greyness) {
	b := img.Bounds()
	x0, y0 := b.Min.X, b.Min.Y
	switch m := img.(type) {
	case *image.Gray:
		return func(y int, xs []int, out []float32, _ bool) byte {
			row := m.Pix[m.PixOffset(x0, y0+y):]
			for j, x := range xs {
				out[j] = float32(row[x])
			}
			return 0
		}, alwaysGrey
	case *image.Gray16:
		return func(y int, xs []int, out []float32, _ bool) byte {
			row := m.Pix[m.PixOffset(x0, y0+y):]
			for j, x := range xs {
				out[j] = float32(row[2*x]) // the top byte, as color.GrayModel keeps it
			}
			return 0
		}, alwaysGrey
	case *image.RGBA:
		return func(y int, xs []int, out []float32, grey bool) (diff byte) {
			row := m.Pix[m.PixOffset(x0, y0+y):]
			for j, x := range xs {
				p := row[4*x : 4*x+4 : 4*x+4]
				r, g, b := p[0], p[1], p[2]
				if p[3] != 0xff {
					r, g, b = rgb8(color.RGBA{R: r, G: g, B: b, A: p[3]})
				}
				out[j] = value(r, g, b, grey)
				diff |= (r ^ g) | (g ^ b)
			}
			return diff
		}, maybeGrey
	case *image.NRGBA:
		return func(y int, xs []int, out []float32, grey bool) (diff byte) {
			row := m.Pix[m.PixOffset(x0, y0+y):]
			for j, x := range xs {
				p := row[4*x : 4*x+3 : 4*x+3]
				r, g, b := p[0], p[1], p[2]
				out[j] = value(r, g, b, grey)
				diff |= (r ^ g) | (g ^ b)
			}
			return diff
		}, maybeGrey
	case *image.YCbCr:
		return ycbcrReader(m, x0, y0), maybeGrey
	case *image.NYCbCrA:
		return ycbcrReader(&m.YCbCr, x0, y0), maybeGrey // alpha ignored
	case *image.Paletted:
		// Convert the palette once; a pixel is then one lookup. An index outside the palette
		// (which image.Paletted.At would panic on; decoders never produce one) reads as black.
		var lut [256][3]byte
		for k := range m.Palette[:min(len(m.Palette), 256)] {
			lut[k][0], lut[k][1], lut[k][2] = rgb8(m.Palette[k])
		}
		return func(y int, xs []int, out []float32, grey bool) (diff byte) {
			row := m.Pix[m.PixOffset(x0, y0+y):]
			for j, x := range xs {
				p := &lut[row[x]]
				r, g, b := p[0], p[1], p[2]
				out[j] = value(r, g, b, grey)
				diff |= (r ^ g) | (g ^ b)
			}
			return diff
		}, maybeGrey
	case *image.CMYK:
		return func(y int, xs []int, out []float32, _ bool) byte {
			row := m.Pix[m.PixOffset(x0, y0+y):]
			for j, x := range xs {
				p := row[4*x : 4*x+4 : 4*x+4]
				r, g, b, _ := color.CMYK{C: p[0], M: p[1], Y: p[2], K: p[3]}.RGBA()
				out[j] = luma(uint8(r>>8), uint8(g>>8), uint8(b>>8))
			}
			return 0
		}, neverGrey
	}
	kind := maybeGrey
	switch img.ColorModel() {
	case color.GrayModel, color.Gray16Model:
		kind = alwaysGrey
	case color.CMYKModel:
		kind = neverGrey
	}
	return func(y int, xs []int, out []float32, grey bool) (diff byte) {
		for j, x := range xs {
			c := img.At(x0+x, y0+y)
			if kind == alwaysGrey {
				out[j] = float32(color.GrayModel.Convert(c).(color.Gray).Y)
				continue
			}
			r, g, b := rgb8(c)
			out[j] = value(r, g, b, grey && kind == maybeGrey)
			diff |= (r ^ g) | (g ^ b)
		}
		return diff
	}, kind
}

func ycbcrReader(m *image.YCbCr, x0, y0 int) rowReader {
	return func(y int, xs []int, out []float32, grey bool) (diff byte) {
		for j, x := range xs {
			yi := m.YOffset(x0+x, y0+y)
			ci := m.COffset(x0+x, y0+y)
			r, g, b := ycbcr8(m.Y[yi], m.Cb[ci], m.Cr[ci])
			out[j] = value(r, g, b, grey)
			diff |= (r ^ g) | (g ^ b)
		}
		return diff
	}
}

// fillFromImage writes the luma of img into buf1 and returns its size and whether the grey
// path was taken. Images larger than PrescaleSize on either side are sampled straight onto the
// PrescaleSize×PrescaleSize grid the reference resizes to (source index ⌊dst·old/512⌋), so only
// the pixels that survive the resize are converted: a 12-megapixel photo costs 262 144
// conversions, not 12 million (unless every sampled pixel is grey: then the whole image is
// checked, as the reference checks it before resizing).
func (w *workspace) fillFromImage(img image.Image) (rows, cols int, grey bool) {
	b := img.Bounds()
	width, height := b.Dx(), b.Dy()
	if width <= 0 || height <= 0 {
		return 0, 0, false
	}
	cols, rows = width, height
	if width > PrescaleSize || height > PrescaleSize {
		cols, rows = PrescaleSize, PrescaleSize
	}
	w.xmap = sampleMap(w.xmap, width, cols)
	w.ymap = sampleMap(w.ymap, height, rows)
	dst := w.luma(rows, cols)
	read, kind := pixelReader(img)

	var diff byte
	for i, y := range w.ymap {
		diff |= read(y, w.xmap, dst[i*cols:i*cols+cols], false)
	}
	switch {
	case kind == alwaysGrey:
		return rows, cols, true
	case kind == neverGrey || diff != 0:
		return rows, cols, false
	case rows != height || cols != width:
		if !allGrey(read, width, height) {
			return rows, cols, false
		}
	}
	// Every pixel is grey: the reference reads the image as single-channel.
	for i, y := range w.ymap {
		read(y, w.xmap, dst[i*cols:i*cols+cols], true)
	}
	return rows, cols, true
}

// allGrey reports whether every pixel of the full image has R = G = B.
func allGrey(read rowReader, width, height int) bool {
	xs := sampleMap(nil, width, width)
	scratch := make([]float32, width)
	for y := range height {
		if read(y, xs, scratch, true) != 0 {
			return false
		}
	}
	return true
}

// sampleMap returns, for each of the n output positions, the source index ⌊i·old/n⌋: the
// identity when old == n, otherwise the nearest-neighbour resampling of the reference (CImg's
// resize computes the same index in float64, where it is exact).
func sampleMap(buf []int, old, n int) []int {
	if cap(buf) < n {
		buf = make([]int, n)
	}
	buf = buf[:n]
	for i := range buf {
		buf[i] = i * old / n
	}
	return buf
}

// fillFromRGB writes the luma of a packed RGB buffer into buf1.
func (w *workspace) fillFromRGB(pix []byte, width, height, stride int) {
	dst := w.luma(height, width)
	for i := range height {
		row := pix[i*stride : i*stride+3*width]
		out := dst[i*width : i*width+width]
		for j := range out {
			p := row[3*j : 3*j+3 : 3*j+3]
			out[j] = luma(p[0], p[1], p[2])
		}
	}
}

// fillFromGray writes a grey buffer into buf1, the value itself being the luma.
func (w *workspace) fillFromGray(pix []byte, width, height, stride int) {
	dst := w.luma(height, width)
	for i := range height {
		row := pix[i*stride : i*stride+width]
		out := dst[i*width : i*width+width]
		for j, v := range row {
			out[j] = float32(v)
		}
	}
}
