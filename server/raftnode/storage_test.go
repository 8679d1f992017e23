package raftnode

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
)

func quietHC() hclog.Logger { return hclog.NewNullLogger() }

// payload is an entry's data, easy to find in a segment file.
func payload(i uint64) []byte {
	return []byte(fmt.Sprintf("<<entry %06d: %s>>", i, strings.Repeat("x", 64)))
}

// fillLog opens a raft log in dir and stores entries 1..n, in batches of batch.
func fillLog(t *testing.T, dir string, n, batch uint64) {
	t.Helper()
	s, err := openLogStore(dir, quietHC(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := uint64(1); i <= n; {
		var logs []*raft.Log
		for ; i <= n && uint64(len(logs)) < batch; i++ {
			logs = append(logs, &raft.Log{Index: i, Term: 1 + i/10, Type: raft.LogCommand, Data: payload(i)})
		}
		if err := s.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetUint64(keyCurrentTerm, 1+n/10); err != nil {
		t.Fatal(err)
	}
}

// tailFile is the only segment file in dir.
func tailFile(t *testing.T, dir string) string {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(names) != 1 {
		t.Fatalf("segment files %v, want one", names)
	}
	return names[0]
}

// flipAt XORs the byte at off of path.
func flipAt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestEntriesKeepTheirContentAndChecksum(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fillLog(t, dir, 100, 7)
	s, err := openLogStore(dir, quietHC(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := verifyLog(s, 0, 0); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	for i := uint64(1); i <= 100; i++ {
		if err := s.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if l.Index != i || !bytes.Equal(l.Data, payload(i)) || l.Extensions != nil {
			t.Fatalf("entry %d read back as index %d, data %q, extensions %x", i, l.Index, l.Data, l.Extensions)
		}
	}
}

// TestDamagedEntryIsNamed: a byte flipped in a committed entry that later writes follow makes
// the log refuse to open, naming the segment file and the entry; one flipped after the open,
// in a read, is reported the same way.
func TestDamagedEntryIsNamed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fillLog(t, dir, 50, 5)
	seg := tailFile(t, dir)
	data, _ := os.ReadFile(seg)
	off := bytes.Index(data, payload(17))
	flipAt(t, seg, int64(off+10))
	_, err := openLogStore(dir, quietHC(), 0)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != seg || ce.Index != 17 {
		t.Fatalf("open = %v, want a CorruptError naming %s and entry 17", err, seg)
	}
}

func TestDamagedEntryInASealedSegmentIsNamed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := openLogStore(dir, quietHC(), 4096)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 200; i++ {
		if err := s.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: payload(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	s.SetUint64(keyCurrentTerm, 1)
	s.Close()
	names, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(names) < 3 {
		t.Fatalf("only %d segment files", len(names))
	}
	first := names[0]
	data, _ := os.ReadFile(first)
	flipAt(t, first, int64(bytes.Index(data, payload(3))+12))
	s, err = openLogStore(dir, quietHC(), 4096)
	if err != nil {
		t.Fatalf("open: %v (a sealed segment's entries are checked as they are read)", err)
	}
	defer s.Close()
	_, err = verifyLog(s, 0, 0)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != first || ce.Index != 3 || !errors.Is(err, ErrEntryChecksum) {
		t.Fatalf("verify = %v, want a checksum CorruptError naming %s and entry 3", err, first)
	}
}

// TestIncompleteLastWriteIsCleared: bytes after the last commit frame that no commit frame
// follows are a write that never completed: they are cleared and the log opens with every
// committed entry.
func TestIncompleteLastWriteIsCleared(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fillLog(t, dir, 40, 4)
	seg := tailFile(t, dir)
	end := writtenEnd(mustRead(t, seg))
	// A half-written entry frame: a header, then garbage.
	f, _ := os.OpenFile(seg, os.O_RDWR, 0)
	f.WriteAt([]byte{frameEntry, 0, 0, 0, 200, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef}, int64(end))
	f.Close()
	s, err := openLogStore(dir, quietHC(), 0)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	if s.tornTail == nil {
		t.Fatal("the incomplete write was not reported")
	}
	if last, _ := s.LastIndex(); last != 40 {
		t.Fatalf("last index %d, want 40", last)
	}
	if _, err := verifyLog(s, 0, 0); err != nil {
		t.Fatal(err)
	}
	// And the log goes on.
	if err := s.StoreLogs([]*raft.Log{{Index: 41, Term: 5, Type: raft.LogCommand, Data: payload(41)}}); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedLastCommittedWriteIsRefused: damage followed by a commit frame was a completed
// write: the log refuses to open rather than drop it.
func TestDamagedLastCommittedWriteIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fillLog(t, dir, 40, 4)
	seg := tailFile(t, dir)
	data, _ := os.ReadFile(seg)
	flipAt(t, seg, int64(bytes.Index(data, payload(38))+3)) // in the last batch, 37..40
	_, err := openLogStore(dir, quietHC(), 0)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != seg || !strings.Contains(err.Error(), "commit frame follows") {
		t.Fatalf("open = %v, want a CorruptError naming %s", err, seg)
	}
}

func TestDamagedMetadataIsNamed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fillLog(t, dir, 10, 3)
	meta := filepath.Join(dir, MetaFile)
	for _, off := range []int64{0, 40, 100} {
		flipAt(t, meta, off)
		_, err := openLogStore(dir, quietHC(), 0)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.File != meta {
			t.Fatalf("open with byte %d of the metadata flipped = %v, want a CorruptError naming %s", off, err, meta)
		}
		flipAt(t, meta, off) // undo
	}
	if s, err := openLogStore(dir, quietHC(), 0); err != nil {
		t.Fatalf("open after undoing the damage: %v", err)
	} else {
		s.Close()
	}
}

// TestLegacyLogIsConverted: a raft log written without checksums (raft-wal's bolt metadata and
// plain entries) is converted once, keeping every entry, the term and the vote.
func TestLegacyLogIsConverted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old, err := wal.Open(dir, wal.WithLogger(quietHC()))
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 30; i++ {
		if err := old.StoreLog(&raft.Log{Index: i, Term: 3, Type: raft.LogCommand, Data: payload(i)}); err != nil {
			t.Fatal(err)
		}
	}
	old.SetUint64(keyCurrentTerm, 3)
	old.Set([]byte("LastVoteCand"), []byte("node-1"))
	old.Close()

	s, err := openLogStore(dir, quietHC(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, legacyMetaFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the bolt metadata is still there: %v", err)
	}
	if _, err := verifyLog(s, 0, 0); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(30, &l); err != nil || !bytes.Equal(l.Data, payload(30)) || l.Term != 3 {
		t.Fatalf("entry 30 after conversion: %+v, %v", l, err)
	}
	if v, _ := s.Get([]byte("LastVoteCand")); string(v) != "node-1" {
		t.Fatalf("vote after conversion: %q", v)
	}
}

// TestRotationTakesTheSpareSegment: a full segment rotates into the spare segment file, by a
// rename (no space allocated then); the spare is made again afterwards.
func TestRotationTakesTheSpareSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := openLogStore(dir, quietHC(), 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.MakeSpareSegment(); err != nil {
		t.Fatal(err)
	}
	spare := filepath.Join(dir, SpareSegmentFile)
	before, err := os.Stat(spare)
	if err != nil || before.Size() != 8<<10 {
		t.Fatalf("spare segment: %v, %v", before, err)
	}
	for i := uint64(1); s.HasSpareSegment(); i++ {
		if i > 1000 {
			t.Fatal("the log never rotated into the spare segment")
		}
		if err := s.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: payload(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Rotation is asynchronous in raft-wal: the next append waits for it.
	last, _ := s.LastIndex()
	if err := s.StoreLogs([]*raft.Log{{Index: last + 1, Term: 1, Type: raft.LogCommand, Data: payload(last + 1)}}); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	var taken bool
	for _, seg := range segs {
		if fi, err := os.Stat(seg); err == nil && os.SameFile(fi, before) {
			taken = true
		}
	}
	if !taken {
		t.Fatalf("no segment file is the former spare: %v", segs)
	}
	if err := s.MakeSpareSegment(); err != nil || !s.HasSpareSegment() {
		t.Fatalf("spare not made again: %v", err)
	}
	s.SetUint64(keyCurrentTerm, 1)
	if _, err := verifyLog(s, 0, 0); err != nil {
		t.Fatal(err)
	}
}

// TestZeroedFrameHeaderBeforeCommittedEntriesIsRefused: a zeroed header in the middle of the
// last segment reads as the end of the log; the committed entries after it make the log refuse
// to open rather than lose them.
func TestZeroedFrameHeaderBeforeCommittedEntriesIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fillLog(t, dir, 100, 7)
	seg := tailFile(t, dir)
	data, _ := os.ReadFile(seg)
	// The frame header sits just before the entry's encoding, which starts with its index.
	off := bytes.Index(data, payload(50)) - 1
	for data[off-7] != frameEntry || data[off-6] != 0 {
		off--
	}
	copy(data[off-7:off+1], make([]byte, 8))
	os.WriteFile(seg, data, 0o600)
	_, err := openLogStore(dir, quietHC(), 0)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != seg || !strings.Contains(err.Error(), "commit frame follows") {
		t.Fatalf("open = %v, want a CorruptError naming %s", err, seg)
	}
}

// TestDamagedLastCommitFrameIsRefused: garbage where the last write's commit frame belongs, after
// its entries written whole, is a damaged acknowledged write, not an incomplete one.
func TestDamagedLastCommitFrameIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fillLog(t, dir, 40, 4)
	seg := tailFile(t, dir)
	data := mustRead(t, seg)
	commit := writtenEnd(data) - frameHeaderLen // the last frame: the last write's commit
	if data[commit] != frameCommit {
		t.Fatalf("the last frame is of type %d, not a commit", data[commit])
	}
	flipAt(t, seg, int64(commit+2))
	_, err := openLogStore(dir, quietHC(), 0)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != seg || !strings.Contains(err.Error(), "were acknowledged") {
		t.Fatalf("open = %v, want a CorruptError naming %s", err, seg)
	}
}

// TestUnfinishedRotationIsFinished: a last segment sealed in its file while the metadata still
// lists it open (the rotation after the seal failed, on a full disk say) is recorded sealed at
// open, and the log goes on in a new segment with every entry.
func TestUnfinishedRotationIsFinished(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := openLogStore(dir, quietHC(), 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(dir, MetaFile)
	s.SetUint64(keyCurrentTerm, 1)
	var before []byte
	var last uint64
	for i := uint64(1); ; i++ {
		if i > 1000 {
			t.Fatal("the log never sealed its segment")
		}
		before = mustRead(t, meta)
		if err := s.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: payload(i)}}); err != nil {
			t.Fatal(err)
		}
		// The append that seals writes the index frame before it returns.
		old, err := readMetaFileBytes(before)
		if err != nil {
			t.Fatal(err)
		}
		if scan, err := scanTail(dir, old.State, quietHC()); err == nil && scan.sealedAt > 0 {
			last = i
			break
		}
	}
	// Let raft-wal's rotation finish before closing.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if names, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(names) > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rotation did not happen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	// As if the rotation's metadata write had failed: the old metadata, no new segment file.
	names, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	for _, n := range names[1:] {
		os.Remove(n)
	}
	if err := os.WriteFile(meta, before, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = openLogStore(dir, quietHC(), 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _ := s.LastIndex(); got != last {
		t.Fatalf("last index %d after finishing the rotation, want %d", got, last)
	}
	if err := s.StoreLogs([]*raft.Log{{Index: last + 1, Term: 1, Type: raft.LogCommand, Data: payload(last + 1)}}); err != nil {
		t.Fatalf("append after the unfinished rotation: %v", err)
	}
	if _, err := verifyLog(s, 0, 0); err != nil {
		t.Fatal(err)
	}
}

// readMetaFileBytes parses a metadata file's content.
func readMetaFileBytes(b []byte) (metaDoc, error) {
	dir, err := os.MkdirTemp("", "meta")
	if err != nil {
		return metaDoc{}, err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, MetaFile)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return metaDoc{}, err
	}
	return readMetaFile(p)
}

// writtenEnd is where a segment's written frames end: frames are 8-byte aligned and the last one
// (a commit frame) starts with a non-zero type byte.
func writtenEnd(data []byte) int {
	end := len(data)
	for end > 0 && data[end-1] == 0 {
		end--
	}
	return end + padLen(end)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
