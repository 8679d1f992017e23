package fsm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"
	"concord/server/state"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testPublicKey(seed string) ed25519.PublicKey {
	s := make([]byte, ed25519.SeedSize)
	copy(s, seed)
	return ed25519.NewKeyFromSeed(s).Public().(ed25519.PublicKey)
}

func testKeyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

var adminKeyID = testKeyID(testPublicKey("admin"))

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newFSM(t *testing.T) *FSM {
	t.Helper()
	f, err := New(testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustEncode(t *testing.T, mt MessageType, msg proto.Message) []byte {
	t.Helper()
	b, err := Encode(mt, msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bootstrapCommand(t *testing.T) []byte {
	return mustEncode(t, BootstrapRegistryType, &statev1.BootstrapRegistry{
		Jurisdictions: []*concordv1.Jurisdiction{{Code: "FR", Name: "France"}},
		Partners: []*concordv1.Partner{
			{Id: "hub-ops", DisplayName: "Hub operations", Roles: []concordv1.Role{concordv1.Role_ROLE_ADMIN}},
			{Id: "fr-pharos", DisplayName: "PHAROS", Jurisdiction: "FR", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY}},
		},
		SigningKeys: []*concordv1.SigningKey{{PartnerId: "hub-ops", PublicKey: testPublicKey("admin")}},
		At:          timestamppb.New(t0),
	})
}

// changeCommand encodes a registry change by hub-ops, "signed" with its key at at (the FSM
// trusts the service to have verified the signature).
func changeCommand(t *testing.T, n int, change *concordv1.RegistryChange, at time.Time) []byte {
	t.Helper()
	change.ChangeId = fmt.Sprintf("01J%023d", n)
	change.Author = "hub-ops"
	payload, err := proto.Marshal(change)
	if err != nil {
		t.Fatal(err)
	}
	return mustEncode(t, ApplyRegistryChangeType, &statev1.ApplyRegistryChange{
		Envelope: &concordv1.Envelope{
			Payload:     payload,
			PayloadType: "application/vnd.concord.registry-change.v1+protobuf",
			Signatures:  []*concordv1.Signature{{Keyid: adminKeyID, Sig: bytes.Repeat([]byte{1}, 64)}},
		},
		SignerKeyId: adminKeyID,
		At:          timestamppb.New(at),
	})
}

// commandLog is a registry's history: a bootstrap, changes, and a refused change.
func commandLog(t *testing.T) [][]byte {
	return [][]byte{
		bootstrapCommand(t),
		changeCommand(t, 1, &concordv1.RegistryChange{Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: &concordv1.Jurisdiction{Code: "DE", Name: "Germany"}}}, t0.Add(time.Minute)),
		changeCommand(t, 2, &concordv1.RegistryChange{Change: &concordv1.RegistryChange_UpsertPartner{UpsertPartner: &concordv1.Partner{
			Id: "de-bka", DisplayName: "BKA", Jurisdiction: "DE", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY}}}}, t0.Add(2*time.Minute)),
		changeCommand(t, 3, &concordv1.RegistryChange{Change: &concordv1.RegistryChange_AddSigningKey{AddSigningKey: &concordv1.AddSigningKey{
			PartnerId: "de-bka", PublicKey: testPublicKey("bka")}}}, t0.Add(3*time.Minute)),
		// Refused: the only administrator key.
		changeCommand(t, 4, &concordv1.RegistryChange{Change: &concordv1.RegistryChange_RevokeSigningKey{RevokeSigningKey: &concordv1.RevokeSigningKey{
			PartnerId: "hub-ops", KeyId: adminKeyID, Reason: "test"}}}, t0.Add(4*time.Minute)),
	}
}

func applyAll(t *testing.T, f *FSM, cmds [][]byte) []any {
	t.Helper()
	var resps []any
	for i, c := range cmds {
		resps = append(resps, f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: c}))
	}
	return resps
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "test" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v (closed %v)", err, sink.closed)
	}
	return sink.Bytes()
}

