// Package transparency serves Concord's transparency log: it signs checkpoints over the tree the
// FSM derives from the log entries, never signing one inconsistent with an earlier one (across
// restarts too: the last signed checkpoint is kept durably before anyone sees it), builds the
// receipts that write RPCs return, and implements LogService.
package transparency

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/atomicfile"
	"concord/server/fault"
	"concord/server/state"
	"concord/translog"

	"golang.org/x/mod/sumdb/note"
)

// Signed is a checkpoint and its signed note.
type Signed struct {
	Checkpoint translog.Checkpoint
	Note       string
}

// Proto is the checkpoint as the API carries it.
func (s *Signed) Proto() *concordv1.Checkpoint {
	root := s.Checkpoint.Root
	return &concordv1.Checkpoint{Note: s.Note, Origin: s.Checkpoint.Origin, Size: uint64(s.Checkpoint.Size), RootHash: root[:]}
}

// Publisher signs checkpoints of the log's tree.
type Publisher struct {
	tree     func() *translog.Tree
	entries  func() *state.Store
	signer   note.Signer
	verifier note.Verifier
	path     string

	mu   sync.Mutex // serialises signing and writing the checkpoint file
	last atomic.Pointer[Signed]
	// lastAt is when the last checkpoint was signed (Unix nanoseconds; at start, the
	// checkpoint file's modification time).
	lastAt atomic.Int64

	cosigs *cosignatures

	// Integrity, if set before serving, is asked before every signature: a node whose state is
	// in doubt signs nothing (see integrity.Guard).
	Integrity interface{ Serving() error }
}

// CheckpointFile is where a node keeps the last checkpoint it signed, in its data directory.
const CheckpointFile = "checkpoint"

// checkpointReserve is the space kept for CheckpointFile (and its spare).
const checkpointReserve = 4 << 10

// Open returns a publisher signing with signer, whose verifier is verifier, over tree. It reads
// the last checkpoint this node signed from dataDir and refuses to go on if the tree is not
// consistent with it (shorter, or another root at that size): signing again would contradict
// what partners were already given.
func Open(dataDir string, signer note.Signer, verifier note.Verifier, tree func() *translog.Tree, entries func() *state.Store) (*Publisher, error) {
	if signer.Name() != verifier.Name() || signer.KeyHash() != verifier.KeyHash() {
		return nil, errors.New("transparency: the log's signer and verifier keys differ")
	}
	p := &Publisher{tree: tree, entries: entries, signer: signer, verifier: verifier, path: filepath.Join(dataDir, CheckpointFile),
		cosigs: newCosignatures(dataDir, verifier)}
	b, err := atomicfile.ReadReserved(p.path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("transparency: read the last checkpoint: %w", err)
	}
	cp, _, err := translog.OpenCheckpoint(string(b), verifier)
	if err != nil {
		return nil, fmt.Errorf("transparency: the last checkpoint in %s does not verify with the log key %s: %w; the file is damaged, or the key is not this log's: "+
			"a node of a cluster can be repaired from the others (README: when a node's data is damaged); a node alone, restored from a backup", p.path, verifier.Name(), err)
	}
	t := tree()
	if t.Size() < cp.Size {
		return nil, fmt.Errorf("transparency: this node signed a checkpoint of %d entries but its log has %d: entries were lost; restore the data directory from a backup instead of serving a log that contradicts its checkpoints", cp.Size, t.Size())
	}
	root, err := t.Root(cp.Size)
	if err != nil {
		return nil, err
	}
	if root != cp.Root {
		return nil, fmt.Errorf("transparency: the log's first %d entries do not have the root of the checkpoint this node signed: the log was changed; do not serve it", cp.Size)
	}
	last := &Signed{Checkpoint: cp, Note: string(b)}
	p.last.Store(last)
	if fi, err := os.Stat(p.path); err == nil {
		p.lastAt.Store(fi.ModTime().UnixNano())
	}
	p.cosigs.mu.Lock()
	p.cosigs.remember(last)
	p.cosigs.mu.Unlock()
	return p, nil
}

// LastSigned is the size of the last checkpoint this node signed and when (zero: none yet).
func (p *Publisher) LastSigned() (size int64, at time.Time) {
	last := p.last.Load()
	if last == nil {
		return 0, time.Time{}
	}
	return last.Checkpoint.Size, time.Unix(0, p.lastAt.Load())
}

