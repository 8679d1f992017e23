// Package cluster makes several Concord nodes one service over hashicorp/raft: the node port
// (raft and the nodes' internal NodeService over one mutual-TLS listener with node
// certificates), writes forwarded from followers to the leader at the raft-command level,
// linearizable reads, membership, and each member's status.
//
// A node without a raft address runs alone, exactly as before clustering existed: it is its own
// leader and nothing here adds a network hop.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	nodev1 "concord/gen/concord/node/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/version"
	"concord/server/fault"
	"concord/server/fsm"
	"concord/server/integrity"
	"concord/server/raftnode"
	"concord/server/tracing"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Defaults of a node's waits.
const (
	// DefaultLeaderWait bounds all that a call waits for inside the cluster: a leader to be
	// elected and reachable, its answer, this node applying what it committed. Past it the call
	// fails with Unavailable, never with DeadlineExceeded while the caller's deadline holds.
	DefaultLeaderWait = 5 * time.Second
	// retryInterval is the pause between two attempts to reach the leader.
	retryInterval = 50 * time.Millisecond
	// statusTimeout bounds each member's answer to ListMembers.
	statusTimeout = time.Second
)

// Config configures a node's clustering.
type Config struct {
	Raft *raftnode.Node
	FSM  *fsm.FSM
	// Port is the node port; nil for a node that runs alone (in-memory raft transport).
	Port   *Port
	Logger *slog.Logger
	// LeaderWait overrides DefaultLeaderWait.
	LeaderWait time.Duration
	// Integrity is the node's integrity guard, whose alarms Status reports (nil: none).
	Integrity *integrity.Guard
	// DataDir, if set, is where the node records the cluster's members (see MembersFile).
	DataDir string
	// TracerProvider, if set, traces the calls to other nodes (a forwarded write's trace goes
	// on to the leader) and a follower's wait for its own apply of a write.
	TracerProvider trace.TracerProvider
}

// Node is a Concord node's place in its cluster. It is the fsm.Applier the services write
// through, and the read barrier the transports call before answering a read.
type Node struct {
	raft       *raftnode.Node
	fsm        *fsm.FSM
	port       *Port
	peers      *peers
	logger     *slog.Logger
	leaderWait time.Duration
	integrity  *integrity.Guard
	tracer     trace.Tracer // nil: tracing off
	reads      *readBatcher
	// leaderReads shares this node's confirmations of its leadership, as leader, between the
	// reads of every node that arrive meanwhile.
	leaderReads *readBatcher
	// caughtUp is set once the node has caught up with the cluster after it started.
	caughtUp atomic.Bool
	// lastCheck is the latest comparison of this node's log with the other voters'.
	lastCheck atomic.Pointer[LogCheck]
	// confirmedAt is when (Unix nanoseconds) the latest read round that confirmed this node's
	// state current started, for Fresh.
	confirmedAt atomic.Int64
	dataDir     string
	recordMu    sync.Mutex
	recorded    []KnownMember // what MembersFile holds
}

var _ fsm.Applier = (*Node)(nil)

// New returns the node. With a Port, it starts nothing yet: serve the port's gRPC side with
// NodeService.
func New(cfg Config) *Node {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LeaderWait <= 0 {
		cfg.LeaderWait = DefaultLeaderWait
	}
	n := &Node{raft: cfg.Raft, fsm: cfg.FSM, port: cfg.Port, logger: cfg.Logger, leaderWait: cfg.LeaderWait, integrity: cfg.Integrity, dataDir: cfg.DataDir,
		tracer: tracing.Tracer(cfg.TracerProvider)}
	if cfg.Port != nil {
		n.peers = newPeers(cfg.Port, tracing.ClientHandler(cfg.TracerProvider))
	}
	n.reads = &readBatcher{fetch: n.readIndex, timeout: n.leaderWait + time.Second}
	n.leaderReads = &readBatcher{fetch: n.leaderReadIndex, timeout: n.leaderWait + time.Second}
	return n
}

// Close closes the connections to other nodes.
func (n *Node) Close() {
	if n.peers != nil {
		n.peers.close()
	}
}

// Standalone reports whether the node runs alone, without a raft address.
func (n *Node) Standalone() bool { return n.port == nil }

