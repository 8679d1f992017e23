package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/tlogwitness"
	"concord/server"
	"concord/server/servertest"
	"concord/server/transparency"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/crypto/ssh"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// cosignedBySpec checks, with nothing but C2SP tlog-cosignature, that the signed checkpoint
// note carries a valid cosignature by the witness verifier key vkey: the key is of type 0x04 and
// its hash is SHA-256(name || 0x0A || 0x04 || key)[:4]; the signature line names the key, starts
// with that hash, then an 8-byte timestamp and an Ed25519 signature of "cosignature/v1\ntime
// <timestamp>\n" followed by the checkpoint's body. Written from the specification, apart from
// the code that produced the cosignature, as any witness network's client would check it.
func cosignedBySpec(signed, vkey string) error {
	name, rest, _ := strings.Cut(vkey, "+")
	hash16, key64, _ := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != 0x04 {
		return fmt.Errorf("witness key %q is not an Ed25519 cosignature/v1 key (type 0x04)", vkey)
	}
	sum := sha256.Sum256(append([]byte(name+"\n"), key...))
	if want := fmt.Sprintf("%08x", binary.BigEndian.Uint32(sum[:4])); hash16 != want {
		return fmt.Errorf("witness key hash %s, want %s", hash16, want)
	}
	body, sigs, ok := strings.Cut(signed, "\n\n")
	if !ok {
		return errors.New("not a signed note")
	}
	for _, line := range strings.Split(strings.TrimSpace(sigs), "\n") {
		who, sig64, _ := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		sig, err := base64.StdEncoding.DecodeString(sig64)
		if who != name || err != nil || len(sig) != 4+8+ed25519.SignatureSize || !bytes.Equal(sig[:4], sum[:4]) {
			continue
		}
		msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s\n", binary.BigEndian.Uint64(sig[4:12]), body)
		if ed25519.Verify(key[1:], []byte(msg), sig[12:]) {
			return nil
		}
		return errors.New("the witness's cosignature line does not verify")
	}
	return fmt.Errorf("no cosignature by %s in\n%s", name, signed)
}

// registerWitness lists a witness partner with its key and submission prefix in n's registry.
func registerWitness(t *testing.T, n *servertest.Node, id, vkey, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := n.Client(t, "hub-ops").UpdateRegistry(ctx, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_UpsertPartner{
		UpsertPartner: &concordv1.Partner{Id: id, DisplayName: "Witness " + id, Roles: []concordv1.Role{concordv1.Role_ROLE_AUDITOR},
			WitnessKey: vkey, WitnessUrl: url}}})
	if err != nil {
		t.Fatalf("register the witness %s: %v", id, err)
	}
}

// waitPush waits until the node's last push to witness satisfies ok, round by round.
func waitPush(t *testing.T, n *servertest.Node, witness string, ok func(transparency.PushStatus) bool) transparency.PushStatus {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		status, next := server.WitnessPushes(n.Server)
		if st, found := status[witness]; found && ok(st) {
			return st
		}
		select {
		case <-next:
		case <-deadline:
			t.Fatalf("pushes to %s: %+v", witness, status[witness])
		}
	}
}

// submitWitnessed submits three notices through n, one after the other, and waits after each
// for the witness to have cosigned a checkpoint that holds it.
func submitWitnessed(t *testing.T, n *servertest.Node, witness, prefix string) {
	t.Helper()
	for i := range 3 {
		if _, err := n.Client(t, "fr-pharos").SubmitNotice(context.Background(), glorificationNotice(fmt.Sprintf("%s %d", prefix, i))); err != nil {
			t.Fatal(err)
		}
		size := treeSize(t, n)
		waitPush(t, n, witness, func(st transparency.PushStatus) bool {
			return st.Result == transparency.PushCosigned && st.Size >= size
		})
	}
}

