package client

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/atomicfile"
	"concord/matchindex"
	"concord/server/match"
	"concord/translog"

	"golang.org/x/mod/sumdb/note"
)

// Mirror is a local, verified copy of the transparency log as one partner may see it, and the
// state rebuilt from it, with the same match index as the hub: a platform matches its content
// with no network call, so the hub never learns what it looked up.
//
// Every entry is checked before it is kept (see Replayer), every checkpoint's signature is
// verified with the log key and its root recomputed from the entries, so a hub that rewrote or
// forked its log is caught. Entries are stored in DIR/entries, appended and synced before the
// checkpoint that covers them is stored (DIR/checkpoint); opening a mirror replays and checks
// them all again.
type Mirror struct {
	dir     string
	logKey  note.Verifier
	partner string
	replay  *Replayer
	index   *match.Index
	file    *os.File
	w       *bufio.Writer
	cp      *translog.Checkpoint
	// synced is the size of the entries file that the last verified checkpoint covers.
	synced int64
	// broken is set when a sync failed after applying entries: the state holds entries no
	// checkpoint vouches for, so the mirror refuses to answer until it is opened again.
	broken error
}

// Files of a mirror directory.
const (
	mirrorEntries    = "entries"
	mirrorCheckpoint = "checkpoint"
	mirrorPartner    = "partner"
)

// Record kinds of the entries file: each record is a kind byte, the uvarint length of the
// entry, the entry, and its 32-byte leaf hash.
const (
	recordEntry      = 1 // the entry's bytes
	recordLeafHashes = 2 // a restricted entry: no bytes, the leaf hash only
)

// OpenMirror opens (creating it if needed) the mirror in dir, replaying and checking every
// entry it holds. partner is the partner the mirror is kept for (its sharing restrictions
// decided what it holds); an existing mirror of another partner is refused.
func OpenMirror(dir string, logKey note.Verifier, partner string) (*Mirror, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	m := &Mirror{dir: dir, logKey: logKey, partner: partner}
	if b, err := os.ReadFile(filepath.Join(dir, mirrorPartner)); err == nil {
		have := strings.TrimSpace(string(b))
		if partner == "" {
			m.partner = have
		} else if have != partner {
			return nil, fmt.Errorf("mirror %s holds what partner %q may see, not %q: use another directory", dir, have, partner)
		}
	} else if errors.Is(err, os.ErrNotExist) && partner != "" {
		if err := atomicfile.WriteFile(filepath.Join(dir, mirrorPartner), []byte(partner+"\n")); err != nil {
			return nil, err
		}
	}
	var err error
	if m.replay, err = NewReplayer(nil); err != nil {
		return nil, err
	}
	m.index = match.NewIndex(matchindex.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.replay.Attach(m.index)
	if err := m.load(); err != nil {
		return nil, err
	}
	return m, nil
}

// load replays DIR/entries up to the size of DIR/checkpoint, the last checkpoint verified, and
// checks the root. Entries past it — fetched by a sync that did not finish, or that a forked log
// fed and its checkpoint did not vouch for — are cut off: they are fetched and checked again.
func (m *Mirror) load() error {
	var want int64
	b, err := os.ReadFile(filepath.Join(m.dir, mirrorCheckpoint))
	switch {
	case err == nil:
		cp, _, err := translog.OpenCheckpoint(string(b), m.logKey)
		if err != nil {
			return fmt.Errorf("mirror: stored checkpoint: %w", err)
		}
		m.cp, want = &cp, cp.Size
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("mirror: %w", err)
	}
	path := filepath.Join(m.dir, mirrorEntries)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	m.file = f
	r := bufio.NewReaderSize(f, 1<<20)
	var good int64
	var batch []Leaf
	flush := func() error {
		if err := m.replay.AddBatch(batch); err != nil {
			return fmt.Errorf("mirror %s: %w", path, err)
		}
		batch = batch[:0]
		return nil
	}
	for next := uint64(0); int64(next) < want; next++ {
		kind, entry, leaf, n, err := readMirrorRecord(r)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break // a torn tail: keep what is whole, fetch the rest again
		}
		if err != nil {
			return fmt.Errorf("mirror %s: entry %d: %w", path, next, err)
		}
		if kind == recordLeafHashes {
			entry = nil
		}
		batch = append(batch, Leaf{Index: next, Entry: entry, LeafHash: leaf})
		if len(batch) == 256 {
			if err := flush(); err != nil {
				return err
			}
		}
		good += n
	}
	if err := flush(); err != nil {
		return err
	}
	if m.Size() < want {
		return fmt.Errorf("mirror %s: the stored checkpoint covers %d entries but only %d are stored: the entries file lost data; remove the mirror and sync it again", m.dir, want, m.Size())
	}
	if err := f.Truncate(good); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	m.synced = good
	m.w = bufio.NewWriterSize(f, 1<<20)
	if m.cp != nil {
		if err := m.replay.CheckCheckpoint(*m.cp); err != nil {
			return fmt.Errorf("mirror %s: %w", m.dir, err)
		}
	}
	return nil
}

