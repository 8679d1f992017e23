// Package backup reads and writes Concord's snapshot files: a consistent point-in-time copy of a
// node's state, checksummed, from which a new cluster starts (concord snapshot save|restore).
//
// A file is, in order: the magic line "CONCORD-SNAPSHOT\n"; the uvarint length of a SnapshotInfo
// and its deterministic proto encoding; the state in the FSM's snapshot stream (state.Snapshot);
// the SHA-256 of everything before it (32 bytes).
package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	concordv1 "concord/gen/concord/v1"
	"concord/server/datadir"
	"concord/server/fsm"
	"concord/server/raftnode"
	"concord/server/state"

	"google.golang.org/protobuf/proto"
)

// Magic opens every snapshot file.
const Magic = "CONCORD-SNAPSHOT\n"

// Format is the file layout's version, in SnapshotInfo.format.
const Format = 1

// maxInfoBytes bounds the SnapshotInfo record.
const maxInfoBytes = 64 << 10

// Info describes a capture of the FSM taken by node.
func Info(c *fsm.Capture, node string) *concordv1.SnapshotInfo {
	return &concordv1.SnapshotInfo{
		Format:       Format,
		AppliedIndex: c.Applied,
		LogSize:      uint64(c.LogSize),
		LogRootHash:  bytes.Clone(c.LogRoot[:]),
		NodeId:       node,
	}
}

// WriteBody writes a snapshot file without its checksum: the magic line, info and the state.
func WriteBody(w io.Writer, info *concordv1.SnapshotInfo, st *state.Snapshot) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(info)
	if err != nil {
		return fmt.Errorf("snapshot info: %w", err)
	}
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(b)))
	for _, part := range [][]byte{[]byte(Magic), hdr[:n], b} {
		if _, err := w.Write(part); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	if err := st.Persist(w); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// Write writes a whole snapshot file and returns its checksum.
func Write(w io.Writer, info *concordv1.SnapshotInfo, st *state.Snapshot) ([sha256.Size]byte, error) {
	h := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(w, h))
	if err := WriteBody(bw, info, st); err != nil {
		return [sha256.Size]byte{}, err
	}
	if err := bw.Flush(); err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("write snapshot: %w", err)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if _, err := w.Write(sum[:]); err != nil {
		return sum, fmt.Errorf("write snapshot: %w", err)
	}
	return sum, nil
}

// File is a snapshot file whose checksum was verified.
type File struct {
	Info   *concordv1.SnapshotInfo
	Digest [sha256.Size]byte

	path               string
	stateOff, stateLen int64
}

// Open reads path's header and verifies its checksum. A file that is truncated, altered or not
// a snapshot at all is refused with what is wrong with it.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size < int64(len(Magic))+sha256.Size+1 {
		return nil, fmt.Errorf("%s: %d bytes is too short for a Concord snapshot", path, size)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, size-sha256.Size); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var want [sha256.Size]byte
	if _, err := io.ReadFull(f, want[:]); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := &File{path: path}
	h.Sum(out.Digest[:0])
	if out.Digest != want {
		return nil, fmt.Errorf("%s: the SHA-256 checksum does not match its content: the file is damaged or truncated; take the backup again", path)
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	br := bufio.NewReader(io.LimitReader(f, size-sha256.Size))
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != Magic {
		return nil, fmt.Errorf("%s is not a Concord snapshot (it does not start with %q)", path, Magic[:len(Magic)-1])
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n > maxInfoBytes {
		return nil, fmt.Errorf("%s: the snapshot's info record is damaged", path)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, fmt.Errorf("%s: the snapshot's info record: %w", path, err)
	}
	out.Info = &concordv1.SnapshotInfo{}
	if err := proto.Unmarshal(b, out.Info); err != nil {
		return nil, fmt.Errorf("%s: the snapshot's info record: %w", path, err)
	}
	if out.Info.GetFormat() != Format {
		return nil, fmt.Errorf("%s: snapshot format %d, this version of Concord reads format %d", path, out.Info.GetFormat(), Format)
	}
	out.stateOff = int64(len(Magic)) + int64(binary.PutUvarint(make([]byte, binary.MaxVarintLen64), n)) + int64(n)
	out.stateLen = size - sha256.Size - out.stateOff
	return out, nil
}

// State returns the snapshot's state section, in the FSM's snapshot stream.
func (f *File) State() (io.ReadCloser, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{bufio.NewReaderSize(io.NewSectionReader(fh, f.stateOff, f.stateLen), 1<<20), fh}, nil
}

// Check restores the state into a fresh FSM, as a node starting from the file would, and
// checks it against the info: the applied index, and the transparency log's size and root.
func (f *File) Check() (*fsm.FSM, error) {
	m, err := fsm.New(nil)
	if err != nil {
		return nil, err
	}
	rc, err := f.State()
	if err != nil {
		return nil, err
	}
	if err := m.Restore(rc); err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	tree := m.Tree()
	if uint64(tree.Size()) != f.Info.GetLogSize() {
		return nil, fmt.Errorf("%s: the state holds %d log entries but the info says %d", f.path, tree.Size(), f.Info.GetLogSize())
	}
	if tree.Size() > 0 {
		root, err := tree.Root(tree.Size())
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(root[:], f.Info.GetLogRootHash()) {
			return nil, fmt.Errorf("%s: the log's root hash rebuilt from the state is not the one the info records", f.path)
		}
	}
	if m.Applied() != f.Info.GetAppliedIndex() {
		return nil, fmt.Errorf("%s: the state was applied up to raft index %d but the info says %d", f.path, m.Applied(), f.Info.GetAppliedIndex())
	}
	return m, nil
}

// Restore checks the snapshot file at path and seeds dataDir with it, so that a node started on
// dataDir (with --node-id nodeID and --raft-addr raftAddr; raftAddr empty for a node that runs
// alone) starts from the snapshot as the only member of a new cluster. dataDir must not hold raft
// state.
func Restore(path, dataDir, nodeID, raftAddr string) (*concordv1.SnapshotInfo, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	if _, err := f.Check(); err != nil {
		return nil, err
	}
	rc, err := f.State()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if raftAddr == "" {
		raftAddr = nodeID // the in-memory transport's address
	}
	lock, err := datadir.Acquire(dataDir)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if err := raftnode.Seed(dataDir, nodeID, raftAddr, f.Info.GetAppliedIndex(), rc); err != nil {
		return nil, err
	}
	return f.Info, nil
}
