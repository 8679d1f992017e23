package pdq

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
)

const (
	// MatchDistance is the largest Hamming distance at which two PDQ hashes are taken to show
	// the same picture: Meta's recommended threshold, and the one Concord matches with.
	MatchDistance = 31

	// MinQuality is the lowest quality worth sharing or matching. Below it the picture is too
	// flat (few strong gradients) for its hash to mean much; Meta recommends discarding
	// quality ≤ 49, and Concord refuses such hashes.
	MinQuality = 50

	// Size is the length of a hash in bytes (256 bits).
	Size = 32
)

// Hash is a 256-bit PDQ hash, stored in the byte order of its hex form: Hash[0] holds the first
// two hex digits. Bit k of the reference (k = 16·i + j for row i and column j of the 16×16 DCT
// block) is bit k%8 of Hash[31-k/8], so the hex form reads as one big-endian 256-bit number,
// exactly as the reference prints it.
type Hash [Size]byte

// String returns the 64 lower-case hex digits that the reference prints.
func (h Hash) String() string {
	return hex.EncodeToString(h[:])
}

// MarshalText lets a Hash appear as its hex form in JSON, YAML and flags.
func (h Hash) MarshalText() ([]byte, error) {
	b := make([]byte, 2*Size)
	hex.Encode(b, h[:])
	return b, nil
}

// UnmarshalText is the inverse of MarshalText.
func (h *Hash) UnmarshalText(text []byte) error {
	parsed, err := ParseHash(string(text))
	if err != nil {
		return err
	}
	*h = parsed
	return nil
}

// ParseHash reads the hex form of a hash: exactly 64 hex digits, upper or lower case.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*Size {
		return h, fmt.Errorf("parse PDQ hash %q: got %d characters, want 64 hex digits", s, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, fmt.Errorf("parse PDQ hash %q: want 64 hex digits: %w", s, err)
	}
	return h, nil
}

// HashFromBytes copies a 32-byte wire value (Concord's Hash.value for HASH_KIND_PDQ) into a Hash.
func HashFromBytes(b []byte) (Hash, error) {
	var h Hash
	if len(b) != Size {
		return h, fmt.Errorf("PDQ hash value is %d bytes, want %d", len(b), Size)
	}
	copy(h[:], b)
	return h, nil
}

// Distance is the Hamming distance between two hashes: the number of bits that differ, 0 to 256.
// Two hashes match when Distance(a, b) <= MatchDistance.
func Distance(a, b Hash) int {
	// Four 64-bit words (the byte order within a word does not change a population count),
	// which the compiler turns into four loads, XORs and POPCNTs.
	le := binary.LittleEndian
	return bits.OnesCount64(le.Uint64(a[0:])^le.Uint64(b[0:])) +
		bits.OnesCount64(le.Uint64(a[8:])^le.Uint64(b[8:])) +
		bits.OnesCount64(le.Uint64(a[16:])^le.Uint64(b[16:])) +
		bits.OnesCount64(le.Uint64(a[24:])^le.Uint64(b[24:]))
}

// setBit sets reference bit k (0 ≤ k < 256).
func (h *Hash) setBit(k int) {
	h[Size-1-k/8] |= 1 << (k % 8)
}

// Transform names one of the eight dihedral transforms (rotations and reflections) of an image.
type Transform int

// The dihedral transforms, in the order the reference prints them.
const (
	Original Transform = iota
	Rotate90
	Rotate180
	Rotate270
	FlipX
	FlipY
	FlipPlus1  // reflection about the main diagonal (transpose)
	FlipMinus1 // reflection about the anti-diagonal
)

var transformNames = [...]string{"orig", "rot90", "rot180", "rot270", "flipx", "flipy", "flipplus1", "flipminus1"}

func (t Transform) String() string {
	if t < 0 || int(t) >= len(transformNames) {
		return fmt.Sprintf("Transform(%d)", int(t))
	}
	return transformNames[t]
}

// Dihedral holds the hashes of the eight dihedral transforms of one image, indexed by Transform:
// d[Rotate90] is (close to) the hash the image would have if it were rotated by 90°, in the
// reference's naming. Matching a query against all eight finds rotated and mirrored copies
// without hashing them again. The hashes are not exactly those of the transformed pixels, so
// do not reduce them to one "canonical" hash.
type Dihedral [8]Hash
