package pdq

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math/rand/v2"
	"sync"
	"testing"
)

// testPicture returns a w×h RGBA picture with structure at several scales (so its hash has
// quality 100) and some noise, the same for the same seed.
func testPicture(w, h int, seed uint64) *image.RGBA {
	rng := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			r := 255 * x / max(w-1, 1)
			g := 255 * y / max(h-1, 1)
			b := 0
			if (x*8/max(w, 1)+y*6/max(h, 1))%2 == 0 {
				b = 200
			}
			n := int(rng.Uint32()%32) - 16
			img.SetRGBA(x, y, color.RGBA{R: clamp8(r + n), G: clamp8(g - n), B: clamp8(b + n), A: 255})
		}
	}
	return img
}

func clamp8(v int) uint8 { return uint8(min(max(v, 0), 255)) }

// opaque hides an image's concrete type, forcing the generic image.At path.
type opaque struct{ image.Image }

func TestTinyImagesHashToZero(t *testing.T) {
	t.Parallel()
	for _, size := range []image.Point{{0, 0}, {1, 1}, {4, 4}, {4, 100}, {100, 4}, {512, 4}, {4, 512}} {
		t.Run(fmt.Sprintf("%dx%d", size.X, size.Y), func(t *testing.T) {
			t.Parallel()
			img := testPicture(size.X, size.Y, 1)
			if h, q := HashImage(img); h != (Hash{}) || q != 0 {
				t.Errorf("HashImage = %v q%d, want the zero hash with quality 0", h, q)
			}
			if d, q := HashDihedral(img); d != (Dihedral{}) || q != 0 {
				t.Errorf("HashDihedral = %v q%d, want zero hashes with quality 0", d, q)
			}
			if h, q, err := HashRGB(rgbBytes(img), size.X, size.Y, 3*size.X); err != nil || h != (Hash{}) || q != 0 {
				t.Errorf("HashRGB = %v q%d %v, want the zero hash with quality 0", h, q, err)
			}
			grey := make([]byte, size.X*size.Y)
			if h, q, err := HashGray(grey, size.X, size.Y, size.X); err != nil || h != (Hash{}) || q != 0 {
				t.Errorf("HashGray = %v q%d %v, want the zero hash with quality 0", h, q, err)
			}
		})
	}
	// The reference resizes before it checks the size: 600×4 becomes 512×512 and is hashed.
	t.Run("600x4 is pre-resized, then hashed", func(t *testing.T) {
		t.Parallel()
		if _, q := HashImage(testPicture(600, 4, 1)); q == 0 {
			t.Error("quality 0: the image was skipped instead of being resized to 512×512")
		}
	})
	t.Run("5x5 is hashed", func(t *testing.T) {
		t.Parallel()
		if h, _ := HashImage(testPicture(5, 5, 1)); h == (Hash{}) {
			t.Error("zero hash for a 5×5 image")
		}
	})
}

func TestQualityGate(t *testing.T) {
	t.Parallel()
	flat := image.NewGray(image.Rect(0, 0, 100, 80))
	for i := range flat.Pix {
		flat.Pix[i] = 128
	}
	gentle := image.NewGray(image.Rect(0, 0, 256, 256))
	for y := range 256 {
		for x := range 256 {
			gentle.Pix[y*256+x] = uint8(x / 4)
		}
	}
	tests := []struct {
		name   string
		img    image.Image
		usable bool
	}{
		{"flat grey", flat, false},
		{"gentle gradient", gentle, false},
		{"structured picture", testPicture(300, 200, 3), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, q := HashImage(tt.img)
			if q < 0 || q > 100 {
				t.Fatalf("quality %d outside 0..100", q)
			}
			if got := q >= MinQuality; got != tt.usable {
				t.Errorf("quality %d: usable = %v, want %v", q, got, tt.usable)
			}
		})
	}
	// The reference's own low-quality files, through the exact pixels.
	for _, tt := range []struct {
		file    string
		quality int
	}{
		{"pixels/misc-images/small.png", 0},
		{"pixels/reg-test-input/labelme-subset/q0003.png", 3},
		{"pixels/reg-test-input/labelme-subset/q0122.png", 100},
	} {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			img, _ := decodeFile(t, tt.file)
			if _, q := HashImage(img); q != tt.quality {
				t.Errorf("quality %d, want %d", q, tt.quality)
			}
		})
	}
}

