// Package raftnode runs a node's raft: the log and stable store (hashicorp/raft-wal), the
// snapshot store, the transport, and the hashicorp/raft instance that feeds the FSM. A write is
// acknowledged only once raft has committed it and the FSM has applied it.
//
// A node is a single voter by default, with an in-memory transport: it elects itself at start.
// Given a stream layer (mutual TLS between nodes, see server/cluster) it runs raft's network
// transport instead, and bootstraps a new cluster or waits for a leader to add it.
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
	"sync/atomic"
	"time"

	"concord/server/datadir"
	"concord/server/fault"
	"concord/server/tracing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// MaxCommandBytes is the largest command Apply takes. Larger raft entries slow replication and
// snapshots for every other writer; the service must keep its commands below it.
const MaxCommandBytes = 512 << 10

// ErrCommandTooLarge is returned by Apply for a command above MaxCommandBytes.
var ErrCommandTooLarge = errors.New("raft command too large")

// DefaultNodeID names a single node.
const DefaultNodeID = "node-1"

// Timeouts for a single voter, shorter than raft's defaults (1 s) so that a restarted node elects
// itself fast.
const (
	heartbeatTimeout   = 500 * time.Millisecond
	electionTimeout    = 500 * time.Millisecond
	leaderLeaseTimeout = 250 * time.Millisecond
)

// Timeouts between voters over the network: raft's defaults, which leave room for a busy machine
// (a follower waits 1 to 2 s without a heartbeat before it stands), except CommitTimeout: a
// follower learns that an entry committed on the leader's next message, and forwarded writes wait
// for it.
const (
	clusterHeartbeatTimeout   = time.Second
	clusterElectionTimeout    = time.Second
	clusterLeaderLeaseTimeout = 500 * time.Millisecond
	clusterCommitTimeout      = 10 * time.Millisecond
	// transportTimeout bounds one raft RPC's I/O (an InstallSnapshot is given more, in
	// proportion to its size).
	transportTimeout = 10 * time.Second
	transportPool    = 3
	// transportInFlight 1 turns raft's pipelined replication off: with the default of 2 its two
	// channels are unbuffered, and a follower answering an append with Success=false (a log that
	// diverged, a store that failed, a node repairing itself) can leave the leader's
	// replication goroutine blocked for good: that follower is never replicated to again and
	// the leader's raft never finishes shutting down. HashiCorp measured pipelining to bring
	// little with batched appends (hashicorp/raft#541); each append now waits for its answer.
	transportInFlight = 1
)

const (
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
	// TrailingLogs is how many log entries a snapshot leaves behind, for followers that lag a
	// little; a follower further behind gets the snapshot. 0 keeps raft's default (10 240).
	TrailingLogs uint64
	// SegmentBytes is the size of the raft log's segment files (default raft-wal's, 64 MiB).
	SegmentBytes int
	// SnapshotBytes and SnapshotAge bound the log kept after the latest snapshot, which a
	// restart replays: a snapshot is taken once the entries since it pass SnapshotBytes, or once
	// it is SnapshotAge old and entries follow it (defaults DefaultSnapshotBytes and
	// DefaultSnapshotAge).
	SnapshotBytes uint64
	SnapshotAge   time.Duration
	// OnCorrupt, if set, is told of a log entry found damaged while the node runs.
	OnCorrupt func(error)
	// Admit, if set, is asked before each command is appended (its size in bytes): an error
	// refuses the command (the data directory lacks space, say).
	Admit func(n int) error

	// Stream carries raft between nodes (mutual TLS, see server/cluster); nil runs the in-memory
	// transport of a single voter. Its address is this node's raft address.
	Stream raft.StreamLayer
	// TracerProvider, if set, traces each Apply ("raft.apply": append, commit and apply on the
	// leader) and carries a sampled trace to the state machine of every node in the entry.
	TracerProvider trace.TracerProvider

	// Join, with a Stream and no existing state, starts the node without bootstrapping: it waits
	// for a leader to add it to the cluster. Otherwise a node without state bootstraps a
	// one-voter cluster of itself.
	Join bool
	// Timeouts override the heartbeat and election timeouts (both) and the leader lease; zero
	// keeps the defaults of the transport in use. Tests shorten them.
	HeartbeatTimeout, LeaderLeaseTimeout time.Duration
}

