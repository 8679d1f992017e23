package matchindex

import (
	"encoding/binary"
	"errors"
	"fmt"

	"concord/hashing/pdq"
)

// Kind says how a hash value was computed. The numbers are the API's HashKind numbers
// (proto/concord/v1/types.proto), so a caller converts with a plain Kind(k).
type Kind uint8

// The hash kinds the index stores.
const (
	SHA256    Kind = 1 // SHA-256 of the file: exact match
	MD5       Kind = 2 // MD5 of the file (legacy lists): exact match
	PDQ       Kind = 3 // 256-bit PDQ image hash: match within a Hamming radius
	PDQVideo  Kind = 4 // vPDQ: the concatenation of 32-byte frame PDQ hashes
	URLSHA256 Kind = 5 // SHA-256 of a normalised URL: exact match
)

// numKinds sizes per-kind arrays indexed by Kind (index 0 is unused).
const numKinds = 6

// Limits and thresholds the index enforces or applies.
const (
	// PDQSize is the length in bytes of a PDQ hash and of one vPDQ frame.
	PDQSize = 32
	// MaxRadius is the largest Hamming radius MatchPDQ accepts: PDQ's match threshold. The
	// table geometries are chosen for it (every probe plan flips at most 2 bits of a slot);
	// larger radii would need 3-bit flips, thousands more probes, and are not supported.
	MaxRadius = 31
	// VideoFrameRadius is the frame-to-frame match distance of vPDQ.
	VideoFrameRadius = 31
	// VideoMatchPercent is the share of the query's unique frames that must match frames of a
	// stored video for the video to match (vPDQ's default).
	VideoMatchPercent = 80
	// MaxHashesPerNotice mirrors the API's limit on a notice (DESIGN.md §3); positions are
	// stored in 16 bits.
	MaxHashesPerNotice = 10_000
)

// Hash is one hash of a notice, as the API carries it.
type Hash struct {
	Kind  Kind
	Value []byte // 32 bytes (16 for MD5); PDQVideo: n×32 bytes, frame after frame
}

// Notice is what the index stores of a removal notice: its id and its hashes, whose order
// defines the positions reported in hits.
type Notice struct {
	ID     string
	Hashes []Hash
}

// Hit is one stored hash that matches a query.
type Hit struct {
	NoticeID string
	Position int // index of the hash in the notice's hash list
	Distance int // Hamming distance for PDQ; 0 for exact kinds
	// MatchPDQDihedral: the transform under which the query matched (the query is the stored
	// hash's picture so rotated or flipped); pdq.Original for every other match.
	Transform pdq.Transform
}

// VideoHit is one stored video that matches a query video by vPDQ's rule.
type VideoHit struct {
	NoticeID string
	Position int
	// QueryPercent is the share of the query's unique frames that match a frame of this
	// video; StoredPercent the share of this video's unique frames that match a query frame.
	QueryPercent, StoredPercent float64
	QueryFrames, QueryMatched   int // unique query frames, and how many of them matched
	StoredFrames, StoredMatched int // unique stored frames, and how many of them matched
}

// Errors callers can test for with errors.Is; the returned errors wrap them with details.
var (
	ErrInvalidHash    = errors.New("matchindex: invalid hash")
	ErrInvalidNotice  = errors.New("matchindex: invalid notice")
	ErrNoticeExists   = errors.New("matchindex: notice already indexed")
	ErrNoticeNotFound = errors.New("matchindex: notice not indexed")
	ErrRadius         = errors.New("matchindex: radius out of range")
)

// String returns the API's name of the kind.
func (k Kind) String() string {
	switch k {
	case SHA256:
		return "SHA256"
	case MD5:
		return "MD5"
	case PDQ:
		return "PDQ"
	case PDQVideo:
		return "PDQ_VIDEO"
	case URLSHA256:
		return "URL_SHA256"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// exact reports whether hashes of kind k match by equality.
func (k Kind) exact() bool { return k == SHA256 || k == MD5 || k == URLSHA256 }

// words is the number of 64-bit words one value of kind k occupies (per frame for video).
func (k Kind) words() int {
	if k == MD5 {
		return 2
	}
	return 4
}

// checkValue says what is wrong with a value of kind k, or nil.
func checkValue(k Kind, v []byte) error {
	switch k {
	case SHA256, URLSHA256, PDQ:
		if len(v) != 32 {
			return fmt.Errorf("%w: a %s value is 32 bytes, got %d", ErrInvalidHash, k, len(v))
		}
	case MD5:
		if len(v) != 16 {
			return fmt.Errorf("%w: an MD5 value is 16 bytes, got %d", ErrInvalidHash, len(v))
		}
	case PDQVideo:
		if len(v) == 0 || len(v)%PDQSize != 0 {
			return fmt.Errorf("%w: a PDQ_VIDEO value is one or more 32-byte frames, got %d bytes",
				ErrInvalidHash, len(v))
		}
	default:
		return fmt.Errorf("%w: unknown kind %d (want SHA256=1, MD5=2, PDQ=3, PDQ_VIDEO=4, URL_SHA256=5)",
			ErrInvalidHash, uint8(k))
	}
	return nil
}

// checkNotice says what is wrong with a notice, or nil.
func checkNotice(id string, hashes []Hash) error {
	if id == "" {
		return fmt.Errorf("%w: empty notice id", ErrInvalidNotice)
	}
	if len(hashes) == 0 || len(hashes) > MaxHashesPerNotice {
		return fmt.Errorf("%w: notice %s has %d hashes, want 1..%d (split a bulk list into several notices)",
			ErrInvalidNotice, id, len(hashes), MaxHashesPerNotice)
	}
	for i, h := range hashes {
		if err := checkValue(h.Kind, h.Value); err != nil {
			return fmt.Errorf("notice %s hash %d: %w", id, i, err)
		}
	}
	return nil
}

// loadWords decodes a value into big-endian 64-bit words, so word order is byte order (the
// exact tables sort by it and bucket by the first bytes).
func loadWords(dst []uint64, v []byte) {
	for i := range dst {
		dst[i] = binary.BigEndian.Uint64(v[8*i:])
	}
}

// pdqWords decodes a 32-byte PDQ hash.
func pdqWords(v []byte) [4]uint64 {
	return [4]uint64{
		binary.BigEndian.Uint64(v[0:]), binary.BigEndian.Uint64(v[8:]),
		binary.BigEndian.Uint64(v[16:]), binary.BigEndian.Uint64(v[24:]),
	}
}
