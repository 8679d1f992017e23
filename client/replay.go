package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"
	"concord/server/fsm"
	"concord/server/state"
	"concord/translog"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// ErrLogInvalid wraps every discrepancy a replay finds: an entry whose signature does not
// verify, bytes that do not hash to their leaf, a tree whose root is not the checkpoint's.
var ErrLogInvalid = errors.New("the log does not verify")

// Replayer rebuilds Concord's state from the transparency log, entry by entry, trusting nothing
// but the log key: it checks each entry's bytes against its leaf hash, each statement's
// signature against the signer's key as the registry stood at that point of the log (the
// registry is itself rebuilt from the log), and applies the statement with the server's own
// state machine, so the state it reaches is the one the hub derived. Entries the reader may not
// see arrive as leaf hashes: they count in the tree but change no state.
type Replayer struct {
	fsm   *fsm.FSM
	tree  *translog.Tree
	stats ReplayStats
}

// ReplayStats sums up what a replay saw.
type ReplayStats struct {
	Entries    int64
	Restricted int64 // leaf hashes only
	// NotApplied counts signed statements the local state machine refused: expected only when
	// they depend on restricted entries this reader cannot see.
	NotApplied  int64
	ByKind      map[string]int64
	BySigner    map[string]int64 // partner id → statements
	First, Last time.Time
}

// NewReplayer returns a replayer over an empty state. Derived structures (a match index) are
// attached to its state machine with Attach before the first entry.
func NewReplayer(logger *slog.Logger) (*Replayer, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f, err := fsm.New(logger)
	if err != nil {
		return nil, err
	}
	return &Replayer{fsm: f, tree: translog.NewTree(), stats: ReplayStats{ByKind: map[string]int64{}, BySigner: map[string]int64{}}}, nil
}

// Attach adds a structure derived from the notices (see fsm.Derived).
func (r *Replayer) Attach(d fsm.Derived) { r.fsm.Attach(d) }

// State is the state rebuilt so far.
func (r *Replayer) State() *state.Store { return r.fsm.State() }

// Tree is the Merkle tree of every entry replayed, restricted ones included.
func (r *Replayer) Tree() *translog.Tree { return r.tree }

// Stats is what the replay has seen.
func (r *Replayer) Stats() ReplayStats { return r.stats }

// Add replays entry index: entry is its bytes, or nil for an entry seen only as its leaf hash.
// leafHash, if given, must match the bytes. Entries must come in order, from 0.
func (r *Replayer) Add(index uint64, entry, leafHash []byte) error {
	return r.add(index, entry, leafHash, nil, nil)
}

func (r *Replayer) add(index uint64, entry, leafHash []byte, parsed *concordv1.LogEntry, checked *dsse.Checked) error {
	if int64(index) != r.tree.Size() {
		return fmt.Errorf("%w: entry %d comes after %d entries", ErrLogInvalid, index, r.tree.Size())
	}
	var leaf translog.Hash
	if entry == nil {
		if len(leafHash) != len(leaf) {
			return fmt.Errorf("%w: entry %d has neither bytes nor a 32-byte leaf hash", ErrLogInvalid, index)
		}
		copy(leaf[:], leafHash)
		r.stats.Restricted++
	} else {
		leaf = translog.LeafHash(entry)
		if leafHash != nil && !bytes.Equal(leaf[:], leafHash) {
			return fmt.Errorf("%w: entry %d: its bytes do not hash to its leaf hash (the stored entry was changed)", ErrLogInvalid, index)
		}
		if err := r.apply(index, entry, parsed, checked); err != nil {
			return err
		}
	}
	if _, err := r.tree.AppendLeafHash(leaf); err != nil {
		return err
	}
	r.stats.Entries++
	return nil
}