// Node is a running raft node.
type Node struct {
	raft *raft.Raft
	id   string
	// transport carries raft's RPCs between voters: in-memory for a single voter.
	transport raft.Transport
	// standalone: the in-memory transport, so no other voter can ever exist.
	standalone bool
	// existing: the node had raft state when it opened (it is not new).
	existing  bool
	log       *logStore
	snapshots *snapshotStore
	logger    *slog.Logger

	// readyTerm is the term in which this node, as leader, last saw a barrier applied: from then
	// on its state holds every entry committed before its term (see LeaderBarrier).
	readyTerm atomic.Uint64
	barrierMu sync.Mutex

	// stopPolicy ends the snapshot policy (see snapshotPolicy).
	stopPolicy chan struct{}
	admit      func(int) error
	tracer     trace.Tracer // nil: tracing off

	// snapBytes caches the latest snapshot's size, snapBytesAt when it was read.
	snapMu      sync.Mutex
	snapBytes   uint64
	snapBytesAt time.Time
	// snapDir caches the latest snapshot directory, snapDirAt when it was read.
	snapDir   snapshotDir
	snapDirAt time.Time

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

	n := &Node{logger: cfg.Logger, id: cfg.NodeID, admit: cfg.Admit, tracer: tracing.Tracer(cfg.TracerProvider)}
	defer func() {
		if err != nil {
			n.closeStores()
		}
	}()
	if err := checkStartSpace(cfg.DataDir, walDir, cfg.SegmentBytes); err != nil {
		return nil, err
	}
	if n.log, err = openLogStore(walDir, hlog.Named("wal"), cfg.SegmentBytes); err != nil {
		return nil, err
	}
	if err := n.log.MakeSpareSegment(); err != nil {
		n.logger.Warn("no spare raft log segment yet: writes wait for one", "err", err)
	}
	if n.snapshots, err = newSnapshotStore(raftDir, hlog.Named("snapshots")); err != nil {
		return nil, fmt.Errorf("raftnode: open the snapshot store in %s: %w", raftDir, err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(cfg.NodeID)
	conf.Logger = hlog
	// The node restores its latest snapshot itself, checked (see restoreLatest): raft would fall
	// back on an older one, whose following entries the log no longer holds.
	conf.NoSnapshotRestoreOnStart = true
	// A removed node keeps running, outside the configuration, so that an administrator can add
	// it back without restarting it; it takes no part in elections meanwhile.
	conf.ShutdownOnRemove = false
	var addr raft.ServerAddress
	if cfg.Stream == nil {
		addr, n.transport = raft.NewInmemTransport(raft.ServerAddress(cfg.NodeID))
		n.standalone = true
		conf.HeartbeatTimeout = heartbeatTimeout
		conf.ElectionTimeout = electionTimeout
		conf.LeaderLeaseTimeout = leaderLeaseTimeout
	} else {
		n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:          cfg.Stream,
			MaxPool:         transportPool,
			MaxRPCsInFlight: transportInFlight,
			Timeout:         transportTimeout,
			Logger:          hlog.Named("transport"),
		})
		addr = n.transport.LocalAddr()
		conf.HeartbeatTimeout = clusterHeartbeatTimeout
		conf.ElectionTimeout = clusterElectionTimeout
		conf.LeaderLeaseTimeout = clusterLeaderLeaseTimeout
		conf.CommitTimeout = clusterCommitTimeout
	}
	if cfg.HeartbeatTimeout > 0 {
		conf.HeartbeatTimeout, conf.ElectionTimeout = cfg.HeartbeatTimeout, cfg.HeartbeatTimeout
	}
	if cfg.LeaderLeaseTimeout > 0 {
		conf.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	}
	if cfg.SnapshotThreshold > 0 {
		conf.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		conf.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		conf.TrailingLogs = cfg.TrailingLogs
	}
	if err := raft.ValidateConfig(conf); err != nil {
		return nil, fmt.Errorf("raftnode: %w", err)
	}

	existing, err := raft.HasExistingState(n.log, n.log, n.snapshots)
	if err != nil {
		return nil, fmt.Errorf("raftnode: read existing state: %w", err)
	}
	n.existing = existing
	if existing {
		if err := verifyAndRestore(n.log, n.snapshots, fsm); err != nil {
			return nil, err
		}
	}
	// Damage found from now on, while the node runs, raises the alarm (damage found at start is
	// Open's error).
	if cfg.OnCorrupt != nil {
		n.log.onCorrupt = func(ce *CorruptError) { cfg.OnCorrupt(ce) }
	}
	if !existing && (cfg.Stream == nil || !cfg.Join) {
		voters := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: conf.LocalID, Address: addr}}}
		if err := raft.BootstrapCluster(conf, n.log, n.log, n.snapshots, n.transport, voters); err != nil {
			return nil, fmt.Errorf("raftnode: bootstrap a one-voter cluster: %w", err)
		}
	}
	if n.raft, err = raft.NewRaft(conf, fsm, n.log, n.log, n.snapshots, n.transport); err != nil {
		return nil, fmt.Errorf("raftnode: start raft: %w", err)
	}
	if cfg.SnapshotBytes == 0 {
		cfg.SnapshotBytes = DefaultSnapshotBytes
	}
	if cfg.SnapshotAge == 0 {
		cfg.SnapshotAge = DefaultSnapshotAge
	}
	n.stopPolicy = make(chan struct{})
	go n.snapshotPolicy(cfg.SnapshotBytes, cfg.SnapshotAge, DefaultTrailingBytes, cfg.TrailingLogs > 0, n.stopPolicy)
	return n, nil
}