// ID is the node's id.
func (n *Node) ID() string { return n.raft.ID() }

// waitBoundKey carries the time by which a call's waits inside the cluster end (see Bound).
type waitBoundKey struct{}

// Bound starts the leader wait of one call: every wait of the call inside the cluster (finding
// and reaching the leader, its commit, applying it here, confirming a read) ends by then. The
// transports call it first, so that a write that catches up, commits and waits to apply is
// bounded once, not once per step.
func (n *Node) Bound(ctx context.Context) context.Context {
	if n.Standalone() {
		return ctx
	}
	if _, ok := ctx.Value(waitBoundKey{}).(time.Time); ok {
		return ctx
	}
	return context.WithValue(ctx, waitBoundKey{}, time.Now().Add(n.leaderWait))
}

// waitBound is when ctx's waits inside the cluster end: as Bound set it, or a leader wait from
// now for a call that did not go through a transport.
func (n *Node) waitBound(ctx context.Context) time.Time {
	if bound, ok := ctx.Value(waitBoundKey{}).(time.Time); ok {
		return bound
	}
	return time.Now().Add(n.leaderWait)
}

// Apply commits cmd and returns its index and the FSM's response, as raftnode.Node.Apply does,
// on any node: the leader appends it, a follower forwards it to the leader and then waits until
// its own state has applied it, so that what it answers (a receipt from its own log tree) and
// every later read on it include the write. Without a reachable leader, or without its answer,
// it fails with Unavailable once the leader wait has passed (see Bound).
func (n *Node) Apply(ctx context.Context, cmd []byte) (uint64, any, error) {
	if n.Standalone() {
		return n.raft.Apply(ctx, cmd)
	}
	// A node that may not write (no space, or its integrity in doubt) does not take writes to
	// forward either.
	if err := n.integrity.Writable(); err != nil {
		return 0, nil, err
	}
	var index uint64
	var response any
	ambiguous := false // an attempt got no answer: it may have committed
	noteAmbiguous := func(err error) error {
		code := fault.CodeOf(err)
		if st, ok := status.FromError(err); ok {
			code = st.Code()
		}
		if err != nil && (code == codes.Unavailable || code == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			ambiguous = true
		}
		return err
	}
	err := n.onLeader(ctx, "commit the write",
		func(ctx context.Context) error {
			var err error
			index, response, err = n.raft.Apply(ctx, cmd)
			return noteAmbiguous(err)
		},
		func(ctx context.Context, c nodev1.NodeServiceClient) error {
			resp, err := c.Apply(ctx, &nodev1.ApplyRequest{Command: cmd})
			if err != nil {
				return noteAmbiguous(err)
			}
			if response, err = decodeResponse(resp); err != nil {
				return err
			}
			index = resp.GetIndex()
			return nil
		})
	if err != nil && ambiguous && fault.CodeOf(err) == codes.ResourceExhausted {
		// Refused before it was appended, but an earlier attempt may have committed it: to the
		// caller, the outcome is unknown.
		err = fault.Unavailable("%v, after an earlier attempt that got no answer", err)
	}
	if err != nil {
		if fault.CodeOf(err) == codes.Unavailable {
			// An attempt may have reached the leader and be committed by now.
			return 0, nil, fault.Unavailable("%v; the write may still commit: re-sending the same request is safe (it returns the original result)", err)
		}
		return 0, nil, err
	}
	if n.tracer != nil && n.fsm.Applied() < index {
		var span trace.Span
		ctx, span = n.tracer.Start(ctx, "cluster.wait_applied", trace.WithAttributes(attribute.Int64("raft.index", int64(index))))
		defer span.End()
	}
	if err := n.waitApplied(ctx, index, true); err != nil {
		return 0, nil, err
	}
	return index, response, nil
}

