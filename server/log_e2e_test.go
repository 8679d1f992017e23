package server_test

import (
	"context"
	"io"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"
	"concord/server/servertest"
	"concord/translog"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func checkpoint(t *testing.T, n *servertest.Node, c *client.Client) translog.Checkpoint {
	t.Helper()
	resp, err := c.Log.GetCheckpoint(context.Background(), &concordv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := pki.LoadLogVerifier(n.PKI.LogPub())
	if err != nil {
		t.Fatal(err)
	}
	cp, _, err := translog.OpenCheckpoint(resp.GetCheckpoint().GetNote(), v)
	if err != nil {
		t.Fatalf("checkpoint does not verify with log.pub: %v", err)
	}
	return cp
}

// leaves reads the entries [0, end) as c sees them.
func leaves(t *testing.T, c *client.Client, end uint64) []*concordv1.LogLeaf {
	t.Helper()
	stream, err := c.Log.GetEntries(context.Background(), &concordv1.GetEntriesRequest{End: end})
	if err != nil {
		t.Fatal(err)
	}
	var out []*concordv1.LogLeaf
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, msg.GetLeaves()...)
	}
}

func leafHash(l *concordv1.LogLeaf) translog.Hash {
	if l.GetEntry() != nil {
		return translog.LeafHash(l.GetEntry())
	}
	var h translog.Hash
	copy(h[:], l.GetLeafHash())
	return h
}

func TestLogProofsAndRestrictedEntries(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr, de, outsider := n.Client(t, "fr-pharos"), n.Client(t, "de-bka"), n.Client(t, "observatory")

	var checkpoints []translog.Checkpoint
	checkpoints = append(checkpoints, checkpoint(t, n, outsider))
	red := glorificationNotice("red")
	red.Tlp, red.SharingGroup = concordv1.TLP_TLP_RED, []string{"de-bka"}
	redRec, err := fr.SubmitNotice(ctx, red)
	if err != nil {
		t.Fatal(err)
	}
	checkpoints = append(checkpoints, checkpoint(t, n, outsider))
	for i := range 5 {
		rec, err := fr.SubmitNotice(ctx, glorificationNotice())
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := de.EndorseNotice(ctx, rec.GetNotice().GetNoticeId(), "de.stgb.140"); err != nil {
				t.Fatal(err)
			}
		}
		checkpoints = append(checkpoints, checkpoint(t, n, outsider))
	}
	if _, err := de.EndorseNotice(ctx, redRec.GetNotice().GetNoticeId(), "de.stgb.140"); err != nil {
		t.Fatal(err)
	}
	last := checkpoint(t, n, outsider)
	checkpoints = append(checkpoints, last)

	// The outsider reads every entry but the red notice's two, which come as leaf hashes; from
	// them alone it rebuilds the tree and finds the checkpoint's root.
	seen := leaves(t, outsider, uint64(last.Size))
	insider := leaves(t, de, uint64(last.Size))
	if int64(len(seen)) != last.Size || len(insider) != len(seen) {
		t.Fatalf("%d and %d leaves, want %d", len(seen), len(insider), last.Size)
	}
	tree := translog.NewTree()
	restricted := 0
	for i, l := range seen {
		if l.GetIndex() != uint64(i) {
			t.Fatalf("leaf %d has index %d", i, l.GetIndex())
		}
		if leafHash(l) != leafHash(insider[i]) {
			t.Fatalf("leaf %d: the outsider's hash differs from the insider's entry", i)
		}
		if l.GetEntry() == nil {
			restricted++
			var e concordv1.LogEntry
			if err := proto.Unmarshal(insider[i].GetEntry(), &e); err != nil {
				t.Fatal(err)
			}
			var nt concordv1.Notice
			_ = proto.Unmarshal(e.GetStatement().GetPayload(), &nt)
			if e.GetStatement().GetPayloadType() == "application/vnd.concord.notice.v1+protobuf" && nt.GetNoticeId() != redRec.GetNotice().GetNoticeId() {
				t.Errorf("leaf %d withheld from the outsider but is not the red notice", i)
			}
		}
		if _, err := tree.AppendLeafHash(leafHash(l)); err != nil {
			t.Fatal(err)
		}
	}
	if restricted != 2 {
		t.Errorf("%d leaves withheld from the outsider, want 2 (the red notice and its endorsement)", restricted)
	}
	if root, _ := tree.Root(last.Size); root != last.Root {
		t.Fatal("the tree rebuilt from the leaves does not have the checkpoint's root")
	}

	// Inclusion of every entry at every checkpoint's size, and consistency between every pair.
	for k, cp := range checkpoints {
		for i := int64(0); i < cp.Size; i++ {
			resp, err := outsider.Log.GetInclusionProof(ctx, &concordv1.GetInclusionProofRequest{Index: uint64(i), TreeSize: uint64(cp.Size)})
			if err != nil {
				t.Fatal(err)
			}
			proof, _ := translog.HashesFromBytes(resp.GetHashes())
			if err := translog.CheckInclusion(proof, i, cp.Size, cp.Root, leafHash(seen[i])); err != nil {
				t.Fatalf("entry %d in checkpoint %d: %v", i, cp.Size, err)
			}
			// The same proof against another signed checkpoint (another size) fails.
			if k > 0 && checkpoints[k-1].Size > i && checkpoints[k-1].Size != cp.Size {
				other := checkpoints[k-1]
				if err := translog.CheckInclusion(proof, i, other.Size, other.Root, leafHash(seen[i])); err == nil {
					t.Fatalf("the proof of entry %d for size %d verified against the checkpoint of size %d", i, cp.Size, other.Size)
				}
			}
		}
		for _, newer := range checkpoints {
			if newer.Size <= cp.Size {
				continue
			}
			resp, err := outsider.Log.GetConsistencyProof(ctx, &concordv1.GetConsistencyProofRequest{OldSize: uint64(cp.Size), NewSize: uint64(newer.Size)})
			if err != nil {
				t.Fatal(err)
			}
			proof, _ := translog.HashesFromBytes(resp.GetHashes())
			if err := translog.CheckConsistency(proof, cp.Size, cp.Root, newer.Size, newer.Root); err != nil {
				t.Fatalf("checkpoint %d → %d: %v", cp.Size, newer.Size, err)
			}
		}
	}
}

