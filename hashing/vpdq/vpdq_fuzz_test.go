package vpdq

import (
	"bytes"
	"errors"
	"testing"

	"concord/hashing/pdq"
)

// FuzzDecode feeds PDQ_VIDEO wire values to Decode. A value it accepts holds 1 to MaxFrames
// hashes whose bytes, in order, are the value; Encode of those frames gives the value back with
// repeats removed, and a video compared with itself matches. A refusal wraps ErrMalformed.
func FuzzDecode(f *testing.F) {
	h1, _ := pdq.ParseHash("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22")
	h2, _ := pdq.ParseHash("9c9c9c9c0f0f0f0f3c3c3c3c5a5a5a5aa5a5a5a5c3c3c3c3f0f0f0f060606060")
	for _, frames := range [][]Frame{
		{{Hash: h1, Quality: 90}},
		{{Hash: h1, Quality: 90}, {Hash: h2, Quality: 70, Number: 1}, {Hash: h1, Quality: 95, Number: 2}},
	} {
		v, err := Encode(frames)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	f.Add(append(h1[:], h2[:16]...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, value []byte) {
		hashes, err := Decode(value)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("refused with %v", err)
			}
			return
		}
		if len(hashes) < 1 || len(hashes) > MaxFrames {
			t.Fatalf("%d frame hashes", len(hashes))
		}
		var joined []byte
		frames := make([]Frame, len(hashes))
		for i, h := range hashes {
			joined = append(joined, h[:]...)
			frames[i] = Frame{Hash: h, Quality: MinQuality, Number: i}
		}
		if !bytes.Equal(joined, value) {
			t.Fatal("the decoded hashes are not the value's bytes")
		}
		enc, err := Encode(frames)
		if err != nil {
			t.Fatalf("the decoded frames do not encode: %v", err)
		}
		again, err := Decode(enc)
		if err != nil || len(again) != len(distinct(hashes)) {
			t.Fatalf("encoded again: %d hashes, %v; want the %d distinct ones", len(again), err, len(distinct(hashes)))
		}
		for i, h := range distinct(hashes) {
			if again[i] != h {
				t.Fatalf("hash %d encoded again is %v, want %v", i, again[i], h)
			}
		}
		if s := CompareHashes(hashes, hashes); !s.Match() {
			t.Fatalf("a video does not match itself: %+v", s)
		}
	})
}