// TestImageTypes: every specialised pixel reader must give exactly what the generic
// image.At path gives, for every standard image type, with and without the pre-resize.
func TestImageTypes(t *testing.T) {
	t.Parallel()
	for _, size := range []image.Rectangle{image.Rect(3, 5, 140, 101), image.Rect(-20, 10, 700, 390)} {
		src := testPicture(size.Dx(), size.Dy(), 11)
		images := map[string]image.Image{}
		conv := func(name string, dst interface {
			image.Image
			Set(x, y int, c color.Color)
		}) {
			b := dst.Bounds()
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					c := src.At(x-b.Min.X, y-b.Min.Y).(color.RGBA)
					if name == "RGBA translucent" || name == "NRGBA translucent" || name == "NRGBA64" {
						c.A = uint8(x * 7)
						if name == "RGBA translucent" { // premultiply, as a valid RGBA must be
							c.R, c.G, c.B = uint8(int(c.R)*int(c.A)/255), uint8(int(c.G)*int(c.A)/255), uint8(int(c.B)*int(c.A)/255)
						}
					}
					dst.Set(x, y, c)
				}
			}
			images[name] = dst
		}
		conv("Gray", image.NewGray(size))
		conv("Gray16", image.NewGray16(size))
		conv("RGBA", image.NewRGBA(size))
		conv("RGBA translucent", image.NewRGBA(size))
		conv("NRGBA", image.NewNRGBA(size))
		conv("NRGBA translucent", image.NewNRGBA(size))
		conv("RGBA64", image.NewRGBA64(size))
		conv("NRGBA64", image.NewNRGBA64(size))
		conv("CMYK", image.NewCMYK(size))
		conv("Alpha", image.NewAlpha(size))
		pal := color.Palette{}
		for i := range 256 {
			pal = append(pal, color.NRGBA{uint8(i), uint8(255 - i), uint8(i * 3), uint8(i)})
		}
		conv("Paletted", image.NewPaletted(size, pal))
		for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
			image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410} {
			y := image.NewYCbCr(size, ratio)
			fillYCbCr(y, 5)
			images["YCbCr "+ratio.String()] = y
		}
		nya := image.NewNYCbCrA(size, image.YCbCrSubsampleRatio420)
		fillYCbCr(&nya.YCbCr, 6)
		for i := range nya.A {
			nya.A[i] = uint8(i)
		}
		images["NYCbCrA"] = nya

		for name, img := range images {
			t.Run(fmt.Sprintf("%s %v", name, size), func(t *testing.T) {
				t.Parallel()
				fast, generic := getWorkspace(), getWorkspace()
				defer fast.release()
				defer generic.release()
				r1, c1, g1 := fast.fillFromImage(img)
				r2, c2, g2 := generic.fillFromImage(opaque{img})
				if r1 != r2 || c1 != c2 || g1 != g2 {
					t.Fatalf("fast path %d×%d grey=%v, generic %d×%d grey=%v", c1, r1, g1, c2, r2, g2)
				}
				for i := range fast.buf1 {
					if fast.buf1[i] != generic.buf1[i] {
						t.Fatalf("luma[%d] = %v, generic path %v", i, fast.buf1[i], generic.buf1[i])
					}
				}
				h1, q1 := HashImage(img)
				h2, q2 := HashImage(opaque{img})
				if h1 != h2 || q1 != q2 {
					t.Errorf("HashImage = %v q%d, generic path %v q%d", h1, q1, h2, q2)
				}
			})
		}
	}
}

func fillYCbCr(m *image.YCbCr, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 9))
	for i := range m.Y {
		m.Y[i] = uint8(i*7) ^ uint8(rng.Uint32()&15)
	}
	for i := range m.Cb {
		m.Cb[i], m.Cr[i] = uint8(rng.Uint32()), uint8(i*3)
	}
}

