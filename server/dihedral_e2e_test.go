package server_test

import (
	"context"
	"image"
	"os"
	"path/filepath"
	"testing"

	concordv1 "concord/gen/concord/v1"
	"concord/hashing/pdq"
	"concord/server/servertest"
)

// pdqOfFile hashes one of hashing/pdq's test images.
func pdqOfFile(t *testing.T, name string) image.Image {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "hashing", "pdq", "testdata", "images", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := pdq.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return img
}

// transformed returns img rotated (clockwise) or flipped as tr says, pixel by pixel.
func transformed(img image.Image, tr concordv1.PdqTransform) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	W, H := w, h
	var to func(x, y int) (int, int)
	switch tr {
	case concordv1.PdqTransform_PDQ_TRANSFORM_ROTATE_90:
		W, H, to = h, w, func(x, y int) (int, int) { return h - 1 - y, x }
	case concordv1.PdqTransform_PDQ_TRANSFORM_ROTATE_180:
		to = func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }
	case concordv1.PdqTransform_PDQ_TRANSFORM_ROTATE_270:
		W, H, to = h, w, func(x, y int) (int, int) { return y, w - 1 - x }
	case concordv1.PdqTransform_PDQ_TRANSFORM_FLIP_HORIZONTAL:
		to = func(x, y int) (int, int) { return w - 1 - x, y }
	case concordv1.PdqTransform_PDQ_TRANSFORM_FLIP_VERTICAL:
		to = func(x, y int) (int, int) { return x, h - 1 - y }
	case concordv1.PdqTransform_PDQ_TRANSFORM_TRANSPOSE:
		W, H, to = h, w, func(x, y int) (int, int) { return y, x }
	case concordv1.PdqTransform_PDQ_TRANSFORM_TRANSVERSE:
		W, H, to = h, w, func(x, y int) (int, int) { return h - 1 - y, w - 1 - x }
	default:
		return img
	}
	out := image.NewRGBA(image.Rect(0, 0, W, H))
	for y := range h {
		for x := range w {
			X, Y := to(x, y)
			out.Set(X, Y, img.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	return out
}

func pdqQuery(img image.Image) *concordv1.Hash {
	h, q := pdq.HashImage(img)
	return &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: h[:], Quality: int32(q)}
}

// TestMatchDihedral: rotated, flipped and transposed copies of a notice's pictures match it
// with pdq_dihedral, each reporting the transform that made it; as sent, a mirrored copy does
// not match; unrelated pictures and their transforms match nothing either way.
func TestMatchDihedral(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	// The test pictures whose PDQ hash survives a rotation or a mirror: the 256-pixel natural
	// scenes of the reference's set hash 24 to 98 bits from their own mirror images (PDQ's
	// light blur before it samples 64×64 is not symmetric), so no dihedral matching — the
	// reference's, from the pixels, included — finds them; they serve as unrelated pictures.
	stored := []string{"reg-test-input/dih/bridge-1-original.jpg", "reg-test-input/exif-rotn/exif-rotn-6.jpg", "misc-images/wee.jpg"}
	unrelated := []string{"reg-test-input/labelme-subset/q0122.jpg", "reg-test-input/labelme-subset/q0291.jpg",
		"reg-test-input/labelme-subset/q2821.jpg", "reg-test-input/labelme-subset/q0746.jpg", "misc-images/c.png"}
	notice := glorificationNotice()
	notice.Hashes = nil
	pics := map[string]image.Image{}
	for _, name := range append(stored, unrelated...) {
		pics[name] = pdqOfFile(t, name)
	}
	for _, name := range stored {
		notice.Hashes = append(notice.Hashes, pdqQuery(pics[name]))
	}
	rec, err := n.Client(t, "fr-pharos").SubmitNotice(ctx, notice)
	if err != nil {
		t.Fatal(err)
	}
	id := rec.GetNotice().GetNoticeId()
	type query struct {
		pic string
		tr  concordv1.PdqTransform
	}
	var queries []query
	req := &concordv1.MatchRequest{PdqDihedral: true}
	for _, name := range append(stored, unrelated...) {
		for tr := range concordv1.PdqTransform(8) {
			queries = append(queries, query{name, tr})
			req.Hashes = append(req.Hashes, pdqQuery(transformed(pics[name], tr)))
		}
	}
	platform := n.Client(t, "videoshare")
	resp, err := platform.Matches.Match(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range queries {
		ms := resp.GetResults()[i].GetMatches()
		pos := -1
		for p, name := range stored {
			if name == q.pic {
				pos = p
			}
		}
		if pos < 0 {
			if len(ms) > 0 {
				t.Errorf("%s %v, unrelated, matched %v", q.pic, q.tr, ms[0])
			}
			continue
		}
		if len(ms) == 0 {
			t.Errorf("%s %v: no match", q.pic, q.tr)
			continue
		}
		best := ms[0]
		if best.GetNoticeId() != id || best.GetHashPosition() != uint32(pos) || best.GetPdqTransform() != q.tr || best.GetDistance() > 20 {
			t.Errorf("%s %v: best match %s/%d under %v at %d, want %s/%d under %v", q.pic, q.tr,
				best.GetNoticeId(), best.GetHashPosition(), best.GetPdqTransform(), best.GetDistance(), id, pos, q.tr)
		}
	}
	// As sent (the default), the transformed copies do not match, and nothing reports a transform.
	req.PdqDihedral = false
	plain, err := platform.Matches.Match(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range queries {
		ms := plain.GetResults()[i].GetMatches()
		if q.tr == concordv1.PdqTransform_PDQ_TRANSFORM_UNSPECIFIED && len(ms) != len(resp.GetResults()[i].GetMatches()) {
			t.Errorf("%s as it is: %d matches as sent, %d with dihedral", q.pic, len(ms), len(resp.GetResults()[i].GetMatches()))
		}
		for _, m := range ms {
			if q.tr == concordv1.PdqTransform_PDQ_TRANSFORM_FLIP_HORIZONTAL || m.GetPdqTransform() != concordv1.PdqTransform_PDQ_TRANSFORM_UNSPECIFIED {
				t.Errorf("%s %v as sent: matched %v", q.pic, q.tr, m)
			}
		}
	}
}
