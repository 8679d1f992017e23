package pdq

import (
	"bytes"
	"errors"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fuzzMaxPixels bounds the images FuzzDecode decodes: a header claiming more (up to MaxPixels)
// would spend each run allocating its pixels. Above MaxPixels Decode must refuse before that.
const fuzzMaxPixels = 1 << 20

// FuzzDecode feeds files to Decode, then hashes what it decodes. Decode accepts only the four
// formats, at the size their header gives, within MaxPixels; a refusal wraps
// ErrUnsupportedFormat, ErrTooLarge, or names the format whose decoder failed. A decoded image
// hashes to the same hash twice, with a quality from 0 to 100, and the specialised pixel readers
// agree with the generic colour conversion (the same image behind image.Image's methods only).
// Seeds: reference photos, small encodings of a test picture in each format (the WebP ones are
// in testdata/fuzz/FuzzDecode), and a decompression bomb's header.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"misc-images/small.jpg", "reg-test-input/labelme-subset/q0003.jpg"} {
		b, err := os.ReadFile(filepath.Join("testdata", "images", filepath.FromSlash(name)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	pic := testPicture(40, 30, 3)
	grey := image.NewGray(pic.Bounds())
	for i := range grey.Pix {
		grey.Pix[i] = uint8(i * 7)
	}
	for _, enc := range []func(*bytes.Buffer) error{
		func(b *bytes.Buffer) error { return png.Encode(b, pic) },
		func(b *bytes.Buffer) error { return png.Encode(b, grey) },
		func(b *bytes.Buffer) error { return jpeg.Encode(b, pic, &jpeg.Options{Quality: 60}) },
		func(b *bytes.Buffer) error { return jpeg.Encode(b, grey, nil) },
		func(b *bytes.Buffer) error { return gif.Encode(b, pic, &gif.Options{NumColors: 16}) },
	} {
		var b bytes.Buffer
		if err := enc(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add(pngHeader(100000, 100000))

	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, cfgFormat, cfgErr := image.DecodeConfig(bytes.NewReader(data))
		px := int64(cfg.Width) * int64(cfg.Height)
		if cfgErr == nil && px > fuzzMaxPixels && px <= MaxPixels {
			t.Skip("large enough to be slow, small enough to be decoded")
		}
		img, format, err := Decode(bytes.NewReader(data))
		if err != nil {
			switch {
			case errors.Is(err, ErrUnsupportedFormat):
				if cfgErr == nil && slices.Contains(formats, cfgFormat) {
					t.Fatalf("a %s header was refused as an unsupported format: %v", cfgFormat, err)
				}
			case errors.Is(err, ErrTooLarge):
				if px <= MaxPixels {
					t.Fatalf("%d×%d refused as too large: %v", cfg.Width, cfg.Height, err)
				}
			case format == "" || !strings.Contains(err.Error(), format):
				t.Fatalf("the error does not name the format %q: %v", format, err)
			}
			return
		}
		if !slices.Contains(formats, format) || format != cfgFormat {
			t.Fatalf("decoded as %q (header: %q)", format, cfgFormat)
		}
		if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height || px > MaxPixels {
			t.Fatalf("decoded %v, header says %d×%d", b, cfg.Width, cfg.Height)
		}
		h, q := HashImage(img)
		if q < 0 || q > 100 {
			t.Fatalf("quality %d", q)
		}
		if h2, q2 := HashImage(img); h2 != h || q2 != q {
			t.Fatalf("hashed twice: %v (%d), then %v (%d)", h, q, h2, q2)
		}
		if _, ok := img.(*image.Paletted); ok && !inPalette(img.(*image.Paletted)) {
			return // the generic path panics on an index outside the palette; see pixelReader
		}
		if hg, qg := HashImage(opaque{img}); hg != h || qg != q {
			t.Fatalf("%T: the specialised reader hashes %v (%d), the generic one %v (%d)", img, h, q, hg, qg)
		}
	})
}

// inPalette reports whether every pixel of m indexes its palette.
func inPalette(m *image.Paletted) bool {
	for _, p := range m.Pix {
		if int(p) >= len(m.Palette) {
			return false
		}
	}
	return true
}

// FuzzParseHash: a PDQ hash's text form parses only as 64 hex digits, and a parsed hash prints
// as the same digits in lower case; its wire form (32 bytes) gives the same hash.
func FuzzParseHash(f *testing.F) {
	f.Add("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22")
	f.Add("F8F8F0CEE0F4A84F06370A22038F63F0B36E2ED596621E1D33E6B39C4E9C9B22")
	f.Add("0000000000000000000000000000000000000000000000000000000000000000")
	f.Add("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b2")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err != nil {
			return
		}
		if h.String() != strings.ToLower(s) {
			t.Fatalf("%q parses as %v", s, h)
		}
		var u Hash
		if err := u.UnmarshalText([]byte(s)); err != nil || u != h {
			t.Fatalf("UnmarshalText(%q) = %v, %v", s, u, err)
		}
		text, _ := h.MarshalText()
		if again, err := ParseHash(string(text)); err != nil || again != h {
			t.Fatalf("%v does not parse back: %v, %v", h, again, err)
		}
		if wire, err := HashFromBytes(h[:]); err != nil || wire != h || Distance(wire, h) != 0 {
			t.Fatalf("wire form of %v: %v, %v", h, wire, err)
		}
		if Distance(h, Hash{}) != Distance(Hash{}, h) || Distance(h, Hash{}) > 256 {
			t.Fatalf("distance of %v to zero: %d", h, Distance(h, Hash{}))
		}
	})
}