// stateBytes is the state alone, without the applied index an FSM snapshot records.
func stateBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.State().Snapshot().Persist(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestApplySnapshotRestore(t *testing.T) {
	t.Parallel()
	f := newFSM(t)
	resps := applyAll(t, f, commandLog(t))
	if resps[0] != nil {
		t.Fatalf("bootstrap response %v, want nil", resps[0])
	}
	for i, r := range resps[1:4] {
		a, ok := r.(*statev1.AppliedChange)
		if !ok || a.GetIndex() != uint64(i+2) {
			t.Fatalf("change %d response %v, want an AppliedChange at index %d", i+1, r, i+2)
		}
	}
	// A refused command is an error value with its fault code; the FSM goes on.
	if err, ok := resps[4].(error); !ok || fault.CodeOf(err) != codes.FailedPrecondition {
		t.Fatalf("lock-out response %v, want a FailedPrecondition error", resps[4])
	}
	if p, _ := f.State().Partner(nil, "de-bka"); len(p.GetSigningKeys()) != 1 {
		t.Fatalf("de-bka = %v, want it with one key", p)
	}

	snap := persist(t, f)
	g := newFSM(t)
	old := g.State()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	select {
	case <-old.AbandonCh():
	default:
		t.Fatal("restore did not abandon the old store")
	}
	if g.State() == old {
		t.Fatal("restore did not replace the store")
	}
	if !bytes.Equal(persist(t, g), snap) {
		t.Fatal("the restored FSM's state differs")
	}
	if g.State().RegistryIndex() != 4 {
		t.Fatalf("restored registry index %d, want 4", g.State().RegistryIndex())
	}
	// The restored FSM goes on from there.
	next := changeCommand(t, 5, &concordv1.RegistryChange{Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: &concordv1.Jurisdiction{Code: "BE", Name: "Belgium"}}}, t0.Add(5*time.Minute))
	if r := g.Apply(&raft.Log{Index: 6, Data: next}); r.(*statev1.AppliedChange).GetIndex() != 6 {
		t.Fatalf("apply after restore: %v", r)
	}
}

func TestApplyIsDeterministic(t *testing.T) {
	t.Parallel()
	cmds := commandLog(t)
	a, b := newFSM(t), newFSM(t)
	applyAll(t, a, cmds)
	applyAll(t, b, cmds)
	if !bytes.Equal(persist(t, a), persist(t, b)) {
		t.Fatal("the same command log gave two different states")
	}
}

// TestApplyHaltsOnEntriesItCannotApply: an entry that does not decode, or whose type this
// version does not know, stops the state machine at that entry. Nothing changes, no later entry
// is applied (a valid one included), the halt is reported once, and no snapshot can be taken
// of the halted state.
func TestApplyHaltsOnEntriesItCannotApply(t *testing.T) {
	t.Parallel()
	cases := map[string][]byte{
		"empty":        nil,
		"unknown type": {200, 1, 2, 3},
		// What a newer build would write during a rolling upgrade: the next type, well formed.
		"a command newer than this build": append([]byte{byte(NewestCommand) + 1}, mustEncode(t, BootstrapRegistryType, &statev1.BootstrapRegistry{})[1:]...),
		"undecodable bootstrap":           {byte(BootstrapRegistryType), 0xff, 0xff},
		"undecodable change":              {byte(ApplyRegistryChangeType), 0xff},
		"undecodable change payload":      mustEncode(t, ApplyRegistryChangeType, &statev1.ApplyRegistryChange{Envelope: &concordv1.Envelope{Payload: []byte{0xff}}}),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFSM(t)
			var halts []*Halt
			f.OnHalt = func(h *Halt) { halts = append(halts, h) }
			before := stateBytes(t, f)
			r := f.Apply(&raft.Log{Index: 7, Data: data})
			if err, ok := r.(error); !ok || fault.CodeOf(err) != codes.Unavailable || !strings.Contains(err.Error(), "index 7") {
				t.Fatalf("Apply = %v, want an Unavailable error naming index 7", r)
			}
			if h := f.Halted(); h == nil || h.Index != 7 {
				t.Fatalf("Halted() = %v, want a halt at index 7", h)
			}
			// A valid command after the halt is not applied either.
			r = f.Apply(&raft.Log{Index: 8, Data: bootstrapCommand(t)})
			if err, ok := r.(error); !ok || fault.CodeOf(err) != codes.Unavailable {
				t.Fatalf("Apply after the halt = %v, want Unavailable", r)
			}
			if !bytes.Equal(stateBytes(t, f), before) || f.Applied() != 0 {
				t.Fatalf("the state changed after an entry that cannot be applied (applied index %d)", f.Applied())
			}
			if len(halts) != 1 || halts[0].Index != 7 {
				t.Fatalf("OnHalt called %d times (%v), want once at index 7", len(halts), halts)
			}
			if _, err := f.Snapshot(); err == nil {
				t.Fatal("a halted state machine gave raft a snapshot")
			}
		})
	}
}

