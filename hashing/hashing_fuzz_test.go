package hashing

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"image"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	concordv1 "concord/gen/concord/v1"
	"concord/hashing/pdq"
)

// FuzzContent feeds files to Content in reads of the fuzzer's choosing, as a network stream
// would deliver them. The SHA-256 and MD5 are those of the bytes, the size is their count, and
// the PDQ hash is there exactly when pdq.Decode decodes the same bytes, and is then its hash of
// the decoded image: the signature check before buffering never drops an image the decoder
// takes, however the bytes are split. Seeds: the PDQ reference photos and the WebP seeds of
// pdq's FuzzDecode, a non-image, and an image signature alone.
func FuzzContent(f *testing.F) {
	f.Add(readTestFile(f, "images/misc-images/small.jpg"), uint8(255))
	f.Add(readTestFile(f, "images/reg-test-input/labelme-subset/q0003.jpg"), uint8(0))
	for _, name := range []string{"webp-lossy", "webp-alpha"} {
		b, err := os.ReadFile(filepath.Join(pdqTestdata, "fuzz", "FuzzDecode", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(corpusBytes(f, b), uint8(7))
	}
	f.Add([]byte("%PDF-1.7 not an image, but longer than a signature"), uint8(3))
	f.Add([]byte("\x89PNG\r\n\x1a\n"), uint8(1))

	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil && int64(cfg.Width)*int64(cfg.Height) > 1<<20 {
			t.Skip("slow to decode")
		}
		res, err := Content(&chunkReader{data: data, n: int(chunk) + 1})
		if err != nil {
			t.Fatal(err)
		}
		sha, md := sha256.Sum256(data), md5.Sum(data)
		if res.Size != int64(len(data)) {
			t.Fatalf("size %d of %d bytes", res.Size, len(data))
		}
		if h, ok := res.Get(concordv1.HashKind_HASH_KIND_SHA256); !ok || !bytes.Equal(h.Value, sha[:]) {
			t.Fatalf("SHA-256 %x, want %x", h.Value, sha)
		}
		if h, ok := res.Get(concordv1.HashKind_HASH_KIND_MD5); !ok || !bytes.Equal(h.Value, md[:]) {
			t.Fatalf("MD5 %x, want %x", h.Value, md)
		}
		got, ok := res.Get(concordv1.HashKind_HASH_KIND_PDQ)
		img, format, derr := pdq.Decode(bytes.NewReader(data))
		if ok != (derr == nil) || ok == (res.PDQErr != nil) {
			t.Fatalf("Content: PDQ %v (%v); Decode: %v", ok, res.PDQErr, derr)
		}
		if !ok {
			if !errors.Is(res.PDQErr, pdq.ErrUnsupportedFormat) && !errors.Is(res.PDQErr, pdq.ErrTooLarge) && format == "" {
				t.Fatalf("PDQErr %v says neither the format nor why", res.PDQErr)
			}
			return
		}
		want, quality := pdq.HashImage(img)
		if !bytes.Equal(got.Value, want[:]) || got.Quality != quality || res.Format != format {
			t.Fatalf("PDQ %x (%d, %s), Decode then HashImage %v (%d, %s)", got.Value, got.Quality, res.Format, want, quality, format)
		}
		for _, h := range res.Shareable() {
			if h.Kind == concordv1.HashKind_HASH_KIND_PDQ && h.Quality < pdq.MinQuality {
				t.Fatalf("a PDQ hash of quality %d is shareable", h.Quality)
			}
		}
	})
}

// chunkReader reads data n bytes at a time at most.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.data)
	r.data = r.data[k:]
	return k, nil
}

// corpusBytes reads the []byte value of a one-value fuzz corpus file.
func corpusBytes(tb testing.TB, file []byte) []byte {
	tb.Helper()
	const head = "go test fuzz v1\n[]byte("
	s := string(bytes.TrimSpace(file))
	if len(s) < len(head)+1 || s[:len(head)] != head || s[len(s)-1] != ')' {
		tb.Fatalf("not a corpus file of one []byte: %.40q", s)
	}
	v, err := strconv.Unquote(s[len(head) : len(s)-1])
	if err != nil {
		tb.Fatal(err)
	}
	return []byte(v)
}
