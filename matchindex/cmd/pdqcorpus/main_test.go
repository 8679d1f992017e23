package main

import (
	"image"
	"os"
	"strings"
	"testing"

	"concord/hashing/pdq"
)

func testImage(t *testing.T) image.Image {
	t.Helper()
	f, err := os.Open("../../../hashing/pdq/testdata/images/reg-test-input/dih/bridge-1-original.jpg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := pdq.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return fit(img, 512)
}

// TestFamilyOfVariants: an image's variants are the same picture to PDQ for the most part (a
// family of near-duplicates), each says what was done to it, every transform occurs, and the
// same seed gives the same hashes.
func TestFamilyOfVariants(t *testing.T) {
	img := testImage(t)
	es := family(img, 60, 7, "image:bridge")
	if len(es) != 61 || es[0].origin != "image:bridge" {
		t.Fatalf("%d entries, first %q", len(es), es[0].origin)
	}
	near, seen := 0, map[string]bool{}
	for _, e := range es[1:] {
		d := pdq.Distance(e.h, es[0].h)
		if d <= 31 {
			near++
		}
		applied := strings.TrimPrefix(e.origin, "image:bridge ")
		if applied == e.origin || applied == "" {
			t.Fatalf("variant %q does not say what was applied", e.origin)
		}
		for _, a := range strings.Split(applied, ",") {
			name, _, _ := strings.Cut(a, "=")
			seen[name] = true
		}
	}
	t.Logf("%d of 60 variants within 31 of the original; transforms %v", near, seen)
	if near < 30 {
		t.Fatalf("only %d of 60 variants within 31 of the original: not a family", near)
	}
	if near == 60 {
		t.Fatal("every variant within 31: the transforms change nothing a matcher would notice")
	}
	for _, name := range []string{"resize", "jpeg", "crop", "caption", "contrast", "grey"} {
		if !seen[name] {
			t.Errorf("no variant was given %s", name)
		}
	}
	again := family(img, 60, 7, "image:bridge")
	for i := range es {
		if es[i] != again[i] {
			t.Fatalf("variant %d differs with the same seed: %v, %v", i, es[i], again[i])
		}
	}
}