// TestApplyRefusalsDoNotHalt: a command that breaks a rule is refused, deterministically, and
// the state machine goes on.
func TestApplyRefusalsDoNotHalt(t *testing.T) {
	t.Parallel()
	f := newFSM(t)
	resps := applyAll(t, f, commandLog(t))
	if err, ok := resps[len(resps)-1].(error); !ok || fault.CodeOf(err) == codes.Unavailable || fault.CodeOf(err) == codes.Internal {
		t.Fatalf("the refused change answered %v, want a rule's refusal", resps[len(resps)-1])
	}
	if f.Halted() != nil || f.Applied() != uint64(len(resps)) {
		t.Fatalf("halted %v, applied %d after a refusal", f.Halted(), f.Applied())
	}
}

func TestEncode(t *testing.T) {
	t.Parallel()
	b, err := Encode(BootstrapRegistryType, &statev1.BootstrapRegistry{At: timestamppb.New(t0)})
	if err != nil || b[0] != byte(BootstrapRegistryType) {
		t.Fatalf("Encode = %x, %v", b, err)
	}
	if _, err := Encode(MessageType(99), &statev1.BootstrapRegistry{}); err == nil {
		t.Fatal("Encode accepted an unknown message type")
	}
}

func TestRegisterCommandPanicsOnDuplicate(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("registering a command twice did not panic")
		}
	}()
	registerCommand(BootstrapRegistryType, (*FSM).applyBootstrapRegistry)
}

func TestRestoreRefusesGarbage(t *testing.T) {
	t.Parallel()
	f := newFSM(t)
	st := f.State()
	if err := f.Restore(io.NopCloser(strings.NewReader("garbage"))); err == nil {
		t.Fatal("restore accepted garbage")
	}
	if f.State() != st {
		t.Fatal("a failed restore replaced the store")
	}
}

func TestAppliedIndexFollowsCommandsAndSnapshots(t *testing.T) {
	t.Parallel()
	f := newFSM(t)
	cmds := commandLog(t)
	waited := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		waited <- f.WaitApplied(ctx, uint64(len(cmds)))
	}()
	applyAll(t, f, cmds)
	if err := <-waited; err != nil {
		t.Fatalf("WaitApplied(%d): %v", len(cmds), err)
	}
	// The last command was refused: it still counts as applied.
	if f.Applied() != uint64(len(cmds)) {
		t.Fatalf("Applied = %d, want %d", f.Applied(), len(cmds))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.WaitApplied(ctx, uint64(len(cmds))+1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied beyond the log: %v, want the context's deadline", err)
	}

	capture, err := f.Capture()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := f.Tree().Root(f.Tree().Size())
	if capture.Applied != f.Applied() || capture.LogSize != f.Tree().Size() || capture.LogRoot != root {
		t.Fatalf("capture at %d, log %d %x; want %d, %d %x", capture.Applied, capture.LogSize, capture.LogRoot, f.Applied(), f.Tree().Size(), root)
	}
	// A node restored from the snapshot reports the same applied index.
	r := newFSM(t)
	if err := r.Restore(io.NopCloser(bytes.NewReader(persist(t, f)))); err != nil {
		t.Fatal(err)
	}
	if r.Applied() != f.Applied() {
		t.Fatalf("restored Applied = %d, want %d", r.Applied(), f.Applied())
	}
}

// countingDerived counts what a derived structure is told.
type countingDerived struct{ accepted, rebuilt int }

func (d *countingDerived) NoticeAccepted(uint64, *concordv1.Notice) { d.accepted++ }
func (d *countingDerived) NoticeRetired(uint64, string)             {}
func (d *countingDerived) Rebuild(*state.Store) error               { d.rebuilt++; return nil }

// TestDeferredDerivedAreRebuiltOnce: while deferred, derived structures hear of nothing; at
// the end they are rebuilt once from the state, and hear of every change after.
func TestDeferredDerivedAreRebuiltOnce(t *testing.T) {
	t.Parallel()
	f := newFSM(t)
	d := &countingDerived{}
	f.Attach(d)
	f.DeferDerived()
	if err := f.Restore(io.NopCloser(bytes.NewReader(persist(t, newFSM(t))))); err != nil {
		t.Fatal(err)
	}
	if d.rebuilt != 0 {
		t.Fatalf("rebuilt %d times while deferred", d.rebuilt)
	}
	if err := f.EndDeferral(); err != nil || d.rebuilt != 1 {
		t.Fatalf("EndDeferral: %v, rebuilt %d times", err, d.rebuilt)
	}
	if err := f.EndDeferral(); err != nil || d.rebuilt != 1 {
		t.Fatalf("a second EndDeferral rebuilt again (%d): %v", d.rebuilt, err)
	}
}
