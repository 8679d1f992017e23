package server_test

import (
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/server/servertest"
)

// storedPDQ is one PDQ hash of a notice, for the brute-force oracle.
type storedPDQ struct {
	notice   string
	position int
	value    [32]byte
	red      bool
}

func pdqDistance(a, b [32]byte) int {
	d := 0
	for i := range a {
		d += bits.OnesCount8(a[i] ^ b[i])
	}
	return d
}

// flip returns h with n distinct bits flipped.
func flip(r *rand.Rand, h [32]byte, n int) [32]byte {
	for _, bit := range r.Perm(256)[:n] {
		h[bit/8] ^= 1 << (bit % 8)
	}
	return h
}

// oracle answers a query by scanning every stored hash: "notice/position/distance" strings.
func oracle(stored []storedPDQ, retired map[string]bool, q [32]byte, seeRed bool) []string {
	var out []string
	for _, s := range stored {
		if retired[s.notice] || (s.red && !seeRed) {
			continue
		}
		if d := pdqDistance(s.value, q); d <= 31 {
			out = append(out, fmt.Sprintf("%s/%d/%d", s.notice, s.position, d))
		}
	}
	slices.Sort(out)
	return out
}

func served(t *testing.T, c *client.Client, queries [][32]byte) [][]string {
	t.Helper()
	req := &concordv1.MatchRequest{}
	for _, q := range queries {
		req.Hashes = append(req.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: q[:], Quality: 90})
	}
	resp, err := c.Matches.Match(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]string, len(queries))
	for i, r := range resp.GetResults() {
		for _, m := range r.GetMatches() {
			out[i] = append(out[i], fmt.Sprintf("%s/%d/%d", m.GetNoticeId(), m.GetHashPosition(), m.GetDistance()))
		}
		slices.Sort(out[i])
	}
	return out
}

