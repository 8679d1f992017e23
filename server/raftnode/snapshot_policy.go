package raftnode

import (
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Defaults of when a node snapshots, besides raft's own count of entries: a restart restores the
// latest snapshot and replays the log after it, so the log after it is kept short in bytes and in
// age, whatever the size of its entries.
const (
	// DefaultSnapshotBytes is how many bytes of log entries since the last snapshot trigger one.
	DefaultSnapshotBytes = 64 << 20
	// DefaultSnapshotAge is how old the last snapshot may grow while entries follow it.
	DefaultSnapshotAge = 10 * time.Minute
	// DefaultTrailingBytes is roughly how many bytes of entries a snapshot leaves behind for
	// followers that lag a little (raft counts them in entries: see trailingLogs).
	DefaultTrailingBytes = 64 << 20
	// snapshotCheckInterval is how often the node compares its log with these bounds.
	snapshotCheckInterval = time.Second
)

// logStats counts what the log store appends.
type logStats struct {
	bytes, entries atomic.Uint64
}

// snapshotPolicy snapshots the node when the log since its last snapshot passes SnapshotBytes,
// or once the last snapshot is SnapshotAge old and entries follow it, and sizes raft's trailing
// logs to about DefaultTrailingBytes.
func (n *Node) snapshotPolicy(bytesLimit uint64, age time.Duration, trailingBytes uint64, fixedTrailing bool, stop <-chan struct{}) {
	tick := time.NewTicker(snapshotCheckInterval)
	defer tick.Stop()
	stats := &n.log.stats
	var (
		seenIndex = n.lastSnapshotIndex()
		baseBytes = stats.bytes.Load()
		baseTime  = time.Now()
		lastWarn  time.Time
	)
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if idx := n.lastSnapshotIndex(); idx != seenIndex {
			// A snapshot was taken (by raft's own count, or restored from the leader).
			seenIndex, baseBytes, baseTime = idx, stats.bytes.Load(), time.Now()
		}
		appended := stats.bytes.Load()
		since := appended - baseBytes
		if since == 0 || (since < bytesLimit && time.Since(baseTime) < age) {
			continue
		}
		if !fixedTrailing {
			n.sizeTrailingLogs(trailingBytes)
		}
		err := n.raft.Snapshot().Error()
		switch {
		case err == nil, errors.Is(err, raft.ErrNothingNewToSnapshot):
			seenIndex, baseBytes, baseTime = n.lastSnapshotIndex(), appended, time.Now()
		case errors.Is(err, raft.ErrRaftShutdown):
			return
		default:
			if time.Since(lastWarn) > time.Minute {
				n.logger.Warn("raft snapshot failed; retrying", "log_bytes_since_snapshot", since, "err", err)
				lastWarn = time.Now()
			}
		}
	}
}

// sizeTrailingLogs sets raft's trailing logs so that they hold about budget bytes of entries,
// at the average size of the entries appended so far (between 64 and raft's default 10 240).
func (n *Node) sizeTrailingLogs(budget uint64) {
	entries := n.log.stats.entries.Load()
	if entries == 0 {
		return
	}
	avg := max(n.log.stats.bytes.Load()/entries, 1)
	want := min(max(budget/avg, 64), raft.DefaultConfig().TrailingLogs)
	rc := n.raft.ReloadableConfig()
	if rc.TrailingLogs == want {
		return
	}
	rc.TrailingLogs = want
	if err := n.raft.ReloadConfig(rc); err != nil {
		n.logger.Warn("cannot resize raft's trailing logs", "err", err)
	}
}

// lastSnapshotIndex is the index of the node's latest snapshot (0 without one).
func (n *Node) lastSnapshotIndex() uint64 {
	idx, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
	return idx
}
