// Package vpdq hashes and matches videos the way Meta's vPDQ does: a video's hash is the list
// of PDQ hashes of frames sampled at a fixed rate (one per second by default), and two videos
// match when most of one's distinct frames are found in the other.
//
// Matching (Compare), as vPDQ's brute-force matcher:
//   - frames of quality below MinQuality (50) are ignored on both sides, and repeated hashes
//     count once;
//   - a query frame is found in a stored video when some stored frame is within MatchDistance
//     (31) bits of it (vPDQ's matcher counts a distance strictly below its tolerance; Concord
//     applies its PDQ rule, ≤ 31, to frames too);
//   - QueryPercent is the share of the query's frames found in the stored video, StoredPercent
//     the share of the stored video's frames found in the query. The query matches when
//     QueryPercent ≥ MatchPercent (80). StoredPercent tells a clip (low) from a full copy (high).
//
// On the wire (HASH_KIND_PDQ_VIDEO) a video hash is the concatenation of its 32-byte frame
// hashes, usable and distinct frames only, in order (Encode, Decode).
//
// Frames are decoded by ffmpeg, run as a subprocess (HashFile, HashReader); a Hasher accepts
// frames decoded by other means.
package vpdq

import (
	"errors"
	"fmt"
	"time"

	"concord/hashing/pdq"
)

const (
	// DefaultFramesPerSecond is the sampling rate when none is given: vPDQ's default of one
	// frame per second.
	DefaultFramesPerSecond = 1.0

	// MatchDistance is the largest Hamming distance at which two frames match.
	MatchDistance = pdq.MatchDistance

	// MinQuality is the lowest frame quality that takes part in matching: darker or flatter
	// frames (fades, black screens, title cards) match everything and prove nothing.
	MinQuality = pdq.MinQuality

	// MatchPercent is the share of a query's frames that must be found in a stored video for
	// the query to match it.
	MatchPercent = 80.0

	// MaxFrames is the most frame hashes one encoded value holds: Concord's API limits a hash
	// value to 65 536 bytes, 2 048 frames (34 minutes of distinct frames at one per second).
	MaxFrames = 65536 / pdq.Size
)

// Frame is the hash of one sampled frame.
type Frame struct {
	Hash    pdq.Hash
	Quality int
	// Number is the frame's position among the sampled frames: 0, 1, 2 …
	Number int
	// Time is when the frame is shown, from the start of the video: Number / frame rate.
	Time time.Duration
}

// Hasher turns decoded frames, given in order at a fixed sampling rate, into a video hash.
// It is what HashFile and HashReader feed; use it directly when frames come from elsewhere.
type Hasher struct {
	rate   float64
	frames []Frame
}

// NewHasher returns a Hasher for frames sampled framesPerSecond times a second (0 means
// DefaultFramesPerSecond).
func NewHasher(framesPerSecond float64) (*Hasher, error) {
	rate, err := checkRate(framesPerSecond)
	if err != nil {
		return nil, err
	}
	return &Hasher{rate: rate}, nil
}

func checkRate(fps float64) (float64, error) {
	switch {
	case fps == 0:
		return DefaultFramesPerSecond, nil
	case !(fps > 0 && fps <= 1000): // also refuses NaN
		return 0, fmt.Errorf("vpdq: frame rate %v: want a number of frames per second above 0 and at most 1000", fps)
	}
	return fps, nil
}

// AddRGB hashes the next frame, given as 8-bit RGB (see pdq.HashRGB), at its own size as vPDQ
// does: frames are not pre-resized to 512 px.
func (h *Hasher) AddRGB(pix []byte, width, height, stride int) error {
	hash, quality, err := pdq.HashRGB(pix, width, height, stride)
	if err != nil {
		return fmt.Errorf("vpdq: frame %d: %w", len(h.frames), err)
	}
	n := len(h.frames)
	h.frames = append(h.frames, Frame{
		Hash:    hash,
		Quality: quality,
		Number:  n,
		Time:    time.Duration(float64(n) / h.rate * float64(time.Second)),
	})
	return nil
}

// Frames returns the frames hashed so far, in order.
func (h *Hasher) Frames() []Frame {
	return h.frames
}

// Similarity is the result of comparing a query video with a stored one, in percent (0–100).
type Similarity struct {
	// QueryPercent is the share of the query's usable, distinct frames found in the stored video.
	QueryPercent float64
	// StoredPercent is the share of the stored video's usable, distinct frames found in the query.
	StoredPercent float64
}