// verifyAndRestore restores the latest snapshot into fsm and verifies every entry of the log
// that is kept beside it (see restoreLatest and verifyLog).
func verifyAndRestore(log *logStore, snaps *snapshotStore, fsm raft.FSM) error {
	index, term, err := restoreLatest(snaps, fsm)
	if err != nil {
		return err
	}
	_, err = verifyLog(log, index, term)
	return err
}

// checkStartSpace refuses to open a node whose data directory's filesystem lacks the space its
// raft log needs (see datadir.CheckStart).
func checkStartSpace(dataDir, walDir string, segmentBytes int) error {
	if segmentBytes <= 0 {
		segmentBytes = wal.DefaultSegmentSize
	}
	segs, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
	_, spareErr := os.Stat(filepath.Join(walDir, SpareSegmentFile))
	return datadir.CheckStart(dataDir, uint64(segmentBytes), len(segs) > 0, spareErr == nil)
}

// HasSpareSegment reports whether the spare raft log segment is ready.
func (n *Node) HasSpareSegment() bool { return n.log.HasSpareSegment() }

// MakeSpareSegment allocates the spare raft log segment if it is missing.
func (n *Node) MakeSpareSegment() error { return n.log.MakeSpareSegment() }

// SegmentBytes is the size of the raft log's segment files.
func (n *Node) SegmentBytes() uint64 { return n.log.spare.size }

// LatestSnapshotBytes is the size of the node's latest snapshot (read at most once a second).
func (n *Node) LatestSnapshotBytes() uint64 {
	n.snapMu.Lock()
	defer n.snapMu.Unlock()
	if time.Since(n.snapBytesAt) > time.Second {
		if snaps, err := n.snapshots.List(); err == nil && len(snaps) > 0 {
			n.snapBytes = uint64(snaps[0].Size)
		}
		n.snapBytesAt = time.Now()
	}
	return n.snapBytes
}

// LatestSnapshot is the index of the node's latest snapshot and when it was taken (zero without
// one), from the snapshot directory's name: for monitoring, read at most once a second.
func (n *Node) LatestSnapshot() (index uint64, at time.Time) {
	n.snapMu.Lock()
	defer n.snapMu.Unlock()
	if time.Since(n.snapDirAt) > time.Second {
		if d, ok, err := newestSnapshotDir(n.snapshots.dir); err == nil && ok {
			n.snapDir = d
		}
		n.snapDirAt = time.Now()
	}
	if n.snapDir.msec == 0 {
		return n.snapDir.index, time.Time{}
	}
	return n.snapDir.index, time.UnixMilli(int64(n.snapDir.msec))
}

