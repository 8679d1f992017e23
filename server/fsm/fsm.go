// Package fsm is Concord's raft finite state machine: it applies committed commands to the state
// store, deterministically, and snapshots and restores the store.
//
// Apply never reads the clock or randomness and never depends on map order: the leader stamps
// times and ids into the command before appending it, so every node, and every replay of the
// log, reaches the same state.
package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	statev1 "concord/gen/concord/state/v1"
	"concord/server/fault"
	"concord/server/state"
	"concord/server/tracing"
	"concord/translog"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// MessageType identifies a command in the raft log. Values are append-only: a log written by
// one version is replayed by the next, so never renumber, reuse or remove one.
type MessageType uint8

const (
	// BootstrapRegistryType carries a statev1.BootstrapRegistry.
	BootstrapRegistryType MessageType = 1
	// ApplyRegistryChangeType carries a statev1.ApplyRegistryChange.
	ApplyRegistryChangeType MessageType = 2
	// SubmitNoticeType carries a statev1.SubmitNotice.
	SubmitNoticeType MessageType = 3
	// NoticeStatementType carries a statev1.NoticeStatement (endorsement, objection, withdrawal).
	NoticeStatementType MessageType = 4
	// ReportActionType carries a statev1.NoticeStatement whose payload is an ActionReport.
	ReportActionType MessageType = 5

	// NewestCommand is the newest command type this build applies; a node given a newer one
	// stops (see Halt) rather than skip it. Raise it with each new type.
	NewestCommand = ReportActionType
)

