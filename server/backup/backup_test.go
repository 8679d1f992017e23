package backup

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fsm"
	"concord/server/raftnode"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// testFSM is an FSM that applied a registry bootstrap at raft index 3 (a leader's no-op and
// configuration came first).
func testFSM(t *testing.T) *fsm.FSM {
	t.Helper()
	f, err := fsm.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := fsm.Encode(fsm.BootstrapRegistryType, &statev1.BootstrapRegistry{
		Jurisdictions: []*concordv1.Jurisdiction{{Code: "FR", Name: "France"}},
		Partners:      []*concordv1.Partner{{Id: "hub-ops", DisplayName: "Hub", Roles: []concordv1.Role{concordv1.Role_ROLE_ADMIN}}},
		SigningKeys:   []*concordv1.SigningKey{{PartnerId: "hub-ops", PublicKey: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)}},
		At:            timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp := f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: cmd}); resp != nil {
		t.Fatalf("bootstrap: %v", resp)
	}
	return f
}

func writeFile(t *testing.T, f *fsm.FSM) (string, *concordv1.SnapshotInfo) {
	t.Helper()
	c, err := f.Capture()
	if err != nil {
		t.Fatal(err)
	}
	info := Info(c, "node-2")
	var buf bytes.Buffer
	if _, err := Write(&buf, info, c.State); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.snap")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, info
}

func TestWriteOpenCheckRestore(t *testing.T) {
	t.Parallel()
	src := testFSM(t)
	path, info := writeFile(t, src)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(f.Info, info) || info.GetAppliedIndex() != 3 || info.GetLogSize() != 1 {
		t.Fatalf("info %v, want %v at index 3 with one log entry", f.Info, info)
	}
	m, err := f.Check()
	if err != nil {
		t.Fatal(err)
	}
	if m.State().RegistryIndex() != 3 {
		t.Fatalf("checked state at registry index %d", m.State().RegistryIndex())
	}

	// Restore seeds an empty directory: a node opened on it starts from the snapshot alone.
	dir := t.TempDir()
	if _, err := Restore(path, dir, "node-1", ""); err != nil {
		t.Fatal(err)
	}
	restored, err := fsm.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := raftnode.Open(raftnode.Config{DataDir: dir, NodeID: "node-1"}, restored)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	root, _ := restored.Tree().Root(1)
	if restored.Applied() != 3 || !bytes.Equal(root[:], info.GetLogRootHash()) {
		t.Fatalf("restored node at %d with root %x; want 3, %x", restored.Applied(), root, info.GetLogRootHash())
	}
	// The data directory now holds state: a second restore is refused.
	if _, err := Restore(path, dir, "node-1", ""); !errors.Is(err, raftnode.ErrExistingState) {
		t.Fatalf("restore over a node's data: %v, want ErrExistingState", err)
	}
}

func TestOpenRefusesDamagedFiles(t *testing.T) {
	t.Parallel()
	path, _ := writeFile(t, testFSM(t))
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) string {
		p := filepath.Join(t.TempDir(), "bad.snap")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	cases := map[string]struct {
		data []byte
		want string
	}{
		"empty":          {nil, "too short"},
		"truncated":      {good[:len(good)-1], "checksum"},
		"one bit off":    {flipped, "checksum"},
		"not a snapshot": {append(bytes.Repeat([]byte("x"), 40), make([]byte, 32)...), "checksum"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Open(write(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
