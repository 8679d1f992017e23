package main

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/servertest"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestWitnessServesTheProtocol: `concord witness --listen` serves C2SP tlog-witness; a hub that
// lists it with its witness_url pushes checkpoints to it and serves its cosignatures.
func TestWitnessServesTheProtocol(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, concordBinary, "witness", "--listen", "127.0.0.1:0", "--as", "observatory", "--pki", n.PKI.Dir, "--dir", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	registered := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "register it: witness_key: "); ok {
				key, url, _ := strings.Cut(rest, "  witness_url: ")
				registered <- [2]string{key, url}
			}
		}
	}()
	var key, url string
	select {
	case r := <-registered:
		key, url = r[0], r[1]
	case <-ctx.Done():
		t.Fatal("concord witness --listen did not say where it listens")
	}
	if _, err := n.Client(t, "hub-ops").UpdateRegistry(ctx, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_UpsertPartner{
		UpsertPartner: &concordv1.Partner{Id: "cli-witness", DisplayName: "A witness", Roles: []concordv1.Role{concordv1.Role_ROLE_AUDITOR},
			WitnessKey: key, WitnessUrl: url}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Client(t, "fr-pharos").SubmitNotice(ctx, &concordv1.Notice{LegalBasis: "fr.cp.421-2-5",
		Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
		Hashes:     []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: make([]byte, 32)}}}); err != nil {
		t.Fatal(err)
	}
	// The hub pushes in the background: ask until a checkpoint carries the cosignature.
	observer := n.Client(t, "observatory")
	for {
		resp, err := observer.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{MinCosignatures: 1})
		if err == nil {
			if note := resp.GetCheckpoint().GetNote(); !strings.Contains(note, "— "+strings.SplitN(key, "+", 2)[0]+" ") {
				t.Fatalf("the cosigned checkpoint lacks the witness's line:\n%s", note)
			}
			break
		}
		if status.Code(err) != codes.FailedPrecondition || ctx.Err() != nil {
			t.Fatalf("no cosigned checkpoint: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	// The same directory, the other mode: refused, as it would forget what was cosigned.
	_, stderr, code := runConcordStatus(t, nil, "witness", "--once", "--as", "observatory", "--pki", n.PKI.Dir, "--addr", n.GRPCAddr(), "--dir", dir)
	if code != 2 || !strings.Contains(stderr, "serving --listen") {
		t.Fatalf("witness fetching with --listen's directory: status %d\n%s", code, stderr)
	}
}