func (t MessageType) String() string {
	switch t {
	case BootstrapRegistryType:
		return "BootstrapRegistry"
	case ApplyRegistryChangeType:
		return "ApplyRegistryChange"
	case SubmitNoticeType:
		return "SubmitNotice"
	case NoticeStatementType:
		return "NoticeStatement"
	case ReportActionType:
		return "ReportAction"
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Encode returns a command for the raft log: the type byte, then msg's deterministic proto
// encoding.
func Encode(t MessageType, msg proto.Message) ([]byte, error) {
	if _, ok := commands[t]; !ok {
		return nil, fmt.Errorf("encode command: unknown message type %v", t)
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode %v command: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}

// command applies one command's body at raft index index and returns Apply's response.
type command func(f *FSM, body []byte, index uint64) any

var commands = map[MessageType]command{}

// registerCommand adds a command handler; it panics on a duplicate, a programming error caught
// at start-up. Handlers register themselves in the init function of their domain's file.
func registerCommand(t MessageType, fn command) {
	if _, dup := commands[t]; dup {
		panic(fmt.Sprintf("fsm: command %v registered twice", t))
	}
	commands[t] = fn
}

// FSM implements raft.FSM over a state store.
type FSM struct {
	logger  *slog.Logger
	state   atomic.Pointer[state.Store]
	tree    atomic.Pointer[translog.Tree]
	derived []Derived

	// applied is the raft index of the last command applied (or of the snapshot restored).
	// Raft's own applied index runs ahead of it: raft counts an entry as applied once it is
	// handed to the FSM, and counts entries the FSM never sees (no-ops, barriers).
	applied atomic.Uint64
	// applyMu is held while a command is applied and while Capture copies the state, so that a
	// capture's state, tree and applied index agree.
	applyMu sync.Mutex
	// appliedCh is closed, and cleared, when applied moves; WaitApplied waits on it.
	waitMu    sync.Mutex
	appliedCh chan struct{}

	// deferDerived: derived structures are rebuilt at EndDeferral, not told of each change
	// (guarded by applyMu).
	deferDerived bool

	// halt is set, once, when an entry cannot be applied (see Halt).
	halt atomic.Pointer[Halt]
	// OnHalt, if set before raft starts, is called once when the FSM halts.
	OnHalt func(*Halt)
	// OnApply, if set before raft starts, is told how long each command took to apply (for
	// metrics: the time never reaches the state).
	OnApply func(command string, took time.Duration)
	// Tracer, if set before raft starts, traces the apply of each entry that carries a sampled
	// trace context ("fsm.apply"), on every node, outside the replay at start.
	Tracer trace.Tracer
}

var _ raft.FSM = (*FSM)(nil)

// New returns an FSM over an empty store. A nil logger logs to slog.Default().
func New(logger *slog.Logger) (*FSM, error) {
	if logger == nil {
		logger = slog.Default()
	}
	st, err := state.New()
	if err != nil {
		return nil, err
	}
	f := &FSM{logger: logger}
	f.state.Store(st)
	f.tree.Store(translog.NewTree())
	return f, nil
}

// State returns the current store. A restore replaces it (and abandons the old one), so callers
// must not keep it across requests: call State again, or watch the store's AbandonCh.
func (f *FSM) State() *state.Store { return f.state.Load() }

// Tree returns the Merkle tree over the state's log entries. A restore replaces it.
func (f *FSM) Tree() *translog.Tree { return f.tree.Load() }

// syncTree appends to tree the leaf hashes of the entries st has and tree has not yet: the
// entries a command appended, or every entry after a restore.
func syncTree(tree *translog.Tree, st *state.Store) error {
	var err error
	walkErr := st.LogRows(uint64(tree.Size()), func(row *statev1.LogRow) bool {
		if int64(row.GetIndex()) != tree.Size() {
			err = fmt.Errorf("log entry %d follows a tree of %d leaves", row.GetIndex(), tree.Size())
			return false
		}
		_, err = tree.Append(row.GetEntry())
		return err == nil
	})
	return errors.Join(walkErr, err)
}

// errBug marks a command the FSM cannot apply because of a bug or a damaged entry (an unknown
// type, a body that does not decode), as opposed to a rule the command broke.
var errBug = errors.New("fsm: malformed command")

// Halt records why the FSM stopped applying the log: the first committed entry it could not
// apply deterministically. Skipping it would leave this node with a state, and a log tree, that
// no other node has; so no later entry is applied either (fail-stop).
type Halt struct {
	Index uint64
	Type  MessageType
	Err   error
}

func (h *Halt) Error() string {
	return fmt.Sprintf("the state machine stopped at raft index %d (%v): %v", h.Index, h.Type, h.Err)
}

// Apply applies a committed log entry and returns the command's response: a value, or an error
// value for a refused command (a fault error: the command broke a rule and changed nothing).
// An entry it cannot apply (malformed, of an unknown type, failing for any reason other than a
// rule, or panicking) halts the FSM: see Halt.
func (f *FSM) Apply(log *raft.Log) any {
	if h := f.halt.Load(); h != nil {
		return haltedResponse(h)
	}
	if len(log.Data) == 0 {
		return f.stop(log.Index, 0, errors.New("empty command"))
	}
	t := MessageType(log.Data[0])
	fn, ok := commands[t]
	if !ok {
		return f.stop(log.Index, t, fmt.Errorf("%w: unknown message type %d: was the entry written by a newer Concord? run the same version on every node", errBug, uint8(t)))
	}
	if f.OnApply != nil {
		start := time.Now()
		defer func() { f.OnApply(t.String(), time.Since(start)) }()
	}
	if f.Tracer != nil && len(log.Extensions) > 0 {
		if span := f.startSpan(log, t); span != nil {
			defer span.End()
		}
	}
	f.applyMu.Lock()
	resp, err := runCommand(fn, f, log.Data[1:], log.Index)
	if err == nil {
		if e, ok := resp.(error); ok && !isRefusal(e) {
			err = e
		}
	}
	if err == nil {
		if err = syncTree(f.Tree(), f.State()); err != nil {
			err = fmt.Errorf("transparency log tree out of step: %w", err)
		}
	}
	if err != nil {
		f.applyMu.Unlock()
		return f.stop(log.Index, t, err)
	}
	f.setApplied(log.Index)
	f.applyMu.Unlock()
	if err, ok := resp.(error); ok {
		f.logger.Debug("raft command refused", "index", log.Index, "type", t.String(), "error", err)
	}
	return resp
}

// startSpan starts the span of an entry's apply, a child of the trace the entry carries, or
// returns nil: no trace carried, or the node is replaying its log at start (old traces).
func (f *FSM) startSpan(log *raft.Log, t MessageType) trace.Span {
	ctx, ok := tracing.FromEntry(context.Background(), log.Extensions)
	if !ok {
		return nil
	}
	f.applyMu.Lock()
	replay := f.deferDerived
	f.applyMu.Unlock()
	if replay {
		return nil
	}
	_, span := f.Tracer.Start(ctx, "fsm.apply", trace.WithAttributes(
		attribute.Int64("raft.index", int64(log.Index)), attribute.String("concord.command", t.String())))
	return span
}

// runCommand runs a command handler, turning a panic into an error.
func runCommand(fn command, f *FSM, body []byte, index uint64) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(f, body, index), nil
}

// isRefusal reports whether err is a rule's refusal: deterministic, and it changed nothing.
func isRefusal(err error) bool {
	var fe *fault.Error
	return !errors.Is(err, errBug) && errors.As(err, &fe)
}

// stop halts the FSM at index. The entry and every later one stay unapplied; the node's
// integrity guard is told, so that it stops answering.
func (f *FSM) stop(index uint64, t MessageType, err error) error {
	h := &Halt{Index: index, Type: t, Err: err}
	if f.halt.CompareAndSwap(nil, h) {
		f.logger.Error("raft entry cannot be applied: the state machine stops here and applies nothing after it",
			"index", index, "type", t.String(), "error", err)
		if f.OnHalt != nil {
			f.OnHalt(h)
		}
	}
	return haltedResponse(f.halt.Load())
}

// haltedResponse is what Apply returns once halted: the write's caller is told to go elsewhere.
func haltedResponse(h *Halt) error {
	return fault.Unavailable("this node stopped applying its raft log at index %d (%v: %v): it answers nothing until repaired; retry on another node", h.Index, h.Type, h.Err)
}

// Halted returns why the FSM stopped applying the log, or nil while it applies.
func (f *FSM) Halted() *Halt { return f.halt.Load() }

// decode unmarshals a command body, reporting failure as a bug.
func decode(body []byte, msg proto.Message) error {
	if err := proto.Unmarshal(body, msg); err != nil {
		return fmt.Errorf("%w: decode %T: %w", errBug, msg, err)
	}
	return nil
}

// Snapshot returns a point-in-time copy of the store. raft calls Persist on it concurrently with
// further Apply calls, which the copy does not see.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if h := f.halt.Load(); h != nil {
		// Raft would label the copy with an index the state never reached.
		return nil, fmt.Errorf("no snapshot of a halted state machine: %w", h)
	}
	snap := f.State().Snapshot()
	snap.AppliedIndex = f.Applied()
	if err := describeLog(snap, f.Tree()); err != nil {
		return nil, err
	}
	return &snapshot{snap: snap}, nil
}