// apply replays one entry's bytes; e, if given, is b parsed already, and checked the
// signatures CheckSignatures verified ahead of time.
func (r *Replayer) apply(index uint64, b []byte, parsed *concordv1.LogEntry, checked *dsse.Checked) error {
	e := parsed
	if e == nil {
		e = &concordv1.LogEntry{}
		if err := proto.Unmarshal(b, e); err != nil {
			return fmt.Errorf("%w: entry %d does not parse: %v", ErrLogInvalid, index, err)
		}
	}
	if e.GetIndex() != index {
		return fmt.Errorf("%w: entry %d says it is entry %d", ErrLogInvalid, index, e.GetIndex())
	}
	at := e.GetAcceptedAt()
	if err := at.CheckValid(); err != nil {
		return fmt.Errorf("%w: entry %d: accepted_at: %v", ErrLogInvalid, index, err)
	}
	if r.stats.First.IsZero() {
		r.stats.First = at.AsTime()
	}
	if at.AsTime().Before(r.stats.Last) {
		return fmt.Errorf("%w: entry %d was accepted at %s, before entry %d (%s): entries are in commit order", ErrLogInvalid, index, at.AsTime().UTC().Format(time.RFC3339Nano), index-1, r.stats.Last.UTC().Format(time.RFC3339Nano))
	}
	r.stats.Last = at.AsTime()

	var t fsm.MessageType
	var cmd proto.Message
	switch body := e.GetBody().(type) {
	case *concordv1.LogEntry_Bootstrap:
		if index != 0 {
			return fmt.Errorf("%w: entry %d is a bootstrap registry, which only entry 0 may be", ErrLogInvalid, index)
		}
		r.stats.ByKind["bootstrap"]++
		t, cmd = fsm.BootstrapRegistryType, &statev1.BootstrapRegistry{
			Partners: body.Bootstrap.GetPartners(), Jurisdictions: body.Bootstrap.GetJurisdictions(),
			SigningKeys: body.Bootstrap.GetSigningKeys(), At: at,
		}
	case *concordv1.LogEntry_Statement:
		env := body.Statement
		keys, err := dsse.VerifyChecked(env, env.GetPayloadType(), r.State().SigningKey, at.AsTime(), checked)
		if err != nil {
			return fmt.Errorf("%w: entry %d: signature: %v", ErrLogInvalid, index, err)
		}
		if keys[0].GetKeyId() != e.GetSignerKeyId() {
			return fmt.Errorf("%w: entry %d is signed with key %s but says %s", ErrLogInvalid, index, keys[0].GetKeyId(), e.GetSignerKeyId())
		}
		r.stats.BySigner[keys[0].GetPartnerId()]++
		kind := kindOf(env.GetPayloadType())
		r.stats.ByKind[kind]++
		switch env.GetPayloadType() {
		case dsse.PayloadTypeRegistryChange:
			t, cmd = fsm.ApplyRegistryChangeType, &statev1.ApplyRegistryChange{Envelope: env, SignerKeyId: e.GetSignerKeyId(), At: at}
		case dsse.PayloadTypeNotice:
			t, cmd = fsm.SubmitNoticeType, &statev1.SubmitNotice{Envelope: env, SignerKeyId: e.GetSignerKeyId(), At: at}
		case dsse.PayloadTypeEndorsement, dsse.PayloadTypeObjection, dsse.PayloadTypeWithdrawal:
			t, cmd = fsm.NoticeStatementType, &statev1.NoticeStatement{Envelope: env, SignerKeyId: e.GetSignerKeyId(), At: at}
		case dsse.PayloadTypeActionReport:
			t, cmd = fsm.ReportActionType, &statev1.NoticeStatement{Envelope: env, SignerKeyId: e.GetSignerKeyId(), At: at}
		default:
			return fmt.Errorf("%w: entry %d holds a statement of unknown type %q: is this client older than the hub?", ErrLogInvalid, index, env.GetPayloadType())
		}
	default:
		return fmt.Errorf("%w: entry %d has no body", ErrLogInvalid, index)
	}
	data, err := fsm.Encode(t, cmd)
	if err != nil {
		return err
	}
	// Raft indexes only grow: the entry's position plus one serves.
	if resp, ok := r.fsm.Apply(&raft.Log{Index: index + 1, Data: data}).(error); ok {
		var f *fault.Error
		if !errors.As(resp, &f) {
			return fmt.Errorf("entry %d: %w", index, resp)
		}
		// The hub applied this statement to the state the log describes: replaying the whole
		// log, it must apply here too. A reader who was shown some entries as hashes only may
		// lack what it depends on (a restricted notice it supersedes, say).
		if r.stats.Restricted == 0 {
			return fmt.Errorf("%w: entry %d: the hub accepted it but the state rebuilt from the log refuses it: %v", ErrLogInvalid, index, resp)
		}
		r.stats.NotApplied++
	}
	return nil
}

