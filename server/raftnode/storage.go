package raftnode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// CorruptError reports a data file that failed verification: the node must not serve what it
// holds. File is the damaged file's path; Index, when not 0, the raft entry found damaged.
type CorruptError struct {
	File  string
	Index uint64
	Err   error
}

func (e *CorruptError) Error() string {
	if e.Index > 0 {
		return fmt.Sprintf("data file %s is damaged (raft entry %d): %v", e.File, e.Index, e.Err)
	}
	return fmt.Sprintf("data file %s is damaged: %v", e.File, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// raft-wal's segment file format, as its segment package writes it: a 32-byte header, then
// frames of an 8-byte header (type, three zero bytes, a little-endian length, or a CRC for a
// commit frame) and a payload padded to 8 bytes.
const (
	segmentHeaderLen = 32
	segmentMagic     = 0x58eb6b0d
	frameHeaderLen   = 8
	frameEntry       = 1
	frameIndex       = 2
	frameCommit      = 3
	maxFrameLen      = 64 << 20
)

// segmentFileName is raft-wal's name for a segment file.
func segmentFileName(si types.SegmentInfo) string {
	return fmt.Sprintf("%020d-%016x.wal", si.BaseIndex, si.ID)
}

// logStore is a node's raft log and stable store: raft-wal, with a checksum in every entry (see
// sealEntry) and a checksummed metadata file, and every entry read checked against the index
// asked for.
type logStore struct {
	dir    string
	logger hclog.Logger
	spare  *spareVFS

	// mu guards wal, meta and closed: a reopen replaces them (see StoreLogs).
	mu     sync.RWMutex
	wal    *wal.WAL
	meta   *fileMetaStore
	closed bool // a reopen failed: wal is closed
	// onCorrupt, if set, is told of an entry found damaged while the node runs.
	onCorrupt func(*CorruptError)
	// tornTail describes an incomplete last write cleared at open, if there was one.
	tornTail *CorruptError
	// stats counts what is appended (for the snapshot policy).
	stats logStats
}

var (
	_ raft.LogStore          = (*logStore)(nil)
	_ raft.StableStore       = (*logStore)(nil)
	_ raft.MonotonicLogStore = (*logStore)(nil)
)

func (s *logStore) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.wal.FirstIndex()
}

func (s *logStore) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.wal.LastIndex()
}

// GetLog reads entry index, checking its checksum and that it is the entry asked for.
func (s *logStore) GetLog(index uint64, l *raft.Log) error {
	s.mu.RLock()
	err := s.wal.GetLog(index, l)
	s.mu.RUnlock()
	if err == nil {
		err = openEntry(l)
	}
	if err == nil && l.Index != index {
		err = fmt.Errorf("%w: read as entry %d, it holds entry %d", ErrEntryChecksum, index, l.Index)
	}
	if err != nil && damaged(err) {
		ce := &CorruptError{File: s.segmentPath(index), Index: index, Err: err}
		if s.onCorrupt != nil {
			s.onCorrupt(ce)
		}
		return ce
	}
	return err
}

// damaged reports whether a read failed because of what the file holds: anything but a missing
// entry, a closed log or an error of the file system (what raft-wal's reader says of bytes it
// cannot make sense of varies: a checksum, a short buffer, an unexpected end...).
func damaged(err error) bool {
	var pathErr *os.PathError
	var errno syscall.Errno
	return !errors.Is(err, raft.ErrLogNotFound) && !errors.Is(err, wal.ErrClosed) && !errors.As(err, &pathErr) && !errors.As(err, &errno)
}

