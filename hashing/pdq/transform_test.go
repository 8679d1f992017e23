package pdq

import (
	"image"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestTransformedInverts: undoing a transform at the hash level gives back the hash, bit for
// bit, and the eight transforms of a random hash are eight different hashes.
func TestTransformedInverts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var h Hash
		for i := range h {
			h[i] = byte(rng.Uint32())
		}
		var all []Hash
		for tr := range Transform(8) {
			th := Transformed(h, tr)
			if back := Transformed(th, tr.Inverse()); back != h {
				t.Fatalf("%v then %v: %v, want %v", tr, tr.Inverse(), back, h)
			}
			if tr.Inverse().Inverse() != tr {
				t.Fatalf("%v: the inverse of its inverse is %v", tr, tr.Inverse().Inverse())
			}
			all = append(all, th)
		}
		slices.SortFunc(all, func(a, b Hash) int { return strings.Compare(a.String(), b.String()) })
		if len(slices.Compact(all)) != 8 {
			t.Fatalf("%v: the eight transforms are not distinct", h)
		}
	}
}

// TestTransformedAgreesWithTheReference: the hash-level transform of each test image's hash is
// within PDQ's match distance of the reference's dihedral hash (computed from the pixels), and
// close on the whole; and the reference's own rotated and flipped copies of the bridge image
// are near the bridge's hash transformed accordingly.
func TestTransformedAgreesWithTheReference(t *testing.T) {
	var total, count, worst int
	var bridge Hash
	vectors := readVectors(t)
	for _, v := range vectors {
		if v.quality < MinQuality {
			continue
		}
		if strings.HasSuffix(v.file, "dih/bridge-1-original.jpg") {
			bridge = v.hash
		}
		for tr := range Transform(8) {
			d := Distance(Transformed(v.dihedral[Original], tr), v.dihedral[tr])
			if d > MatchDistance {
				t.Errorf("%s: %v at the hash level is %d bits from the reference's", v.file, tr, d)
			}
			total, count, worst = total+d, count+1, max(worst, d)
		}
	}
	if count < 100 || total > 10*count {
		t.Fatalf("%d transforms, %d bits apart on average (worst %d): want a mean of at most 10", count, total/max(count, 1), worst)
	}
	t.Logf("%d transforms: %.1f bits from the reference's on average, worst %d", count, float64(total)/float64(count), worst)
	copies := map[string]Transform{"bridge-2-rotate-90": Rotate90, "bridge-3-rotate-180": Rotate180,
		"bridge-4-rotate-270": Rotate270, "bridge-5-flipx": FlipX, "bridge-6-flipy": FlipY}
	for _, v := range vectors {
		for name, tr := range copies {
			if strings.HasSuffix(v.file, "dih/"+name+".jpg") {
				if d := Distance(Transformed(bridge, tr), v.hash); d > 20 {
					t.Errorf("%s is %d bits from the bridge's hash under %v", v.file, d, tr)
				}
				delete(copies, name)
			}
		}
	}
	if len(copies) > 0 {
		t.Fatalf("no test vector for %v", copies)
	}
}

// TestTransformNames pins the reference's names to what happens to the pixels: its rot90 turns
// a picture 90° anticlockwise, flipx mirrors it top to bottom, flipy left to right.
func TestTransformNames(t *testing.T) {
	img, _ := decodeFile(t, "images/reg-test-input/dih/bridge-1-original.jpg")
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	moved := func(W, H int, to func(x, y int) (int, int)) image.Image {
		out := image.NewRGBA(image.Rect(0, 0, W, H))
		for y := range h {
			for x := range w {
				X, Y := to(x, y)
				out.Set(X, Y, img.At(b.Min.X+x, b.Min.Y+y))
			}
		}
		return out
	}
	orig, _ := HashImage(img)
	for tr, pic := range map[Transform]image.Image{
		Rotate90:   moved(h, w, func(x, y int) (int, int) { return y, w - 1 - x }), // anticlockwise
		Rotate180:  moved(w, h, func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }),
		Rotate270:  moved(h, w, func(x, y int) (int, int) { return h - 1 - y, x }), // clockwise
		FlipX:      moved(w, h, func(x, y int) (int, int) { return x, h - 1 - y }),
		FlipY:      moved(w, h, func(x, y int) (int, int) { return w - 1 - x, y }),
		FlipPlus1:  moved(h, w, func(x, y int) (int, int) { return y, x }),
		FlipMinus1: moved(h, w, func(x, y int) (int, int) { return h - 1 - y, w - 1 - x }),
	} {
		q, _ := HashImage(pic)
		for other := range Transform(8) {
			d := Distance(Transformed(orig, other), q)
			if other == tr && d > 20 {
				t.Errorf("%v: the transformed picture is %d bits from the hash transformed so", tr, d)
			}
			if other != tr && d <= MatchDistance {
				t.Errorf("%v: the transformed picture is %d bits from the hash under %v too", tr, d, other)
			}
		}
	}
}
