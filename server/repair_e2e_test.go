package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concord/client"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server"
	"concord/server/cluster"
	"concord/server/fault"
	"concord/server/fsm"
	"concord/server/integrity"
	"concord/server/servertest"
	"concord/translog"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// repairCluster starts three nodes that compare their logs every interval (negative: never).
func repairCluster(t *testing.T, interval time.Duration) *servertest.Cluster {
	t.Helper()
	return servertest.StartCluster(t, 3, servertest.Options{Cluster: server.ClusterConfig{
		HeartbeatTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond,
		LogCheckInterval: interval,
	}})
}

// submitThrough submits count one-hash notices through node i and returns their contents.
func submitThrough(t *testing.T, c *servertest.Cluster, i int, prefix string, count int) []string {
	t.Helper()
	cl := c.Nodes[i].Client(t, "fr-pharos")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var contents []string
	for k := range count {
		content := fmt.Sprintf("%s %d", prefix, k)
		if _, err := cl.SubmitNotice(ctx, glorificationNotice(content)); err != nil {
			t.Fatalf("submit through %s: %v", servertest.NodeID(i), err)
		}
		contents = append(contents, content)
	}
	return contents
}

// sameLog waits until node i holds exactly the state and log of node j.
func sameLog(t *testing.T, c *servertest.Cluster, i, j int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s holds %s's state and log", servertest.NodeID(i), servertest.NodeID(j)), func() error {
		a, sa, ra, err := server.Fingerprint(c.Nodes[i].Server)
		if err != nil {
			return err
		}
		b, sb, rb, err := server.Fingerprint(c.Nodes[j].Server)
		if err != nil {
			return err
		}
		if sa != sb || ra != rb || !bytes.Equal(a, b) {
			return fmt.Errorf("log sizes %d and %d, roots %x and %x", sa, sb, ra[:8], rb[:8])
		}
		return nil
	})
}

