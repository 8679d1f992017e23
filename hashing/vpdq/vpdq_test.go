package vpdq

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"concord/hashing/pdq"
)

// randomHash returns a reproducible random hash.
func randomHash(seed uint64) pdq.Hash {
	rng := rand.New(rand.NewPCG(seed, 99))
	var h pdq.Hash
	for i := range h {
		h[i] = byte(rng.Uint32())
	}
	return h
}

// flipped returns h with its first n bits inverted: exactly n bits away.
func flipped(h pdq.Hash, n int) pdq.Hash {
	for k := range n {
		h[k/8] ^= 1 << (k % 8)
	}
	return h
}

// video returns n good frames with distinct random hashes.
func video(seed uint64, n int) []Frame {
	frames := make([]Frame, n)
	for i := range frames {
		frames[i] = Frame{Hash: randomHash(seed*1000 + uint64(i)), Quality: 100, Number: i}
	}
	return frames
}

func withQuality(frames []Frame, q int) []Frame {
	out := append([]Frame(nil), frames...)
	for i := range out {
		out[i].Quality = q
	}
	return out
}

func TestCompare(t *testing.T) {
	t.Parallel()
	stored := video(1, 50)
	ten := video(1, 10)       // the first 10 stored frames
	strangers := video(2, 10) // found nowhere
	mix := func(found, missing int) []Frame {
		return append(append([]Frame(nil), ten[:found]...), strangers[:missing]...)
	}
	near := func(bits int) []Frame { // ten frames, each `bits` away from a stored one
		out := append([]Frame(nil), ten...)
		for i := range out {
			out[i].Hash = flipped(out[i].Hash, bits)
		}
		return out
	}
	var repeated []Frame // one found frame ten times, two strangers: 1 of 3 distinct frames found
	for range 10 {
		repeated = append(repeated, Frame{Hash: ten[0].Hash, Quality: 90})
	}
	repeated = append(repeated, strangers[0], strangers[1])

	tests := []struct {
		name                string
		query, stored       []Frame
		wantQuery, wantStor float64
		wantMatch           bool
	}{
		{"same video", stored, stored, 100, 100, true},
		{"clip of the stored video", stored[10:20], stored, 100, 20, true},
		{"stored video is a clip of the query", stored, stored[10:20], 20, 100, false},
		{"8 of 10 frames found: the threshold", mix(8, 2), stored, 80, 16, true},
		{"7 of 10 frames found", mix(7, 3), stored, 70, 14, false},
		{"frames 31 bits away match", near(31), stored, 100, 20, true},
		{"frames 32 bits away do not", near(32), stored, 0, 0, false},
		{"quality 49 frames are ignored", append(mix(5, 0), withQuality(strangers[:5], 49)...), stored, 100, 10, true},
		{"quality 50 frames count", append(mix(5, 0), withQuality(strangers[:5], 50)...), stored, 50, 10, false},
		{"repeated frames count once", repeated, stored, 100.0 / 3, 2, false},
		{"no usable query frame", withQuality(ten, 10), stored, 0, 0, false},
		{"no usable stored frame", ten, withQuality(stored, 49), 0, 0, false},
		{"empty query", nil, stored, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Compare(tt.query, tt.stored)
			if math.Abs(got.QueryPercent-tt.wantQuery) > 1e-9 || math.Abs(got.StoredPercent-tt.wantStor) > 1e-9 {
				t.Errorf("Compare = %+v, want query %v%%, stored %v%%", got, tt.wantQuery, tt.wantStor)
			}
			if got.Match() != tt.wantMatch {
				t.Errorf("Match() = %v, want %v", got.Match(), tt.wantMatch)
			}
		})
	}
}

// TestCompareHashesOnWireValues: comparing decoded wire values gives what comparing the frames
// gives, since encoding drops exactly what matching ignores.
func TestCompareHashesOnWireValues(t *testing.T) {
	t.Parallel()
	query := append(video(1, 10)[2:9], withQuality(video(3, 4), 20)...)
	stored := append(video(1, 30), Frame{Hash: randomHash(7), Quality: 5})
	want := Compare(query, stored)
	qv, err := Encode(query)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := Encode(stored)
	if err != nil {
		t.Fatal(err)
	}
	qh, err := Decode(qv)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := Decode(sv)
	if err != nil {
		t.Fatal(err)
	}
	if got := CompareHashes(qh, sh); got != want {
		t.Errorf("CompareHashes on wire values = %+v, Compare on frames = %+v", got, want)
	}
}