func (s *logStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores copies of logs that carry their checksums.
func (s *logStore) StoreLogs(logs []*raft.Log) error {
	sealed := make([]*raft.Log, len(logs))
	var n uint64
	for i, l := range logs {
		sealed[i] = sealEntry(l)
		n += uint64(len(l.Data) + len(sealed[i].Extensions))
	}
	s.mu.RLock()
	err := s.wal.StoreLogs(sealed)
	s.mu.RUnlock()
	if errors.Is(err, wal.ErrSealed) || errors.Is(err, wal.ErrClosed) {
		// The last rotation failed (a full disk, say) and raft-wal cannot append until it is
		// reopened, which finishes the rotation.
		if err = s.reopen(); err == nil {
			s.mu.RLock()
			err = s.wal.StoreLogs(sealed)
			s.mu.RUnlock()
		}
	}
	if err != nil {
		return err
	}
	s.stats.bytes.Add(n)
	s.stats.entries.Add(uint64(len(logs)))
	return nil
}

// reopen closes raft-wal and opens it again.
// On failure the log stays closed, every call fails, and the next StoreLogs tries again.
func (s *logStore) reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		if err := s.wal.Close(); err != nil {
			s.logger.Warn("close the raft log before reopening it", "err", err)
		}
		s.closed = true
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("reopen the raft log in %s: %w", s.dir, err)
	}
	s.closed = false
	s.logger.Info("raft log reopened after a failed rotation", "dir", s.dir)
	return nil
}

// openWAL opens raft-wal in dir with Concord's metadata file and spare segment.
func openWAL(dir string, logger hclog.Logger, spare *spareVFS) (*wal.WAL, *fileMetaStore, error) {
	meta := &fileMetaStore{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta), wal.WithLogger(logger), wal.WithSegmentSize(int(spare.size)),
		wal.WithSegmentFiler(segment.NewFiler(dir, spare)))
	if err != nil {
		return nil, nil, err
	}
	return w, meta, nil
}

func (s *logStore) DeleteRange(min, max uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.wal.DeleteRange(min, max)
}

func (s *logStore) Set(k, v []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.wal.Set(k, v)
}

func (s *logStore) Get(k []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.wal.Get(k)
}

func (s *logStore) SetUint64(k []byte, v uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.wal.SetUint64(k, v)
}

func (s *logStore) GetUint64(k []byte) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.wal.GetUint64(k)
}

func (s *logStore) IsMonotonic() bool { return true } // raft-wal's

func (s *logStore) Close() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.wal.Close()
}

// HasSpareSegment reports whether the spare segment is ready (see SpareSegmentFile).
func (s *logStore) HasSpareSegment() bool { return s.spare.hasSpare() }

// MakeSpareSegment allocates the spare segment if it is missing.
func (s *logStore) MakeSpareSegment() error { return s.spare.makeSpare() }

// segmentPath names the segment file that holds raft index index, as far as the metadata file
// knows (the directory itself when no segment does).
func (s *logStore) segmentPath(index uint64) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.segmentPathLocked(index)
}

func (s *logStore) segmentPathLocked(index uint64) string {
	meta := s.meta
	meta.mu.Lock()
	segs := meta.doc.State.Segments
	meta.mu.Unlock()
	name := ""
	for _, si := range segs {
		if si.BaseIndex <= index {
			name = segmentFileName(si)
		}
	}
	if name == "" {
		return s.dir
	}
	return filepath.Join(s.dir, name)
}