// Origin is the log's name, as its checkpoints carry it.
func (p *Publisher) Origin() string { return p.signer.Name() }

// Verifier is the log's public key.
func (p *Publisher) Verifier() note.Verifier { return p.verifier }

// Latest returns a signed checkpoint of at least minSize entries (minSize 0: of the whole tree
// as it is now), signing a new one of the current tree if the last is smaller. Concurrent
// callers share one signature: the first signs the whole tree as it then is, the others find it
// large enough.
func (p *Publisher) Latest(ctx context.Context, minSize int64) (*Signed, error) {
	if p.Integrity != nil {
		if err := p.Integrity.Serving(); err != nil {
			return nil, err
		}
	}
	if last := p.last.Load(); last != nil && minSize > 0 && last.Checkpoint.Size >= minSize {
		return last, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t := p.tree()
	size := t.Size()
	if minSize <= 0 {
		minSize = max(size, 1)
	}
	last := p.last.Load()
	if last != nil && last.Checkpoint.Size >= minSize {
		return last, nil
	}
	if size < minSize {
		return nil, fault.Unavailable("the log has %d entries, fewer than %d: retry once the entry is applied", size, minSize)
	}
	root, err := t.Root(size)
	if err != nil {
		return nil, err
	}
	cp := translog.Checkpoint{Origin: p.signer.Name(), Size: size, Root: root}
	if last != nil {
		// Never sign a checkpoint inconsistent with the last: the tree only grows, so this
		// holds by construction; check it anyway, the cost is one proof.
		proof, err := t.ConsistencyProof(last.Checkpoint.Size, size)
		if err == nil {
			err = translog.CheckConsistency(proof, last.Checkpoint.Size, last.Checkpoint.Root, size, root)
		}
		if err != nil {
			return nil, fmt.Errorf("transparency: refusing to sign tree %d: not consistent with the last checkpoint (%d): %w", size, last.Checkpoint.Size, err)
		}
	}
	signed, err := cp.Sign(p.signer)
	if err != nil {
		return nil, err
	}
	// Durable before anyone sees it, so a restart knows what it must stay consistent with; in
	// reserved space, so that a full disk does not keep a committed write from its receipt.
	if err := (atomicfile.Reserved{Path: p.path, Size: checkpointReserve}).Write([]byte(signed)); err != nil {
		return nil, fmt.Errorf("transparency: keep the checkpoint: %w", err)
	}
	s := &Signed{Checkpoint: cp, Note: signed}
	p.last.Store(s)
	p.lastAt.Store(time.Now().UnixNano())
	p.cosigs.mu.Lock()
	p.cosigs.remember(s)
	p.cosigs.mu.Unlock()
	return s, nil
}

// Receipt proves that entry index is logged: the entry, its inclusion proof and a signed
// checkpoint. With from > 0 (the size of the caller's largest verified checkpoint), the
// checkpoint has at least from entries and the receipt proves it consistent with the tree of
// that size, so that the caller needs no second call; if this node's tree has not reached from
// yet, the receipt carries no such proof.
func (p *Publisher) Receipt(ctx context.Context, index, from uint64) (*concordv1.Receipt, error) {
	if from > uint64(p.tree().Size()) {
		from = 0
	}
	s, err := p.Latest(ctx, int64(max(index+1, from)))
	if err != nil {
		return nil, err
	}
	t := p.tree()
	proof, err := t.InclusionProof(int64(index), s.Checkpoint.Size)
	if err != nil {
		return nil, err
	}
	leaf, err := t.LeafHashAt(int64(index))
	if err != nil {
		return nil, err
	}
	row, err := p.entries().LogRow(index)
	if err != nil {
		return nil, err
	}
	if row == nil {
		return nil, fmt.Errorf("transparency: log entry %d is in the tree but not in the state", index)
	}
	r := &concordv1.Receipt{Index: index, InclusionProof: translog.HashesToBytes(proof), Checkpoint: s.Proto(), LeafHash: leaf[:], Entry: row.GetEntry()}
	if from > 0 {
		consistency, err := t.ConsistencyProof(int64(from), s.Checkpoint.Size)
		if err != nil {
			return nil, err
		}
		r.ConsistencyProof, r.ConsistencyFrom = translog.HashesToBytes(consistency), from
	}
	return r, nil
}