// AppliedIndex is the index of the last entry raft handed to the state machine.
func (n *Node) AppliedIndex() uint64 { return n.raft.AppliedIndex() }

// TornTail describes an incomplete last write of the raft log that was cleared when the node
// opened it, or nil. A signed checkpoint the log then falls short of points here.
func (n *Node) TornTail() error {
	if n.log.tornTail == nil {
		return nil
	}
	return n.log.tornTail
}

// WaitReady returns once this node is the leader and its FSM has applied every committed entry
// (a Barrier has returned), so that reads see every acknowledged write. It returns ctx's error
// if that takes too long.
func (n *Node) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait for raft: %w", err)
		}
		if n.raft.State() == raft.Leader {
			err := n.LeaderBarrier(ctx)
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
	if n.admit != nil {
		if err := n.admit(len(cmd)); err != nil {
			return 0, nil, err
		}
	}
	entry := raft.Log{Data: cmd}
	if n.tracer != nil {
		var span trace.Span
		ctx, span = n.tracer.Start(ctx, "raft.apply", trace.WithAttributes(attribute.Int("raft.command_bytes", len(cmd))))
		defer func() {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, "raft apply failed")
			} else {
				span.SetAttributes(attribute.Int64("raft.index", int64(index)))
			}
			span.End()
		}()
		// The apply of the entry, on every node, joins the trace.
		entry.Extensions = tracing.EntryExtensions(ctx)
	}
	var future raft.ApplyFuture
	err = n.await(ctx, func() raft.Future {
		future = n.raft.ApplyLog(entry, enqueueTimeout(ctx))
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
	case errors.Is(err, raft.ErrAbortedByRestore):
		return fault.Unavailable("the node restored a snapshot meanwhile: retry the same request")
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

// ID is this node's raft server id.
func (n *Node) ID() string { return n.id }

// Addr is this node's raft address (its node id with the in-memory transport).
func (n *Node) Addr() string { return string(n.transport.LocalAddr()) }

// Standalone reports whether the node runs the in-memory transport of a single voter: no other
// node can ever join it, so while it leads it is the only leader there can be.
func (n *Node) Standalone() bool { return n.standalone }

// Existing reports whether the node had raft state when it opened.
func (n *Node) Existing() bool { return n.existing }

// State is the node's raft state: Follower, Candidate, Leader or Shutdown.
func (n *Node) State() raft.RaftState { return n.raft.State() }

// Leader returns the leader's raft address and id as this node knows them, empty if it knows of
// none.
func (n *Node) Leader() (addr, id string) {
	a, i := n.raft.LeaderWithID()
	return string(a), string(i)
}

// LastContact is when this node, as a follower, last heard from the leader.
func (n *Node) LastContact() time.Time { return n.raft.LastContact() }

// CommitIndex is the highest index this node knows to be committed.
func (n *Node) CommitIndex() uint64 { return n.raft.CommitIndex() }

// LastIndex is the last index in this node's log (or snapshot).
func (n *Node) LastIndex() uint64 { return n.raft.LastIndex() }

// Term is the node's current raft term.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// Configuration returns the servers of the latest raft configuration this node knows.
func (n *Node) Configuration() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	return f.Configuration().Servers, nil
}

// SingleVoter reports whether this node is the only voter of its configuration.
func (n *Node) SingleVoter() bool {
	if n.standalone {
		return true
	}
	servers, err := n.Configuration()
	if err != nil {
		return false
	}
	voters := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			if string(s.ID) != n.id {
				return false
			}
			voters++
		}
	}
	return voters == 1
}

// VerifyLeader confirms that this node still leads: a quorum of voters answered it after the
// call. It fails with a fault.Unavailable error otherwise.
func (n *Node) VerifyLeader(ctx context.Context) error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	if err := n.await(ctx, func() raft.Future { return n.raft.VerifyLeader() }); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("verify raft leadership: %w", ctx.Err())
		}
		return n.applyError(err)
	}
	return nil
}