// openLogStore opens the raft log in dir (creating it if there is none, converting one written
// without checksums), after checking what raft-wal's own recovery would not: the metadata file's
// checksum, every segment file's header, and that its recovery of the last segment keeps every
// committed entry it holds. Verify then checks every entry.
func openLogStore(dir string, logger hclog.Logger, segmentBytes int) (*logStore, error) {
	if err := migrateLegacyWAL(dir, logger); err != nil {
		return nil, err
	}
	if segmentBytes <= 0 {
		segmentBytes = wal.DefaultSegmentSize
	}
	s := &logStore{dir: dir, logger: logger, spare: &spareVFS{FS: fs.New(), dir: dir, size: uint64(segmentBytes)}}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// open checks the log's files (see openLogStore), finishes a rotation that did not complete,
// and opens raft-wal on them.
func (s *logStore) open() error {
	metaPath := filepath.Join(s.dir, MetaFile)
	doc, err := readMetaFile(metaPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return &CorruptError{File: metaPath, Err: err}
	default:
		if err := checkSegmentFiles(s.dir, doc.State); err != nil {
			return err
		}
	}
	tail, err := scanTail(s.dir, doc.State, s.logger)
	if err != nil {
		return err
	}
	if tail.sealedAt > 0 {
		if err := finishSeal(s.dir, doc, tail, int(s.spare.size), s.logger); err != nil {
			return err
		}
	}
	w, meta, err := openWAL(s.dir, s.logger, s.spare)
	if errors.Is(err, types.ErrCorrupt) {
		return &CorruptError{File: s.dir, Err: err}
	}
	if err != nil {
		return fmt.Errorf("open the raft log in %s: %w", s.dir, err)
	}
	s.wal, s.meta = w, meta
	if tail.torn != nil {
		s.tornTail = tail.torn
	}
	if last, _ := w.LastIndex(); tail.committed > last {
		path := s.segmentPathLocked(tail.committed)
		w.Close()
		return &CorruptError{File: path, Err: fmt.Errorf(
			"it holds committed entries up to %d, but recovering its last write kept only up to %d: bytes of that write are damaged", tail.committed, last)}
	}
	return nil
}

// checkSegmentFiles checks that every segment file the metadata lists is there, with the header
// raft-wal wrote: the right magic, version, base index, id and codec.
func checkSegmentFiles(dir string, st types.PersistentState) error {
	for _, si := range st.Segments {
		path := filepath.Join(dir, segmentFileName(si))
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) && si.SealTime.IsZero() {
			continue // raft-wal creates the last segment's file after recording it
		}
		if err != nil {
			return &CorruptError{File: path, Err: err}
		}
		var hdr [segmentHeaderLen]byte
		_, err = f.ReadAt(hdr[:], 0)
		f.Close()
		if err != nil {
			if si.SealTime.IsZero() {
				continue // an empty last segment: raft-wal initialises it
			}
			return &CorruptError{File: path, Err: fmt.Errorf("header: %w", err)}
		}
		if err := checkSegmentHeader(hdr[:], si); err != nil {
			if si.SealTime.IsZero() && bytes.Equal(hdr[:], make([]byte, segmentHeaderLen)) {
				continue // created but never written
			}
			return &CorruptError{File: path, Err: err}
		}
	}
	return nil
}

func checkSegmentHeader(hdr []byte, si types.SegmentInfo) error {
	switch {
	case binary.LittleEndian.Uint32(hdr[0:4]) != segmentMagic || hdr[4] != 0 || hdr[5] != 0 || hdr[6] != 0:
		return errors.New("its header is not a raft log segment's")
	case hdr[7] != 0:
		return fmt.Errorf("segment format version %d, want 0", hdr[7])
	case binary.LittleEndian.Uint64(hdr[8:16]) != si.BaseIndex:
		return fmt.Errorf("its header gives base index %d, the log's metadata %d", binary.LittleEndian.Uint64(hdr[8:16]), si.BaseIndex)
	case binary.LittleEndian.Uint64(hdr[16:24]) != si.ID:
		return fmt.Errorf("its header gives segment id %d, the log's metadata %d", binary.LittleEndian.Uint64(hdr[16:24]), si.ID)
	case binary.LittleEndian.Uint64(hdr[24:32]) != si.Codec:
		return fmt.Errorf("its header gives codec %d, the log's metadata %d", binary.LittleEndian.Uint64(hdr[24:32]), si.Codec)
	}
	return nil
}

// tailScan is what scanTail found in the last segment.
type tailScan struct {
	// committed is the last entry index covered by a commit frame (0: none).
	committed uint64
	// torn, when set, describes bytes after the last commit frame that are not a clean end: a
	// write that never completed. They were cleared, as raft-wal's recovery would drop them.
	torn *CorruptError
	// sealedAt, when not 0, is the file offset of the index array of a last segment sealed in
	// its file (an index frame, committed) that the metadata still lists as open: the rotation
	// that followed the seal did not complete. maxIndex is its last entry.
	sealedAt, maxIndex uint64
}