func readMirrorRecord(r *bufio.Reader) (kind byte, entry, leaf []byte, n int64, err error) {
	kind, err = r.ReadByte()
	if err != nil {
		return 0, nil, nil, 0, err
	}
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, nil, 0, noEOF(err)
	}
	if kind != recordEntry && kind != recordLeafHashes {
		return 0, nil, nil, 0, fmt.Errorf("%w: unknown record kind %d (the file is damaged)", ErrLogInvalid, kind)
	}
	if size > 64<<20 {
		return 0, nil, nil, 0, fmt.Errorf("%w: a record of %d bytes (the file is damaged)", ErrLogInvalid, size)
	}
	buf := make([]byte, size+32)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, nil, 0, noEOF(err)
	}
	return kind, buf[:size], buf[size:], int64(1+len(binary.AppendUvarint(nil, size))) + int64(len(buf)), nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Size is the number of entries the mirror holds.
func (m *Mirror) Size() int64 { return m.replay.Tree().Size() }

// Checkpoint is the last checkpoint the mirror verified, or nil.
func (m *Mirror) Checkpoint() *translog.Checkpoint { return m.cp }

// Stats sums up what the mirror holds.
func (m *Mirror) Stats() ReplayStats { return m.replay.Stats() }

// Partner is the partner the mirror is kept for.
func (m *Mirror) Partner() string { return m.partner }

// Close closes the entries file.
func (m *Mirror) Close() error {
	return errors.Join(m.w.Flush(), m.file.Close())
}

// Sync brings the mirror up to the hub's latest checkpoint: it fetches and checks the entries
// it lacks, stores them, and stores the checkpoint once its root is recomputed from them.
// progress, if set, is called after each batch with the mirror's size and the target.
func (m *Mirror) Sync(ctx context.Context, c *Client, progress func(have, want int64)) error {
	if m.broken != nil {
		return m.broken
	}
	if err := m.sync(ctx, c, progress); err != nil {
		if m.Size() > m.committed() {
			// Entries were applied that no checkpoint vouches for: forget them on disk, and
			// answer nothing until reopened (which replays only what is vouched for).
			m.w.Reset(m.file)
			_ = m.file.Truncate(m.synced)
			_, _ = m.file.Seek(m.synced, io.SeekStart)
			m.broken = fmt.Errorf("mirror %s: a sync failed after applying unverified entries; open the mirror again: %w", m.dir, err)
		}
		return err
	}
	return nil
}

// committed is the number of entries the last verified checkpoint covers.
func (m *Mirror) committed() int64 {
	if m.cp == nil {
		return 0
	}
	return m.cp.Size
}

