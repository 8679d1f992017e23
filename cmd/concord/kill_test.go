package main

import (
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/internal/registryfile"
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

// dialAs dials one node as partner, sending nothing twice.
func dialAs(t *testing.T, certs pki.Layout, addr, partner string) *client.Client {
	t.Helper()
	return dialWith(t, certs, partner, client.Config{Addr: addr, Retries: -1, Timeout: 10 * time.Second})
}

// dialWith dials as partner, with its certificate and signing key and the log key, on cfg's
// nodes and retry policy; the connection closes when the test ends.
func dialWith(t *testing.T, certs pki.Layout, partner string, cfg client.Config) *client.Client {
	t.Helper()
	cfg.TLS = mtls.Files{CA: certs.CACert(), Cert: certs.PartnerCert(partner), Key: certs.PartnerKey(partner)}
	cfg.SigningKeyFile = certs.SigningKey(partner)
	cfg.LogKeyFile = certs.LogPub()
	c, err := client.Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// killNode sends SIGKILL and reaps the process.
func killNode(t *testing.T, n *node) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = n.cmd.Wait()
}

// TestKill9Loop kills a node with SIGKILL again and again while four authorities write notices
// of 1 to 1 000 hashes, restarting it each time on its data directory, then audits: every
// acknowledged notice is there, whole, and once in the log; nothing a writer was told failed is
// there; every checkpoint seen (receipts, GetCheckpoint) is consistent with the final one; no
// node raised an alarm. Alone: the writers wait for the node to come back. In a cluster of
// three: the first kill hits the leader (another leads within 5 s), the next ones a node drawn
// at random, leader or follower; writers fail over; every node ends with the same log.
func TestKill9Loop(t *testing.T) {
	t.Parallel()
	t.Run("node", func(t *testing.T) {
		t.Parallel()
		cfg := chaosFromEnv(t, 5)
		r := rand.New(rand.NewPCG(cfg.seed, 1))
		dir := t.TempDir()
		certs := testPKI(t, dir)
		flags := []string{"--grpc-addr", freeAddr(t), "--rate-limit", "-1"}
		n := startServe(t, dir, flags...)
		procs := []*node{n}
		w := startWorkload(t, certs, []string{n.grpcAddr})
		start := time.Now()
		kills := 0
		for kills < cfg.kills && time.Since(start) < cfg.duration {
			have, _ := w.ackedCount()
			w.waitAcked(t, have+10+r.IntN(30), 60*time.Second, "writes after a start")
			killNode(t, n)
			kills++
			n = restartAfterKill(t, r, dir, flags, &procs)
		}
		have, _ := w.ackedCount()
		w.waitAcked(t, have+10, 60*time.Second, "writes after the last start")
		w.finish()
		t.Logf("%d kill -9 in %v, %d more during a start", kills, time.Since(start).Round(time.Second), len(procs)-1-kills)
		w.audit(t, certs, n.grpcAddr)
		noAlarms(t, certs, []*node{n}, procs)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cfg := chaosFromEnv(t, 5)
		r := rand.New(rand.NewPCG(cfg.seed, 2))
		dir := t.TempDir()
		certs, nodes := startClusterProcesses(t, dir, 3, "--rate-limit", "-1")
		var addrs []string
		var procs []*node
		for _, n := range nodes {
			addrs = append(addrs, n.grpcAddr)
			procs = append(procs, n.node)
		}
		w := startWorkload(t, certs, addrs)
		start := time.Now()
		kills, leaderKills := 0, 0
		for kills < cfg.kills && time.Since(start) < cfg.duration {
			have, _ := w.ackedCount()
			w.waitAcked(t, have+10+r.IntN(30), 60*time.Second, "writes after a start")
			leaderID := leaderOf(certs, t, nodes)
			victim := nodes[r.IntN(len(nodes))]
			if kills == 0 {
				for _, n := range nodes {
					if n.id == leaderID {
						victim = n
					}
				}
			}
			killNode(t, victim.node)
			killedAt := time.Now()
			kills++
			if victim.id == leaderID {
				leaderKills++
				var survivors []*clusterNode
				for _, n := range nodes {
					if n != victim {
						survivors = append(survivors, n)
					}
				}
				for newLeader := ""; newLeader == "" || newLeader == leaderID; newLeader = leaderOf(certs, t, survivors) {
					if time.Since(killedAt) > 5*time.Second {
						t.Fatalf("no new leader within 5 s of killing the leader %s", leaderID)
					}
				}
				t.Logf("kill %d: leader %s; another leads %v later", kills, victim.id, time.Since(killedAt).Round(time.Millisecond))
			} else {
				t.Logf("kill %d: follower %s", kills, victim.id)
			}
			// The others go on taking writes while it is down.
			have, _ = w.ackedCount()
			w.waitAcked(t, have+5, 60*time.Second, "writes while "+victim.id+" is down")
			victim.node = restartAfterKill(t, r, dir, victim.flags, &procs)
		}
		have, _ := w.ackedCount()
		w.waitAcked(t, have+10, 60*time.Second, "writes after the last start")
		w.finish()
		t.Logf("%d kill -9 (%d of the leader) in %v, %d more during a start", kills, leaderKills, time.Since(start).Round(time.Second), len(procs)-len(nodes)-kills)

		sameCheckpoint(t, certs, nodes)
		sameNotices(t, certs, nodes, w.audit(t, certs, nodes[0].grpcAddr))
		var running []*node
		for _, n := range nodes {
			running = append(running, n.node)
		}
		noAlarms(t, certs, running, procs)
	})
}

// restartAfterKill starts a killed node again and adds its processes to procs. One time in
// three it kills it once more at a random moment of its start (restoring its snapshot,
// replaying or checking its log, catching up with its cluster) before starting it for good.
func restartAfterKill(t *testing.T, r *rand.Rand, dir string, flags []string, procs *[]*node) *node {
	t.Helper()
	if r.IntN(3) == 0 {
		early, _ := launchServe(t, dir, flags...)
		*procs = append(*procs, early)
		// The pause picks the moment of the kill; nothing waits on it.
		time.Sleep(time.Duration(r.IntN(1500)) * time.Millisecond)
		killNode(t, early)
	}
	n := startServe(t, dir, flags...)
	*procs = append(*procs, n)
	return n
}

func sha256Of(s string) *concordv1.Hash {
	sum := sha256.Sum256([]byte(s))
	return &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]}
}
