package client_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/server/servertest"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func submitSome(t *testing.T, n *servertest.Node, k int, tag string) {
	t.Helper()
	for i := range k {
		sum := sha256.Sum256([]byte(fmt.Sprint(tag, i)))
		if _, err := n.Client(t, "fr-pharos").SubmitNotice(context.Background(), &concordv1.Notice{LegalBasis: "fr.cp.421-2-5",
			Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
			Hashes:     []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]}}}); err != nil {
			t.Fatal(err)
		}
	}
}

func witnessPub(t *testing.T, n *servertest.Node, partner string) string {
	t.Helper()
	b, err := os.ReadFile(n.PKI.WitnessPub(partner))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestWitnessCosignsAndClientsRequireAQuorum: the observatory's witness follows the log and
// cosigns its checkpoints; the hub serves the cosignatures (after a restart too); a client that
// trusts that witness accepts a checkpoint it cosigned, and one that needs two witnesses does
// not; a forked log signed with the same key is caught as a split view.
func TestWitnessCosignsAndClientsRequireAQuorum(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	n := servertest.Start(t, servertest.Options{Dir: filepath.Join(root, "a")})
	ctx := context.Background()
	submitSome(t, n, 3, "witness")

	w, err := client.OpenWitness(filepath.Join(root, "witness"), logVerifier(t, n), n.PKI.WitnessKey("observatory"))
	if err != nil {
		t.Fatal(err)
	}
	observatory := n.Client(t, "observatory")
	first, err := w.Step(ctx, observatory)
	if err != nil || first == nil {
		t.Fatalf("first step: %v, %v", first, err)
	}
	submitSome(t, n, 2, "more")
	second, err := w.Step(ctx, observatory)
	if err != nil || second == nil || second.Size <= first.Size {
		t.Fatalf("second step: %v, %v", second, err)
	}

	trusting := func(quorum int, witnesses ...string) *client.Client {
		c, err := client.Dial(client.Config{Addr: n.GRPCAddr(), TLS: n.PartnerTLS("videoshare"), LogKeyFile: n.PKI.LogPub(), Witnesses: witnesses, WitnessQuorum: quorum, Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	cp, err := trusting(1, witnessPub(t, n, "observatory")).WitnessedCheckpoint(ctx)
	if err != nil || cp.Size != second.Size {
		t.Fatalf("1-of-1 witnessed checkpoint: %v, %v; want the cosigned one of %d entries", cp, err, second.Size)
	}
	_, err = trusting(2, witnessPub(t, n, "observatory"), witnessPub(t, n, "socialnet")).WitnessedCheckpoint(ctx)
	if err == nil {
		t.Fatal("a 2-of-2 quorum accepted a checkpoint only one witness cosigned")
	}

	// Who may cosign: only a partner with a registered witness key, with that key.
	submitSome(t, n, 1, "uncosigned") // a new latest checkpoint, which nobody cosigned yet
	platform := n.Client(t, "videoshare")
	resp, err := platform.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = platform.Log.AddCosignature(ctx, &concordv1.AddCosignatureRequest{CosignedCheckpoint: resp.GetCheckpoint().GetNote()})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "witness key") {
		t.Fatalf("a partner without a witness key cosigns: %v", err)
	}
	_, err = observatory.Log.AddCosignature(ctx, &concordv1.AddCosignatureRequest{CosignedCheckpoint: resp.GetCheckpoint().GetNote()})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a note without the observatory's cosignature: %v; want InvalidArgument", err)
	}

	// The cosignatures survive a restart of the hub.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := n.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	n = servertest.Start(t, servertest.Options{Dir: filepath.Join(root, "a")})
	got, err := n.Client(t, "videoshare").Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{MinCosignatures: 1})
	// the newest cosigned one is still the second step's
	if err != nil || got.GetCheckpoint().GetSize() != uint64(second.Size) {
		t.Fatalf("cosigned checkpoint after a restart: %v, %v", got, err)
	}

	// A second hub with the same keys and another history: the witness refuses it.
	other := filepath.Join(root, "b")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-r", filepath.Join(root, "a", "certs"), other).CombinedOutput(); err != nil {
		t.Fatalf("copy certs: %v %s", err, out)
	}
	fork := servertest.Start(t, servertest.Options{Dir: other})
	submitSome(t, fork, 12, "fork")
	w, err = client.OpenWitness(filepath.Join(root, "witness"), logVerifier(t, n), n.PKI.WitnessKey("observatory"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Last() == nil || w.Last().Size != second.Size {
		t.Fatalf("a reopened witness forgot what it cosigned: %v", w.Last())
	}
	if _, err := w.Step(ctx, fork.Client(t, "observatory")); !errors.Is(err, client.ErrSplitView) {
		t.Fatalf("a forked log: %v; want ErrSplitView", err)
	}
}
