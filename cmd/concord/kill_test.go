package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"concord/client"
	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/internal/registryfile"
	"concord/translog"
)

// testPKI creates a dev PKI and the example registry file in dir.
func testPKI(t *testing.T, dir string) pki.Layout {
	t.Helper()
	certs := pki.Layout{Dir: filepath.Join(dir, "certs")}
	if _, err := pki.Init(pki.Options{Dir: certs.Dir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: registryfile.ExamplePartnerIDs()}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certs.Dir, "registry.yaml"), registryfile.Example(), 0o644); err != nil {
		t.Fatal(err)
	}
	return certs
}

func dialAs(t *testing.T, certs pki.Layout, addr, partner string) *client.Client {
	t.Helper()
	c, err := client.Dial(client.Config{
		Addr:           addr,
		TLS:            mtls.Files{CA: certs.CACert(), Cert: certs.PartnerCert(partner), Key: certs.PartnerKey(partner)},
		SigningKeyFile: certs.SigningKey(partner),
		LogKeyFile:     certs.LogPub(),
		Retries:        -1,
		Timeout:        10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestKill9DuringSubmissions kills the node with SIGKILL while authorities stream notices of 500
// hashes each, restarts it on the same data dir, and checks that every acknowledged notice is
// there and that every notice there is whole.
func TestKill9DuringSubmissions(t *testing.T) {
	dir := t.TempDir()
	certs := testPKI(t, dir)
	first := startServe(t, dir)

	var (
		mu    sync.Mutex
		acked = map[string]int{} // notice id → hash count
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w, partner := range []string{"fr-pharos", "de-bka"} {
		c := dialAs(t, certs, first.grpcAddr, partner)
		basis := map[string]string{"fr-pharos": "fr.cp.421-2-5", "de-bka": "de.stgb.140"}[partner]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := &concordv1.Notice{LegalBasis: basis, Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}
				for h := range 500 {
					sum := sha256.Sum256(fmt.Appendf(nil, "worker %d notice %d hash %d", w, i, h))
					n.Hashes = append(n.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]})
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				rec, err := c.SubmitNotice(ctx, n)
				cancel()
				if err != nil {
					return // the node died under us
				}
				mu.Lock()
				acked[rec.GetNotice().GetNoticeId()] = int(rec.GetHashCount())
				mu.Unlock()
			}
		}()
	}
	// Let acknowledgements accumulate, then kill -9 mid-stream.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d notices acknowledged before the kill", len(acked))
	}

	second := startServe(t, dir)
	auditor := dialAs(t, certs, second.grpcAddr, "observatory")
	partners, err := auditor.Registry.ListPartners(context.Background(), &concordv1.ListPartnersRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*concordv1.SigningKey{}
	for _, p := range partners.GetPartners() {
		for _, k := range p.GetSigningKeys() {
			keys[k.GetKeyId()] = k
		}
	}
	found := map[string]bool{}
	req := &concordv1.ListNoticesRequest{PageSize: 50, View: concordv1.NoticeView_NOTICE_VIEW_FULL}
	for {
		resp, err := auditor.Notices.ListNotices(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range resp.GetNotices() {
			id := rec.GetNotice().GetNoticeId()
			found[id] = true
			// Whole: the record's count, its hashes and its signed payload agree.
			var signed concordv1.Notice
			if _, err := dsse.Open(rec.GetEnvelope(), dsse.PayloadTypeNotice, func(id string) (*concordv1.SigningKey, error) { return keys[id], nil }, rec.GetAcceptedAt().AsTime(), &signed); err != nil {
				t.Errorf("notice %s: stored envelope does not verify: %v", id, err)
			}
			if int(rec.GetHashCount()) != 500 || len(rec.GetNotice().GetHashes()) != 500 || len(signed.GetHashes()) != 500 || len(rec.GetJurisdictions()) == 0 {
				t.Errorf("notice %s half-applied: hash_count %d, %d hashes, %d signed, %d jurisdictions", id, rec.GetHashCount(), len(rec.GetNotice().GetHashes()), len(signed.GetHashes()), len(rec.GetJurisdictions()))
			}
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	for id := range acked {
		if !found[id] {
			t.Errorf("acknowledged notice %s is missing after kill -9 and restart", id)
		}
	}
	t.Logf("%d notices acknowledged before the kill, %d present after restart", len(acked), len(found))
}

// TestKill9KeepsCheckpointsConsistent kills the node three times while authorities submit
// notices, collecting every checkpoint the node returns (in receipts and from GetCheckpoint), and
// checks at the end that each is consistent with the latest: nothing signed was ever contradicted.
func TestKill9KeepsCheckpointsConsistent(t *testing.T) {
	dir := t.TempDir()
	certs := testPKI(t, dir)
	verifier, err := pki.LoadLogVerifier(certs.LogPub())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		signed []string
	)
	seen := map[string]bool{}
	keep := func(note string) {
		mu.Lock()
		if !seen[note] {
			seen[note] = true
			signed = append(signed, note)
		}
		mu.Unlock()
	}
	for round := range 3 {
		n := startServe(t, dir)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, p := range []struct{ partner, basis string }{{"fr-pharos", "fr.cp.421-2-5"}, {"de-bka", "de.stgb.140"}} {
			c := dialAs(t, certs, n.grpcAddr, p.partner)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					env, err := c.SignNotice(context.Background(), &concordv1.Notice{LegalBasis: p.basis,
						Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
						Hashes:     []*concordv1.Hash{sha256Of(fmt.Sprint(round, p.partner, i))}})
					if err != nil {
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					resp, err := c.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
					if err == nil {
						keep(resp.GetReceipt().GetCheckpoint().GetNote())
					}
					if cp, err := c.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{}); err == nil {
						keep(cp.GetCheckpoint().GetNote())
					}
					cancel()
				}
			}()
		}
		time.Sleep(700 * time.Millisecond)
		if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = n.cmd.Wait()
		close(stop)
		wg.Wait()
	}

	final := startServe(t, dir, "--rate-limit", "-1")
	c := dialAs(t, certs, final.grpcAddr, "observatory")
	ctx := context.Background()
	resp, err := c.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	latest, _, err := translog.OpenCheckpoint(resp.GetCheckpoint().GetNote(), verifier)
	if err != nil {
		t.Fatal(err)
	}
	if len(signed) < 10 {
		t.Fatalf("only %d checkpoints collected", len(signed))
	}
	for _, s := range signed {
		cp, _, err := translog.OpenCheckpoint(s, verifier)
		if err != nil {
			t.Fatalf("a returned checkpoint does not verify: %v", err)
		}
		if cp.Size > latest.Size {
			t.Fatalf("a checkpoint of %d entries was returned, but after restarts the log has %d", cp.Size, latest.Size)
		}
		proof, err := c.Log.GetConsistencyProof(ctx, &concordv1.GetConsistencyProofRequest{OldSize: uint64(cp.Size), NewSize: uint64(latest.Size)})
		if err != nil {
			t.Fatal(err)
		}
		hashes, _ := translog.HashesFromBytes(proof.GetHashes())
		if err := translog.CheckConsistency(hashes, cp.Size, cp.Root, latest.Size, latest.Root); err != nil {
			t.Fatalf("checkpoint %d is not consistent with the latest (%d): %v", cp.Size, latest.Size, err)
		}
	}
	t.Logf("%d distinct checkpoints returned over 3 kill -9 rounds, all consistent with the latest (%d entries)", len(signed), latest.Size)
}

func sha256Of(s string) *concordv1.Hash {
	sum := sha256.Sum256([]byte(s))
	return &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]}
}
