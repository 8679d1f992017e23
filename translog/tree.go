// Package translog is Concord's transparency log, the part shared by the server, the Go client
// and auditors' tools: the RFC 6962 Merkle tree over log entries (kept as golang.org/x/mod's
// stored hashes), checkpoints in the C2SP tlog-checkpoint signed-note format, and the checks of
// inclusion proofs, consistency proofs and receipts.
//
// A leaf is the exact bytes of a serialized concord.v1.LogEntry; its leaf hash is
// SHA-256(0x00 || bytes) and an interior node is SHA-256(0x01 || left || right), as in RFC 6962
// (and Certificate Transparency).
package translog

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// Hash is a node of the tree.
type Hash = tlog.Hash

// LeafHash is the RFC 6962 leaf hash of an entry's bytes.
func LeafHash(entry []byte) Hash { return tlog.RecordHash(entry) }

// Tree is an append-only Merkle tree held in memory: the stored hashes of tlog (about two per
// leaf, 64 bytes a leaf). One goroutine appends; any number read. Readers see a prefix of the
// tree that only grows.
type Tree struct {
	mu     sync.RWMutex
	hashes []Hash // tlog's stored hashes of the first size leaves
	size   int64
	grown  chan struct{} // closed and replaced on every append
}

// NewTree returns an empty tree.
func NewTree() *Tree { return &Tree{grown: make(chan struct{})} }

// Size is the number of leaves.
func (t *Tree) Size() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.size
}

// Grown returns a channel closed at the next append, to wait for new leaves.
func (t *Tree) Grown() <-chan struct{} {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.grown
}

// AppendLeafHash adds a leaf by its leaf hash and returns its index.
func (t *Tree) AppendLeafHash(h Hash) (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.size
	add, err := tlog.StoredHashesForRecordHash(n, h, t.reader())
	if err != nil {
		return 0, fmt.Errorf("append leaf %d: %w", n, err)
	}
	t.hashes = append(t.hashes, add...)
	t.size++
	close(t.grown)
	t.grown = make(chan struct{})
	return n, nil
}

// Append adds a leaf by its bytes and returns its index.
func (t *Tree) Append(entry []byte) (int64, error) { return t.AppendLeafHash(LeafHash(entry)) }

// reader reads stored hashes; the caller holds t.mu.
func (t *Tree) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]Hash, error) {
		out := make([]Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 || x >= int64(len(t.hashes)) {
				return nil, fmt.Errorf("stored hash %d is beyond the tree (%d stored)", x, len(t.hashes))
			}
			out[i] = t.hashes[x]
		}
		return out, nil
	})
}

// ReadHashes returns the stored hashes at indexes (tlog's storage order): a Tree is a
// tlog.HashReader, so tlog.ReadTileData serves the log's tiles from it.
func (t *Tree) ReadHashes(indexes []int64) ([]Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.reader().ReadHashes(indexes)
}

var _ tlog.HashReader = (*Tree)(nil)

// ErrBeyondTree reports a size or index the tree has not reached.
var ErrBeyondTree = errors.New("beyond the tree")

func (t *Tree) check(n int64) error {
	if n < 0 || n > t.size {
		return fmt.Errorf("%w: size %d, the tree has %d leaves", ErrBeyondTree, n, t.size)
	}
	return nil
}

// Root returns the root hash of the tree's first n leaves.
func (t *Tree) Root(n int64) (Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if err := t.check(n); err != nil {
		return Hash{}, err
	}
	return tlog.TreeHash(n, t.reader())
}

// LeafHashAt returns the leaf hash of leaf i.
func (t *Tree) LeafHashAt(i int64) (Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if i < 0 || i >= t.size {
		return Hash{}, fmt.Errorf("%w: leaf %d, the tree has %d leaves", ErrBeyondTree, i, t.size)
	}
	return t.hashes[tlog.StoredHashIndex(0, i)], nil
}

// InclusionProof proves that leaf i is in the tree of size n.
func (t *Tree) InclusionProof(i, n int64) ([]Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if err := t.check(n); err != nil {
		return nil, err
	}
	if i < 0 || i >= n {
		return nil, fmt.Errorf("%w: leaf %d is not in a tree of size %d", ErrBeyondTree, i, n)
	}
	return tlog.ProveRecord(n, i, t.reader())
}

// ConsistencyProof proves that the tree of size m is a prefix of the tree of size n.
func (t *Tree) ConsistencyProof(m, n int64) ([]Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if err := t.check(n); err != nil {
		return nil, err
	}
	if m < 1 || m > n {
		return nil, fmt.Errorf("%w: old size %d must be between 1 and the new size %d", ErrBeyondTree, m, n)
	}
	return tlog.ProveTree(n, m, t.reader())
}