// LeaderBarrier makes sure that this node, as leader, has applied every entry committed before
// its term, by appending a barrier once per term and waiting for it. A new leader may hold
// committed entries its state has not applied yet; reads must not be answered before they are.
func (n *Node) LeaderBarrier(ctx context.Context) error {
	term := n.raft.CurrentTerm()
	if n.readyTerm.Load() == term && n.raft.State() == raft.Leader {
		return nil
	}
	n.barrierMu.Lock()
	defer n.barrierMu.Unlock()
	if n.readyTerm.Load() == term && n.raft.State() == raft.Leader {
		return nil
	}
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	if err := n.await(ctx, func() raft.Future { return n.raft.Barrier(enqueueTimeout(ctx)) }); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("raft barrier: %w", ctx.Err())
		}
		return n.applyError(err)
	}
	// The term read before the barrier: if leadership moved on meanwhile, the next read
	// sees another term and appends a barrier of its own.
	n.readyTerm.Store(term)
	return nil
}

// LeadershipTransfer hands leadership to the most up-to-date other voter and waits until it
// has it (or raft gives up). A node whose state is in doubt must not go on leading.
func (n *Node) LeadershipTransfer() error {
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("raft leadership transfer: %w", err)
	}
	return nil
}

// AddVoter adds node id at addr as a voter, or updates a member's address, and returns the
// index of the configuration change once it is committed. Only the leader can.
func (n *Node) AddVoter(ctx context.Context, id, addr string) (uint64, error) {
	if n.standalone {
		return 0, fault.Precondition("this node runs alone, without a raft address (--raft-addr): restart it with one to grow it into a cluster")
	}
	var future raft.IndexFuture
	err := n.await(ctx, func() raft.Future {
		future = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, enqueueTimeout(ctx))
		return future
	})
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("add voter %s: %w", id, ctx.Err())
		}
		return 0, n.applyError(err)
	}
	return future.Index(), nil
}

// RemoveServer removes node id from the configuration and returns the index of the change once
// it is committed. Only the leader can.
func (n *Node) RemoveServer(ctx context.Context, id string) (uint64, error) {
	if n.standalone {
		return 0, fault.Precondition("this node runs alone, without a raft address (--raft-addr): it has no other member to remove")
	}
	var future raft.IndexFuture
	err := n.await(ctx, func() raft.Future {
		future = n.raft.RemoveServer(raft.ServerID(id), 0, enqueueTimeout(ctx))
		return future
	})
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("remove server %s: %w", id, ctx.Err())
		}
		return 0, n.applyError(err)
	}
	return future.Index(), nil
}

// Stats returns raft's statistics (state, term, indexes, ...), for diagnostics.
func (n *Node) Stats() map[string]string { return n.raft.Stats() }