// Leaf is one entry for AddBatch: its bytes, or only its leaf hash for a restricted entry.
type Leaf struct {
	Index    uint64
	Entry    []byte
	LeafHash []byte
}

// AddBatch replays entries in order, as Add does, while other cores parse the entries ahead and
// check their signatures against the keys registered when the batch starts; the replay then only
// judges each key as the registry stood at its entry. An entry signed with a key the batch itself
// registers is verified in the replay, as Add would.
func (r *Replayer) AddBatch(leaves []Leaf) error {
	const chunk = 16
	n := len(leaves)
	parsed := make([]*concordv1.LogEntry, n)
	checked := make([]*dsse.Checked, n)
	chunks := (n + chunk - 1) / chunk
	done := make([]chan struct{}, chunks)
	for i := range done {
		done[i] = make(chan struct{})
	}
	st := r.State()
	next := make(chan int, chunks)
	for c := range chunks {
		next <- c
	}
	close(next)
	workers := max(runtime.GOMAXPROCS(0)-1, 1) // the replay itself keeps one core busy
	for range workers {
		go func() {
			for c := range next {
				for i := c * chunk; i < min((c+1)*chunk, n); i++ {
					if leaves[i].Entry == nil {
						continue
					}
					e := &concordv1.LogEntry{}
					if proto.Unmarshal(leaves[i].Entry, e) != nil {
						continue // the replay reports it
					}
					parsed[i] = e
					if env := e.GetStatement(); env != nil {
						checked[i] = dsse.CheckSignatures(env, st.SigningKey)
					}
				}
				close(done[c])
			}
		}()
	}
	for c := range chunks {
		<-done[c]
		for i := c * chunk; i < min((c+1)*chunk, n); i++ {
			l := leaves[i]
			if err := r.add(l.Index, l.Entry, l.LeafHash, parsed[i], checked[i]); err != nil {
				// Let the workers finish their chunks; nobody reads them.
				return err
			}
		}
	}
	return nil
}

// kindOf is a statement kind from its payload type: "application/vnd.concord.notice.v1+protobuf"
// → "notice".
func kindOf(payloadType string) string {
	k := payloadType
	if i := len("application/vnd.concord."); len(k) > i {
		k = k[i:]
	}
	if j := bytes.IndexByte([]byte(k), '.'); j > 0 {
		k = k[:j]
	}
	return k
}

// CheckCheckpoint verifies that the replayed tree has cp's root at cp's size.
func (r *Replayer) CheckCheckpoint(cp translog.Checkpoint) error {
	if cp.Size > r.tree.Size() {
		return fmt.Errorf("%w: the checkpoint covers %d entries, only %d were replayed", ErrLogInvalid, cp.Size, r.tree.Size())
	}
	root, err := r.tree.Root(cp.Size)
	if err != nil {
		return err
	}
	if root != cp.Root {
		return fmt.Errorf("%w: the first %d entries do not have the root of the checkpoint signed by %s: the log was changed", ErrLogInvalid, cp.Size, cp.Origin)
	}
	return nil
}