// checkpointsAgree checks that the checkpoint node i serves is consistent with node j's.
func checkpointsAgree(t *testing.T, c *servertest.Cluster, i, j int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v := mustLogKey(t, c.PKI)
	open := func(k int) translog.Checkpoint {
		resp, err := c.Nodes[k].Client(t, "observatory").Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
		if err != nil {
			t.Fatalf("checkpoint of %s: %v", servertest.NodeID(k), err)
		}
		cp, _, err := translog.OpenCheckpoint(resp.GetCheckpoint().GetNote(), v)
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	a, b := open(i), open(j)
	if a.Size > b.Size {
		a, b = b, a
	}
	proof, err := c.Nodes[j].Client(t, "observatory").Log.GetConsistencyProof(ctx, &concordv1.GetConsistencyProofRequest{OldSize: uint64(a.Size), NewSize: uint64(b.Size)})
	if err != nil {
		t.Fatal(err)
	}
	hashes, _ := translog.HashesFromBytes(proof.GetHashes())
	if err := translog.CheckConsistency(hashes, a.Size, a.Root, b.Size, b.Root); err != nil {
		t.Fatalf("the checkpoints of %s and %s are inconsistent: %v", servertest.NodeID(i), servertest.NodeID(j), err)
	}
}

// TestFollowerWithDamagedLogRepairsItself: a follower stopped, with 64 bytes flipped in its raft
// log in an entry written after its last signed checkpoint, and restarted, reports the damaged
// file, sets its raft state aside, and catches up from the cluster: it serves nothing until it
// holds the leader's state and log, and then serves exactly what the leader serves, with
// checkpoints consistent with the leader's.
func TestFollowerWithDamagedLogRepairsItself(t *testing.T) {
	t.Parallel()
	c := repairCluster(t, 100*time.Millisecond)
	leader := c.Leader(t, 30*time.Second)
	f := others(c, leader)[0]
	// Written through the follower: it signs checkpoints for their receipts.
	signed := submitThrough(t, c, f, "signed by the follower", 5)
	// Written through the leader only: entries after the follower's last signed checkpoint.
	later := submitThrough(t, c, leader, "after the follower's checkpoint", 10)
	sameLog(t, c, f, leader)
	cpBefore, err := os.ReadFile(filepath.Join(c.Nodes[f].DataDir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(t, f)

	// Flip 64 bytes inside one of those later entries, found by its hash.
	damaged := damageEntry(t, c.Nodes[f].DataDir, later[4])

	var logs logBuffer
	c.Nodes[f].Config.Logger = logs.logger()
	start := time.Now()
	c.Restart(t, f) // returns once the node serves: repaired
	t.Logf("damaged follower back and serving %v after its start", time.Since(start).Round(time.Millisecond))

	out := logs.String()
	if !strings.Contains(out, damaged) || !strings.Contains(out, "repairing this node from its cluster") || !strings.Contains(out, "node repaired from its cluster") {
		t.Fatalf("the follower did not report the damaged file %s and its repair:\n%s", damaged, out)
	}
	quarantined, _ := filepath.Glob(filepath.Join(c.Nodes[f].DataDir, server.QuarantineDir, "*", "raft", "wal", filepath.Base(damaged)))
	if len(quarantined) != 1 {
		t.Fatalf("the damaged segment was not set aside in %s: %v", server.QuarantineDir, quarantined)
	}
	// The same state and log as the leader's; the same reads; consistent checkpoints, and its
	// own signed checkpoint from before still consistent with them.
	sameLog(t, c, f, leader)
	for _, content := range append(signed, later...) {
		wantRec := matchOne(t, c.Nodes[leader].Client(t, "videoshare"), content)
		gotRec := matchOne(t, c.Nodes[f].Client(t, "videoshare"), content)
		if wantRec != gotRec {
			t.Fatalf("%q: the follower answers %s, the leader %s", content, gotRec, wantRec)
		}
	}
	checkpointsAgree(t, c, f, leader)
	cpAfter, _ := os.ReadFile(filepath.Join(c.Nodes[f].DataDir, "checkpoint"))
	if len(cpAfter) == 0 || !bytes.Equal(cpAfter, cpBefore) && !strings.Contains(string(cpAfter), "concord.example/log") {
		t.Fatalf("the follower's signed checkpoint is gone after the repair")
	}
	if h := healthOf(t, c.Nodes[f]); h != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v after the repair", h)
	}
}

// TestRepairThroughAJoinAddress repairs a damaged follower that recorded no member of its
// cluster: it can only ask to be taken back through a member's gRPC port (--join), whose server
// certificate names no node, and must be taken back that way.
func TestRepairThroughAJoinAddress(t *testing.T) {
	t.Parallel()
	c := repairCluster(t, 100*time.Millisecond)
	leader := c.Leader(t, 30*time.Second)
	f := -1
	for _, i := range others(c, leader) {
		if i > 0 { // node-1 bootstrapped the cluster: only the others have a --join address
			f = i
		}
	}
	later := submitThrough(t, c, leader, "before the repair through --join", 10)
	sameLog(t, c, f, leader)
	c.Stop(t, f)
	damageEntry(t, c.Nodes[f].DataDir, later[4])
	if err := os.Remove(filepath.Join(c.Nodes[f].DataDir, cluster.MembersFile)); err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	c.Nodes[f].Config.Logger = logs.logger()
	c.Restart(t, f) // returns once the node serves: repaired
	join := c.Nodes[f].Config.Cluster.Join[0]
	if out := logs.String(); !strings.Contains(out, "the cluster took this node back") || !strings.Contains(out, "through="+join) {
		t.Fatalf("the follower was not taken back through its --join address %s:\n%s", join, out)
	}
	sameLog(t, c, f, leader)
}

// damageEntry flips 64 bytes around the hash of content in a stopped node's raft log (the
// entry of the notice that carries it) and returns the segment it damaged.
func damageEntry(t testing.TB, dataDir, content string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(content))
	segs, _ := filepath.Glob(filepath.Join(dataDir, "raft", "wal", "*.wal"))
	for _, seg := range segs {
		data, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if off := bytes.Index(data, sum[:]); off >= 0 {
			for k := off - 16; k < off+48; k++ {
				data[k] ^= 0xa5
			}
			if err := os.WriteFile(seg, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return seg
		}
	}
	t.Fatalf("no entry carrying %q in the raft log of %s", content, dataDir)
	return ""
}

// matchOne is the ids of the notices a hash of content matches, as one string.
func matchOne(t *testing.T, cl *client.Client, content string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cl.Matches.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{sha256Hash(content)}})
	if err != nil {
		t.Fatalf("match %q: %v", content, err)
	}
	var ids []string
	for _, r := range resp.GetResults() {
		for _, m := range r.GetMatches() {
			ids = append(ids, m.GetNoticeId())
		}
	}
	if len(ids) == 0 {
		t.Fatalf("%q matches nothing", content)
	}
	return strings.Join(ids, ",")
}

