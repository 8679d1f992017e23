package pdq

import (
	"bufio"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vector is one row of testdata/expected.tsv: the reference's output for one file.
type vector struct {
	file           string
	hash           Hash
	quality        int
	dihedral       Dihedral
	tier           string // exact, exact_prescale or decoder
	width, height  int
	channels       int
	hashedW, hashH int
}

// readVectors parses testdata/expected.tsv, failing the test on any malformed row.
func readVectors(t testing.TB) []vector {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "expected.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatal("expected.tsv is empty")
	}
	col := map[string]int{}
	for i, name := range strings.Split(sc.Text(), "\t") {
		col[name] = i
	}
	var out []vector
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		get := func(name string) string {
			i, ok := col[name]
			if !ok || i >= len(f) {
				t.Fatalf("expected.tsv: no column %q in %q", name, sc.Text())
			}
			return f[i]
		}
		atoi := func(name string) int {
			n, err := strconv.Atoi(get(name))
			if err != nil {
				t.Fatalf("expected.tsv: column %s: %v", name, err)
			}
			return n
		}
		hash := func(name string) Hash {
			h, err := ParseHash(get(name))
			if err != nil {
				t.Fatalf("expected.tsv: column %s: %v", name, err)
			}
			return h
		}
		v := vector{
			file: get("filename"), hash: hash("pdq_hex"), quality: atoi("quality"), tier: get("tier"),
			width: atoi("width"), height: atoi("height"), channels: atoi("channels"),
			hashedW: atoi("hashed_width"), hashH: atoi("hashed_height"),
		}
		for i, name := range []string{"dih_orig", "dih_rot90", "dih_rot180", "dih_rot270",
			"dih_flipx", "dih_flipy", "dih_flipplus1", "dih_flipminus1"} {
			v.dihedral[i] = hash(name)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("expected.tsv has no vectors")
	}
	return out
}

func decodeFile(t testing.TB, name string) (image.Image, string) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, format, err := Decode(bufio.NewReader(f))
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return img, format
}

// TestReferenceExact: lossless inputs must reproduce the reference bit for bit: hash, quality
// and all eight dihedral hashes, including PNGs the reference pre-resizes to 512×512.
func TestReferenceExact(t *testing.T) {
	t.Parallel()
	n := 0
	for _, v := range readVectors(t) {
		if v.tier != "exact" && v.tier != "exact_prescale" {
			continue
		}
		n++
		t.Run(v.file, func(t *testing.T) {
			t.Parallel()
			img, _ := decodeFile(t, v.file)
			if b := img.Bounds(); b.Dx() != v.width || b.Dy() != v.height {
				t.Fatalf("decoded %v, want %d×%d", b, v.width, v.height)
			}
			if got, want := greyPath(img), v.channels == 1; got != want {
				t.Fatalf("%T: grey path %v, but the reference took channels=%d", img, got, v.channels)
			}

			h, q := HashImage(img)
			if h != v.hash || q != v.quality {
				t.Errorf("HashImage = %v q%d, want %v q%d (%d bits apart)", h, q, v.hash, v.quality, Distance(h, v.hash))
			}
			d, dq := HashDihedral(img)
			if dq != v.quality {
				t.Errorf("HashDihedral quality = %d, want %d", dq, v.quality)
			}
			for tr := range d {
				if d[tr] != v.dihedral[tr] {
					t.Errorf("HashDihedral[%v] = %v, want %v (%d bits apart)",
						Transform(tr), d[tr], v.dihedral[tr], Distance(d[tr], v.dihedral[tr]))
				}
			}

			if v.tier == "exact" {
				// The pixels/ files are at most 512×512, so the buffer entry points, which do
				// not pre-resize, must agree with the reference too.
				h, q, err := hashBuffer(img)
				if err != nil {
					t.Fatal(err)
				}
				if h != v.hash || q != v.quality {
					t.Errorf("HashRGB/HashGray = %v q%d, want %v q%d", h, q, v.hash, v.quality)
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("no exact vectors in expected.tsv")
	}
}

// greyPath reports whether HashImage takes the reference's single-channel path for img.
func greyPath(img image.Image) bool {
	w := getWorkspace()
	defer w.release()
	_, _, grey := w.fillFromImage(img)
	return grey
}

// hashBuffer hashes img through HashGray or HashRGB, as the reference would see it.
func hashBuffer(img image.Image) (Hash, int, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if greyPath(img) {
		pix := make([]byte, w*h)
		for y := range h {
			for x := range w {
				pix[y*w+x] = color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray).Y
			}
		}
		return HashGray(pix, w, h, w)
	}
	pix := make([]byte, 3*w*h)
	for y := range h {
		for x := range w {
			p := pix[3*(y*w+x):]
			p[0], p[1], p[2] = rgb8(img.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	return HashRGB(pix, w, h, 3*w)
}

// TestReferenceDecoder: JPEG and WebP pixels depend on the decoder, so only Meta's bar
// applies: within 10 bits for quality ≥ 80. Every file must land on the same side of the
// quality gate as in the reference.
func TestReferenceDecoder(t *testing.T) {
	t.Parallel()
	n := 0
	for _, v := range readVectors(t) {
		if v.tier != "decoder" {
			continue
		}
		n++
		t.Run(v.file, func(t *testing.T) {
			t.Parallel()
			img, format := decodeFile(t, v.file)
			if want := strings.TrimPrefix(strings.ToLower(filepath.Ext(v.file)), "."); want != format &&
				!(want == "jpg" && format == "jpeg") {
				t.Errorf("format = %s, want %s", format, want)
			}
			// Whether every pixel is grey (and so which luma path is taken) depends on the
			// decoder too: Go's WebP decoder gives F.webp neutral chroma, libwebp did not.
			h, q := HashImage(img)
			if v.quality >= 80 {
				if d := Distance(h, v.hash); d > 10 {
					t.Errorf("HashImage = %v, %d bits from the reference %v; want at most 10", h, d, v.hash)
				}
			}
			if got, want := q >= MinQuality, v.quality >= MinQuality; got != want {
				t.Errorf("quality = %d, reference %d: on the other side of the gate (%d)", q, v.quality, MinQuality)
			}
			t.Logf("%T, grey path %v (reference channels=%d): distance %d, quality %d (reference %d)",
				img, greyPath(img), v.channels, Distance(h, v.hash), q, v.quality)
		})
	}
	if n == 0 {
		t.Fatal("no decoder vectors in expected.tsv")
	}
}