// Shutdown stops raft and closes the stores. It is safe to call more than once.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		if n.stopPolicy != nil {
			close(n.stopPolicy)
		}
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
	if n.log != nil {
		if err := n.log.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft log: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ErrExistingState is returned by Seed for a data directory that already holds raft state.
var ErrExistingState = errors.New("raftnode: the data directory already holds raft state")

// Seed prepares dataDir, which must hold no raft state, so that a node opened on it starts from
// the given FSM snapshot stream, taken at raft index index, as the only voter of a new cluster:
// node id at raft address addr (the node id for the in-memory transport). A node whose address
// differs when it starts updates it (see UpdateOwnAddress).
func Seed(dataDir, id, addr string, index uint64, fsmState io.Reader) error {
	if index == 0 {
		return errors.New("raftnode: seed: a snapshot at raft index 0")
	}
	raftDir := filepath.Join(dataDir, "raft")
	walDir := filepath.Join(raftDir, "wal")
	// Refuse a directory with any raft file before opening its log: a running node holds it.
	for _, dir := range []string{walDir, filepath.Join(raftDir, "snapshots")} {
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			return fmt.Errorf("%w: %s (restore into an empty directory)", ErrExistingState, dataDir)
		}
	}
	for _, dir := range []string{walDir, filepath.Join(raftDir, "snapshots")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("raftnode: create data directory: %w", err)
		}
	}
	logger := newHCLogger(slog.Default(), hclog.Warn)
	w, err := openLogStore(walDir, logger.Named("wal"), 0)
	if err != nil {
		return err
	}
	defer w.Close()
	snaps, err := newSnapshotStore(raftDir, logger.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("raftnode: open the snapshot store in %s: %w", raftDir, err)
	}
	existing, err := raft.HasExistingState(w, w, snaps)
	if err != nil {
		return fmt.Errorf("raftnode: read existing state: %w", err)
	}
	if existing {
		return fmt.Errorf("%w: %s (restore into an empty directory)", ErrExistingState, dataDir)
	}
	// The snapshot store encodes the peers of old protocol versions with a transport.
	_, trans := raft.NewInmemTransport(raft.ServerAddress(addr))
	defer trans.Close()
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)}}}
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, 1, conf, index, trans)
	if err != nil {
		return fmt.Errorf("raftnode: create the seed snapshot: %w", err)
	}
	if _, err := io.Copy(sink, fsmState); err != nil {
		return errors.Join(fmt.Errorf("raftnode: write the seed snapshot: %w", err), sink.Cancel())
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("raftnode: write the seed snapshot: %w", err)
	}
	return nil
}

// UpdateOwnAddress records this node's current raft address in the configuration when it leads
// and the configuration holds another one: a node restored from a backup, or one that ran alone
// and now has a raft address, starts with its old address.
func (n *Node) UpdateOwnAddress(ctx context.Context) error {
	if n.standalone || !n.IsLeader() {
		return nil
	}
	servers, err := n.Configuration()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if string(s.ID) == n.id && string(s.Address) != n.Addr() {
			n.logger.Info("raft address changed: updating the configuration", "node", n.id, "from", s.Address, "to", n.Addr())
			_, err := n.AddVoter(ctx, n.id, n.Addr())
			return err
		}
	}
	return nil
}

// ErrNoState is returned by Recover for a data directory without raft state.
var ErrNoState = errors.New("raftnode: the data directory holds no raft state")

// Recover rewrites, offline, the raft configuration kept in dataDir so that node id, at raft
// address addr, is its only voter, keeping every entry of its log: the way back for a cluster
// that lost a majority of its voters for good. raft replays the whole log into fsm (a fresh FSM,
// discarded afterwards) and snapshots it with the new configuration. Entries this node had
// received but did not know to be committed count as committed: they were on their way to being
// so. Run it with the node stopped; start the node on dataDir, then join new nodes to it.
func Recover(dataDir, id, addr string, fsm raft.FSM) error {
	raftDir := filepath.Join(dataDir, "raft")
	walDir := filepath.Join(raftDir, "wal")
	if _, err := os.Stat(walDir); err != nil {
		return fmt.Errorf("%w: %s", ErrNoState, dataDir)
	}
	logger := newHCLogger(slog.Default(), hclog.Warn)
	w, err := openLogStore(walDir, logger.Named("wal"), 0)
	if err != nil {
		return err
	}
	defer w.Close()
	snaps, err := newSnapshotStore(raftDir, logger.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("raftnode: open the snapshot store in %s: %w", raftDir, err)
	}
	existing, err := raft.HasExistingState(w, w, snaps)
	if err != nil {
		return fmt.Errorf("raftnode: read existing state: %w", err)
	}
	if !existing {
		return fmt.Errorf("%w: %s", ErrNoState, dataDir)
	}
	// Recover what verifies only: raft would replay a damaged log as it is.
	if err := verifyAndRestore(w, snaps, fsm); err != nil {
		return err
	}
	if addr == "" {
		addr = id
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(addr))
	defer trans.Close()
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(id)
	conf.Logger = logger
	configuration := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)}}}
	if err := raft.RecoverCluster(conf, fsm, w, w, snaps, trans, configuration); err != nil {
		return fmt.Errorf("raftnode: recover: %w", err)
	}
	return nil
}
