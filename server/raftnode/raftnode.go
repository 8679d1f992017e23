// Package raftnode runs a node's raft: the log and stable store (hashicorp/raft-wal), the
// snapshot store, the transport, and the hashicorp/raft instance that feeds the FSM. A write is
// acknowledged only once raft has committed it and the FSM has applied it.
//
// A node is a single voter by default, with an in-memory transport: it elects itself at start.
// Several voters (HA) need a network transport, which is a field of Node so it can be swapped.
package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"concord/server/fault"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
)

// MaxCommandBytes is the largest command Apply takes. Larger raft entries slow replication and
// snapshots for every other writer; the service must keep its commands below it.
const MaxCommandBytes = 512 << 10

// ErrCommandTooLarge is returned by Apply for a command above MaxCommandBytes.
var ErrCommandTooLarge = errors.New("raft command too large")

// DefaultNodeID names a single node.
const DefaultNodeID = "node-1"

// Timeouts for a single voter, shorter than raft's defaults (1 s) so that a restarted node elects
// itself fast. There is no network between voters yet; revisit them with a network transport.
const (
	heartbeatTimeout   = 500 * time.Millisecond
	electionTimeout    = 500 * time.Millisecond
	leaderLeaseTimeout = 250 * time.Millisecond

	// snapshotsRetained is how many snapshots the snapshot store keeps.
	snapshotsRetained = 2
	// defaultEnqueueTimeout bounds how long Apply waits to hand a command to raft when the
	// context has no deadline.
	defaultEnqueueTimeout = 30 * time.Second
	// readyPollInterval is how often WaitReady checks whether the node leads.
	readyPollInterval = 20 * time.Millisecond
)

// Config configures a node.
type Config struct {
	// DataDir holds the node's raft data, in DataDir/raft/wal and DataDir/raft/snapshots.
	DataDir string
	// NodeID is the raft server id and, with the in-memory transport, its address. Default
	// DefaultNodeID.
	NodeID string
	// Logger receives raft's warnings and errors. Default slog.Default().
	Logger *slog.Logger
	// SnapshotThreshold is how many log entries since the last snapshot trigger a new one;
	// 0 keeps raft's default (8192).
	SnapshotThreshold uint64
	// SnapshotInterval is how often raft checks SnapshotThreshold; 0 keeps raft's default (2 min).
	SnapshotInterval time.Duration
}

// Node is a running raft node.
type Node struct {
	raft *raft.Raft
	// transport carries raft's RPCs between voters: in-memory for a single voter.
	transport raft.Transport
	wal       *wal.WAL
	snapshots *raft.FileSnapshotStore
	logger    *slog.Logger

	shutdownOnce sync.Once
	shutdownErr  error
}

// Open opens the node's stores in cfg.DataDir, bootstraps a one-voter cluster if they hold no
// state yet, and starts raft over fsm. On a restart raft restores the latest snapshot into fsm;
// the log entries after it are applied once the node has elected itself. Call WaitReady before
// serving reads.
func Open(cfg Config, fsm raft.FSM) (_ *Node, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("raftnode: no data directory configured")
	}
	if cfg.NodeID == "" {
		cfg.NodeID = DefaultNodeID
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	raftDir := filepath.Join(cfg.DataDir, "raft")
	walDir := filepath.Join(raftDir, "wal")
	// raft's snapshot store adds "snapshots" to the directory it is given.
	for _, dir := range []string{walDir, filepath.Join(raftDir, "snapshots")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("raftnode: create data directory: %w", err)
		}
	}
	hlog := newHCLogger(cfg.Logger, hclog.Warn)

	n := &Node{logger: cfg.Logger}
	defer func() {
		if err != nil {
			n.closeStores()
		}
	}()
	if n.wal, err = wal.Open(walDir, wal.WithLogger(hlog.Named("wal"))); err != nil {
		return nil, fmt.Errorf("raftnode: open the raft log in %s: %w", walDir, err)
	}
	if n.snapshots, err = raft.NewFileSnapshotStoreWithLogger(raftDir, snapshotsRetained, hlog.Named("snapshots")); err != nil {
		return nil, fmt.Errorf("raftnode: open the snapshot store in %s: %w", raftDir, err)
	}
	addr, transport := raft.NewInmemTransport(raft.ServerAddress(cfg.NodeID))
	n.transport = transport

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(cfg.NodeID)
	conf.HeartbeatTimeout = heartbeatTimeout
	conf.ElectionTimeout = electionTimeout
	conf.LeaderLeaseTimeout = leaderLeaseTimeout
	conf.Logger = hlog
	if cfg.SnapshotThreshold > 0 {
		conf.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		conf.SnapshotInterval = cfg.SnapshotInterval
	}
	if err := raft.ValidateConfig(conf); err != nil {
		return nil, fmt.Errorf("raftnode: %w", err)
	}

	existing, err := raft.HasExistingState(n.wal, n.wal, n.snapshots)
	if err != nil {
		return nil, fmt.Errorf("raftnode: read existing state: %w", err)
	}
	if !existing {
		voters := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: conf.LocalID, Address: addr}}}
		if err := raft.BootstrapCluster(conf, n.wal, n.wal, n.snapshots, n.transport, voters); err != nil {
			return nil, fmt.Errorf("raftnode: bootstrap a one-voter cluster: %w", err)
		}
	}
	if n.raft, err = raft.NewRaft(conf, fsm, n.wal, n.wal, n.snapshots, n.transport); err != nil {
		return nil, fmt.Errorf("raftnode: start raft: %w", err)
	}
	return n, nil
}

