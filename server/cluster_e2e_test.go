package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"concord/client"
	nodev1 "concord/gen/concord/node/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/internal/version"
	"concord/server"
	"concord/server/backup"
	"concord/server/cluster"
	"concord/server/fsm"
	"concord/server/raftnode"
	"concord/server/servertest"
	"concord/translog"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"github.com/hashicorp/raft"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// freeAddr is a loopback address nobody listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// others returns the positions of the nodes of c other than i.
func others(c *servertest.Cluster, i int) []int {
	var out []int
	for j := range c.Nodes {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

func TestClusterForwardsWritesAndReadsEverywhere(t *testing.T) {
	t.Parallel()
	c := servertest.StartCluster(t, 3, servertest.Options{})
	leader := c.Leader(t, 10*time.Second)
	followers := others(c, leader)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A write sent to a follower is forwarded, and its receipt (which the client verifies)
	// comes from the follower's own log.
	rec, err := c.Nodes[followers[0]].Client(t, "fr-pharos").SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatalf("submit through follower %d: %v", followers[0], err)
	}
	// Read at once on every node: reads are linearizable.
	for i, n := range c.Nodes {
		got := getNotice(t, n.Client(t, "videoshare"), rec.GetNotice().GetNoticeId())
		if got.GetLogIndex() != rec.GetLogIndex() {
			t.Fatalf("node %d: notice at log index %d, want %d", i, got.GetLogIndex(), rec.GetLogIndex())
		}
	}

	// A client given a node that is down fails over to the next one.
	failover, err := client.Dial(client.Config{Addrs: []string{freeAddr(t), c.Nodes[followers[1]].GRPCAddr()},
		TLS: c.Nodes[0].PartnerTLS("videoshare"), Retries: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer failover.Close()
	if _, err := failover.Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: rec.GetNotice().GetNoticeId()}); err != nil {
		t.Fatalf("a client whose first node is down: %v", err)
	}

	resp, err := c.Nodes[followers[1]].Client(t, "hub-ops").Cluster.ListMembers(ctx, &concordv1.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetMembers()) != 3 || resp.GetLeaderId() != servertest.NodeID(leader) || resp.GetNodeId() != servertest.NodeID(followers[1]) {
		t.Fatalf("ListMembers = %v", resp)
	}
	for _, m := range resp.GetMembers() {
		want := concordv1.MemberRole_MEMBER_ROLE_FOLLOWER
		if m.GetNodeId() == servertest.NodeID(leader) {
			want = concordv1.MemberRole_MEMBER_ROLE_LEADER
		}
		if m.GetRole() != want || !m.GetVoter() || m.GetAppliedIndex() == 0 || m.GetLastContact() == nil || m.GetRaftAddress() == "" {
			t.Errorf("member %v, want a voter with role %v, an applied index and a last contact", m, want)
		}
		if m.GetVersion() != version.Get().Short() || m.GetNewestCommand() != uint32(fsm.NewestCommand) {
			t.Errorf("member %s reports version %q and newest command %d, want %q and %d", m.GetNodeId(), m.GetVersion(), m.GetNewestCommand(), version.Get().Short(), fsm.NewestCommand)
		}
	}
}

// authorityBases are the example authorities with a provision of theirs covering glorification.
var authorityBases = map[string]string{
	"fr-pharos": "fr.cp.421-2-5", "de-bka": "de.stgb.140", "be-fedpol": "be.cp.140bis", "gb-ctiru": "gb.ta2006.s1",
}

// submitMany commits count one-hash notices through c, from every example authority at once,
// signed here and sent without checking receipts (the write path is what is measured), and
// returns their ids.
func submitMany(t testing.TB, c *servertest.Cluster, node int, count, workers int) []string {
	t.Helper()
	type job struct {
		cl    *client.Client
		basis string
		n     int
	}
	jobs := make(chan job)
	ids := make(chan string, count)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				n := &concordv1.Notice{LegalBasis: j.basis, Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
					Hashes: []*concordv1.Hash{sha256Hash(fmt.Sprintf("bulk %s %d", j.basis, j.n))}}
				env, err := j.cl.SignNotice(ctx, n)
				if err == nil {
					_, err = j.cl.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
				}
				cancel()
				if err != nil {
					errs <- err
					return
				}
				ids <- n.GetNoticeId()
			}
		}()
	}
	var clients []*client.Client
	var bases []string
	for partner, basis := range authorityBases {
		clients = append(clients, c.Nodes[node].Client(t, partner))
		bases = append(bases, basis)
	}
	go func() {
		defer close(jobs)
		for i := range count {
			select {
			case jobs <- job{cl: clients[i%len(clients)], basis: bases[i%len(bases)], n: i}:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(ids)
	select {
	case err := <-errs:
		t.Fatalf("bulk submission: %v", err)
	default:
	}
	out := make([]string, 0, count)
	for id := range ids {
		out = append(out, id)
	}
	return out
}

// stateOf saves a snapshot of node i through the API and returns its info and its state
// section: two nodes at the same applied index hold byte-identical states.
func stateOf(t testing.TB, c *servertest.Cluster, i int) (*concordv1.SnapshotInfo, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.snap")
	saveSnapshotFile(t, c.Nodes[i].Client(t, "hub-ops"), path)
	f, err := backup.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.State()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return f.Info, b
}

// saveSnapshotFile writes a node's SaveSnapshot stream to path, as `concord snapshot save` does.
func saveSnapshotFile(t testing.TB, c *client.Client, path string) *concordv1.SnapshotInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := c.Cluster.SaveSnapshot(ctx, &concordv1.SaveSnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	var info *concordv1.SnapshotInfo
	for {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("save snapshot: %v", err)
		}
		switch p := msg.GetPart().(type) {
		case *concordv1.SaveSnapshotResponse_Info:
			info = p.Info
		case *concordv1.SaveSnapshotResponse_Chunk:
			body.Write(p.Chunk)
		case *concordv1.SaveSnapshotResponse_Sha256:
			if sum := sha256.Sum256(body.Bytes()); !bytes.Equal(sum[:], p.Sha256) {
				t.Fatal("the snapshot's bytes do not have the SHA-256 the node sent")
			}
			body.Write(p.Sha256)
			if err := os.WriteFile(path, body.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			return info
		}
	}
}

// TestClusterFollowerStoppedDuringTenThousandWritesCatchesUp stops a follower, commits 10 000
// notices on the two other nodes, and restarts it: the leader has compacted its log meanwhile
// (small segments, which the log drops whole), so the follower catches up from a snapshot, and
// then holds the very same state.
func TestClusterFollowerStoppedDuringTenThousandWritesCatchesUp(t *testing.T) {
	t.Parallel()
	c := servertest.StartCluster(t, 3, servertest.Options{Cluster: server.ClusterConfig{
		SnapshotThreshold: 4000, SnapshotInterval: 100 * time.Millisecond, TrailingLogs: 500, SegmentBytes: 1 << 20,
	}})
	leader := c.Leader(t, 10*time.Second)
	follower := others(c, leader)[0]
	stoppedAt := c.Nodes[follower].Applied()
	c.Stop(t, follower)

	start := time.Now()
	ids := submitMany(t, c, leader, 10000, 48)
	t.Logf("10 000 notices committed on two of three nodes in %v", time.Since(start).Round(time.Millisecond))

	// Both running nodes compacted their logs past the entries the follower lacks: whichever
	// leads when it comes back must send it a snapshot.
	leaderSnap := uint64(math.MaxUint64)
	for _, i := range others(c, follower) {
		snap, _ := strconv.ParseUint(c.Nodes[i].RaftStats()["last_snapshot_index"], 10, 64)
		if snap < stoppedAt+500+1 {
			t.Fatalf("%s's last snapshot is at index %d: it still holds the entries after %d (TrailingLogs 500)", servertest.NodeID(i), snap, stoppedAt)
		}
		leaderSnap = min(leaderSnap, snap)
	}
	start = time.Now()
	committed := c.Nodes[leader].Applied()
	c.Restart(t, follower)
	t.Logf("follower restarted and caught up in %v", time.Since(start).Round(time.Millisecond))
	// Ready means caught up: the restarted node serves nothing older than what was committed
	// before it started, and says SERVING only then.
	if got := c.Nodes[follower].Applied(); got < committed {
		t.Fatalf("the restarted follower reported ready at applied index %d, before the %d committed when it started", got, committed)
	}
	if s := healthOf(t, c.Nodes[follower]); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("the restarted follower's health: %v, want SERVING", s)
	}
	stats := c.Nodes[follower].RaftStats()
	t.Logf("restarted follower: applied %d (was %d when stopped), last snapshot index %s", c.Nodes[follower].Applied(), stoppedAt, stats["last_snapshot_index"])
	if snap, _ := strconv.ParseUint(stats["last_snapshot_index"], 10, 64); snap < leaderSnap {
		t.Fatalf("the follower's last snapshot is at index %d, before the others' %d: it did not catch up from a snapshot (stopped at %d)", snap, leaderSnap, stoppedAt)
	}

	// The same state, byte for byte, as the leader's.
	start = time.Now()
	wantInfo, want := stateOf(t, c, leader)
	gotInfo, got := stateOf(t, c, follower)
	t.Logf("states compared in %v", time.Since(start).Round(time.Millisecond))
	if gotInfo.GetAppliedIndex() != wantInfo.GetAppliedIndex() || !bytes.Equal(got, want) ||
		!bytes.Equal(gotInfo.GetLogRootHash(), wantInfo.GetLogRootHash()) {
		t.Fatalf("follower at %d (log %d, root %x), leader at %d (log %d, root %x); states equal: %v",
			gotInfo.GetAppliedIndex(), gotInfo.GetLogSize(), gotInfo.GetLogRootHash(),
			wantInfo.GetAppliedIndex(), wantInfo.GetLogSize(), wantInfo.GetLogRootHash(), bytes.Equal(got, want))
	}
	// And serves it: the last notice, read on the follower.
	getNotice(t, c.Nodes[follower].Client(t, "videoshare"), ids[len(ids)-1])
}

// healthOf is a node's health status on its gRPC port.
func healthOf(t testing.TB, n *servertest.Node) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(n.Client(t, "videoshare").Conn()).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return resp.GetStatus()
}

