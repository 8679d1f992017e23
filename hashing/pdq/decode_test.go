package pdq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func encoded(t *testing.T, enc func(*bytes.Buffer, image.Image) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := enc(&buf, testPicture(120, 90, 2)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngHeader is a valid PNG signature and IHDR chunk claiming a w×h RGB image, with no data.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestDecode(t *testing.T) {
	t.Parallel()
	webp, err := os.ReadFile(filepath.Join("testdata", "images", "misc-images", "modes", "HSV.webp"))
	if err != nil {
		t.Fatal(err)
	}
	pngBytes := encoded(t, func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) })
	tests := []struct {
		name       string
		in         []byte
		wantFormat string
		wantErr    error  // nil: must decode
		errText    string // must appear in the error
	}{
		{"png", pngBytes, "png", nil, ""},
		{"jpeg", encoded(t, func(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, nil) }), "jpeg", nil, ""},
		{"gif", encoded(t, func(b *bytes.Buffer, m image.Image) error { return gif.Encode(b, m, nil) }), "gif", nil, ""},
		{"webp", webp, "webp", nil, ""},
		{"text", []byte("hello, this is not an image"), "", ErrUnsupportedFormat, "JPEG, PNG, GIF and WebP"},
		{"empty", nil, "", ErrUnsupportedFormat, "JPEG, PNG, GIF and WebP"},
		{"bmp", append([]byte("BM"), make([]byte, 60)...), "", ErrUnsupportedFormat, "JPEG, PNG, GIF and WebP"},
		{"decompression bomb", pngHeader(100000, 100000), "png", ErrTooLarge, "downscale"},
		{"truncated png", pngBytes[:len(pngBytes)/2], "png", nil, "decode png image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img, format, err := Decode(bytes.NewReader(tt.in))
			if format != tt.wantFormat {
				t.Errorf("format = %q, want %q", format, tt.wantFormat)
			}
			if tt.wantErr == nil && tt.errText == "" {
				if err != nil {
					t.Fatal(err)
				}
				if img.Bounds().Empty() {
					t.Error("empty image")
				}
				return
			}
			if err == nil {
				t.Fatalf("decoded %T, want an error", img)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error %q does not mention %q", err, tt.errText)
			}
		})
	}
}

// TestDecodeReadsOnce: Decode must work on a reader that cannot rewind, such as a network
// stream, and see every byte once.
func TestDecodeReadsOnce(t *testing.T) {
	t.Parallel()
	raw := encoded(t, func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) })
	want, _, err := Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := Decode(&oneByteReader{data: raw})
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := HashImage(want)
	h2, _ := HashImage(got)
	if h1 != h2 {
		t.Errorf("hash through a one-byte reader %v, want %v", h2, h1)
	}
}

type oneByteReader struct{ data []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], r.data = r.data[0], r.data[1:]
	return 1, nil
}

// TestGIFFirstFrame: an animated GIF is hashed by its first frame, as image.Decode returns it.
func TestGIFFirstFrame(t *testing.T) {
	t.Parallel()
	pal := color.Palette{color.RGBA{0, 0, 0, 255}, color.RGBA{255, 255, 255, 255}, color.RGBA{200, 30, 30, 255}}
	frame := func(seed int) *image.Paletted {
		m := image.NewPaletted(image.Rect(0, 0, 64, 48), pal)
		for i := range m.Pix {
			m.Pix[i] = uint8((i/7 + i/(64*5) + seed) % 3)
		}
		return m
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, &gif.GIF{Image: []*image.Paletted{frame(0), frame(1)}, Delay: []int{10, 10}}); err != nil {
		t.Fatal(err)
	}
	img, _, err := Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := HashImage(img)
	want, _ := HashImage(frame(0))
	if got != want {
		t.Errorf("hash %v, want the first frame's %v", got, want)
	}
}