// newWitnessKey is a fresh witness key pair: the signer key, and the verifier key as the
// registry holds it (cosignature/v1, type 0x04).
func newWitnessKey(t *testing.T, name string) (skey, vkey string) {
	t.Helper()
	skey, v, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	if vkey, err = formats.VKeyToCosignatureV1(v); err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

// TestHubPushesCheckpointsToWitnesses: a witness registered with an endpoint gets each new
// checkpoint from the hub with its consistency proof (C2SP tlog-witness), and the hub serves
// the cosignature with the checkpoint: a generic verifier and a client requiring one witness
// accept it. A second hub signing another history under the same log key is refused by the
// witness, and reports the split view.
func TestHubPushesCheckpointsToWitnesses(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	logVKey, err := os.ReadFile(n.PKI.LogPub())
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey := newWitnessKey(t, "witness.example/w1")
	w, err := tlogwitness.New(filepath.Join(t.TempDir(), "witness"), skey, []string{strings.TrimSpace(string(logVKey))}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	if w.VerifierKey() != vkey {
		t.Fatalf("the witness's verifier key %s, want %s", w.VerifierKey(), vkey)
	}
	registerWitness(t, n, "ext-witness", vkey, srv.URL)
	submitWitnessed(t, n, "ext-witness", "witnessed")
	resp, err := n.Client(t, "observatory").Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{MinCosignatures: 1})
	if err != nil {
		t.Fatal(err)
	}
	signed := resp.GetCheckpoint().GetNote()
	if err := cosignedBySpec(signed, vkey); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Config{Addr: n.GRPCAddr(), TLS: n.PartnerTLS("observatory"), LogKeyFile: n.PKI.LogPub(),
		Witnesses: []string{vkey}, WitnessQuorum: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cp, err := c.WitnessedCheckpoint(ctx)
	if err != nil {
		t.Fatalf("a client requiring the witness: %v", err)
	}
	if held, ok := w.Latest(cp.Origin); !ok || held.Size < cp.Size {
		t.Fatalf("the witness holds %+v, the hub served a cosigned checkpoint of %d", held, cp.Size)
	}

	before, _ := w.Latest(cp.Origin)
	st := pushAnotherHistory(t, n, "ext-witness", vkey, srv.URL, int(before.Size))
	if st.WitnessSize != before.Size {
		t.Fatalf("the other history's push: %+v, want a split view against the witness's %d entries", st, before.Size)
	}
	if after, _ := w.Latest(cp.Origin); after != before {
		t.Fatalf("the witness moved from %+v to %+v on another history", before, after)
	}
}

// pushAnotherHistory starts a second hub that signs with n's log key but holds its own history,
// longer than witnessed (a forked node, or a stolen key), registers the witness there too, and
// waits for its push to be refused: the second hub must report a split view.
func pushAnotherHistory(t *testing.T, n *servertest.Node, witness, vkey, url string, witnessed int) transparency.PushStatus {
	t.Helper()
	other := servertest.Prepare(t, servertest.Options{})
	for _, f := range []string{n.PKI.LogKey(), n.PKI.LogPub()} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(other.PKI.Dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	if other.Server, err = server.Start(ctx, other.Config); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Server.Shutdown(context.Background()) })
	for i := 0; treeSize(t, other) <= int64(witnessed)+1; i++ {
		if _, err := other.Client(t, "fr-pharos").SubmitNotice(ctx, glorificationNotice(fmt.Sprintf("another history %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	registerWitness(t, other, witness, vkey, url)
	st := waitPush(t, other, witness, func(st transparency.PushStatus) bool { return st.Result != transparency.PushFailed })
	if st.Result != transparency.PushSplitView {
		t.Fatalf("the other history's push: %+v, want a split view", st)
	}
	return st
}

// treeSize is the size of the node's log.
func treeSize(t *testing.T, n *servertest.Node) int64 {
	t.Helper()
	_, size, _, err := server.Fingerprint(n.Server)
	if err != nil {
		t.Fatal(err)
	}
	return size
}

// startLitewitness runs a stock litewitness (filippo.io/torchwood) on loopback, trusting the
// log key logVKey, with a fresh Ed25519 key held by its own ssh-agent, as its README sets it
// up. It returns the witness's submission URL and its verifier key.
func startLitewitness(t *testing.T, logVKey string) (url, vkey string) {
	t.Helper()
	litewitness, witnessctl := tool(t, "litewitness"), tool(t, "witnessctl")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "witness.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	agentCmd := exec.CommandContext(ctx, "ssh-agent", "-a", sock, "-D")
	if err := agentCmd.Start(); err != nil {
		t.Fatalf("ssh-agent: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = agentCmd.Wait() })
	eventually(t, 30*time.Second, "ssh-agent's socket", func() error { _, err := os.Stat(sock); return err })
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
	}
	run("ssh-add", keyFile)
	db := filepath.Join(dir, "litewitness.db")
	origin, _, _ := strings.Cut(logVKey, "+")
	run(witnessctl, "add-log", "-db", db, "-origin", origin)
	run(witnessctl, "add-key", "-db", db, "-origin", origin, "-key", logVKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	const name = "witness.example/litewitness"
	lw := exec.CommandContext(ctx, litewitness, "-db", db, "-name", name, "-key", ssh.FingerprintSHA256(sshPub),
		"-ssh-agent", sock, "-listen", addr)
	var logs lockedBuffer
	lw.Stdout, lw.Stderr = &logs, &logs
	if err := lw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = lw.Wait() })
	eventually(t, 30*time.Second, "litewitness listening", func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("%v; it said:\n%s", err, logs.String())
		}
		return c.Close()
	})
	// Its verifier key, as C2SP tlog-cosignature derives it from the name and the public key;
	// litewitness prints the one it uses.
	v, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		t.Fatal(err)
	}
	if vkey, err = formats.VKeyToCosignatureV1(v); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), vkey) {
		t.Fatalf("litewitness does not print the verifier key %s:\n%s", vkey, logs.String())
	}
	return "http://" + addr, vkey
}

