package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"
)

// earlierRelease is the Concord a rolling upgrade starts from in TestRollingUpgrade: the last
// commit before versions, metrics and tracing (its nodes report no version). Move it forward
// to the previous release when a release changes what nodes send each other.
const earlierRelease = "5d4c9c749b67532c0e009de02c2c4c19bed996c5"

// buildEarlier builds `concord` as it was at commit, from this repository's history, into a
// temporary directory: the source is taken with git archive, so the checkout is left as it is.
// A shallow clone is deepened from its origin first.
func buildEarlier(t *testing.T, commit string) string {
	t.Helper()
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		t.Fatalf("the rolling-upgrade test builds an earlier Concord from git history, but this is not a git checkout: %v: %s", err, top)
	}
	if _, err := git("-C", top, "cat-file", "-e", commit+"^{commit}"); err != nil {
		out, ferr := git("-C", top, "fetch", "--quiet", "--no-tags", "--unshallow", "origin")
		if _, err := git("-C", top, "cat-file", "-e", commit+"^{commit}"); err != nil {
			t.Fatalf("the rolling-upgrade test builds Concord at %s, which this clone does not hold (a shallow clone?), and fetching it failed (%v: %s): clone the whole history, or run git fetch --unshallow", commit, ferr, out)
		}
	}
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := exec.Command("git", "-C", top, "archive", "--format=tar", commit)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	var archiveErr, untarErr strings.Builder
	archive.Stderr, untar.Stderr = &archiveErr, &untarErr
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v: %s", commit, err, archiveErr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("unpack %s: %v: %s", commit, err, untarErr.String())
	}
	bin := filepath.Join(t.TempDir(), "concord-"+commit[:12])
	build := exec.Command("go", "build", "-o", bin, "./cmd/concord")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build concord at %s: %v\n%s", commit, err, out)
	}
	return bin
}

// stopGracefully sends SIGTERM, as systemctl stop does, and waits for the process to end.
func stopGracefully(t *testing.T, n *node) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("node %d ended with %v after SIGTERM", n.cmd.Process.Pid, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("node %d still runs 60 s after SIGTERM", n.cmd.Process.Pid)
	}
}

// memberVersions asks the node at addr for every member's reported version, once every member
// answers it (a node just restarted is reached again after its peers' reconnection delay, which
// the earlier build leaves at gRPC's default).
func memberVersions(t *testing.T, certs pki.Layout, addr string) map[string]string {
	t.Helper()
	c := dialAs(t, certs, addr, "hub-ops")
	out := map[string]string{}
	var last string
	waitFor(t, "every member answers "+addr, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := c.Cluster.ListMembers(ctx, &concordv1.ListMembersRequest{})
		if err != nil {
			// A node just restarted may not serve yet; waitFor bounds the wait.
			if last != err.Error() {
				t.Logf("list members through %s: %v", addr, err)
				last = err.Error()
			}
			return false
		}
		clear(out)
		for _, m := range resp.GetMembers() {
			if m.GetError() != "" {
				if last != m.GetError() {
					t.Logf("member %s does not answer %s yet: %s", m.GetNodeId(), addr, m.GetError())
					last = m.GetError()
				}
				return false
			}
			out[m.GetNodeId()] = m.GetVersion()
		}
		return true
	})
	return out
}

// TestRollingUpgrade upgrades a three-node cluster under writes from an earlier build of
// Concord (earlierRelease, built here from git history) to this tree's, as README's "Upgrading
// a cluster" says: one follower at a time, each stopped with SIGTERM, started on its data
// directory with the new binary and caught up before the next; the leader last (an earlier
// build, it does not hand its leadership over: the upgraded followers elect one of them). The
// writers never stop; at the end every
// acknowledged notice is there, every node serves the same checkpoint (size and root), no node
// raised an alarm, and every member reports the new version.
func TestRollingUpgrade(t *testing.T) {
	t.Parallel()
	earlier := buildEarlier(t, earlierRelease)
	var current struct {
		Release, Commit string
	}
	if err := json.Unmarshal([]byte(runConcord(t, "version", "--json")), &current); err != nil {
		t.Fatal(err)
	}
	commit := current.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	want := current.Release + " (" + commit + ")"

	dir := t.TempDir()
	certs, nodes := startClusterOf(t, earlier, dir, 3, "--rate-limit", "-1")
	var addrs []string
	procs := []*node{}
	for _, n := range nodes {
		addrs = append(addrs, n.grpcAddr)
		procs = append(procs, n.node)
	}
	w := startWorkload(t, certs, addrs)
	w.waitAcked(t, 20, 120*time.Second, "writes to the earlier build's cluster")

	upgrade := func(n *clusterNode, role string) {
		t.Helper()
		have, _ := w.ackedCount()
		stopGracefully(t, n.node)
		n.node = startServe(t, dir, n.flags...)
		procs = append(procs, n.node)
		w.waitAcked(t, have+20, 120*time.Second, "writes after upgrading "+role+" "+n.id)
		versions := memberVersions(t, certs, n.grpcAddr)
		if versions[n.id] != want {
			t.Fatalf("%s reports version %q after its upgrade, want %q (all: %v)", n.id, versions[n.id], want, versions)
		}
		out := runConcord(t, "cluster", "list", "--as", "hub-ops", "--pki", certs.Dir, "--addr", n.grpcAddr)
		t.Logf("after upgrading %s %s:\n%s", role, n.id, out)
	}

	leader := leaderOf(certs, t, nodes)
	if leader == "" {
		t.Fatal("the earlier build's cluster has no leader")
	}
	var last *clusterNode
	for _, n := range nodes {
		if n.id == leader {
			last = n
			continue
		}
		upgrade(n, "follower")
	}
	// A follower still on the earlier build reports no version: an operator sees who is left.
	if v := memberVersions(t, certs, last.grpcAddr); v[last.id] != "" {
		t.Fatalf("the earlier build reports version %q; this test expects the build before versions", v[last.id])
	}
	upgrade(last, "leader")
	if now := leaderOf(certs, t, nodes); now == "" {
		t.Fatal("no leader after the upgrade")
	}

	have, _ := w.ackedCount()
	w.waitAcked(t, have+20, 120*time.Second, "writes after the upgrade")
	w.finish()
	w.audit(t, certs, nodes[0].grpcAddr)
	cp := sameCheckpoint(t, certs, nodes)
	t.Logf("every node serves checkpoint %d %x", cp.Size, cp.Root)
	var running []*node
	for _, n := range nodes {
		running = append(running, n.node)
		if v := memberVersions(t, certs, n.grpcAddr); len(v) != 3 || v["node-1"] != want || v["node-2"] != want || v["node-3"] != want {
			t.Fatalf("members' versions through %s: %v, want %q for all three", n.id, v, want)
		}
	}
	noAlarms(t, certs, running, procs)
}