// scanTail walks the frames of the last (unsealed) segment itself, checking every entry, and
// returns the last entry index covered by a commit frame. raft-wal's recovery keeps what a
// commit frame covers and drops the rest as an incomplete write; it must drop nothing that was
// acknowledged. Every write ends with a commit frame, and a segment file starts as zeros (it is
// preallocated), so the scan refuses the segment when anything that looks like a commit frame
// follows the place where the walk stopped (a damaged frame, or a header that reads as the end),
// and when the walk stopped on garbage right after entries that a commit frame should have
// closed (a damaged commit frame). What remains is a write that never completed: its bytes are
// cleared, so that raft-wal recovers from a clean end.
func scanTail(dir string, st types.PersistentState, logger hclog.Logger) (tailScan, error) {
	if len(st.Segments) == 0 {
		return tailScan{}, nil
	}
	si := st.Segments[len(st.Segments)-1]
	if !si.SealTime.IsZero() {
		return tailScan{}, nil
	}
	path := filepath.Join(dir, segmentFileName(si))
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return tailScan{}, nil
	}
	if err != nil {
		return tailScan{}, &CorruptError{File: path, Err: err}
	}
	if len(data) < segmentHeaderLen || isZero(data[:segmentHeaderLen]) {
		if nonZeroAt(data, 0) >= 0 {
			return tailScan{}, &CorruptError{File: path, Err: errors.New("its header is zeros, but data follows it")}
		}
		return tailScan{}, nil // never written
	}
	var codec wal.BinaryCodec
	next, committed := si.BaseIndex, uint64(0)
	pending := 0 // entries since the last commit frame
	var indexAt, indexMax uint64
	sealedAt, sealedMax := uint64(0), uint64(0)
	off := segmentHeaderLen
	var damage error
frames:
	for off+frameHeaderLen <= len(data) {
		h := data[off : off+frameHeaderLen]
		if isZero(h) {
			break // the end of what was written
		}
		if h[1] != 0 || h[2] != 0 || h[3] != 0 {
			damage = errors.New("a frame header with non-zero reserved bytes")
			break
		}
		n := int(binary.LittleEndian.Uint32(h[4:8]))
		switch h[0] {
		case frameEntry:
			if n > maxFrameLen || off+frameHeaderLen+n > len(data) {
				damage = fmt.Errorf("an entry frame of %d bytes runs past the file", n)
				break frames
			}
			var l raft.Log
			err := codec.Decode(data[off+frameHeaderLen:off+frameHeaderLen+n], &l)
			if err == nil {
				err = openEntry(&l)
			}
			if err != nil {
				damage = fmt.Errorf("entry %d: %w", next, err)
				break frames
			}
			if l.Index != next {
				damage = fmt.Errorf("entry %d is recorded where entry %d belongs", l.Index, next)
				break frames
			}
			next++
			pending++
			off += frameHeaderLen + n + padLen(n)
		case frameIndex:
			if n > maxFrameLen || off+frameHeaderLen+n > len(data) {
				damage = fmt.Errorf("an index frame of %d bytes runs past the file", n)
				break frames
			}
			indexAt, indexMax = uint64(off+frameHeaderLen), next-1
			off += frameHeaderLen + n + padLen(n)
		case frameCommit:
			committed, pending = next-1, 0
			if indexAt > 0 {
				sealedAt, sealedMax = indexAt, indexMax
			}
			off += frameHeaderLen
		default:
			damage = fmt.Errorf("a frame of unknown type %d", h[0])
			break frames
		}
	}
	scan := tailScan{sealedAt: sealedAt, maxIndex: sealedMax}
	if committed >= si.BaseIndex {
		scan.committed = committed
	}
	refuse := func(format string, args ...any) (tailScan, error) {
		// The entry the walk stopped at: the damaged one, or the first the end would drop.
		return tailScan{}, &CorruptError{File: path, Index: next, Err: fmt.Errorf(format, args...)}
	}
	// Anything that looks like a commit frame after the walk's end was part of a completed
	// write: the entries it covers would be lost.
	for p := off + frameHeaderLen; p+frameHeaderLen <= len(data); p += frameHeaderLen {
		if data[p] == frameCommit && data[p+1] == 0 && data[p+2] == 0 && data[p+3] == 0 && !isZero(data[p+4:p+8]) {
			what := "a header that reads as the end of the log"
			if damage != nil {
				what = damage.Error()
			}
			return refuse("byte %d: %s, but a commit frame follows at byte %d: committed entries from %d on would be lost", off, what, p, committed+1)
		}
	}
	if damage == nil {
		return scan, nil
	}
	if pending > 0 && !isZero(data[off:off+frameHeaderLen]) {
		// Entries written whole, then garbage where their commit frame goes: an incomplete
		// write leaves zeros there, not garbage. The commit frame was written, then damaged.
		return refuse("byte %d: %v, where the commit frame of entries %d to %d belongs: those entries were acknowledged", off, damage, committed+1, next-1)
	}
	end := len(data)
	for end > off && data[end-1] == 0 {
		end--
	}
	scan.torn = &CorruptError{File: path, Index: committed + 1, Err: fmt.Errorf("bytes %d to %d after the last committed entry (%d) are not a clean end (%v): a write that never completed; cleared", off, end, committed, damage)}
	if err := clearBytes(path, int64(off), int64(end-off)); err != nil {
		return tailScan{}, &CorruptError{File: path, Err: fmt.Errorf("clear an incomplete write: %w", err)}
	}
	logger.Warn("raft log: an incomplete write after the last committed entry was cleared", "file", path, "from", off, "to", end, "committed", committed, "damage", damage.Error())
	return scan, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// nonZeroAt returns the offset of the first non-zero byte of b at or after from, or -1.
