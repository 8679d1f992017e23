package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/pki"
	"concord/internal/registryfile"
	"concord/translog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// freeAddr returns a loopback address with a port nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// clusterNode is one `concord serve` process of a test cluster and the flags that restart it.
type clusterNode struct {
	*node
	id    string
	flags []string
}

// startClusterProcesses starts size `concord serve` processes forming a cluster: node-1
// bootstraps it, the others join through node-1's gRPC port. extra flags go to every node.
func startClusterProcesses(t *testing.T, dir string, size int, extra ...string) (pki.Layout, []*clusterNode) {
	t.Helper()
	return startClusterOf(t, concordBinary, dir, size, extra...)
}

// startClusterOf is startClusterProcesses with a concord binary other than this tree's.
func startClusterOf(t *testing.T, binary, dir string, size int, extra ...string) (pki.Layout, []*clusterNode) {
	t.Helper()
	certs := testPKI(t, dir)
	ids := make([]string, size)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%d", i+1)
	}
	if _, err := pki.Init(pki.Options{Dir: certs.Dir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: registryfile.ExamplePartnerIDs(), NodeIDs: ids}); err != nil {
		t.Fatal(err)
	}
	var nodes []*clusterNode
	for i, id := range ids {
		flags := []string{"--data-dir", filepath.Join(dir, id), "--node-id", id, "--raft-addr", freeAddr(t),
			"--node-cert", certs.NodeCert(id), "--node-key", certs.NodeKey(id),
			"--grpc-addr", freeAddr(t)}
		flags = append(flags, extra...)
		if i > 0 {
			flags = append(flags, "--join", nodes[0].grpcAddr)
		}
		n, ready := launchBinary(t, binary, nil, dir, filepath.Join(dir, "data"), flags...)
		waitReady(t, n, ready)
		nodes = append(nodes, &clusterNode{node: n, id: id, flags: flags})
	}
	return certs, nodes
}

// leaderOf asks the nodes, in turn, which node leads; "" if none answers with a leader.
func leaderOf(certs pki.Layout, t *testing.T, nodes []*clusterNode) string {
	for _, n := range nodes {
		c := dialAs(t, certs, n.grpcAddr, "hub-ops")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := c.Cluster.ListMembers(ctx, &concordv1.ListMembersRequest{})
		cancel()
		c.Close()
		if err == nil && resp.GetLeaderId() != "" {
			for _, m := range resp.GetMembers() {
				if m.GetNodeId() == resp.GetLeaderId() && m.GetRole() == concordv1.MemberRole_MEMBER_ROLE_LEADER {
					return resp.GetLeaderId()
				}
			}
		}
	}
	return ""
}

// noticeIDs lists every notice a node holds, reading from that node only.
func noticeIDs(t *testing.T, c *client.Client) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	req := &concordv1.ListNoticesRequest{PageSize: 1000}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := c.Notices.ListNotices(ctx, req)
		cancel()
		if err != nil {
			t.Fatalf("list notices: %v", err)
		}
		for _, rec := range resp.GetNotices() {
			ids[rec.GetNotice().GetNoticeId()] = true
		}
		if resp.GetNextPageToken() == "" {
			return ids
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// checkpointOf returns a node's latest checkpoint, its signature verified with the log key.
func checkpointOf(t *testing.T, certs pki.Layout, c *client.Client) translog.Checkpoint {
	t.Helper()
	key, err := pki.LoadLogVerifier(certs.LogPub())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Log.GetCheckpoint(context.Background(), &concordv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cp, _, err := translog.OpenCheckpoint(resp.GetCheckpoint().GetNote(), key)
	if err != nil {
		t.Fatalf("checkpoint does not verify: %v", err)
	}
	return cp
}

// TestClusterCommands lists, removes and re-adds members with `concord cluster`, and refuses the
// same to a partner that is not an administrator.
func TestClusterCommands(t *testing.T) {
	dir := t.TempDir()
	certs, nodes := startClusterProcesses(t, dir, 2)
	pkiFlags := []string{"--pki", certs.Dir, "--addr", nodes[0].grpcAddr + "," + nodes[1].grpcAddr}
	out := runConcord(t, append([]string{"cluster", "list", "--as", "hub-ops"}, pkiFlags...)...)
	for _, want := range []string{"node-1", "node-2", "LEADER", "FOLLOWER"} {
		if !strings.Contains(out, want) {
			t.Fatalf("cluster list printed no %s:\n%s", want, out)
		}
	}
	if out, err := runConcordErr(append([]string{"cluster", "list", "--as", "videoshare"}, pkiFlags...)...); err == nil || !strings.Contains(out, "PermissionDenied") {
		t.Fatalf("cluster list as a platform: %v\n%s", err, out)
	}
	out = runConcord(t, append([]string{"cluster", "remove", "node-2", "--as", "hub-ops"}, pkiFlags...)...)
	if strings.Contains(strings.SplitN(out, "\n\n", 2)[1], "node-2") {
		t.Fatalf("node-2 is still listed after its removal:\n%s", out)
	}
	out = runConcord(t, append([]string{"cluster", "join", "node-2", nodes[1].flags[5], "--as", "hub-ops"}, pkiFlags...)...)
	if !strings.Contains(out, "node-2") {
		t.Fatalf("node-2 not listed after it joined again:\n%s", out)
	}
	c := dialAs(t, certs, nodes[0].grpcAddr, "hub-ops")
	if _, err := c.Cluster.RemoveMember(context.Background(), &concordv1.RemoveMemberRequest{NodeId: "node-9"}); status.Code(err) != codes.NotFound {
		t.Fatalf("removing a node that is not a member: %v, want NotFound", err)
	}
}

// runConcordErr runs the concord binary and returns its combined output.
func runConcordErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, concordBinary, args...).CombinedOutput()
	return string(out), err
}

