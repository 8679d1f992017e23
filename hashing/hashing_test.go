package hashing

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	concordv1 "concord/gen/concord/v1"
	"concord/hashing/pdq"
)

// The PDQ package's reference files serve here too.
var pdqTestdata = filepath.Join("pdq", "testdata")

func readTestFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pdqTestdata, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expectedSHA256 reads the sha256 column of the PDQ vectors, by file name.
func expectedSHA256(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(pdqTestdata, "expected.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	header := strings.Split(sc.Text(), "\t")
	nameCol, shaCol := -1, -1
	for i, h := range header {
		switch h {
		case "filename":
			nameCol = i
		case "sha256":
			shaCol = i
		}
	}
	if nameCol < 0 || shaCol < 0 {
		t.Fatal("expected.tsv lacks filename or sha256")
	}
	out := map[string]string{}
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		out[f[nameCol]] = f[shaCol]
	}
	return out
}

func gifBytes(t *testing.T) []byte {
	t.Helper()
	m := image.NewPaletted(image.Rect(0, 0, 90, 60), color.Palette{color.Black, color.White, color.RGBA{200, 20, 20, 255}})
	for i := range m.Pix {
		m.Pix[i] = uint8((i/9 + i/(90*7)) % 3)
	}
	var buf bytes.Buffer
	if err := gif.Encode(&buf, m, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestContent(t *testing.T) {
	t.Parallel()
	shas := expectedSHA256(t)
	tests := []struct {
		name       string
		file       string // under pdq/testdata, or "" for data
		data       []byte
		wantFormat string // "" means no PDQ
		wantErr    error  // PDQErr must wrap it
	}{
		{"jpeg", "images/bridge-mods/shrink-a-lot.jpg", nil, "jpeg", nil},
		{"large jpeg", "images/reg-test-input/exif-rotn/exif-rotn-6.jpg", nil, "jpeg", nil},
		{"png", "pixels/reg-test-input/labelme-subset/q0122.png", nil, "png", nil},
		{"webp", "images/misc-images/modes/HSV.webp", nil, "webp", nil},
		{"gif", "", gifBytes(t), "gif", nil},
		{"text", "", []byte("a list of things, not a picture"), "", pdq.ErrUnsupportedFormat},
		{"empty", "", nil, "", pdq.ErrUnsupportedFormat},
		{"shorter than a signature", "", []byte("GIF8"), "", pdq.ErrUnsupportedFormat},
		{"a PDF", "", []byte("%PDF-1.7\n%âãÏÓ\n1 0 obj"), "", pdq.ErrUnsupportedFormat},
		{"corrupt jpeg", "", append([]byte("\xff\xd8\xff\xe0"), bytes.Repeat([]byte{0x42}, 100)...), "", nil},
		{"truncated png", "", readTestFile(t, "pixels/bridge-mods/shrink-a-lot.png")[:500], "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := tt.data
			if tt.file != "" {
				data = readTestFile(t, tt.file)
			}
			res, err := Content(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if res.Size != int64(len(data)) {
				t.Errorf("Size = %d, want %d", res.Size, len(data))
			}
			sum := sha256.Sum256(data)
			if h, ok := res.Get(concordv1.HashKind_HASH_KIND_SHA256); !ok || !bytes.Equal(h.Value, sum[:]) {
				t.Errorf("SHA-256 = %x, want %x", h.Value, sum)
			}
			if want, ok := shas[tt.file]; ok && hex.EncodeToString(sum[:]) != want {
				t.Errorf("test file differs from expected.tsv: sha256 %x, want %s", sum, want)
			}
			md := md5.Sum(data)
			if h, ok := res.Get(concordv1.HashKind_HASH_KIND_MD5); !ok || !bytes.Equal(h.Value, md[:]) {
				t.Errorf("MD5 = %x, want %x", h.Value, md)
			}

			p, hasPDQ := res.Get(concordv1.HashKind_HASH_KIND_PDQ)
			if tt.wantFormat == "" {
				if hasPDQ || res.PDQErr == nil || res.Format != "" {
					t.Fatalf("PDQ %v, PDQErr %v, format %q: want no PDQ and a reason", p, res.PDQErr, res.Format)
				}
				if tt.wantErr != nil && !errors.Is(res.PDQErr, tt.wantErr) {
					t.Errorf("PDQErr = %v, want %v", res.PDQErr, tt.wantErr)
				}
				if len(res.Hashes) != 2 {
					t.Errorf("%d hashes, want SHA-256 and MD5", len(res.Hashes))
				}
				return
			}
			if !hasPDQ || res.PDQErr != nil {
				t.Fatalf("no PDQ: %v", res.PDQErr)
			}
			if res.Format != tt.wantFormat {
				t.Errorf("Format = %q, want %q", res.Format, tt.wantFormat)
			}
			img, _, err := pdq.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			want, quality := pdq.HashImage(img)
			if !bytes.Equal(p.Value, want[:]) || p.Quality != quality {
				t.Errorf("PDQ = %x q%d, want %v q%d", p.Value, p.Quality, want, quality)
			}
		})
	}
}

func TestContentTooLargeForPDQ(t *testing.T) {
	t.Parallel()
	// A PNG signature followed by zeros, one byte past the limit.
	sig := []byte("\x89PNG\r\n\x1a\n")
	r := io.MultiReader(bytes.NewReader(sig), io.LimitReader(zeros{}, MaxImageBytes+1-int64(len(sig))))
	res, err := Content(r)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res.PDQErr, ErrImageTooLarge) {
		t.Errorf("PDQErr = %v, want ErrImageTooLarge", res.PDQErr)
	}
	if !strings.Contains(res.PDQErr.Error(), "67108865 bytes") {
		t.Errorf("PDQErr %q does not give the size", res.PDQErr)
	}
	if res.Size != MaxImageBytes+1 || len(res.Hashes) != 2 {
		t.Errorf("Size %d, %d hashes; want %d bytes, SHA-256 and MD5", res.Size, len(res.Hashes), MaxImageBytes+1)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestImageBufferKeepsNothingForNonImages: a large non-image is hashed with no buffering.
func TestImageBufferKeepsNothingForNonImages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		chunks [][]byte
		keeps  bool
	}{
		{"video", [][]byte{[]byte("\x00\x00\x00\x20ftypisom"), make([]byte, 1<<20), make([]byte, 1<<20)}, false},
		{"signature split across writes", [][]byte{[]byte("\x89P"), []byte("NG\r\n\x1a\n"), make([]byte, 100)}, true},
		{"one byte at a time", [][]byte{{0xff}, {0xd8}, {0xff}, {0xe0}, make([]byte, 20)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &imageBuffer{}
			total := 0
			for _, c := range tt.chunks {
				if n, err := b.Write(c); n != len(c) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				total += len(c)
			}
			if tt.keeps && (len(b.data) != total || b.verdict(int64(total)) != nil) {
				t.Errorf("kept %d of %d bytes, verdict %v; want all kept", len(b.data), total, b.verdict(int64(total)))
			}
			if !tt.keeps && (cap(b.data) != 0 || !errors.Is(b.verdict(int64(total)), pdq.ErrUnsupportedFormat)) {
				t.Errorf("holds %d bytes, verdict %v; want nothing held and ErrUnsupportedFormat", cap(b.data), b.verdict(int64(total)))
			}
		})
	}
}

func TestContentReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	_, err := Content(io.MultiReader(strings.NewReader("some bytes"), errReader{boom}))
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want the reader's", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestShareable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		quality   int
		sharesPDQ bool
	}{
		{"pixels/misc-images/small.png", 0, false},
		{"pixels/reg-test-input/labelme-subset/q0003.png", 3, false},
		{"pixels/reg-test-input/labelme-subset/q0746.png", 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			res, err := Content(bytes.NewReader(readTestFile(t, tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			p, ok := res.Get(concordv1.HashKind_HASH_KIND_PDQ)
			if !ok || p.Quality != tt.quality {
				t.Fatalf("PDQ present %v with quality %d, want quality %d", ok, p.Quality, tt.quality)
			}
			shared := res.Shareable()
			pdqShared := false
			for _, h := range shared {
				pdqShared = pdqShared || h.Kind == concordv1.HashKind_HASH_KIND_PDQ
			}
			if pdqShared != tt.sharesPDQ || len(shared) < 2 {
				t.Errorf("Shareable() = %d hashes, PDQ included %v; want SHA-256, MD5 and PDQ only if quality ≥ %d",
					len(shared), pdqShared, pdq.MinQuality)
			}
		})
	}
}

func TestHashProto(t *testing.T) {
	t.Parallel()
	h := Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: make([]byte, 32), Quality: 87}
	m := h.Proto()
	if m.GetKind() != h.Kind || !bytes.Equal(m.GetValue(), h.Value) || m.GetQuality() != 87 {
		t.Errorf("Proto() = %v", m)
	}
}
