// Package pdq computes PDQ, Meta's 256-bit perceptual image hash, bit for bit as the
// reference C++ implementation (facebook/ThreatExchange, pdq/cpp) does.
//
// Two pictures that look alike (re-encoded, resized, slightly cropped or recoloured) get hashes
// a few bits apart; Distance(a, b) <= MatchDistance (31) is a match. A hash of quality below
// MinQuality (50) comes from a picture too flat to identify and should not be shared.
//
// The pipeline, as the reference computes it (see testdata/README.md and ALGORITHM.md there):
// 8-bit pixels → float32 luma 0.299R+0.587G+0.114B → two rounds of Jarosz box blur →
// 64×64 decimation → quality metric → 16×16 DCT → threshold at the median. Every float
// operation rounds where the reference rounds, so the hashes are identical, not just close.
//
// Entry points:
//   - HashImage and HashDihedral take a decoded image, as the reference's pdq-photo-hasher
//     does a file: images wider or taller than 512 px are first resampled to exactly
//     512×512 by nearest neighbour (the reference's speed-up, kept for identical hashes).
//   - HashRGB and HashGray take raw 8-bit buffers at their own size, as the reference's
//     hashing core does and as vPDQ hashes video frames: no pre-resize.
//   - Decode reads JPEG, PNG, GIF and WebP with a pixel limit against decompression bombs.
//
// All functions are safe for concurrent use. Working buffers (2 MiB of float32 for a 512×512
// image) are pooled, so in steady state a hash costs one small allocation.
package pdq

import (
	"fmt"
	"image"
	"sync"
)

// minDimension is the smallest width or height the reference hashes; smaller images get the
// all-zero hash with quality 0.
const minDimension = 5

// PrescaleSize is the side of the square the reference's file loader resamples larger images
// to before hashing (nearest neighbour, aspect ratio not kept).
const PrescaleSize = 512

// workspace holds every buffer one hash needs. Buffers are pooled rather than allocated per
// call: a 512×512 image needs 2 MiB of float32 luma.
type workspace struct {
	buf1, buf2, sums []float32
	block            [64 * 64]float32
	rows16           [16 * 64]float32
	coeffs           [16 * 16]float32
	aux              [16 * 16]float32
	scratch          [16 * 16]float32
	xmap, ymap       []int
}

var workspaces = sync.Pool{New: func() any { return new(workspace) }}

func getWorkspace() *workspace { return workspaces.Get().(*workspace) }

func (w *workspace) release() { workspaces.Put(w) }

// luma returns buf1 sized for rows×cols, growing the buffers if needed.
func (w *workspace) luma(rows, cols int) []float32 {
	n := rows * cols
	if cap(w.buf1) < n {
		w.buf1 = make([]float32, n)
		w.buf2 = make([]float32, n)
	}
	if cap(w.sums) < cols {
		w.sums = make([]float32, cols)
	}
	w.buf1, w.buf2 = w.buf1[:n], w.buf2[:n]
	return w.buf1
}

// transform runs blur, decimation, quality and DCT on the luma in buf1, leaving the 16×16
// coefficients in w.coeffs. skip64 reproduces the reference's shortcut for an input of exactly
// 64×64, which its single-hash path takes and its dihedral path does not.
func (w *workspace) transform(rows, cols int, skip64 bool) (quality int) {
	if skip64 && rows == 64 && cols == 64 {
		copy(w.block[:], w.buf1)
	} else {
		jarosz(w.buf1, w.buf2, w.sums, rows, cols)
		decimate(w.buf1, rows, cols, &w.block)
	}
	quality = qualityOf(&w.block)
	dct64To16(&w.block, &w.rows16, &w.coeffs)
	return quality
}

func (w *workspace) hash(rows, cols int) (Hash, int) {
	if rows < minDimension || cols < minDimension {
		return Hash{}, 0
	}
	q := w.transform(rows, cols, true)
	return bitsOf(&w.coeffs, &w.scratch), q
}

func (w *workspace) dihedral(rows, cols int) (Dihedral, int) {
	var d Dihedral
	if rows < minDimension || cols < minDimension {
		return d, 0
	}
	q := w.transform(rows, cols, false)
	for t := range d {
		dihedralOf(Transform(t), &w.coeffs, &w.aux)
		d[t] = bitsOf(&w.aux, &w.scratch)
	}
	return d, q
}

// HashImage returns the PDQ hash and quality (0 to 100) of img, identical to the reference
// pdq-photo-hasher on the same pixels. An image wider or taller than PrescaleSize is resampled
// to PrescaleSize×PrescaleSize by nearest neighbour first, as the reference does; an image
// narrower or shorter than 5 px gets the zero hash and quality 0.
//
// Pixels are read as the reference reads them from a file: 8-bit non-premultiplied R, G, B,
// alpha ignored (see color.NRGBAModel). An image whose every pixel is grey (R = G = B, or a
// grey colour model) uses the grey value as luma; any other uses 0.299R + 0.587G + 0.114B.
func HashImage(img image.Image) (Hash, int) {
	w := getWorkspace()
	defer w.release()
	rows, cols, _ := w.fillFromImage(img)
	return w.hash(rows, cols)
}

// HashDihedral returns the hashes of the eight rotations and reflections of img (see
// Dihedral), with the quality, identical to the reference's dihedral hasher. It costs one hash
// plus eight thresholds, far less than transforming and hashing the image eight times.
//
// For an image of exactly 64×64 px, d[Original] can differ from HashImage in a few bits: the
// reference's single-hash path then skips the blur, its dihedral path does not.
func HashDihedral(img image.Image) (Dihedral, int) {
	w := getWorkspace()
	defer w.release()
	rows, cols, _ := w.fillFromImage(img)
	return w.dihedral(rows, cols)
}

// HashRGB hashes an 8-bit RGB buffer (R, G, B per pixel, rows stride bytes apart, as ffmpeg's
// rgb24 and many decoders produce) at its own size: unlike HashImage it does not pre-resize
// images larger than 512 px, as the reference's hashing core and vPDQ do not.
func HashRGB(pix []byte, width, height, stride int) (Hash, int, error) {
	if err := checkBuffer(pix, width, height, stride, 3); err != nil {
		return Hash{}, 0, err
	}
	w := getWorkspace()
	defer w.release()
	w.fillFromRGB(pix, width, height, stride)
	h, q := w.hash(height, width)
	return h, q, nil
}

// HashGray hashes an 8-bit grey buffer at its own size, using the grey value as luma, as the
// reference does for single-channel images. Like HashRGB it does not pre-resize.
func HashGray(pix []byte, width, height, stride int) (Hash, int, error) {
	if err := checkBuffer(pix, width, height, stride, 1); err != nil {
		return Hash{}, 0, err
	}
	w := getWorkspace()
	defer w.release()
	w.fillFromGray(pix, width, height, stride)
	h, q := w.hash(height, width)
	return h, q, nil
}

func checkBuffer(pix []byte, width, height, stride, channels int) error {
	switch {
	case width < 0 || height < 0:
		return fmt.Errorf("pdq: image size %d×%d is negative", width, height)
	case width > 0 && stride < width*channels:
		return fmt.Errorf("pdq: stride %d is less than width %d × %d channels", stride, width, channels)
	case width > 0 && height > 0 && len(pix) < (height-1)*stride+width*channels:
		return fmt.Errorf("pdq: buffer holds %d bytes, a %d×%d image with stride %d needs %d",
			len(pix), width, height, stride, (height-1)*stride+width*channels)
	}
	return nil
}
