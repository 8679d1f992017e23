package translog

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrProof reports a proof that does not verify: the log is not what it claims.
var ErrProof = errors.New("proof does not verify")

// CheckInclusion verifies that the leaf with leafHash at index is in the tree of size and root.
func CheckInclusion(proof []Hash, index, size int64, root, leafHash Hash) error {
	if index < 0 || index >= size {
		return fmt.Errorf("%w: leaf %d cannot be in a tree of size %d", ErrProof, index, size)
	}
	if err := tlog.CheckRecord(proof, size, root, index, leafHash); err != nil {
		return fmt.Errorf("%w: inclusion of leaf %d in tree %d: %v", ErrProof, index, size, err)
	}
	return nil
}

// CheckConsistency verifies that the tree (oldSize, oldRoot) is a prefix of (newSize, newRoot).
func CheckConsistency(proof []Hash, oldSize int64, oldRoot Hash, newSize int64, newRoot Hash) error {
	switch {
	case oldSize < 1 || oldSize > newSize:
		return fmt.Errorf("%w: no consistency between sizes %d and %d", ErrProof, oldSize, newSize)
	case oldSize == newSize:
		if oldRoot != newRoot {
			return fmt.Errorf("%w: two different roots for the tree of size %d", ErrProof, oldSize)
		}
		return nil
	}
	if err := tlog.CheckTree(proof, newSize, newRoot, oldSize, oldRoot); err != nil {
		return fmt.Errorf("%w: consistency of tree %d with tree %d: %v", ErrProof, oldSize, newSize, err)
	}
	return nil
}

// HashesFromBytes converts proof hashes from the wire, checking their length.
func HashesFromBytes(bs [][]byte) ([]Hash, error) {
	out := make([]Hash, len(bs))
	for i, b := range bs {
		if len(b) != len(Hash{}) {
			return nil, fmt.Errorf("%w: proof hash %d is %d bytes, want %d", ErrProof, i, len(b), len(Hash{}))
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// HashesToBytes converts proof hashes for the wire.
func HashesToBytes(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}