// onLeader runs local if this node leads, or remote against the leader's NodeService, and tries
// again while the leader is unknown, unreachable or changing (an Unavailable error), until the
// call's leader wait ends (see Bound). The commands it carries are idempotent (a re-sent
// statement returns the original result), so an attempt that may have committed can be made
// again. Each attempt gets a context that ends with the leader wait: a leader that takes the
// call and never answers holds it no longer than one that cannot be reached.
func (n *Node) onLeader(ctx context.Context, what string, local func(context.Context) error, remote func(context.Context, nodev1.NodeServiceClient) error) error {
	bound := n.waitBound(ctx)
	attemptCtx, cancel := context.WithDeadline(ctx, bound)
	defer cancel()
	var last error
	for {
		var err error
		attempted := false
		if n.raft.IsLeader() {
			attempted = true
			err = local(attemptCtx)
		} else if addr, id := n.raft.Leader(); addr != "" && id != n.raft.ID() {
			attempted = true
			c, cerr := n.peers.client(addr)
			if cerr != nil {
				err = fault.Unavailable("raft leader %s at %s: %v", id, addr, cerr)
			} else {
				err = fromLeader(remote(attemptCtx, c), id, addr)
			}
		}
		if attempted && err == nil {
			return nil
		}
		// A context error while the caller's context is alive is the leader wait's: the leader
		// did not answer in time, which is as retriable as not finding it.
		waitErr := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
		if err != nil && !waitErr && fault.CodeOf(err) != codes.Unavailable {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if err != nil {
			last = err
		}
		if !time.Now().Before(bound) {
			return n.noLeader(what, last)
		}
		select {
		case <-attemptCtx.Done():
		case <-time.After(retryInterval):
		}
	}
}

// noLeader is the error of a request that found no leader within the leader wait.
func (n *Node) noLeader(what string, last error) error {
	if errors.Is(last, context.DeadlineExceeded) || errors.Is(last, context.Canceled) {
		return fault.Unavailable("cannot %s: the raft leader did not answer within %v; it may be overloaded or cut off from most of the others: retry, or call another node",
			what, n.leaderWait)
	}
	if last != nil {
		return fault.Unavailable("cannot %s: no reachable raft leader within %v (%v); the cluster may be electing one, or this node is cut off from most of the others: retry, or call another node",
			what, n.leaderWait, last)
	}
	return fault.Unavailable("cannot %s: no raft leader elected within %v; the cluster may have lost its quorum, or this node is cut off from most of the others: retry, or call another node",
		what, n.leaderWait)
}

// fromLeader turns the status of a call to the leader into a core error.
func fromLeader(err error, id, addr string) error {
	if err == nil {
		return nil
	}
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err // not from the call: a response that does not decode
	}
	switch st.Code() {
	case codes.Unavailable:
		return fault.Unavailable("raft leader %s at %s: %s", id, addr, st.Message())
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	case codes.Canceled:
		return context.Canceled
	case codes.Internal, codes.Unknown:
		return fmt.Errorf("raft leader %s at %s: %s", id, addr, st.Message())
	}
	return &fault.Error{Code: st.Code(), Msg: st.Message()}
}

// waitApplied waits until this node's state has applied index, until the call's leader wait
// ends. write says index is the caller's own write, which is then committed.
func (n *Node) waitApplied(ctx context.Context, index uint64, write bool) error {
	if n.fsm.Applied() >= index {
		return nil
	}
	wctx, cancel := context.WithDeadline(ctx, n.waitBound(ctx))
	defer cancel()
	if err := n.fsm.WaitApplied(wctx, index); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("wait for raft index %d to be applied here: %w", index, ctx.Err())
		}
		if write {
			return fault.Unavailable("the write is committed (raft index %d) but this node has not applied it within %v: it is lagging or cut off; re-sending the same request is safe (it returns the original result), on another node if this one stays behind", index, n.leaderWait)
		}
		return fault.Unavailable("raft index %d is committed but this node has not applied it within %v: it is lagging or cut off; retry, or call another node", index, n.leaderWait)
	}
	return nil
}

// Linearize returns once this node's state holds every write acknowledged anywhere in the cluster
// before the call: the leader confirms it still leads; a follower asks the leader how far the
// log goes and waits until it has applied that much. Concurrent calls share one round trip. A
// node that cannot reach a leader fails with Unavailable after the leader wait.
func (n *Node) Linearize(ctx context.Context) error {
	if n.Standalone() {
		// Alone, leading means being the only leader there can be.
		if !n.raft.IsLeader() {
			return fault.Unavailable("this node is not ready: it has not elected itself yet; retry shortly")
		}
		return n.raft.LeaderBarrier(ctx)
	}
	start := time.Now()
	index, err := n.reads.index(ctx, n.waitBound(ctx))
	if errors.Is(err, errNoRound) {
		return fault.Unavailable("cannot confirm this node has the latest state: no answer from a raft leader within %v; the cluster may be electing one, or this node is cut off from most of the others: retry, or call another node", n.leaderWait)
	}
	if err != nil {
		return err
	}
	if err := n.waitApplied(ctx, index, false); err != nil {
		return err
	}
	n.confirm(start)
	return nil
}