// describeLog records in snap the size and root of the log its state holds. Raft takes
// snapshots on the apply goroutine, between two commands, so the tree holds exactly the
// state's entries.
func describeLog(snap *state.Snapshot, tree *translog.Tree) error {
	snap.LogSize = uint64(tree.Size())
	if snap.LogSize == 0 {
		return nil
	}
	root, err := tree.Root(tree.Size())
	if err != nil {
		return fmt.Errorf("snapshot: log root: %w", err)
	}
	snap.LogRoot = root[:]
	return nil
}

// Restore replaces the store with one read from a snapshot, then abandons the old store so that
// watchers move to the new one. It refuses a snapshot whose entries do not give the log root it
// records: the state would not be the one the log proves.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := state.Restore(rc)
	if err != nil {
		return err
	}
	tree := translog.NewTree()
	if err := syncTree(tree, st); err != nil {
		return fmt.Errorf("restore: rebuild the log's tree: %w", err)
	}
	if err := checkLogRoot(st.RestoredMeta(), tree); err != nil {
		return err
	}
	f.applyMu.Lock()
	deferred := f.deferDerived
	f.applyMu.Unlock()
	if !deferred {
		for _, d := range f.derived {
			if err := d.Rebuild(st); err != nil {
				return fmt.Errorf("restore: rebuild derived state: %w", err)
			}
		}
	}
	f.applyMu.Lock()
	f.tree.Store(tree)
	old := f.state.Swap(st)
	f.setApplied(st.RestoredIndex())
	f.applyMu.Unlock()
	old.Abandon()
	return nil
}