// eventually retries check until it returns nil or within passes.
func eventually(t testing.TB, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterNodeCutOffRefusesWritesAndReadsThenRejoins cuts the leader off from the two other
// nodes with the fault-injecting transport: it refuses writes and linearizable reads with
// Unavailable (after a bounded wait, saying why) and reports NOT_SERVING, while the two others
// elect a leader and take writes. Healed, it rejoins, catches up and serves them. A follower cut
// off still answers a Match that tolerates staleness, and refuses one that does not.
func TestClusterNodeCutOffRefusesWritesAndReadsThenRejoins(t *testing.T) {
	t.Parallel()
	c := servertest.StartCluster(t, 3, servertest.Options{Cluster: server.ClusterConfig{LeaderWait: 2 * time.Second, HealthInterval: 200 * time.Millisecond}})
	old := c.Leader(t, 10*time.Second)
	ctx := context.Background()
	before, err := c.Nodes[old].Client(t, "fr-pharos").SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}

	c.Nodes[old].Faults.Cut()
	cutAt := time.Now()
	cut := c.Nodes[old]
	authority, platform := cut.Client(t, "fr-pharos"), cut.Client(t, "videoshare")

	_, err = authority.SubmitNotice(ctx, glorificationNotice())
	if codeOf(err) != codes.Unavailable || !strings.Contains(err.Error(), "leader") {
		t.Fatalf("write on the cut-off node: %v, want Unavailable naming the missing leader", err)
	}
	if d := time.Since(cutAt); d > 15*time.Second {
		t.Fatalf("the refused write took %v: the wait is not bounded", d)
	}
	var reads sync.WaitGroup
	for name, read := range map[string]func() error{
		"GetNotice": func() error {
			_, err := platform.Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: before.GetNotice().GetNoticeId()})
			return err
		},
		"ListNotices": func() error {
			_, err := platform.Notices.ListNotices(ctx, &concordv1.ListNoticesRequest{})
			return err
		},
		"GetCheckpoint": func() error {
			_, err := platform.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
			return err
		},
		"Match": func() error {
			_, err := platform.Matches.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{sha256Hash("anything")}})
			return err
		},
	} {
		reads.Add(1)
		go func() {
			defer reads.Done()
			if err := read(); codeOf(err) != codes.Unavailable {
				t.Errorf("%s on the cut-off node: %v, want Unavailable", name, err)
			}
		}()
	}
	reads.Wait()
	eventually(t, 10*time.Second, "the cut-off node reports NOT_SERVING", func() error {
		if s := healthOf(t, cut); s != healthpb.HealthCheckResponse_NOT_SERVING {
			return fmt.Errorf("health %v", s)
		}
		return nil
	})

	// The others elect a leader among themselves and take writes.
	leader := c.Leader(t, 10*time.Second, old)
	var during []*concordv1.NoticeRecord
	duringHash := sha256Hash("during " + client.NewID("x"))
	for i := range 3 {
		rec, err := c.Nodes[leader].Client(t, "de-bka").SubmitNotice(ctx, &concordv1.Notice{LegalBasis: "de.stgb.140",
			Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}, Hashes: []*concordv1.Hash{duringHash, sha256Hash(fmt.Sprint("during ", i))}})
		if err != nil {
			t.Fatalf("write on the majority: %v", err)
		}
		during = append(during, rec)
	}

	c.Nodes[old].Faults.Heal()
	eventually(t, 15*time.Second, "the healed node serves the writes made while it was cut off", func() error {
		for _, rec := range during {
			if _, err := platform.Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: rec.GetNotice().GetNoticeId()}); err != nil {
				return err
			}
		}
		return nil
	})
	eventually(t, 10*time.Second, "the healed node reports SERVING", func() error {
		if s := healthOf(t, cut); s != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %v", s)
		}
		return nil
	})
	if _, err := authority.SubmitNotice(ctx, glorificationNotice()); err != nil {
		t.Fatalf("write on the healed node: %v", err)
	}

	// A follower cut off: a Match that tolerates an hour of staleness is answered from its own
	// state while it still counts as a follower; one that does not is refused.
	follower := others(c, c.Leader(t, 10*time.Second))[0]
	fp := c.Nodes[follower].Client(t, "videoshare")
	c.Nodes[follower].Faults.Cut()
	stale, err := fp.Matches.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{duringHash}, MaxStaleness: durationpb.New(time.Hour)})
	if err != nil || len(stale.GetResults()[0].GetMatches()) != 3 {
		t.Fatalf("Match with max_staleness on a follower just cut off: %v, %v; want the notice matched from its own state", stale, err)
	}
	if _, err := fp.Matches.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{duringHash}}); codeOf(err) != codes.Unavailable {
		t.Fatalf("linearizable Match on a cut-off follower: %v, want Unavailable", err)
	}
	c.Nodes[follower].Faults.Heal()
}

