package raftnode

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"
	"concord/server/fsm"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var adminPub = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)).Public().(ed25519.PublicKey)

func adminKeyID() string {
	sum := sha256.Sum256(adminPub)
	return hex.EncodeToString(sum[:16])
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testNode struct {
	*Node
	fsm *fsm.FSM
}

// open opens a node on dir and waits until it is ready.
func open(t *testing.T, dir string, cfg Config) testNode {
	t.Helper()
	f, err := fsm.New(testLogger())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.Logger = dir, testLogger()
	n, err := Open(cfg, f)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatalf("wait ready: %v", err)
	}
	if !n.IsLeader() {
		t.Fatal("ready but not the leader")
	}
	return testNode{Node: n, fsm: f}
}

func encode(t *testing.T, mt fsm.MessageType, msg proto.Message) []byte {
	t.Helper()
	b, err := fsm.Encode(mt, msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bootstrap(t *testing.T) []byte {
	return encode(t, fsm.BootstrapRegistryType, &statev1.BootstrapRegistry{
		Partners:    []*concordv1.Partner{{Id: "hub-ops", DisplayName: "Hub", Roles: []concordv1.Role{concordv1.Role_ROLE_ADMIN}}},
		SigningKeys: []*concordv1.SigningKey{{PartnerId: "hub-ops", PublicKey: adminPub}},
		At:          timestamppb.New(t0),
	})
}

// setJurisdiction is a registry change adding jurisdiction code.
func setJurisdiction(t *testing.T, n int, code string) []byte {
	payload, err := proto.Marshal(&concordv1.RegistryChange{
		ChangeId: fmt.Sprintf("01J%023d", n),
		Author:   "hub-ops",
		Change:   &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: &concordv1.Jurisdiction{Code: code, Name: code}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return encode(t, fsm.ApplyRegistryChangeType, &statev1.ApplyRegistryChange{
		Envelope:    &concordv1.Envelope{Payload: payload, Signatures: []*concordv1.Signature{{Keyid: adminKeyID(), Sig: make([]byte, 64)}}},
		SignerKeyId: adminKeyID(),
		At:          timestamppb.New(t0.Add(time.Duration(n) * time.Minute)),
	})
}

func mustApply(t *testing.T, n testNode, cmd []byte) (uint64, any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idx, resp, err := n.Apply(ctx, cmd)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if err, ok := resp.(error); ok {
		t.Fatalf("apply: the FSM refused the command: %v", err)
	}
	return idx, resp
}

func hasJurisdictions(t *testing.T, n testNode, codes ...string) {
	t.Helper()
	for _, c := range codes {
		if j, err := n.fsm.State().Jurisdiction(nil, c); err != nil || j == nil {
			t.Fatalf("jurisdiction %s missing after reopen (%v)", c, err)
		}
	}
}

func TestReopenRecoversState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	n := open(t, dir, Config{})
	mustApply(t, n, bootstrap(t))
	idx, resp := mustApply(t, n, setJurisdiction(t, 1, "FR"))
	if a, ok := resp.(*statev1.AppliedChange); !ok || a.GetIndex() != idx {
		t.Fatalf("response %v, want the AppliedChange at index %d", resp, idx)
	}
	if n.Stats()["state"] != "Leader" {
		t.Fatalf("stats %v", n.Stats())
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "raft", "wal")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("raft/wal: %v, %v; want a 0700 directory", fi, err)
	}

	// From the log alone.
	n = open(t, dir, Config{})
	hasJurisdictions(t, n, "FR")
	if !n.fsm.State().Bootstrapped() || n.fsm.State().RegistryIndex() != idx {
		t.Fatalf("registry index %d after replay, want %d", n.fsm.State().RegistryIndex(), idx)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatalf("snapshot with nothing new: %v", err)
	}
	idx2, _ := mustApply(t, n, setJurisdiction(t, 2, "DE"))
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot written")
	}

	// From the snapshot, restored when raft starts, then the log after it.
	f, _ := fsm.New(testLogger())
	raw, err := Open(Config{DataDir: dir, Logger: testLogger()}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Shutdown() })
	if got := f.State().RegistryIndex(); got != idx {
		t.Fatalf("registry index %d right after open, want %d from the snapshot", got, idx)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := raw.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	n = testNode{Node: raw, fsm: f}
	hasJurisdictions(t, n, "FR", "DE")
	if got := f.State().RegistryIndex(); got != idx2 {
		t.Fatalf("registry index %d once ready, want %d", got, idx2)
	}
}

func TestApplyRefusesOversizedCommand(t *testing.T) {
	t.Parallel()
	n := open(t, t.TempDir(), Config{NodeID: "node-x"})
	_, _, err := n.Apply(context.Background(), make([]byte, MaxCommandBytes+1))
	if !errors.Is(err, ErrCommandTooLarge) {
		t.Fatalf("oversized command: %v, want ErrCommandTooLarge", err)
	}
}

func TestApplyHonoursContext(t *testing.T) {
	t.Parallel()
	n := open(t, t.TempDir(), Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_, _, err := n.Apply(ctx, bootstrap(t))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled apply: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancelled apply took %v", d)
	}
	if err := n.WaitReady(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitReady with a cancelled context: %v", err)
	}
}

func TestApplyOnFollowerIsUnavailable(t *testing.T) {
	t.Parallel()
	f, _ := fsm.New(testLogger())
	n, err := Open(Config{DataDir: t.TempDir(), Logger: testLogger()}, f)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	if n.IsLeader() {
		t.Skip("the node elected itself before the test could check")
	}
	if _, _, err := n.Apply(context.Background(), bootstrap(t)); fault.CodeOf(err) != codes.Unavailable {
		t.Fatalf("apply before election: %v, want Unavailable", err)
	}
}

func TestApplyAfterShutdownIsUnavailable(t *testing.T) {
	t.Parallel()
	n := open(t, t.TempDir(), Config{})
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Apply(context.Background(), bootstrap(t)); fault.CodeOf(err) != codes.Unavailable {
		t.Fatalf("apply after shutdown: %v, want Unavailable", err)
	}
}

func TestOpenNeedsDataDir(t *testing.T) {
	t.Parallel()
	f, _ := fsm.New(testLogger())
	if _, err := Open(Config{}, f); err == nil {
		t.Fatal("Open without a data directory succeeded")
	}
}

// TestSnapshotsBoundTheLogInBytes: a node snapshots once the log after its last snapshot passes
// SnapshotBytes, long before raft's count of entries would, so that a restart replays little.
func TestSnapshotsBoundTheLogInBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := open(t, dir, Config{SnapshotBytes: 4 << 10})
	mustApply(t, n, bootstrap(t))
	var last uint64
	for i := range 40 {
		last, _ = mustApply(t, n, setJurisdiction(t, i+1, fmt.Sprintf("J%d", i)))
	}
	deadline := time.Now().Add(30 * time.Second)
	for n.lastSnapshotIndex() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot within 30 s after %d entries past the byte bound", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if snap := n.lastSnapshotIndex(); snap > last {
		t.Fatalf("snapshot index %d beyond the last entry %d", snap, last)
	}
	// Trailing logs are sized in bytes: a budget of a few entries keeps the floor of 64.
	n.sizeTrailingLogs(1 << 10)
	if got := n.raft.ReloadableConfig().TrailingLogs; got != 64 {
		t.Fatalf("trailing logs %d for a budget of 1 KiB, want the floor of 64", got)
	}
}

// tcpStream is a plain TCP stream layer on loopback, for a node on the network transport.
type tcpStream struct{ net.Listener }

func (s tcpStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// TestNoPipelinedReplication: the network transport replicates one append at a time. Raft's
// pipeline, at its default depth, can block a leader's replication goroutine for good when a
// follower refuses an append (see transportInFlight): the follower is never replicated to
// again and the leader's shutdown never returns.
func TestNoPipelinedReplication(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := open(t, t.TempDir(), Config{Stream: tcpStream{ln}})
	nt, ok := n.transport.(*raft.NetworkTransport)
	if !ok {
		t.Fatalf("transport %T, want raft's network transport", n.transport)
	}
	if p, err := nt.AppendEntriesPipeline("node-2", "127.0.0.1:1"); !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		if p != nil {
			p.Close()
		}
		t.Fatalf("AppendEntriesPipeline: %v, want ErrPipelineReplicationNotSupported", err)
	}
}