func TestEncode(t *testing.T) {
	t.Parallel()
	a, b, c := randomHash(1), randomHash(2), randomHash(3)
	tests := []struct {
		name    string
		frames  []Frame
		want    []pdq.Hash
		wantErr error
	}{
		{"in order", []Frame{{Hash: a, Quality: 100}, {Hash: b, Quality: 50}, {Hash: c, Quality: 77}}, []pdq.Hash{a, b, c}, nil},
		{"low quality dropped", []Frame{{Hash: a, Quality: 49}, {Hash: b, Quality: 50}, {Hash: c, Quality: 0}}, []pdq.Hash{b}, nil},
		{"repeats dropped", []Frame{{Hash: a, Quality: 90}, {Hash: a, Quality: 90}, {Hash: b, Quality: 90}, {Hash: a, Quality: 90}}, []pdq.Hash{a, b}, nil},
		{"nothing usable", []Frame{{Hash: a, Quality: 3}}, nil, ErrNoUsableFrames},
		{"no frames", nil, nil, ErrNoUsableFrames},
		{"too many", video(5, MaxFrames+1), nil, ErrTooManyFrames},
		{"exactly the limit", video(5, MaxFrames), hashesOf(video(5, MaxFrames)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			value, err := Encode(tt.frames)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Encode error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(value) != len(tt.want)*pdq.Size {
				t.Fatalf("value is %d bytes, want %d", len(value), len(tt.want)*pdq.Size)
			}
			for i, h := range tt.want {
				if !bytes.Equal(value[i*32:i*32+32], h[:]) {
					t.Errorf("hash %d = %x, want %v", i, value[i*32:i*32+32], h)
				}
			}
			back, err := Decode(value)
			if err != nil {
				t.Fatal(err)
			}
			if len(back) != len(tt.want) {
				t.Fatalf("Decode gave %d hashes, want %d", len(back), len(tt.want))
			}
			for i := range back {
				if back[i] != tt.want[i] {
					t.Errorf("Decode[%d] = %v, want %v", i, back[i], tt.want[i])
				}
			}
		})
	}
}

func hashesOf(frames []Frame) []pdq.Hash {
	out := make([]pdq.Hash, len(frames))
	for i, f := range frames {
		out[i] = f.Hash
	}
	return out
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 31, 33, 16 + 32, (MaxFrames + 1) * 32} {
		value := make([]byte, n)
		if _, err := Decode(value); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%d bytes) error %v, want ErrMalformed", n, err)
		}
	}
}

func TestNewHasherRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want float64
		ok       bool
	}{
		{0, 1, true},
		{1, 1, true},
		{0.5, 0.5, true},
		{29.97, 29.97, true},
		{-1, 0, false},
		{math.NaN(), 0, false},
		{math.Inf(1), 0, false},
		{1001, 0, false},
	}
	for _, tt := range tests {
		h, err := NewHasher(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("NewHasher(%v) error %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err == nil && h.rate != tt.want {
			t.Errorf("NewHasher(%v) rate %v, want %v", tt.in, h.rate, tt.want)
		}
	}
}

func TestHasherAddRGB(t *testing.T) {
	t.Parallel()
	h, err := NewHasher(2)
	if err != nil {
		t.Fatal(err)
	}
	pictures := [][]byte{picture(160, 120, 1), flat(160, 120), picture(160, 120, 2)}
	for _, p := range pictures {
		if err := h.AddRGB(p, 160, 120, 480); err != nil {
			t.Fatal(err)
		}
	}
	frames := h.Frames()
	if len(frames) != 3 {
		t.Fatalf("%d frames, want 3", len(frames))
	}
	for i, f := range frames {
		want, q, _ := pdq.HashRGB(pictures[i], 160, 120, 480)
		if f.Hash != want || f.Quality != q {
			t.Errorf("frame %d: %v q%d, want %v q%d", i, f.Hash, f.Quality, want, q)
		}
		if f.Number != i || f.Time != time.Duration(i)*500*time.Millisecond {
			t.Errorf("frame %d: number %d at %v, want %d at %v", i, f.Number, f.Time, i, time.Duration(i)*500*time.Millisecond)
		}
	}
	if frames[0].Quality < MinQuality || frames[1].Quality >= MinQuality {
		t.Errorf("qualities %d (picture) and %d (flat): want usable and unusable", frames[0].Quality, frames[1].Quality)
	}
	if err := h.AddRGB(make([]byte, 10), 160, 120, 480); err == nil {
		t.Error("AddRGB accepted a buffer too small for its size")
	}
}

// picture returns a w×h RGB frame with structure at several scales (quality 100).
func picture(w, h int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 3))
	cx, cy := int(rng.Uint32()%uint32(w)), int(rng.Uint32()%uint32(h))
	pix := make([]byte, 3*w*h)
	for y := range h {
		for x := range w {
			p := pix[3*(y*w+x):]
			d := (x-cx)*(x-cx) + (y-cy)*(y-cy)
			p[0] = byte(x * 255 / w)
			p[1] = byte(y * 255 / h)
			if d < w*h/8 {
				p[2] = 220
			}
			if (x/(w/6)+y/(h/5))%2 == 0 {
				p[0] ^= 0x80
			}
		}
	}
	return pix
}

// flat returns a uniform frame (quality 0), as a fade to black gives.
func flat(w, h int) []byte {
	return bytes.Repeat([]byte{12, 12, 12}, w*h)
}