// dialRaftPort opens a TLS connection to a node's raft port speaking raft, with cert, and
// returns the error of the handshake or of the first read (with TLS 1.3 a refused client
// certificate shows there), waiting for that read as long as wait.
func dialRaftPort(t *testing.T, addr string, caFile string, cert tls.Certificate, wait time.Duration) error {
	t.Helper()
	return dialNodePort(t, addr, caFile, cert, "concord-raft/1", wait)
}

// How long dialNodePort waits for the server's verdict on a certificate. A refusal comes once
// the server has checked the certificate, which on a loaded machine may take seconds: a caller
// expecting one waits for it (refusalWait). An accepted raft client hears nothing until it
// asks, so a caller expecting acceptance waits only briefly (acceptedWait): a refusal that
// came later than that would go unseen there, never make the test fail for nothing.
const (
	refusalWait  = 20 * time.Second
	acceptedWait = 300 * time.Millisecond
)

// dialNodePort is dialRaftPort for either protocol of the port, chosen by ALPN: raft's
// ("concord-raft/1") or the nodes' internal gRPC service ("h2").
func dialNodePort(t *testing.T, addr string, caFile string, cert tls.Certificate, proto string, wait time.Duration) error {
	t.Helper()
	pool, err := mtls.LoadCAPool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool,
		InsecureSkipVerify: true, NextProtos: []string{proto}}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: refusalWait}, "tcp", addr, conf)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A refusal arrives as an alert; an accepted raft client hears nothing until it asks, an
	// accepted gRPC client the server's HTTP/2 preface.
	conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return nil
}