// runConcord runs the concord binary and fails the test if it fails.
func runConcord(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runConcordErr(args...)
	if err != nil {
		t.Fatalf("concord %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestSnapshotSaveAndRestore backs a running node up with `concord snapshot save`, restores the
// file into a fresh data directory with `concord snapshot restore`, and serves it: same notices,
// same log root. A damaged file and a data directory in use are refused.
func TestSnapshotSaveAndRestore(t *testing.T) {
	dir := t.TempDir()
	certs := testPKI(t, dir)
	source := startServe(t, dir)
	c := dialAs(t, certs, source.grpcAddr, "fr-pharos")
	for i := range 5 {
		n := &concordv1.Notice{LegalBasis: "fr.cp.421-2-5", Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
			Hashes: []*concordv1.Hash{sha256Of(fmt.Sprintf("backed-up notice %d", i))}}
		if _, err := c.SubmitNotice(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "backup.snap")
	out := runConcord(t, "snapshot", "save", file, "--as", "hub-ops", "--pki", certs.Dir, "--addr", source.grpcAddr)
	if !strings.Contains(out, "snapshot saved") {
		t.Fatalf("snapshot save printed:\n%s", out)
	}
	wantIDs := noticeIDs(t, dialAs(t, certs, source.grpcAddr, "observatory"))
	wantCP := checkpointOf(t, certs, dialAs(t, certs, source.grpcAddr, "observatory"))

	// A damaged copy is refused before anything is written.
	damaged := filepath.Join(dir, "damaged.snap")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runConcordErr("snapshot", "restore", damaged, "--data-dir", filepath.Join(dir, "unused")); err == nil || !strings.Contains(out, "checksum") {
		t.Fatalf("restoring a damaged file: %v\n%s", err, out)
	}
	// So is the data directory of a running node.
	if out, err := runConcordErr("snapshot", "restore", file, "--data-dir", filepath.Join(dir, "data")); err == nil || !strings.Contains(out, "data directory in use") {
		t.Fatalf("restoring over a node's data: %v\n%s", err, out)
	}

	restoredDir := filepath.Join(dir, "restored")
	runConcord(t, "snapshot", "restore", file, "--data-dir", restoredDir)
	// A data directory that holds a node's state is refused too.
	if out, err := runConcordErr("snapshot", "restore", file, "--data-dir", restoredDir); err == nil || !strings.Contains(out, "already holds raft state") {
		t.Fatalf("restoring over a node's data: %v\n%s", err, out)
	}
	restored := startServe(t, dir, "--data-dir", restoredDir)
	auditor := dialAs(t, certs, restored.grpcAddr, "observatory")
	gotIDs := noticeIDs(t, auditor)
	if len(gotIDs) != len(wantIDs) {
		t.Fatalf("restored node holds %d notices, the source %d", len(gotIDs), len(wantIDs))
	}
	for id := range wantIDs {
		if !gotIDs[id] {
			t.Fatalf("restored node lacks notice %s", id)
		}
	}
	if gotCP := checkpointOf(t, certs, auditor); gotCP.Size != wantCP.Size || gotCP.Root != wantCP.Root {
		t.Fatalf("restored log: %d entries, root %x; the source's: %d, %x", gotCP.Size, gotCP.Root, wantCP.Size, wantCP.Root)
	}
	// And it takes writes.
	n := &concordv1.Notice{LegalBasis: "fr.cp.421-2-5", Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
		Hashes: []*concordv1.Hash{sha256Of("after the restore")}}
	if _, err := dialAs(t, certs, restored.grpcAddr, "fr-pharos").SubmitNotice(context.Background(), n); err != nil {
		t.Fatalf("write on the restored node: %v", err)
	}
}
