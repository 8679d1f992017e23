package datadir

import (
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"concord/server/integrity"
)

// The space a node keeps free in its data directory's filesystem, so that a full disk never
// stops it in the middle of a write: its raft log appends into a preallocated segment and rotates
// into a preallocated spare (see raftnode.SpareSegmentFile), its metadata and checkpoints are
// rewritten into reserved space, and it refuses new writes, before the disk is full, while it
// could not also create the next spare segment and write its next snapshot.
const (
	// Margin is kept free on top of the rest, for the small files a node writes.
	Margin = 16 << 20
	// spaceCheckInterval is how often Run looks at the free space.
	spaceCheckInterval = time.Second
	// hysteresis is how much more than needed must be free before writes resume, so that a disk
	// at the edge does not flip writes on and off.
	hysteresis = 4 << 20
)

// Space watches the free space of a data directory's filesystem and refuses writes, with the
// integrity guard's NO_SPACE alarm, while it is short.
type Space struct {
	Dir string
	// SegmentBytes is the size of one raft log segment.
	SegmentBytes uint64
	// SnapshotBytes returns the size of the latest snapshot: the next one needs about as much.
	SnapshotBytes func() uint64
	// HasSpare and MakeSpare check for, and allocate, the spare log segment.
	HasSpare  func() bool
	MakeSpare func() error
	Guard     *integrity.Guard
	Logger    *slog.Logger

	mu       sync.Mutex
	lastWarn time.Time
}

// FreeBytes is the space available to this process in dir's filesystem.
func FreeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// Usage is the data directory's filesystem as monitoring sees it: the space available to this
// process, the filesystem's size, and the space the node keeps free (below it, writes stop).
func (s *Space) Usage() (free, size, reserved uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.Dir, &st); err != nil {
		return 0, 0, 0, fmt.Errorf("free space of %s: %w", s.Dir, err)
	}
	reserved, _ = s.need()
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), reserved, nil
}

// need is the space that must stay free for writes to be taken.
func (s *Space) need() (need uint64, why string) {
	snap := s.SnapshotBytes()
	need = Margin + snap
	why = fmt.Sprintf("%s for its next snapshot and %s for metadata and checkpoints", mib(snap), mib(Margin))
	if !s.HasSpare() {
		need += s.SegmentBytes
		why = fmt.Sprintf("%s for a spare raft log segment, ", mib(s.SegmentBytes)) + why
	}
	return need, why
}

// Admit is asked before each write of n bytes: it returns the guard's refusal (ResourceExhausted,
// naming the directory and the space missing) while the filesystem is short of space.
func (s *Space) Admit(n int) error {
	s.check(uint64(n))
	return s.Guard.Writable()
}

// check compares the free space with what writes of n bytes need, and raises or clears the
// NO_SPACE alarm.
func (s *Space) check(n uint64) {
	free, err := FreeBytes(s.Dir)
	if err != nil {
		s.warn("cannot read the data directory's free space", err)
		return
	}
	need, why := s.need()
	need += n
	switch {
	case free < need:
		s.Guard.Raise(integrity.Alarm{Kind: integrity.NoSpace, Detail: fmt.Sprintf(
			"the filesystem of the data directory %s has %s free; this node keeps %s free (%s) and needs %s more: free some space or grow the disk",
			s.Dir, mib(free), mib(need), why, mib(need-free))})
	case free >= need+hysteresis:
		s.Guard.Clear(integrity.NoSpace)
	}
}

// Run checks the free space every second until stop closes, allocating the spare log segment
// when it is missing and space allows, and lifting the NO_SPACE alarm once space is back.
func (s *Space) Run(stop <-chan struct{}) {
	tick := time.NewTicker(spaceCheckInterval)
	defer tick.Stop()
	for {
		if !s.HasSpare() {
			if free, err := FreeBytes(s.Dir); err == nil && free >= s.SegmentBytes+Margin {
				if err := s.MakeSpare(); err != nil {
					s.warn("cannot allocate the spare raft log segment", err)
				}
			}
		}
		s.check(0)
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

func (s *Space) warn(msg string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.lastWarn) > time.Minute {
		s.Logger.Warn(msg, "dir", s.Dir, "err", err)
		s.lastWarn = time.Now()
	}
}

// CheckStart refuses to start a node whose data directory's filesystem lacks the space its raft
// log needs: a log segment (unless one can be reused), a spare segment, and the margin.
func CheckStart(dir string, segmentBytes uint64, haveSegment, haveSpare bool) error {
	free, err := FreeBytes(dir)
	if err != nil {
		return err
	}
	need := uint64(Margin)
	why := fmt.Sprintf("%s for metadata and checkpoints", mib(Margin))
	if !haveSpare {
		need += segmentBytes
		why = fmt.Sprintf("%s for a spare raft log segment, ", mib(segmentBytes)) + why
	}
	if !haveSegment {
		need += segmentBytes
		why = fmt.Sprintf("%s for its first raft log segment, ", mib(segmentBytes)) + why
	}
	if free < need {
		return fmt.Errorf("data directory %s: its filesystem has %s free, and a node needs %s to start (%s): free some space or give it a larger disk",
			dir, mib(free), mib(need), why)
	}
	return nil
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