// TestClusterRefusesNodesWithoutAValidNodeCertificate: neither a partner certificate from the
// cluster's CA nor a node certificate from another CA gets through the raft port, talks raft
// (a raft transport with such a certificate cannot even ask for a vote) or joins the cluster; a
// node certificate may only add its own node, and a node whose certificate names another node
// does not start.
func TestClusterRefusesNodesWithoutAValidNodeCertificate(t *testing.T) {
	t.Parallel()
	c := servertest.StartCluster(t, 1, servertest.Options{})
	member := c.Nodes[0]
	raftAddr := member.RaftAddr()

	foreign := pki.Layout{Dir: t.TempDir()}
	if _, err := pki.Init(pki.Options{Dir: foreign.Dir, NodeIDs: []string{"node-2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Init(pki.Options{Dir: c.PKI.Dir, NodeIDs: []string{"node-2", "node-3"}, PartnerIDs: []string{"hub-ops"}}); err != nil {
		t.Fatal(err)
	}
	load := func(cert, key string) tls.Certificate {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	cases := []struct {
		name string
		cert tls.Certificate
		ca   string
		want string // the refusal, as crypto/tls reports the server's alert; "" for the valid one
	}{
		{"a node certificate of the cluster's CA", load(c.PKI.NodeCert("node-2"), c.PKI.NodeKey("node-2")), c.PKI.CACert(), ""},
		{"a partner certificate of the cluster's CA", load(c.PKI.PartnerCert("hub-ops"), c.PKI.PartnerKey("hub-ops")), c.PKI.CACert(), "bad certificate"},
		{"a node certificate of another CA", load(foreign.NodeCert("node-2"), foreign.NodeKey("node-2")), c.PKI.CACert(), "unknown certificate authority"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/handshake on the raft port", func(t *testing.T) {
			wait := refusalWait
			if tc.want == "" {
				wait = acceptedWait
			}
			err := dialRaftPort(t, raftAddr, tc.ca, tc.cert, wait)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid node certificate refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want the server's alert %q", err, tc.want)
			}
		})
	}

	// A raft transport over the same TLS stream layer, with a certificate of another CA, cannot
	// reach raft: a vote request fails.
	t.Run("raft with a node certificate of another CA", func(t *testing.T) {
		nodeTLS, err := mtls.NodeConfig(mtls.Files{CA: c.PKI.CACert(), Cert: foreign.NodeCert("node-2"), Key: foreign.NodeKey("node-2")}, identity.DefaultTrustDomain)
		if err != nil {
			t.Fatal(err)
		}
		port, err := cluster.Listen(nil, "127.0.0.1:0", nodeTLS, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer port.Close()
		trans := raft.NewNetworkTransport(port.Raft(), 1, 2*time.Second, io.Discard)
		defer trans.Close()
		var resp raft.RequestVoteResponse
		err = trans.RequestVote("node-1", raft.ServerAddress(raftAddr), &raft.RequestVoteRequest{
			RPCHeader: raft.RPCHeader{ID: []byte("node-2"), Addr: []byte(port.Addr())}, Term: 1000, LastLogIndex: 1 << 40, LastLogTerm: 1000}, &resp)
		if err == nil {
			t.Fatalf("a raft vote request with a foreign certificate was answered: %+v", resp)
		}
		if member.RaftStats()["term"] == "1000" || !member.IsLeader() {
			t.Fatalf("the member's raft was disturbed: %v", member.RaftStats())
		}
	})

	startNode := func(t *testing.T, id, cert, key string) error {
		n := servertest.Prepare(t, servertest.Options{})
		n.Config.TLS.CA = c.PKI.CACert()
		n.Config.Cluster = server.ClusterConfig{NodeID: id, RaftAddr: "127.0.0.1:0", NodeCert: cert, NodeKey: key,
			Join: []string{member.GRPCAddr()}}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv, err := server.Start(ctx, n.Config)
		if err == nil {
			srv.Shutdown(ctx)
		}
		return err
	}
	t.Run("join with a node certificate of another CA", func(t *testing.T) {
		err := startNode(t, "node-2", foreign.NodeCert("node-2"), foreign.NodeKey("node-2"))
		if err == nil || !strings.Contains(err.Error(), "TLS") {
			t.Fatalf("a node with a foreign certificate started: %v", err)
		}
	})
	t.Run("join with a partner certificate", func(t *testing.T) {
		err := startNode(t, "node-2", c.PKI.PartnerCert("hub-ops"), c.PKI.PartnerKey("hub-ops"))
		if err == nil || !strings.Contains(err.Error(), "does not name a cluster node") {
			t.Fatalf("a node with a partner certificate started: %v", err)
		}
	})
	t.Run("a certificate that names another node", func(t *testing.T) {
		err := startNode(t, "node-2", c.PKI.NodeCert("node-3"), c.PKI.NodeKey("node-3"))
		if err == nil || !strings.Contains(err.Error(), `names node "node-3"`) {
			t.Fatalf("node-2 started with node-3's certificate: %v", err)
		}
	})
	t.Run("join on behalf of another node", func(t *testing.T) {
		conn := nodeConn(t, c, "node-3", member.GRPCAddr())
		_, err := nodev1.NewNodeServiceClient(conn).Join(context.Background(), &nodev1.JoinRequest{NodeId: "node-2", RaftAddress: "127.0.0.1:1"})
		if codeOf(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "may only add itself") {
			t.Fatalf("node-3 joining as node-2: %v, want PermissionDenied", err)
		}
	})
	members, err := member.Client(t, "hub-ops").Cluster.ListMembers(context.Background(), &concordv1.ListMembersRequest{})
	if err != nil || len(members.GetMembers()) != 1 {
		t.Fatalf("after the refusals the cluster has members %v (%v), want node-1 alone", members.GetMembers(), err)
	}
}

// nodeConn dials a node's gRPC port with node id's certificate.
func nodeConn(t *testing.T, c *servertest.Cluster, id, addr string) *grpc.ClientConn {
	t.Helper()
	nodeTLS, err := mtls.NodeConfig(mtls.Files{CA: c.PKI.CACert(), Cert: c.PKI.NodeCert(id), Key: c.PKI.NodeKey(id)}, identity.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(nodeTLS.PublicConfig())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestNodeAndPartnerCertificatesDoNotMix: a node certificate calls none of the partner API, on
// either port, and a partner certificate, an administrator's included, calls none of the nodes'
// internal service.
func TestNodeAndPartnerCertificatesDoNotMix(t *testing.T) {
	t.Parallel()
	c := servertest.StartCluster(t, 1, servertest.Options{})
	n := c.Nodes[0]
	nodeTLS, err := mtls.NodeConfig(mtls.Files{CA: c.PKI.CACert(), Cert: c.PKI.NodeCert("node-1"), Key: c.PKI.NodeKey("node-1")}, identity.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	grpcConn := nodeConn(t, c, "node-1", n.GRPCAddr())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: nodeTLS.PublicConfig().Clone(), ForceAttemptHTTP2: true}, Timeout: 5 * time.Second}
	connectConn := connect.NewClient(connecthttp.NewTransport(hc, "https://"+n.HTTPAddr()))
	for _, md := range concordMethods(t) {
		for port, call := range map[string]func(context.Context) error{
			"grpc":  func(ctx context.Context) error { return callGRPC(ctx, grpcConn, md) },
			"https": func(ctx context.Context) error { return callConnect(ctx, t, connectConn, md) },
		} {
			t.Run("node certificate/"+string(md.Name())+"/"+port, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				if err := call(ctx); codeOf(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "grants no access") {
					t.Fatalf("%s with a node certificate: %v, want PermissionDenied", md.Name(), err)
				}
			})
		}
	}
	// The gRPC port serves nodes Join alone: the rest of NodeService is on the raft port.
	if _, err := nodev1.NewNodeServiceClient(grpcConn).Apply(context.Background(), &nodev1.ApplyRequest{Command: []byte{1}}); codeOf(err) != codes.Unimplemented {
		t.Fatalf("Apply on the gRPC port with a node certificate: %v, want Unimplemented", err)
	}
	var nodeMethods []protoreflect.MethodDescriptor
	svc := nodev1.File_concord_node_v1_node_proto.Services().ByName("NodeService")
	for i := range svc.Methods().Len() {
		nodeMethods = append(nodeMethods, svc.Methods().Get(i))
	}
	for _, partner := range []string{"hub-ops", "fr-pharos"} {
		conf, err := mtls.ClientConfig(n.PartnerTLS(partner))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, md := range nodeMethods {
			t.Run("partner "+partner+"/"+string(md.Name()), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				if err := callGRPC(ctx, conn, md); codeOf(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "internal to the cluster") {
					t.Fatalf("%s with partner %s's certificate: %v, want PermissionDenied", md.Name(), partner, err)
				}
			})
		}
	}
}

// TestClusterBackupRestoresIntoAFreshCluster saves a snapshot from a follower of a live cluster
// while writes go on, restores it into a fresh three-node cluster, and finds there exactly the
// state and log root the source had at the snapshot point.
func TestClusterBackupRestoresIntoAFreshCluster(t *testing.T) {
	t.Parallel()
	source := servertest.StartCluster(t, 3, servertest.Options{})
	leader := source.Leader(t, 10*time.Second)
	follower := others(source, leader)[0]
	ctx := context.Background()
	authority := source.Client(t, "fr-pharos")
	var before []string
	for range 5 {
		rec, err := authority.SubmitNotice(ctx, glorificationNotice())
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, rec.GetNotice().GetNoticeId())
	}
	if _, err := source.Client(t, "hub-ops").UpdateRegistry(ctx, &concordv1.RegistryChange{Author: "hub-ops",
		Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: netherlands()}}); err != nil {
		t.Fatal(err)
	}

	// Writes go on while the follower takes the snapshot.
	stop := make(chan struct{})
	var writing sync.WaitGroup
	writing.Add(1)
	go func() {
		defer writing.Done()
		c := source.Nodes[leader].Client(t, "de-bka")
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = c.SubmitNotice(ctx, &concordv1.Notice{LegalBasis: "de.stgb.140", Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
				Hashes: []*concordv1.Hash{sha256Hash("concurrent " + client.NewID("x"))}})
		}
	}()
	file := filepath.Join(t.TempDir(), "backup.snap")
	info := saveSnapshotFile(t, source.Nodes[follower].Client(t, "hub-ops"), file)
	close(stop)
	writing.Wait()
	if info.GetNodeId() != servertest.NodeID(follower) {
		t.Fatalf("snapshot taken by %q, want the follower %s", info.GetNodeId(), servertest.NodeID(follower))
	}
	f, err := backup.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.State()
	if err != nil {
		t.Fatal(err)
	}
	wantState, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}

	restored := servertest.StartClusterWith(t, 3, servertest.Options{}, servertest.ClusterOptions{
		PKI: source.PKI.Dir, // the same partners, keys and log key
		Seed: func(dataDir string) {
			if _, err := backup.Restore(file, dataDir, servertest.NodeID(0), ""); err != nil {
				t.Fatalf("restore: %v", err)
			}
		},
	})
	// Every node of the new cluster holds the snapshot's state, byte for byte, and signs a
	// checkpoint with its log's size and root.
	for i := range restored.Nodes {
		gotInfo, got := stateOf(t, restored, i)
		if gotInfo.GetAppliedIndex() != info.GetAppliedIndex() || !bytes.Equal(got, wantState) {
			t.Fatalf("restored node %d: applied index %d (want %d), same state %v", i, gotInfo.GetAppliedIndex(), info.GetAppliedIndex(), bytes.Equal(got, wantState))
		}
		cp, err := restored.Nodes[i].Client(t, "observatory").Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if cp.GetCheckpoint().GetSize() != info.GetLogSize() || !bytes.Equal(cp.GetCheckpoint().GetRootHash(), info.GetLogRootHash()) {
			t.Fatalf("restored node %d signs a log of %d entries, root %x; the snapshot's: %d, %x", i,
				cp.GetCheckpoint().GetSize(), cp.GetCheckpoint().GetRootHash(), info.GetLogSize(), info.GetLogRootHash())
		}
	}
	// The source's root at that size is the snapshot's: its checkpoint now is consistent with
	// the restored one.
	srcCP, err := source.Nodes[leader].Client(t, "observatory").Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	restoredClient := restored.Client(t, "observatory")
	restoredCP, _, err := translog.OpenCheckpoint(mustCheckpointNote(t, restoredClient), mustLogKey(t, source.PKI))
	if err != nil {
		t.Fatal(err)
	}
	sourceCP, _, err := translog.OpenCheckpoint(srcCP.GetCheckpoint().GetNote(), mustLogKey(t, source.PKI))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := source.Nodes[leader].Client(t, "observatory").Log.GetConsistencyProof(ctx, &concordv1.GetConsistencyProofRequest{OldSize: uint64(restoredCP.Size), NewSize: uint64(sourceCP.Size)})
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := translog.HashesFromBytes(cons.GetHashes())
	if err != nil {
		t.Fatal(err)
	}
	if err := translog.CheckConsistency(hashes, restoredCP.Size, restoredCP.Root, sourceCP.Size, sourceCP.Root); err != nil {
		t.Fatalf("the restored log (%d entries) is not a prefix of the source's (%d): %v", restoredCP.Size, sourceCP.Size, err)
	}
	// The notices and the registry change are there, and the new cluster takes writes.
	for _, id := range before {
		getNotice(t, restoredClient, id)
	}
	if _, js := registryView(t, restored.Client(t, "observatory")); !hasJurisdiction(js, "NL") {
		t.Fatal("the restored registry lacks NL")
	}
	if _, err := restored.Client(t, "fr-pharos").SubmitNotice(ctx, glorificationNotice()); err != nil {
		t.Fatalf("write on the restored cluster: %v", err)
	}
}