// TestGreyDetection: the reference reads an image as single-channel when every pixel is grey,
// whatever its container; one coloured pixel anywhere, even one the pre-resize drops, makes it
// colour.
func TestGreyDetection(t *testing.T) {
	t.Parallel()
	grey := func(w, h int) *image.RGBA {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				v := uint8(x*5 + y*3)
				img.SetRGBA(x, y, color.RGBA{v, v, v, 255})
			}
		}
		return img
	}
	withColour := func(img *image.RGBA, x, y int) *image.RGBA {
		img.SetRGBA(x, y, color.RGBA{1, 2, 3, 255})
		return img
	}
	// At 1000 px, the pre-resize samples columns ⌊i·1000/512⌋ = 0, 1, 3, 5 …: column 2 is dropped.
	tests := []struct {
		name string
		img  image.Image
		want bool
	}{
		{"grey RGBA", grey(200, 100), true},
		{"grey RGBA, pre-resized", grey(1000, 1000), true},
		{"one coloured pixel", withColour(grey(200, 100), 150, 70), false},
		{"one coloured pixel the resize drops", withColour(grey(1000, 1000), 2, 0), false},
		{"Gray", image.NewGray(image.Rect(0, 0, 50, 50)), true},
		{"CMYK is never grey", image.NewCMYK(image.Rect(0, 0, 50, 50)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := greyPath(tt.img); got != tt.want {
				t.Errorf("grey path = %v, want %v", got, tt.want)
			}
		})
	}
	// On the grey path the luma is the grey value itself, so an all-grey RGBA image hashes
	// like the same pixels in a Gray image.
	t.Run("grey RGBA hashes as Gray", func(t *testing.T) {
		t.Parallel()
		rgba := grey(300, 200)
		g := image.NewGray(rgba.Bounds())
		for y := range 200 {
			for x := range 300 {
				g.Pix[y*300+x] = rgba.Pix[y*rgba.Stride+4*x]
			}
		}
		h1, q1 := HashImage(rgba)
		h2, q2 := HashImage(g)
		if h1 != h2 || q1 != q2 {
			t.Errorf("RGBA %v q%d, Gray %v q%d", h1, q1, h2, q2)
		}
	})
}

func rgbBytes(img *image.RGBA) []byte {
	b := img.Bounds()
	out := make([]byte, 0, 3*b.Dx()*b.Dy())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.RGBAAt(x, y)
			out = append(out, c.R, c.G, c.B)
		}
	}
	return out
}

// TestPrescale: HashImage on a large image equals HashRGB on the 512×512 nearest-neighbour
// resize that the reference computes with CImg (source index ⌊dst·old/512⌋), while HashRGB on
// the full buffer hashes at full size, as vPDQ does.
func TestPrescale(t *testing.T) {
	t.Parallel()
	for _, size := range []image.Point{{1432, 812}, {513, 300}, {300, 2000}, {512, 512}, {100, 80}} {
		t.Run(fmt.Sprintf("%dx%d", size.X, size.Y), func(t *testing.T) {
			t.Parallel()
			img := testPicture(size.X, size.Y, 5)
			w, h := size.X, size.Y
			if w > 512 || h > 512 {
				w, h = 512, 512
			}
			small := make([]byte, 0, 3*w*h)
			for y := range h {
				for x := range w {
					c := img.RGBAAt(int(float64(x)*float64(size.X)/float64(w)), int(float64(y)*float64(size.Y)/float64(h)))
					small = append(small, c.R, c.G, c.B)
				}
			}
			want, wq, err := HashRGB(small, w, h, 3*w)
			if err != nil {
				t.Fatal(err)
			}
			if got, q := HashImage(img); got != want || q != wq {
				t.Errorf("HashImage = %v q%d, want %v q%d", got, q, want, wq)
			}
		})
	}
	// Hashing at full size instead changes a photo's hash a little, well within a match.
	t.Run("full size matches pre-resized on a photo", func(t *testing.T) {
		t.Parallel()
		img, _ := decodeFile(t, "images/reg-test-input/dih/bridge-1-original.jpg")
		rgba := image.NewRGBA(img.Bounds())
		draw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, draw.Src)
		b := rgba.Bounds()
		pre, _ := HashImage(rgba)
		full, _, err := HashRGB(rgbBytes(rgba), b.Dx(), b.Dy(), 3*b.Dx())
		if err != nil {
			t.Fatal(err)
		}
		if d := Distance(full, pre); d > MatchDistance {
			t.Errorf("full-size and pre-resized hashes are %d bits apart, want a match", d)
		}
	})
}

