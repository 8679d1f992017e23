package server_test

import (
	"context"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/servertest"
)

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
	}
}