func mustLogKey(t testing.TB, l pki.Layout) note.Verifier {
	t.Helper()
	v, err := pki.LoadLogVerifier(l.LogPub())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustCheckpointNote(t testing.TB, c *client.Client) string {
	t.Helper()
	resp, err := c.Log.GetCheckpoint(context.Background(), &concordv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetCheckpoint().GetNote()
}

// TestClusterRecoversFromTheLossOfTwoNodes: with two of three nodes lost for good, the survivor's
// data is recovered offline into a one-voter configuration (concord cluster recover); it starts
// with every acknowledged write, and a new node with an empty data directory joins it.
func TestClusterRecoversFromTheLossOfTwoNodes(t *testing.T) {
	t.Parallel()
	c := servertest.StartCluster(t, 3, servertest.Options{})
	ctx := context.Background()
	var ids []string
	for range 3 {
		rec, err := c.Client(t, "fr-pharos").SubmitNotice(ctx, glorificationNotice())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.GetNotice().GetNoticeId())
	}
	for i := range c.Nodes {
		c.Stop(t, i)
	}
	survivor := c.Nodes[0]
	f, err := fsm.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := raftnode.Recover(survivor.DataDir, servertest.NodeID(0), survivor.Config.Cluster.RaftAddr, f); err != nil {
		t.Fatal(err)
	}
	c.Restart(t, 0)
	for _, id := range ids {
		getNotice(t, survivor.Client(t, "videoshare"), id)
	}
	// A new node, on an empty data directory, joins the recovered one.
	fresh := c.Nodes[1]
	if err := os.RemoveAll(fresh.DataDir); err != nil {
		t.Fatal(err)
	}
	fresh.Config.Cluster.Join = []string{survivor.GRPCAddr()}
	c.Restart(t, 1)
	for _, id := range ids {
		getNotice(t, fresh.Client(t, "videoshare"), id)
	}
	if _, err := fresh.Client(t, "fr-pharos").SubmitNotice(ctx, glorificationNotice()); err != nil {
		t.Fatalf("write on the recovered cluster: %v", err)
	}
	members, err := survivor.Client(t, "hub-ops").Cluster.ListMembers(ctx, &concordv1.ListMembersRequest{})
	if err != nil || len(members.GetMembers()) != 2 {
		t.Fatalf("members after the recovery: %v (%v), want node-1 and node-2", members.GetMembers(), err)
	}
}

// TestLeaderHandsOverLeadershipWhenItStops stops the leader as an upgrade does (a graceful
// shutdown): before it stops it hands its leadership to another voter, which leads at once, and
// writes go on through the others.
func TestLeaderHandsOverLeadershipWhenItStops(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	c := servertest.StartCluster(t, 3, servertest.Options{Logger: logs.logger()})
	leader := c.Leader(t, 30*time.Second)
	cl := c.Client(t, "fr-pharos")
	write := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		n := &concordv1.Notice{LegalBasis: "fr.cp.421-2-5", Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
			Hashes: []*concordv1.Hash{sha256Hash(what)}}
		if _, err := cl.SubmitNotice(ctx, n); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	write("before the leader stops")
	c.Stop(t, leader)
	var to string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `msg="leadership handed over before stopping"`) {
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "to="); ok {
					to = v
				}
			}
		}
	}
	if to == "" || to == servertest.NodeID(leader) {
		t.Fatalf("the leader stopped without handing its leadership over (handed to %q); its log:\n%s", to, logs.String())
	}
	if now := c.Leader(t, 30*time.Second, leader); servertest.NodeID(now) != to {
		t.Fatalf("%s leads after the stop, but leadership was handed to %s", servertest.NodeID(now), to)
	}
	write("after the leader stopped")
}
