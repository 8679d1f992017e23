package pdq

import (
	"bytes"
	"image"
	"os"
	"path/filepath"
	"testing"
)

// Run with: go test -run '^$' -bench . -benchmem ./hashing/pdq/

func benchImage(b *testing.B, name string) image.Image {
	b.Helper()
	img, _ := decodeFile(b, name)
	return img
}

// BenchmarkHashImage512: the hashing core on a decoded 512×512 photo (no decoding).
func BenchmarkHashImage512(b *testing.B) {
	img := benchImage(b, "pixels/bridge-mods/square-512x512.png")
	b.ReportAllocs()
	for b.Loop() {
		HashImage(img)
	}
}

// BenchmarkHashDihedral512: the eight dihedral hashes of the same photo.
func BenchmarkHashDihedral512(b *testing.B) {
	img := benchImage(b, "pixels/bridge-mods/square-512x512.png")
	b.ReportAllocs()
	for b.Loop() {
		HashDihedral(img)
	}
}

// BenchmarkHashRGB1080p: a full-HD video frame at full size, as vPDQ hashes frames.
func BenchmarkHashRGB1080p(b *testing.B) {
	pix := rgbBytes(testPicture(1920, 1080, 1))
	b.SetBytes(int64(len(pix)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := HashRGB(pix, 1920, 1080, 3*1920); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAndHashJPEG12MP: what a platform pays per photo: decode a 4032×3024 JPEG
// (3.6 MB) from memory, then hash it.
func BenchmarkDecodeAndHashJPEG12MP(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "images", "reg-test-input", "exif-rotn", "exif-rotn-6.jpg"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		img, _, err := Decode(bytes.NewReader(raw))
		if err != nil {
			b.Fatal(err)
		}
		HashImage(img)
	}
}

// BenchmarkHashJPEG12MPDecoded: the hashing share of the above, on the decoded image.
func BenchmarkHashJPEG12MPDecoded(b *testing.B) {
	img := benchImage(b, "images/reg-test-input/exif-rotn/exif-rotn-6.jpg")
	b.ReportAllocs()
	for b.Loop() {
		HashImage(img)
	}
}

var sinkDistance int

func BenchmarkDistance(b *testing.B) {
	x, _ := ParseHash("d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22")
	y, _ := ParseHash("a5f44ba8a4996a17cd06a1d85aaaa927b61b5b42f8fc03fc83c3d0740bfcb0fa")
	for b.Loop() {
		sinkDistance += Distance(x, y)
		x[0]++
	}
}