// ErrRootMismatch is returned by Restore for a snapshot whose entries do not give the log
// root it records.
var ErrRootMismatch = errors.New("the snapshot's log entries do not give the log root it records")

// checkLogRoot compares the tree rebuilt from a snapshot's entries with the size and root the
// snapshot records (snapshots written before they were recorded carry neither).
func checkLogRoot(meta *statev1.Meta, tree *translog.Tree) error {
	if meta == nil || (meta.GetLogSize() == 0 && len(meta.GetLogRoot()) == 0) {
		return nil
	}
	if uint64(tree.Size()) != meta.GetLogSize() {
		return fmt.Errorf("restore: %w: it records %d entries, it holds %d", ErrRootMismatch, meta.GetLogSize(), tree.Size())
	}
	root, err := tree.Root(tree.Size())
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if !bytes.Equal(root[:], meta.GetLogRoot()) {
		return fmt.Errorf("restore: %w: root %x recorded, %x rebuilt from its %d entries", ErrRootMismatch, meta.GetLogRoot(), root[:], tree.Size())
	}
	return nil
}

// RestoredRaftSnapshot is what the snapshot the state was restored from records of its raft
// snapshot: index, term and configuration digest (zero when it records none).
func (f *FSM) RestoredRaftSnapshot() (index, term uint64, configurationDigest []byte) {
	m := f.State().RestoredMeta()
	return m.GetRaftIndex(), m.GetRaftTerm(), m.GetRaftConfigurationDigest()
}

// Applied returns the raft index of the last command the FSM applied, or of the snapshot it was
// restored from. Every node reports the same value at the same point of the log.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// setApplied records index as applied and wakes WaitApplied. Call it with applyMu held.
func (f *FSM) setApplied(index uint64) {
	f.applied.Store(index)
	f.waitMu.Lock()
	if f.appliedCh != nil {
		close(f.appliedCh)
		f.appliedCh = nil
	}
	f.waitMu.Unlock()
}

// WaitApplied returns once the FSM has applied index, or ctx's error.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		if f.Applied() >= index {
			return nil
		}
		f.waitMu.Lock()
		if f.appliedCh == nil {
			f.appliedCh = make(chan struct{})
		}
		ch := f.appliedCh
		f.waitMu.Unlock()
		// Checked again after taking the channel: an apply in between closed an earlier one.
		if f.Applied() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Capture is a consistent copy of the FSM at one point of the log: the state, its applied
// index, and the transparency log's size and root there.
type Capture struct {
	State   *state.Snapshot
	Applied uint64
	LogSize int64
	LogRoot translog.Hash
}

// Capture copies the state as it is now, between two commands. It is cheap (memdb snapshots
// share their trees) and may run beside raft's own snapshots.
func (f *FSM) Capture() (*Capture, error) {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	if h := f.halt.Load(); h != nil {
		return nil, fmt.Errorf("no copy of a halted state machine: %w", h)
	}
	snap := f.State().Snapshot()
	snap.AppliedIndex = f.Applied()
	if err := describeLog(snap, f.Tree()); err != nil {
		return nil, err
	}
	c := &Capture{State: snap, Applied: snap.AppliedIndex, LogSize: int64(snap.LogSize)}
	copy(c.LogRoot[:], snap.LogRoot)
	return c, nil
}

type snapshot struct {
	snap *state.Snapshot
}

// raftSnapshotSink is a sink that knows which raft snapshot it writes (raftnode's does), so
// that the snapshot records it and a restore at start can check the snapshot's metadata file.
type raftSnapshotSink interface {
	RaftSnapshotMeta() (index, term uint64, configurationDigest []byte)
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if d, ok := sink.(raftSnapshotSink); ok {
		s.snap.Raft.Index, s.snap.Raft.Term, s.snap.Raft.ConfigurationDigest = d.RaftSnapshotMeta()
	}
	if err := s.snap.Persist(sink); err != nil {
		return errors.Join(err, sink.Cancel())
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