// noticeCommand is the raft command of a notice of one hash of content, signed by de-bka.
func noticeCommand(t *testing.T, n *servertest.Node, content string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := n.Client(t, "de-bka").SignNotice(ctx, &concordv1.Notice{LegalBasis: "de.stgb.140",
		Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}, Hashes: []*concordv1.Hash{sha256Hash(content)}})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := fsm.Encode(fsm.SubmitNoticeType, &statev1.SubmitNotice{Envelope: env, SignerKeyId: env.GetSignatures()[0].GetKeyid(), At: timestamppb.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// forkNode makes node i's state machine apply a notice no other node has, as a node whose
// applying went wrong would: its log forks from the others' at their next entry.
func forkNode(t *testing.T, c *servertest.Cluster, i int) {
	t.Helper()
	if resp := server.ApplyLocally(c.Nodes[i].Server, noticeCommand(t, c.Nodes[i], "only on one node")); asError(resp) != nil {
		t.Fatalf("apply on %s alone: %v", servertest.NodeID(i), resp)
	}
}

// commitOnLeader commits cmd through whichever node leads. On a loaded machine leadership can
// move between finding the leader and writing through it; the write then goes to the new one.
func commitOnLeader(ctx context.Context, t *testing.T, c *servertest.Cluster, cmd []byte) {
	t.Helper()
	for {
		_, resp, err := server.ApplyCommand(ctx, c.Nodes[c.Leader(t, 30*time.Second)].Server, cmd)
		if err == nil && asError(resp) == nil {
			return
		}
		if err == nil {
			err = asError(resp)
		}
		if fault.CodeOf(err) != codes.Unavailable || ctx.Err() != nil {
			t.Fatalf("commit: %v", err)
		}
		t.Logf("commit retried on the new leader: %v", err)
	}
}

// waitForked waits for node i to raise the FORKED alarm.
func waitForked(t *testing.T, c *servertest.Cluster, i int) integrity.Alarm {
	t.Helper()
	var alarm integrity.Alarm
	eventually(t, 30*time.Second, servertest.NodeID(i)+" raises FORKED", func() error {
		for _, a := range server.Alarms(c.Nodes[i].Server) {
			if a.Kind == integrity.Forked {
				alarm = a
				return nil
			}
		}
		return errors.New("no FORKED alarm yet")
	})
	return alarm
}

// TestForkedNodeStopsServingAndSigningThenRepairs: a node whose log forks from the two others'
// (its state machine applied an entry they did not) finds out at the next comparison of the
// logs: it stops serving and signing at once, says why, asks to restart for a repair, and comes
// back, restarted, with the cluster's log. The others never raise an alarm. A forked leader hands
// over its leadership, and the cluster goes on taking writes.
func TestForkedNodeStopsServingAndSigningThenRepairs(t *testing.T) {
	t.Parallel()
	for _, who := range []string{"follower", "leader"} {
		t.Run(who, func(t *testing.T) {
			t.Parallel()
			// Comparisons run when the test says, so that the forked node signs before.
			c := repairCluster(t, -1)
			leader := c.Leader(t, 30*time.Second)
			submitThrough(t, c, leader, "before the fork", 3)
			forked := leader
			if who == "follower" {
				forked = others(c, leader)[0]
			}
			sameLog(t, c, forked, leader)
			forkNode(t, c, forked)
			// The next entry, which every node applies, makes the fork visible. (A client writing
			// it would get a wrong receipt from a forked node: its check against the checkpoints
			// it saw before catches that; the entry is committed here directly.)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			commitOnLeader(ctx, t, c, noticeCommand(t, c.Nodes[leader], "after the fork"))
			// Before anyone compares, the forked node signs a checkpoint of its forked log.
			eventually(t, 30*time.Second, "every node applies the entry after the fork", func() error {
				for _, n := range c.Nodes {
					if _, size, _, err := server.Fingerprint(n.Server); err != nil || size < 5 {
						return fmt.Errorf("log size %d, %v", size, err)
					}
				}
				return nil
			})
			if _, err := c.Nodes[forked].Client(t, "observatory").Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{}); err != nil {
				t.Fatal(err)
			}
			for _, o := range others(c, forked) {
				if check, err := server.CheckLog(ctx, c.Nodes[o].Server); err != nil || check.Forked() || len(check.Disagree) != 1 {
					t.Fatalf("%s's comparison: %+v, %v; want one disagreement, not forked", servertest.NodeID(o), check, err)
				}
			}
			if _, err := server.CheckLog(ctx, c.Nodes[forked].Server); err != nil {
				t.Fatal(err)
			}
			alarm := waitForked(t, c, forked)
			if !strings.Contains(alarm.Detail, "contradicted by 2 of the 3 voters") {
				t.Fatalf("alarm detail %q", alarm.Detail)
			}
			// It neither serves nor signs.
			n := c.Nodes[forked]
			_, err := n.Client(t, "videoshare").Matches.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{sha256Hash("only on one node")}})
			if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "FORKED") {
				t.Fatalf("a read on the forked node: %v, want Unavailable naming FORKED", err)
			}
			_, err = n.Client(t, "observatory").Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("a checkpoint from the forked node: %v, want Unavailable", err)
			}
			select {
			case err := <-n.Done():
				if !errors.Is(err, server.ErrRepair) {
					t.Fatalf("Done() = %v, want ErrRepair", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the forked node did not ask to restart for a repair")
			}
			// The others never doubted.
			for _, o := range others(c, forked) {
				if a := server.Alarms(c.Nodes[o].Server); len(a) > 0 {
					t.Fatalf("%s raised %v", servertest.NodeID(o), a)
				}
			}
			// The cluster takes writes without it (a forked leader handed over).
			newLeader := c.Leader(t, 30*time.Second, forked)
			if _, err := c.Nodes[newLeader].Client(t, "fr-pharos").SubmitNotice(ctx, glorificationNotice("while the forked node waits")); err != nil {
				t.Fatal(err)
			}

			// Restarted, as `concord serve` restarts it, it repairs itself.
			c.Stop(t, forked)
			c.Restart(t, forked)
			sameLog(t, c, forked, newLeader)
			if a := server.Alarms(c.Nodes[forked].Server); len(a) > 0 {
				t.Fatalf("alarms after the repair: %v", a)
			}
			if _, err := os.Stat(filepath.Join(n.DataDir, server.RepairFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the repair mark is still there: %v", err)
			}
			checkpointsAgree(t, c, forked, newLeader)
			// The checkpoint it signed over its forked log is kept aside, as evidence.
			if cps, _ := filepath.Glob(filepath.Join(n.DataDir, server.QuarantineDir, "*", "checkpoint")); len(cps) != 1 {
				t.Fatalf("the forked checkpoint was not set aside: %v", cps)
			}
			if _, err := os.Stat(filepath.Join(n.DataDir, "raft", "wal")); err != nil {
				t.Fatalf("the repaired node's raft log: %v", err)
			}
		})
	}
}