// confirm records that this node's state held, at start, every write acknowledged before.
func (n *Node) confirm(start time.Time) {
	t := start.UnixNano()
	for {
		old := n.confirmedAt.Load()
		if old >= t || n.confirmedAt.CompareAndSwap(old, t) {
			return
		}
	}
}

// CatchUp is Linearize before a write on a follower: the service checks a write against this
// node's state before forwarding it (a signing key just registered must be known). The leader's
// state is current for that purpose: the FSM checks every rule again when it applies the command.
func (n *Node) CatchUp(ctx context.Context) error {
	if n.Standalone() || n.raft.IsLeader() {
		return nil
	}
	return n.Linearize(ctx)
}

// readIndex is one round of Linearize: the applied index of the leader once it confirmed its
// leadership.
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	var index uint64
	err := n.onLeader(ctx, "confirm this node has the latest state",
		func(ctx context.Context) error {
			var err error
			index, err = n.sharedLeaderReadIndex(ctx)
			return err
		},
		func(ctx context.Context, c nodev1.NodeServiceClient) error {
			resp, err := c.ReadIndex(ctx, &nodev1.ReadIndexRequest{})
			if err != nil {
				return err
			}
			index = resp.GetIndex()
			return nil
		})
	return index, err
}

// sharedLeaderReadIndex is leaderReadIndex, one round shared by the reads that arrive while
// another is under way.
func (n *Node) sharedLeaderReadIndex(ctx context.Context) (uint64, error) {
	index, err := n.leaderReads.index(ctx, n.waitBound(ctx))
	if errors.Is(err, errNoRound) {
		return 0, fault.Unavailable("this node could not confirm it still leads within %v: retry; another node may lead now", n.leaderWait)
	}
	return index, err
}

// leaderReadIndex is the applied index of this node, the leader, once it has applied every entry
// of earlier terms and confirmed that it still leads.
func (n *Node) leaderReadIndex(ctx context.Context) (uint64, error) {
	if n.raft.SingleVoter() {
		// The only voter cannot be deposed: applying every entry of earlier terms is enough.
		if err := n.raft.LeaderBarrier(ctx); err != nil {
			return 0, err
		}
		n.confirm(time.Now())
		return n.fsm.Applied(), nil
	}
	if err := n.raft.LeaderBarrier(ctx); err != nil {
		return 0, err
	}
	start := time.Now()
	index := n.fsm.Applied()
	if err := n.confirmLeadership(ctx); err != nil {
		return 0, err
	}
	n.confirm(start)
	return index, nil
}

// confirmLeadership asks every other voter, now, which term it is in and whom it follows, and
// returns once a quorum (this node included) follows this node in its term. Raft's VerifyLeader
// is not used: it counts answers to heartbeats sent before it was asked, and a leader frozen (a
// SIGSTOP, a long pause), deposed meanwhile, reads such answers when it resumes and believes it
// still leads. An answer given after the read arrived cannot come from a voter that moved to a
// later term, and a quorum of them leaves no majority to a later leader before the read.
func (n *Node) confirmLeadership(ctx context.Context) error {
	term := n.raft.Term()
	servers, err := n.raft.Configuration()
	if err != nil {
		return err
	}
	voters, need := 0, 0
	var others []raft.Server
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(s.ID) != n.ID() {
			others = append(others, s)
		}
	}
	need = voters/2 + 1 - 1 // this node counts itself
	if need <= 0 {
		return nil
	}
	answers := make(chan bool, len(others))
	for _, s := range others {
		go func(addr string) {
			c, err := n.peers.client(addr)
			if err != nil {
				answers <- false
				return
			}
			resp, err := c.Status(ctx, &nodev1.StatusRequest{})
			m := resp.GetMember()
			answers <- err == nil && m.GetTerm() == term && m.GetLeaderId() == n.ID()
		}(string(s.Address))
	}
	yes, no := 0, 0
	for yes < need && no <= len(others)-need {
		select {
		case ok := <-answers:
			if ok {
				yes++
			} else {
				no++
			}
		case <-ctx.Done():
			return fmt.Errorf("confirm raft leadership: %w", ctx.Err())
		}
	}
	if yes < need || n.raft.Term() != term || !n.raft.IsLeader() {
		return fault.Unavailable("this node could not confirm with a quorum of the voters that it still leads (term %d): retry; another node may lead now", term)
	}
	return nil
}

