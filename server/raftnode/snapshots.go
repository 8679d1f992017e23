package raftnode

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// snapshotStore is raft's file snapshot store, whose sinks tell the FSM which raft snapshot
// they write (see describedSink), so that the snapshot records it.
type snapshotStore struct {
	*raft.FileSnapshotStore
	dir string // the store's directory: <data>/raft/snapshots
}

func newSnapshotStore(raftDir string, logger hclog.Logger) (*snapshotStore, error) {
	fs, err := raft.NewFileSnapshotStoreWithLogger(raftDir, snapshotsRetained, logger)
	if err != nil {
		return nil, err
	}
	return &snapshotStore{FileSnapshotStore: fs, dir: filepath.Join(raftDir, "snapshots")}, nil
}

func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &describedSink{SnapshotSink: sink, index: index, term: term, digest: configurationDigest(configuration, configurationIndex)}, nil
}

// describedSink is a snapshot sink that knows the raft snapshot it writes.
type describedSink struct {
	raft.SnapshotSink
	index, term uint64
	digest      []byte
}

// RaftSnapshotMeta is what the FSM records in the snapshot (see fsm's raftSnapshotSink).
func (s *describedSink) RaftSnapshotMeta() (index, term uint64, configurationDigest []byte) {
	return s.index, s.term, s.digest
}

// configurationDigest is a digest of a raft configuration and the index it was made at.
func configurationDigest(c raft.Configuration, index uint64) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "concord raft configuration v1\n%d\n", index)
	for _, srv := range c.Servers {
		fmt.Fprintf(h, "%d %q %q\n", srv.Suffrage, srv.ID, srv.Address)
	}
	return h.Sum(nil)
}

// RestoredSnapshot is an FSM that reports what the snapshot it was restored from records of
// its raft snapshot (all zero when it records nothing).
type RestoredSnapshot interface {
	RestoredRaftSnapshot() (index, term uint64, configurationDigest []byte)
}

// snapshotDirMeta is what a snapshot directory's meta.json holds that Concord checks.
type snapshotDirMeta struct {
	ID                 string
	Index, Term        uint64
	Size               int64
	CRC                []byte
	Configuration      raft.Configuration
	ConfigurationIndex uint64
}

// restoreLatest restores the newest snapshot in the store into fsm, refusing to start rather
// than fall back on an older one as raft would (the log that followed the older one is gone):
// its metadata must parse and agree with its directory's name and with what the snapshot itself
// records, its state file must match its checksum and size, and its entries must give the log
// root it records. It returns the snapshot's index and term (0, 0 without a snapshot).
func restoreLatest(s *snapshotStore, fsm raft.FSM) (index, term uint64, err error) {
	dir, ok, err := newestSnapshotDir(s.dir)
	if err != nil || !ok {
		return 0, 0, err
	}
	metaPath, statePath := filepath.Join(s.dir, dir.name, "meta.json"), filepath.Join(s.dir, dir.name, "state.bin")
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return 0, 0, &CorruptError{File: metaPath, Err: err}
	}
	var meta snapshotDirMeta
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&meta); err != nil {
		return 0, 0, &CorruptError{File: metaPath, Err: err}
	}
	if meta.ID != dir.name || meta.Index != dir.index || meta.Term != dir.term {
		return 0, 0, &CorruptError{File: metaPath, Err: fmt.Errorf("it describes snapshot %q (index %d, term %d), its directory is %q", meta.ID, meta.Index, meta.Term, dir.name)}
	}
	// raft goes by its own listing of the snapshots (NoSnapshotRestoreOnStart): it must see
	// this one as the newest, or it would replay the log from another.
	listed, err := s.List()
	if err != nil {
		return 0, 0, err
	}
	if len(listed) == 0 || listed[0].ID != dir.name {
		return 0, 0, &CorruptError{File: metaPath, Err: errors.New("raft does not read it as the newest snapshot's metadata (a format version it does not support?)")}
	}
	if fi, err := os.Stat(statePath); err != nil {
		return 0, 0, &CorruptError{File: statePath, Err: err}
	} else if fi.Size() != meta.Size {
		return 0, 0, &CorruptError{File: statePath, Err: fmt.Errorf("%d bytes, but %s says %d: one of the two is damaged", fi.Size(), metaPath, meta.Size)}
	}
	// One pass: the state is restored while its CRC-64 is computed, and refused at the end if it
	// does not match (raft's own Open reads the file twice).
	f, err := os.Open(statePath)
	if err != nil {
		return 0, 0, &CorruptError{File: statePath, Err: err}
	}
	defer f.Close()
	sum := crc64.New(crc64.MakeTable(crc64.ECMA))
	tee := io.TeeReader(f, sum)
	restoreErr := fsm.Restore(io.NopCloser(tee))
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return 0, 0, &CorruptError{File: statePath, Err: err}
	}
	if !bytes.Equal(sum.Sum(nil), meta.CRC) {
		return 0, 0, &CorruptError{File: statePath, Err: fmt.Errorf("its CRC-64 is not the one %s records: one of the two is damaged", metaPath)}
	}
	if restoreErr != nil {
		return 0, 0, &CorruptError{File: statePath, Err: restoreErr}
	}
	if r, ok := fsm.(RestoredSnapshot); ok {
		idx, t, digest := r.RestoredRaftSnapshot()
		want := configurationDigest(meta.Configuration, meta.ConfigurationIndex)
		if idx != 0 && (idx != meta.Index || t != meta.Term || !bytes.Equal(digest, want)) {
			return 0, 0, &CorruptError{File: metaPath, Err: fmt.Errorf("it describes index %d, term %d and a raft configuration the snapshot does not record (it records index %d, term %d)", meta.Index, meta.Term, idx, t)}
		}
	}
	return meta.Index, meta.Term, nil
}

type snapshotDir struct {
	name        string
	term, index uint64
	msec        uint64
}

// newestSnapshotDir finds the newest complete snapshot directory by its name
// (term-index-milliseconds), whatever its metadata says: a damaged meta.json must not hide it.
func newestSnapshotDir(dir string) (snapshotDir, bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return snapshotDir{}, false, nil
	}
	if err != nil {
		return snapshotDir{}, false, err
	}
	var dirs []snapshotDir
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		parts := strings.Split(e.Name(), "-")
		var nums [3]uint64
		ok := len(parts) == 3
		for i := 0; ok && i < 3; i++ {
			nums[i], err = strconv.ParseUint(parts[i], 10, 64)
			ok = err == nil
		}
		if !ok {
			continue // not one of raft's snapshot directories (raft ignores it too)
		}
		dirs = append(dirs, snapshotDir{name: e.Name(), term: nums[0], index: nums[1], msec: nums[2]})
	}
	if len(dirs) == 0 {
		return snapshotDir{}, false, nil
	}
	sort.Slice(dirs, func(i, j int) bool {
		a, b := dirs[i], dirs[j]
		if a.term != b.term {
			return a.term < b.term
		}
		if a.index != b.index {
			return a.index < b.index
		}
		return a.msec < b.msec
	})
	return dirs[len(dirs)-1], true, nil
}