func TestHashRGBStride(t *testing.T) {
	t.Parallel()
	img := testPicture(90, 70, 8)
	packed := rgbBytes(img)
	want, wq, err := HashRGB(packed, 90, 70, 270)
	if err != nil {
		t.Fatal(err)
	}
	padded := make([]byte, 300*70)
	for y := range 70 {
		copy(padded[y*300:], packed[y*270:y*270+270])
		for i := 270; i < 300; i++ {
			padded[y*300+i] = 0xAA // padding must be ignored
		}
	}
	if got, q, err := HashRGB(padded[:69*300+270], 90, 70, 300); err != nil || got != want || q != wq {
		t.Errorf("with stride 300: %v q%d %v, want %v q%d", got, q, err, want, wq)
	}
}

func TestBufferErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                  string
		pix                   []byte
		width, height, stride int
		channels              int
	}{
		{"negative width", nil, -1, 10, 30, 3},
		{"stride too small", make([]byte, 1000), 10, 10, 29, 3},
		{"buffer too short", make([]byte, 299), 10, 10, 30, 3},
		{"grey buffer too short", make([]byte, 99), 10, 10, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tt.channels == 3 {
				_, _, err = HashRGB(tt.pix, tt.width, tt.height, tt.stride)
			} else {
				_, _, err = HashGray(tt.pix, tt.width, tt.height, tt.stride)
			}
			if err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestDihedralMeaning: the reference's rotated and flipped copies of its bridge photo hash
// close to the matching dihedral hash of the original, and far from the others.
func TestDihedralMeaning(t *testing.T) {
	t.Parallel()
	orig, _ := decodeFile(t, "pixels/reg-test-input/dih/bridge-1-original.png")
	d, _ := HashDihedral(orig)
	for file, tr := range map[string]Transform{
		"bridge-2-rotate-90.png":  Rotate90,
		"bridge-3-rotate-180.png": Rotate180,
		"bridge-4-rotate-270.png": Rotate270,
		"bridge-5-flipx.png":      FlipX,
		"bridge-6-flipy.png":      FlipY,
	} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			img, _ := decodeFile(t, "pixels/reg-test-input/dih/"+file)
			h, _ := HashImage(img)
			for other := range d {
				dist := Distance(h, d[other])
				if Transform(other) == tr && dist > MatchDistance {
					t.Errorf("%v: %d bits from the original's %v hash, want a match", file, dist, tr)
				}
				if Transform(other) != tr && dist <= MatchDistance {
					t.Errorf("%v: matches the original's %v hash (%d bits), want only %v", file, Transform(other), dist, tr)
				}
			}
		})
	}
}

// TestSixtyFourSquare: a 64×64 input skips the blur in the reference's single-hash path (its
// block is the input itself) but not in its dihedral path; both must still hash the picture.
func TestSixtyFourSquare(t *testing.T) {
	t.Parallel()
	img := testPicture(64, 64, 4)
	h, q := HashImage(img)
	d, dq := HashDihedral(img)
	if abs(q-dq) > 1 {
		t.Errorf("quality %d vs dihedral %d", q, dq)
	}
	if dist := Distance(h, d[Original]); dist > 4 {
		t.Errorf("HashImage and HashDihedral[Original] are %d bits apart", dist)
	}
	// The shortcut means the block is exactly the luma: check against a direct computation.
	w := getWorkspace()
	defer w.release()
	w.fillFromImage(img)
	copy(w.block[:], w.buf1)
	if want := qualityOf(&w.block); want != q {
		t.Errorf("quality %d, want %d from the unblurred block", q, want)
	}
}

func TestConcurrentHashing(t *testing.T) {
	t.Parallel()
	pics := []image.Image{testPicture(640, 480, 1), testPicture(200, 300, 2), testPicture(1500, 90, 3)}
	want := make([]Hash, len(pics))
	for i, p := range pics {
		want[i], _ = HashImage(p)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				k := (g + i) % len(pics)
				if h, _ := HashImage(pics[k]); h != want[k] {
					t.Errorf("goroutine %d: picture %d hashed to %v, want %v", g, k, h, want[k])
				}
			}
		})
	}
	wg.Wait()
}