// damageLog flips 64 bytes of node i's raft log inside the entry that carries content's hash,
// and returns the damaged segment file.
func damageLog(t *testing.T, c *servertest.Cluster, i int, content string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(content))
	segs, _ := filepath.Glob(filepath.Join(c.Nodes[i].DataDir, "raft", "wal", "*.wal"))
	for _, seg := range segs {
		data, _ := os.ReadFile(seg)
		if off := bytes.Index(data, sum[:]); off >= 0 {
			for k := off - 16; k < off+48; k++ {
				data[k] ^= 0xa5
			}
			if err := os.WriteFile(seg, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return seg
		}
	}
	t.Fatalf("the entry of %q is not in %s's raft log", content, servertest.NodeID(i))
	return ""
}

// TestRepairInterruptedResumes: a damaged node (the one that bootstrapped the cluster, started
// without --join) whose repair cannot reach the cluster gives up after its ready timeout, with
// its raft state set aside; started again once the others are back, it resumes the repair (it
// neither bootstraps a new cluster nor joins as a new node) and ends with the cluster's log.
func TestRepairInterruptedResumes(t *testing.T) {
	t.Parallel()
	c := repairCluster(t, 100*time.Millisecond)
	contents := submitThrough(t, c, c.Leader(t, 30*time.Second), "before the damage", 8)
	for i := range c.Nodes {
		sameLog(t, c, i, c.Leader(t, 30*time.Second))
	}
	for i := range c.Nodes {
		c.Stop(t, i)
	}
	damageLog(t, c, 0, contents[6])

	// Alone, it cannot be repaired: it gives up, marked for repair.
	n := c.Nodes[0]
	n.Config.ReadyTimeout = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if srv, err := server.Start(ctx, n.Config); err == nil {
		srv.Shutdown(ctx)
		t.Fatal("a damaged node started with nobody to repair it from")
	}
	if reason, err := os.ReadFile(filepath.Join(n.DataDir, server.RepairFile)); err != nil || len(reason) == 0 {
		t.Fatalf("no repair mark after the interrupted repair: %v", err)
	}
	n.Config.ReadyTimeout = 0

	c.RestartAll(t, 1, 2)
	leader := c.Leader(t, 30*time.Second, 0)
	later := submitThrough(t, c, leader, "while node-1 was away", 3)
	c.Restart(t, 0)
	sameLog(t, c, 0, leader)
	for _, content := range append(contents, later...) {
		if got, want := matchOne(t, c.Nodes[0].Client(t, "videoshare"), content), matchOne(t, c.Nodes[leader].Client(t, "videoshare"), content); got != want {
			t.Fatalf("%q: %s answers %s, the leader %s", content, servertest.NodeID(0), got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(n.DataDir, server.RepairFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the repair mark is still there: %v", err)
	}
}