func nonZeroAt(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}

// finishSeal completes, in the metadata, a rotation that did not: the last segment is sealed in
// its file (see tailScan.sealedAt), so it is recorded sealed and a new last segment follows it;
// raft-wal creates that segment's file when it opens.
func finishSeal(dir string, doc metaDoc, scan tailScan, segmentBytes int, logger hclog.Logger) error {
	segs := doc.State.Segments
	last := segs[len(segs)-1]
	now := time.Now()
	last.SealTime, last.MaxIndex, last.IndexStart = now, scan.maxIndex, scan.sealedAt
	next := types.SegmentInfo{ID: doc.State.NextSegmentID, BaseIndex: scan.maxIndex + 1, MinIndex: scan.maxIndex + 1,
		SizeLimit: uint32(segmentBytes), Codec: last.Codec, CreateTime: now}
	doc.State.Segments = append(append(segs[:len(segs)-1:len(segs)-1], last), next)
	doc.State.NextSegmentID++
	if err := writeMetaFile(filepath.Join(dir, MetaFile), doc); err != nil {
		return fmt.Errorf("finish the rotation of the raft log in %s: %w", dir, err)
	}
	logger.Warn("raft log: a rotation that did not complete was finished", "sealed", segmentFileName(last), "next", segmentFileName(next))
	return nil
}

// clearBytes overwrites n bytes of path from off with zeros, durably.
func clearBytes(path string, off, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(make([]byte, n), off); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func padLen(n int) int {
	if n%frameHeaderLen == 0 {
		return 0
	}
	return frameHeaderLen - n%frameHeaderLen
}

// verifyLog reads every entry of the retained log, from the first to the last, checking each
// one's checksum, its index, and that terms never go back; and that the log continues the
// snapshot (no gap between the snapshot's index and the first entry) and the stable store's
// term is not behind the log's. It returns the last entry's term.
func verifyLog(s *logStore, snapIndex, snapTerm uint64) (lastTerm uint64, err error) {
	first, err := s.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := s.LastIndex()
	if err != nil {
		return 0, err
	}
	lastTerm = 0
	if last > 0 && first > snapIndex+1 {
		return 0, &CorruptError{File: s.segmentPath(first), Err: fmt.Errorf(
			"the raft log starts at entry %d but the latest snapshot covers entries up to %d only: entries %d to %d are missing", first, snapIndex, snapIndex+1, first-1)}
	}
	var l raft.Log
	prevTerm := uint64(0)
	for i := first; last > 0 && i <= last; i++ {
		if err := s.GetLog(i, &l); err != nil {
			return 0, err
		}
		if l.Term < prevTerm {
			return 0, &CorruptError{File: s.segmentPath(i), Index: i, Err: fmt.Errorf("its term %d is below the term %d of the entry before it", l.Term, prevTerm)}
		}
		if i > snapIndex && l.Term < snapTerm {
			return 0, &CorruptError{File: s.segmentPath(i), Index: i, Err: fmt.Errorf("its term %d is below the term %d of the snapshot it follows", l.Term, snapTerm)}
		}
		prevTerm, lastTerm = l.Term, l.Term
	}
	current, err := s.GetUint64(keyCurrentTerm)
	if err != nil {
		return 0, err
	}
	// Raft records a term before it writes an entry of it.
	if current < lastTerm {
		return 0, &CorruptError{File: filepath.Join(s.dir, MetaFile), Err: fmt.Errorf("raft's current term %d is behind the log's last term %d", current, lastTerm)}
	}
	return lastTerm, nil
}

// Raft's stable store keys.
var keyCurrentTerm = []byte("CurrentTerm")