// WaitReady returns once this node is the leader and its FSM has applied every committed entry
// (a Barrier has returned), so that reads see every acknowledged write. It returns ctx's error
// if that takes too long.
func (n *Node) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	for {
		if n.raft.State() == raft.Leader {
			err := n.await(ctx, func() raft.Future { return n.raft.Barrier(enqueueTimeout(ctx)) })
			switch {
			case err == nil:
				return nil
			case ctx.Err() != nil:
				return fmt.Errorf("wait for the raft log to be applied: %w", ctx.Err())
			case errors.Is(err, raft.ErrRaftShutdown):
				return fmt.Errorf("wait for raft: %w", err)
			}
			// Leadership lost during the barrier: wait to lead again.
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for raft leadership: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Apply appends cmd to the raft log and returns its index and the FSM's response once raft has
// committed it and the FSM has applied it. The response may be an error value: the FSM refused
// the command. Apply fails with a fault.Unavailable error if this node is not the leader.
//
// If ctx ends first Apply returns ctx's error, wrapped; the command may still commit and be
// applied afterwards, so only idempotent commands are safe to retry.
func (n *Node) Apply(ctx context.Context, cmd []byte) (index uint64, response any, err error) {
	if len(cmd) > MaxCommandBytes {
		return 0, nil, fmt.Errorf("%w: %d bytes, the limit is %d: the service must split its writes", ErrCommandTooLarge, len(cmd), MaxCommandBytes)
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, fmt.Errorf("raft apply: %w", err)
	}
	if n.raft.State() != raft.Leader {
		return 0, nil, n.notLeader()
	}
	var future raft.ApplyFuture
	err = n.await(ctx, func() raft.Future {
		future = n.raft.Apply(cmd, enqueueTimeout(ctx))
		return future
	})
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, fmt.Errorf("raft apply: %w (the command may still commit)", ctx.Err())
		}
		return 0, nil, n.applyError(err)
	}
	return future.Index(), future.Response(), nil
}

// await runs start, which hands an operation to raft, and waits for its future, or for ctx. Both
// run in a goroutine: raft's timeouts bound only enqueueing, and enqueueing itself can block. The
// goroutine ends when raft resolves the future, at the latest on shutdown.
func (n *Node) await(ctx context.Context, start func() raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- start().Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func enqueueTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return defaultEnqueueTimeout
}

func (n *Node) notLeader() error {
	if addr, id := n.raft.LeaderWithID(); addr != "" {
		return fault.Unavailable("this node is not the raft leader: the leader is %s at %s; retry there", id, addr)
	}
	return fault.Unavailable("no raft leader is elected yet: retry shortly")
}

func (n *Node) applyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return n.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return fault.Unavailable("raft leadership was lost before the command committed: it may or may not be applied; retry the same request")
	case errors.Is(err, raft.ErrRaftShutdown):
		return fault.Unavailable("the node is shutting down: retry on another node or later")
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fault.Unavailable("raft did not take the command in time: the node is overloaded; retry later")
	}
	return fmt.Errorf("raft apply: %w", err)
}

// Snapshot takes a snapshot now and compacts the log. Having nothing new to snapshot is not an
// error.
func (n *Node) Snapshot() error {
	err := n.raft.Snapshot().Error()
	if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("raft snapshot: %w", err)
	}
	return nil
}

// IsLeader reports whether this node is the raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Stats returns raft's statistics (state, term, indexes, ...), for diagnostics.
func (n *Node) Stats() map[string]string { return n.raft.Stats() }

// Shutdown stops raft and closes the stores. It is safe to call more than once.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		var errs []error
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
		errs = append(errs, n.closeStores())
		n.shutdownErr = errors.Join(errs...)
	})
	return n.shutdownErr
}

func (n *Node) closeStores() error {
	var errs []error
	if c, ok := n.transport.(io.Closer); ok {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft transport: %w", err))
		}
	}
	if n.wal != nil {
		if err := n.wal.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft log: %w", err))
		}
	}
	return errors.Join(errs...)
}