func TestLogFollow(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reader := n.Client(t, "videoshare")
	start := checkpoint(t, n, reader).Size
	stream, err := reader.Log.GetEntries(ctx, &concordv1.GetEntriesRequest{Start: uint64(start), Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	fr := n.Client(t, "fr-pharos")
	rec, err := fr.SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	l := msg.GetLeaves()[0]
	var e concordv1.LogEntry
	if err := proto.Unmarshal(l.GetEntry(), &e); err != nil || l.GetIndex() != rec.GetLogIndex() || e.GetIndex() != rec.GetLogIndex() {
		t.Fatalf("followed leaf %d (entry %d, %v), want the new notice's entry %d", l.GetIndex(), e.GetIndex(), err, rec.GetLogIndex())
	}
}

// TestActionReportsInTheLog: a platform's action report is read in the log by that platform,
// the notice's issuer and auditors; another platform sees its leaf hash only.
func TestActionReportsInTheLog(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	rec, err := n.Client(t, "fr-pharos").SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := n.Client(t, "videoshare").ReportAction(ctx, &concordv1.ActionReport{NoticeId: rec.GetNotice().GetNoticeId(),
		Jurisdictions: []string{"FR"}, Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, OccurredAt: timestamppb.Now()})
	if err != nil {
		t.Fatal(err)
	}
	at := resp.GetAction().GetLogIndex()
	for partner, readable := range map[string]bool{"videoshare": true, "fr-pharos": true, "observatory": true, "socialnet": false, "de-bka": false} {
		leaf := leaves(t, n.Client(t, partner), at+1)[at]
		if (leaf.GetEntry() != nil) != readable {
			t.Errorf("%s reads the action report entry: %v, want %v", partner, leaf.GetEntry() != nil, readable)
		}
		if leafHash(leaf) != translog.LeafHash(resp.GetReceipt().GetEntry()) {
			t.Errorf("%s: the leaf hash differs from the receipt's entry", partner)
		}
	}
}
