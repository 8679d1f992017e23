package hashing

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkContentJPEG12MP: everything a platform computes for a 12-megapixel photo (3.6 MB):
// SHA-256, MD5, JPEG decoding and PDQ, in one pass.
func BenchmarkContentJPEG12MP(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join(pdqTestdata, "images", "reg-test-input", "exif-rotn", "exif-rotn-6.jpg"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Content(bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
}