func (m *Mirror) sync(ctx context.Context, c *Client, progress func(have, want int64)) error {
	// With trusted witnesses, the mirror only follows checkpoints enough of them cosigned.
	resp, err := c.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{MinCosignatures: uint32(c.quorum)})
	if err != nil {
		return fmt.Errorf("mirror: get checkpoint: %w", err)
	}
	signed := resp.GetCheckpoint().GetNote()
	cp, err := translog.OpenCosignedCheckpoint(signed, m.logKey, c.witnesses, c.quorum)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if cp.Size <= m.committed() {
		// A node behind the one synced from last time: its tree must be a prefix of ours.
		return m.replay.CheckCheckpoint(cp)
	}
	if m.Size() < cp.Size {
		stream, err := c.Log.GetEntries(ctx, &concordv1.GetEntriesRequest{Start: uint64(m.Size()), End: uint64(cp.Size)})
		if err != nil {
			return fmt.Errorf("mirror: get entries: %w", err)
		}
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("mirror: get entries: %w", err)
			}
			for _, l := range msg.GetLeaves() {
				if int64(l.GetIndex()) >= cp.Size {
					return fmt.Errorf("mirror: %w: the hub sent entry %d beyond the checkpoint of %d entries", ErrLogInvalid, l.GetIndex(), cp.Size)
				}
			}
			if err := m.appendBatch(msg.GetLeaves()); err != nil {
				return err
			}
			if progress != nil {
				progress(m.Size(), cp.Size)
			}
		}
	}
	if m.Size() < cp.Size {
		return fmt.Errorf("mirror: the hub sent %d entries of the %d its checkpoint covers", m.Size(), cp.Size)
	}
	if err := m.replay.CheckCheckpoint(cp); err != nil {
		return err
	}
	// The same log as the one this client's receipts came from.
	if err := c.CheckCheckpoint(ctx, cp); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	// The entries first, durably; then the checkpoint that vouches for them.
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := m.file.Sync(); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(m.dir, mirrorCheckpoint), []byte(signed)); err != nil {
		return err
	}
	m.cp = &cp
	if m.synced, err = m.file.Seek(0, io.SeekCurrent); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	return nil
}

// appendBatch checks leaves and adds them to the file (buffered until Sync flushes).
func (m *Mirror) appendBatch(leaves []*concordv1.LogLeaf) error {
	batch := make([]Leaf, len(leaves))
	for i, l := range leaves {
		batch[i] = Leaf{Index: l.GetIndex(), Entry: l.GetEntry(), LeafHash: l.GetLeafHash()}
		if l.GetEntry() != nil {
			h := translog.LeafHash(l.GetEntry())
			batch[i].LeafHash = h[:]
		}
	}
	if err := m.replay.AddBatch(batch); err != nil {
		return fmt.Errorf("mirror: refusing the batch from entry %d: %w", batch[0].Index, err)
	}
	for _, l := range batch {
		kind := byte(recordEntry)
		if l.Entry == nil {
			kind = recordLeafHashes
		}
		var hdr [1 + binary.MaxVarintLen64]byte
		hdr[0] = kind
		n := 1 + binary.PutUvarint(hdr[1:], uint64(len(l.Entry)))
		for _, b := range [][]byte{hdr[:n], l.Entry, l.LeafHash} {
			if _, err := m.w.Write(b); err != nil {
				return fmt.Errorf("mirror: %w", err)
			}
		}
	}
	return nil
}

// Follow keeps the mirror in sync until ctx ends, checking for new entries every interval.
func (m *Mirror) Follow(ctx context.Context, c *Client, interval time.Duration, progress func(have, want int64)) error {
	for {
		if err := m.Sync(ctx, c, progress); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// Match answers a match request from the mirror alone, as the hub would have answered this
// partner when the mirror was last synced.
func (m *Mirror) Match(req *concordv1.MatchRequest) (*concordv1.MatchResponse, error) {
	if m.broken != nil {
		return nil, m.broken
	}
	return match.Answer(m.replay.State(), m.index.Current(), m.partner, req, time.Now())
}
