package raftnode

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"concord/internal/atomicfile"

	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/types"
)

// SpareSegmentFile is a raft log segment file kept allocated, and empty, beside the log: the next
// segment takes it by a rename, so that rotating the log never needs free space. A node refuses
// writes while it has no spare (see the data directory's space rules in server/datadir).
const SpareSegmentFile = "segment.spare"

// spareVFS is raft-wal's file system with a spare segment.
type spareVFS struct {
	*fs.FS
	dir  string
	size uint64

	mu sync.Mutex
}

var _ types.VFS = (*spareVFS)(nil)

// Create makes a new segment file: the spare, renamed, when there is one of the size asked for.
func (v *spareVFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	spare, target := filepath.Join(dir, SpareSegmentFile), filepath.Join(dir, name)
	if fi, err := os.Stat(spare); err == nil && uint64(fi.Size()) == size {
		if _, err := os.Lstat(target); err == nil {
			return nil, fmt.Errorf("create %s: %w", target, os.ErrExist)
		}
		if err := os.Rename(spare, target); err != nil {
			return nil, fmt.Errorf("create %s from the spare segment: %w", target, err)
		}
		f, err := os.OpenFile(target, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		return &newSegment{File: f, dir: dir}, nil
	}
	return v.FS.Create(dir, name, size)
}

// hasSpare reports whether the spare segment is there.
func (v *spareVFS) hasSpare() bool {
	fi, err := os.Stat(filepath.Join(v.dir, SpareSegmentFile))
	return err == nil && uint64(fi.Size()) == v.size
}

// makeSpare allocates the spare segment if it is missing: it needs a segment's size free.
func (v *spareVFS) makeSpare() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.hasSpare() {
		return nil
	}
	tmp := filepath.Join(v.dir, SpareSegmentFile+".tmp")
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = atomicfile.Allocate(f, int64(v.size))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(v.dir, SpareSegmentFile))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("allocate the spare raft log segment (%d bytes) in %s: %w", v.size, v.dir, err)
	}
	return syncDir(v.dir)
}

// newSegment is a segment file created from the spare: its directory entry is synced on its
// first sync, as raft-wal does for the files it creates.
type newSegment struct {
	*os.File
	dir    string
	synced atomic.Bool
}

func (f *newSegment) Sync() error {
	if err := f.File.Sync(); err != nil {
		return err
	}
	if !f.synced.Swap(true) {
		return syncDir(f.dir)
	}
	return nil
}