// Match reports whether the query matches the stored video: QueryPercent ≥ MatchPercent.
func (s Similarity) Match() bool {
	return s.QueryPercent >= MatchPercent
}

// Compare compares a query video with a stored one by vPDQ's rule (see the package comment).
// Frames of quality below MinQuality are dropped first, then repeated hashes. When either side
// has no frame left, both percentages are 0.
func Compare(query, stored []Frame) Similarity {
	return CompareHashes(Usable(query), Usable(stored))
}

// CompareHashes is Compare for hashes without qualities, such as decoded wire values (which
// hold usable frames only) and the result of Usable. Repeated hashes count once.
func CompareHashes(query, stored []pdq.Hash) Similarity {
	q, s := distinct(query), distinct(stored)
	if len(q) == 0 || len(s) == 0 {
		return Similarity{}
	}
	return Similarity{
		QueryPercent:  100 * float64(found(q, s)) / float64(len(q)),
		StoredPercent: 100 * float64(found(s, q)) / float64(len(s)),
	}
}

// found counts the hashes of a that are within MatchDistance of some hash of b.
func found(a, b []pdq.Hash) int {
	n := 0
	for _, x := range a {
		for _, y := range b {
			if pdq.Distance(x, y) <= MatchDistance {
				n++
				break
			}
		}
	}
	return n
}

// Usable returns the hashes of the frames that take part in matching: those of quality at
// least MinQuality, each hash once (its first occurrence), in order. It is what Encode writes,
// and what to compare with CompareHashes against a decoded wire value.
func Usable(frames []Frame) []pdq.Hash {
	out := make([]pdq.Hash, 0, len(frames))
	for _, f := range frames {
		if f.Quality >= MinQuality {
			out = append(out, f.Hash)
		}
	}
	return distinct(out)
}

// distinct returns hashes without repeats, keeping the first occurrence of each.
func distinct(hashes []pdq.Hash) []pdq.Hash {
	seen := make(map[pdq.Hash]bool, len(hashes))
	out := make([]pdq.Hash, 0, len(hashes))
	for _, h := range hashes {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// Errors from Encode and Decode, for errors.Is.
var (
	// ErrNoUsableFrames: no frame reaches MinQuality, so the video cannot be matched.
	ErrNoUsableFrames = errors.New("vpdq: no frame has quality 50 or more: the video is too dark or flat to match")
	// ErrTooManyFrames: more distinct usable frames than MaxFrames.
	ErrTooManyFrames = errors.New("vpdq: too many distinct frames for one hash value")
	// ErrMalformed: a wire value that is not a list of 32-byte hashes.
	ErrMalformed = errors.New("vpdq: malformed PDQ_VIDEO value")
)

// Encode returns the wire form of a video hash (Concord's HASH_KIND_PDQ_VIDEO value): the
// 32-byte hashes of the frames of quality at least MinQuality, repeats removed, in order.
// Dropping them loses nothing, since matching ignores them, and keeps long static scenes from
// filling the value.
func Encode(frames []Frame) ([]byte, error) {
	hashes := Usable(frames)
	switch {
	case len(hashes) == 0:
		return nil, fmt.Errorf("%w (%d frames)", ErrNoUsableFrames, len(frames))
	case len(hashes) > MaxFrames:
		return nil, fmt.Errorf("%w: %d, the limit is %d: sample fewer frames per second, or split the video",
			ErrTooManyFrames, len(hashes), MaxFrames)
	}
	out := make([]byte, 0, len(hashes)*pdq.Size)
	for _, h := range hashes {
		out = append(out, h[:]...)
	}
	return out, nil
}

// Decode reads a wire value written by Encode: 1 to MaxFrames hashes of 32 bytes each.
func Decode(value []byte) ([]pdq.Hash, error) {
	switch {
	case len(value) == 0:
		return nil, fmt.Errorf("%w: empty, want at least one 32-byte frame hash", ErrMalformed)
	case len(value)%pdq.Size != 0:
		return nil, fmt.Errorf("%w: %d bytes is not a multiple of 32", ErrMalformed, len(value))
	case len(value)/pdq.Size > MaxFrames:
		return nil, fmt.Errorf("%w: %d frame hashes, the limit is %d", ErrMalformed, len(value)/pdq.Size, MaxFrames)
	}
	out := make([]pdq.Hash, len(value)/pdq.Size)
	for i := range out {
		copy(out[i][:], value[i*pdq.Size:])
	}
	return out, nil
}