// lockedBuffer is a bytes.Buffer a process writes to while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStockWitnessCosignsThroughPushes: a stock C2SP witness (litewitness, as installed by the
// test command) cosigns a live node's checkpoints through the hub's own pushes, with no bridge;
// the cosignatures the hub then serves verify with a generic verifier and the witness's
// published key.
func TestStockWitnessCosignsThroughPushes(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	logVKey, err := os.ReadFile(n.PKI.LogPub())
	if err != nil {
		t.Fatal(err)
	}
	url, vkey := startLitewitness(t, strings.TrimSpace(string(logVKey)))
	registerWitness(t, n, "litewitness", vkey, url)
	submitWitnessed(t, n, "litewitness", "stock witness")
	resp, err := n.Client(t, "observatory").Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{MinCosignatures: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := cosignedBySpec(resp.GetCheckpoint().GetNote(), vkey); err != nil {
		t.Fatal(err)
	}
	if resp.GetCheckpoint().GetSize() < uint64(treeSize(t, n))-1 {
		t.Fatalf("the cosigned checkpoint has %d entries, the log %d", resp.GetCheckpoint().GetSize(), treeSize(t, n))
	}
	// A split view: another history under the same log key is refused by the stock witness,
	// and the hub that pushed it reports it.
	pushAnotherHistory(t, n, "litewitness", vkey, url, int(resp.GetCheckpoint().GetSize()))
}

// TestRegistryRefusesABadWitnessURL: the registry service refuses a witness_url without a
// witness key, or that is not an http(s) submission prefix, with InvalidArgument naming the
// field, and the registry is unchanged.
func TestRegistryRefusesABadWitnessURL(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	admin := n.Client(t, "hub-ops")
	_, vkey := newWitnessKey(t, "witness.example/w1")
	before, err := admin.Registry.ListPartners(ctx, &concordv1.ListPartnersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*concordv1.Partner{
		{WitnessUrl: "https://witness.example/w1"},                 // no key
		{WitnessKey: vkey, WitnessUrl: "ftp://witness.example/w1"}, // not http(s)
		{WitnessKey: vkey, WitnessUrl: "https://witness.example/w1?token=x"},
	} {
		p.Id, p.DisplayName, p.Roles = "bad-witness", "A witness", []concordv1.Role{concordv1.Role_ROLE_AUDITOR}
		_, err := admin.UpdateRegistry(ctx, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_UpsertPartner{UpsertPartner: p}})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "witness_url") {
			t.Errorf("witness_url %q (key %q): %v, want InvalidArgument naming witness_url", p.GetWitnessUrl(), p.GetWitnessKey(), err)
		}
	}
	after, err := admin.Registry.ListPartners(ctx, &concordv1.ListPartnersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if after.GetRegistryIndex() != before.GetRegistryIndex() || len(after.GetPartners()) != len(before.GetPartners()) {
		t.Fatalf("the registry changed: index %d → %d, %d → %d partners", before.GetRegistryIndex(), after.GetRegistryIndex(),
			len(before.GetPartners()), len(after.GetPartners()))
	}
}