// Fresh reports whether this node may answer a read that tolerates maxStaleness from its own
// state: it confirmed, within maxStaleness, that its state held every write acknowledged in the
// cluster (a read round with the leader; the health check makes one every second). A follower
// cut off from its leader, or a cluster that lost its quorum, keeps answering such reads for as
// long as the caller allows. Raft's own last contact is not enough: a leader that was frozen,
// deposed meanwhile, sets it when it steps down, and a vote sets it too.
func (n *Node) Fresh(maxStaleness time.Duration) bool {
	if n.Standalone() {
		return n.raft.IsLeader()
	}
	if !n.caughtUp.Load() || n.raft.State() == raft.Shutdown {
		return false
	}
	confirmed := n.confirmedAt.Load()
	return confirmed > 0 && time.Since(time.Unix(0, confirmed)) <= maxStaleness
}

// WaitCaughtUp returns once the node has caught up with the cluster (Linearize succeeded), or
// ctx's error. A restarted node calls it before it serves, so that it never answers from the
// state it had before it stopped.
func (n *Node) WaitCaughtUp(ctx context.Context) error {
	start := time.Now()
	nextLog := start.Add(10 * time.Second)
	for {
		if h := n.fsm.Halted(); h != nil {
			// It will never catch up: it starts, to show operators its HALTED alarm, and
			// answers nothing else.
			n.logger.Error("the state machine is halted: the node starts without catching up", "index", h.Index, "err", h.Err)
			return nil
		}
		tryCtx, cancel := context.WithTimeout(ctx, n.leaderWait+time.Second)
		err := n.Linearize(tryCtx)
		cancel()
		if err == nil {
			n.caughtUp.Store(true)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("catch up with the cluster: %w (last attempt: %v)", ctx.Err(), err)
		}
		if time.Now().After(nextLog) {
			n.logger.Warn("waiting to catch up with the cluster", "waited", time.Since(start).Round(time.Second), "err", err)
			nextLog = time.Now().Add(10 * time.Second)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// CaughtUp reports whether the node caught up with the cluster since it started.
func (n *Node) CaughtUp() bool { return n.Standalone() || n.caughtUp.Load() }

// Status is this node's own raft state, as ListMembers reports it.
func (n *Node) Status() *concordv1.Member {
	_, leader := n.raft.Leader()
	m := &concordv1.Member{
		NodeId:        n.raft.ID(),
		RaftAddress:   n.raft.Addr(),
		AppliedIndex:  n.fsm.Applied(),
		CommitIndex:   n.raft.CommitIndex(),
		LastLogIndex:  n.raft.LastIndex(),
		Term:          n.raft.Term(),
		LeaderId:      leader,
		Alarms:        alarmsProto(n.integrity),
		Version:       version.Get().Short(),
		NewestCommand: uint32(fsm.NewestCommand),
	}
	if c := n.LastLogCheck(); c != nil {
		m.LogCheckedAt = timestamppb.New(c.At)
	}
	switch n.raft.State() {
	case raft.Leader:
		m.Role = concordv1.MemberRole_MEMBER_ROLE_LEADER
		m.LastContact = durationpb.New(0)
	case raft.Follower:
		m.Role = concordv1.MemberRole_MEMBER_ROLE_FOLLOWER
		if last := n.raft.LastContact(); !last.IsZero() {
			m.LastContact = durationpb.New(time.Since(last))
		}
	case raft.Candidate:
		m.Role = concordv1.MemberRole_MEMBER_ROLE_CANDIDATE
	default:
		m.Role = concordv1.MemberRole_MEMBER_ROLE_SHUTDOWN
	}
	return m
}

// alarmsProto is the guard's alarms as ListMembers reports them.
func alarmsProto(g *integrity.Guard) []*concordv1.Alarm {
	if g == nil {
		return nil
	}
	var out []*concordv1.Alarm
	for _, a := range g.Alarms() {
		out = append(out, &concordv1.Alarm{Kind: concordv1.AlarmKind(a.Kind), RaftIndex: a.Index, Detail: a.Detail, Since: timestamppb.New(a.Since)})
	}
	return out
}

// Members lists the raft configuration's servers, each with the status it reports itself.
func (n *Node) Members(ctx context.Context) ([]*concordv1.Member, error) {
	servers, err := n.raft.Configuration()
	if err != nil {
		return nil, err
	}
	members := make([]*concordv1.Member, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		if string(s.ID) == n.raft.ID() {
			members[i] = n.Status()
		} else {
			wg.Add(1)
			go func() {
				defer wg.Done()
				members[i] = n.peerStatus(ctx, string(s.ID), string(s.Address))
			}()
		}
	}
	wg.Wait()
	for i, s := range servers {
		members[i].NodeId = string(s.ID)
		members[i].RaftAddress = string(s.Address)
		members[i].Voter = s.Suffrage == raft.Voter
	}
	return members, nil
}

func (n *Node) peerStatus(ctx context.Context, id, addr string) *concordv1.Member {
	unreachable := func(err error) *concordv1.Member {
		return &concordv1.Member{Role: concordv1.MemberRole_MEMBER_ROLE_UNREACHABLE, Error: err.Error()}
	}
	if n.peers == nil {
		return unreachable(errors.New("this node runs alone"))
	}
	c, err := n.peers.client(addr)
	if err != nil {
		return unreachable(err)
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	resp, err := c.Status(ctx, &nodev1.StatusRequest{})
	if err != nil {
		if st, ok := status.FromError(err); ok {
			err = errors.New(st.Message())
		}
		return unreachable(fmt.Errorf("node %s did not answer within %v: %w", id, statusTimeout, err))
	}
	return resp.GetMember()
}

// AddVoter adds node id at addr as a voter (or updates its address), through the leader.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if n.Standalone() {
		_, err := n.raft.AddVoter(ctx, id, addr)
		return err
	}
	return n.onLeader(ctx, "add node "+id,
		func(ctx context.Context) error {
			_, err := n.raft.AddVoter(ctx, id, addr)
			return err
		},
		func(ctx context.Context, c nodev1.NodeServiceClient) error {
			_, err := c.AddVoter(ctx, &nodev1.AddVoterRequest{NodeId: id, RaftAddress: addr})
			return err
		})
}

// RemoveServer removes node id from the configuration, through the leader. It refuses an
// unknown node and the last voter.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if n.Standalone() {
		_, err := n.raft.RemoveServer(ctx, id)
		return err
	}
	servers, err := n.raft.Configuration()
	if err != nil {
		return err
	}
	found, voters := false, 0
	for _, s := range servers {
		found = found || string(s.ID) == id
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	if !found {
		return fault.NotFound("node %q is not a member of the cluster (see ListMembers)", id)
	}
	if voters <= 1 {
		return fault.Precondition("node %q is the cluster's last voter: a cluster cannot remove its last member", id)
	}
	return n.onLeader(ctx, "remove node "+id,
		func(ctx context.Context) error {
			_, err := n.raft.RemoveServer(ctx, id)
			return err
		},
		func(ctx context.Context, c nodev1.NodeServiceClient) error {
			_, err := c.RemoveServer(ctx, &nodev1.RemoveServerRequest{NodeId: id})
			return err
		})
}

// isMember reports whether node id is in the configuration this node knows.
func (n *Node) isMember(id string) bool {
	servers, err := n.raft.Configuration()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

// removeIfMember removes node id from the configuration, through the leader, if it is in it.
func (n *Node) removeIfMember(ctx context.Context, id string) error {
	servers, err := n.raft.Configuration()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if string(s.ID) == id {
			return n.RemoveServer(ctx, id)
		}
	}
	return nil
}