// TestMatchEqualsBruteForce stores 100 000 random PDQ hashes in ten notices through the API,
// plants near-duplicates at distances 0 to 40, and checks every Match answer against a scan of
// all stored hashes: as stored, after two withdrawals, and after a snapshot restore.
func TestMatchEqualsBruteForce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := servertest.Start(t, servertest.Options{Dir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	r := rand.New(rand.NewPCG(7, 31))
	authorities := []struct{ partner, basis string }{{"fr-pharos", "fr.cp.421-2-5"}, {"de-bka", "de.stgb.140"}}
	var stored []storedPDQ
	var ids []string
	for k := range 10 {
		a := authorities[k%2]
		notice := &concordv1.Notice{LegalBasis: a.basis, Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}
		red := k == 3
		if red {
			notice.Tlp, notice.SharingGroup = concordv1.TLP_TLP_RED, []string{"videoshare"}
		}
		var batch []storedPDQ
		for i := range 10000 {
			var h [32]byte
			if k > 0 && i%500 == 0 {
				// Clustered content: a near copy of an earlier notice's hash.
				h = flip(r, stored[r.IntN(len(stored))].value, r.IntN(12))
			} else {
				for j := range h {
					h[j] = byte(r.Uint32())
				}
			}
			notice.Hashes = append(notice.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: h[:], Quality: 80})
			batch = append(batch, storedPDQ{position: i, value: h, red: red})
		}
		rec, err := n.Client(t, a.partner).SubmitNotice(ctx, notice)
		if err != nil {
			t.Fatal(err)
		}
		for i := range batch {
			batch[i].notice = rec.GetNotice().GetNoticeId()
		}
		stored = append(stored, batch...)
		ids = append(ids, rec.GetNotice().GetNoticeId())
	}
	// Queries: near-duplicates of stored hashes at every distance from 0 to 40, and random ones.
	var queries [][32]byte
	for d := 0; d <= 40; d++ {
		for range 6 {
			queries = append(queries, flip(r, stored[r.IntN(len(stored))].value, d))
		}
	}
	for range 60 {
		var q [32]byte
		for j := range q {
			q[j] = byte(r.Uint32())
		}
		queries = append(queries, q)
	}
	for _, s := range stored {
		if s.red {
			queries = append(queries, flip(r, s.value, 3)) // a near copy of red content
			break
		}
	}

	check := func(label string, c *client.Client, seeRed bool, retired map[string]bool) {
		t.Helper()
		got := served(t, c, queries)
		matched := 0
		for i, q := range queries {
			want := oracle(stored, retired, q, seeRed)
			if !slices.Equal(got[i], want) {
				t.Fatalf("%s: query %d: served %v\nbrute force %v", label, i, got[i], want)
			}
			if len(want) > 0 {
				matched++
			}
		}
		if matched < 100 {
			t.Fatalf("%s: only %d of %d queries matched anything: the test plants too little", label, matched, len(queries))
		}
	}
	platform, outsider := n.Client(t, "videoshare"), n.Client(t, "socialnet")
	check("as stored", platform, true, nil)
	check("outside the red notice's group", outsider, false, nil)

	retired := map[string]bool{ids[2]: true, ids[5]: true}
	if _, err := n.Client(t, "fr-pharos").WithdrawNotice(ctx, ids[2], "withdrawn for the test", false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Client(t, "de-bka").WithdrawNotice(ctx, ids[5], "withdrawn for the test", false); err != nil {
		t.Fatal(err)
	}
	check("after two withdrawals", platform, true, retired)

	// Snapshot, restart: the index is rebuilt from the restored state.
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	if err := n.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	scancel()
	n2 := servertest.Start(t, servertest.Options{Dir: dir})
	check("after a snapshot restore", n2.Client(t, "videoshare"), true, retired)
	check("after a snapshot restore, outside the group", n2.Client(t, "socialnet"), false, retired)
}

func TestMatchExactKindsAndLowQuality(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	notice := glorificationNotice("clip")
	notice.Hashes = append(notice.Hashes,
		&concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_MD5, Value: make([]byte, 16)},
		&concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_URL_SHA256, Value: sha256Hash("url").GetValue()})
	rec, err := n.Client(t, "fr-pharos").SubmitNotice(ctx, notice)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := n.Client(t, "videoshare").Matches.Match(ctx, &concordv1.MatchRequest{RequestId: "batch-1", Hashes: []*concordv1.Hash{
		sha256Hash("clip"),
		{Kind: concordv1.HashKind_HASH_KIND_MD5, Value: make([]byte, 16)},
		{Kind: concordv1.HashKind_HASH_KIND_URL_SHA256, Value: sha256Hash("url").GetValue()},
		{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sha256Hash("url").GetValue()}, // same bytes, other kind
		{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: make([]byte, 32), Quality: 20},
		{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: make([]byte, 32)}, // quality left unset
	}})
	if err != nil {
		t.Fatal(err)
	}
	res := resp.GetResults()
	for i, want := range []int{1, 1, 1, 0, 0, 0} {
		if len(res[i].GetMatches()) != want {
			t.Errorf("result %d: %d matches, want %d", i, len(res[i].GetMatches()), want)
		}
	}
	if res[2].GetMatches()[0].GetHashPosition() != 2 || res[2].GetMatches()[0].GetNoticeId() != rec.GetNotice().GetNoticeId() || resp.GetRequestId() != "batch-1" {
		t.Errorf("URL match: %v", res[2])
	}
	if !res[4].GetLowQuality() || !strings.Contains(res[4].GetNote(), "quality 20") {
		t.Errorf("a quality-20 PDQ query is not flagged: %v", res[4])
	}
	if !res[5].GetLowQuality() || !strings.Contains(res[5].GetNote(), "If you did not set quality") {
		t.Errorf("a PDQ query without quality is not flagged as such: %v", res[5])
	}

	// A video (its frames' PDQ hashes) matches a query sharing at least 80 % of its frames.
	r := rand.New(rand.NewPCG(1, 2))
	var frames [][32]byte
	for range 10 {
		var f [32]byte
		for j := range f {
			f[j] = byte(r.Uint32())
		}
		frames = append(frames, f)
	}
	video := func(fs [][32]byte) *concordv1.Hash {
		var v []byte
		for _, f := range fs {
			v = append(v, f[:]...)
		}
		return &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ_VIDEO, Value: v, Quality: 90}
	}
	videoNotice := glorificationNotice()
	videoNotice.Hashes = []*concordv1.Hash{video(frames)}
	if _, err := n.Client(t, "fr-pharos").SubmitNotice(ctx, videoNotice); err != nil {
		t.Fatal(err)
	}
	near := append([][32]byte{}, frames[:8]...)
	near = append(near, flip(r, frames[8], 5), flip(r, frames[9], 60)) // 9 of 10 frames match
	far := append(append([][32]byte{}, frames[:7]...), flip(r, frames[7], 80), flip(r, frames[8], 80), flip(r, frames[9], 80))
	vr, err := n.Client(t, "videoshare").Matches.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{video(near), video(far)}})
	if err != nil {
		t.Fatal(err)
	}
	if m := vr.GetResults()[0].GetMatches(); len(m) != 1 || m[0].GetQueryMatchPercent() != 90 || m[0].GetKind() != concordv1.HashKind_HASH_KIND_PDQ_VIDEO {
		t.Errorf("a video sharing 9 of 10 frames: %v", m)
	}
	if m := vr.GetResults()[1].GetMatches(); len(m) != 0 {
		t.Errorf("a video sharing 7 of 10 frames matched: %v", m)
	}

	// The stream answers each batch in order.
	stream, err := n.Client(t, "videoshare").Matches.MatchStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := stream.Send(&concordv1.MatchStreamRequest{Batch: &concordv1.MatchRequest{RequestId: fmt.Sprint(i), Hashes: []*concordv1.Hash{sha256Hash("clip")}}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		got, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if got.GetBatch().GetRequestId() != fmt.Sprint(i) || len(got.GetBatch().GetResults()[0].GetMatches()) != 1 {
			t.Fatalf("stream response %d: %v", i, got.GetBatch())
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}
