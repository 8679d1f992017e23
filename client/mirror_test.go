package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"
	"concord/server/servertest"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"
)

func logVerifier(t *testing.T, n *servertest.Node) note.Verifier {
	t.Helper()
	v, err := pki.LoadLogVerifier(n.PKI.LogPub())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func randomPDQ(r *rand.Rand) []byte {
	v := make([]byte, 32)
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return v
}

func near(r *rand.Rand, v []byte, bits int) []byte {
	out := slices.Clone(v)
	for _, b := range r.Perm(256)[:bits] {
		out[b/8] ^= 1 << (b % 8)
	}
	return out
}

// matchKeys renders a response as comparable strings.
func matchKeys(resp *concordv1.MatchResponse) []string {
	var out []string
	for i, r := range resp.GetResults() {
		for _, m := range r.GetMatches() {
			var where []string
			for _, o := range m.GetObligations() {
				where = append(where, o.GetJurisdiction()+"@"+o.GetActionDeadline().AsTime().String())
			}
			out = append(out, fmt.Sprintf("%d:%s/%d/%d/%s", i, m.GetNoticeId(), m.GetHashPosition(), m.GetDistance(), strings.Join(where, ",")))
		}
		if r.GetLowQuality() {
			out = append(out, fmt.Sprintf("%d:low", i))
		}
	}
	return out
}

// TestMirrorAnswersLikeTheHub builds a platform's mirror from the log and checks that, for
// random queries, it answers exactly as the hub does — a TLP:RED notice outside the platform's
// group included (neither matches it) — then again after more entries, a withdrawal and a
// reopening from disk.
func TestMirrorAnswersLikeTheHub(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	fr, de := n.Client(t, "fr-pharos"), n.Client(t, "de-bka")
	var stored [][]byte
	var ids []string
	submit := func(c *client.Client, basis string, red bool) {
		notice := &concordv1.Notice{LegalBasis: basis, Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}
		if red {
			notice.Tlp, notice.SharingGroup = concordv1.TLP_TLP_RED, []string{"de-bka"}
		}
		for range 300 {
			v := randomPDQ(r)
			stored = append(stored, v)
			notice.Hashes = append(notice.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: v, Quality: 90})
		}
		sum := sha256.Sum256([]byte(fmt.Sprint(len(ids))))
		notice.Hashes = append(notice.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]})
		rec, err := c.SubmitNotice(ctx, notice)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.GetNotice().GetNoticeId())
	}
	submit(fr, "fr.cp.421-2-5", false)
	submit(de, "de.stgb.140", false)
	submit(fr, "fr.cp.421-2-5", true) // outside videoshare's view
	if _, err := de.EndorseNotice(ctx, ids[0], "de.stgb.140"); err != nil {
		t.Fatal(err)
	}

	queries := func() *concordv1.MatchRequest {
		req := &concordv1.MatchRequest{}
		for range 200 {
			q := randomPDQ(r)
			if r.IntN(3) > 0 {
				q = near(r, stored[r.IntN(len(stored))], r.IntN(40))
			}
			req.Hashes = append(req.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: q, Quality: int32(40 + r.IntN(60))})
		}
		for i := range len(ids) + 1 {
			sum := sha256.Sum256([]byte(fmt.Sprint(i)))
			req.Hashes = append(req.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]})
		}
		return req
	}
	platform := n.Client(t, "videoshare")
	dir := t.TempDir()
	m, err := client.OpenMirror(dir, logVerifier(t, n), "videoshare")
	if err != nil {
		t.Fatal(err)
	}
	compare := func(label string) {
		t.Helper()
		if err := m.Sync(ctx, platform, nil); err != nil {
			t.Fatalf("%s: sync: %v", label, err)
		}
		req := queries()
		hub, err := platform.Matches.Match(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		local, err := m.Match(req)
		if err != nil {
			t.Fatal(err)
		}
		h, l := matchKeys(hub), matchKeys(local)
		if !slices.Equal(h, l) {
			t.Fatalf("%s: the mirror answers\n%v\nthe hub\n%v", label, l, h)
		}
		if len(h) < 50 {
			t.Fatalf("%s: only %d matches: the test plants too little", label, len(h))
		}
	}
	compare("first sync")
	if st := m.Stats(); st.Restricted != 1 || st.Entries != m.Size() {
		t.Fatalf("mirror stats %+v: want the red notice as the one restricted entry", st)
	}

	submit(de, "de.stgb.140", false)
	if _, err := fr.WithdrawNotice(ctx, ids[0], "withdrawn", true); err != nil {
		t.Fatal(err)
	}
	compare("after more entries and a withdrawal")
	size := m.Size()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if m, err = client.OpenMirror(dir, logVerifier(t, n), ""); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if m.Size() != size || m.Partner() != "videoshare" {
		t.Fatalf("reopened mirror: %d entries for %q, want %d for videoshare", m.Size(), m.Partner(), size)
	}
	compare("reopened from disk")
}

// TestMirrorRefusesWhatDoesNotVerify: an entry whose bytes were changed on disk, a forked log
// signed with the same key, and a tampered statement are all refused, naming the entry.
func TestMirrorRefusesWhatDoesNotVerify(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	n := servertest.Start(t, servertest.Options{Dir: filepath.Join(root, "a")})
	ctx := context.Background()
	fr := n.Client(t, "fr-pharos")
	for i := range 5 {
		sum := sha256.Sum256([]byte(fmt.Sprint("mirror ", i)))
		if _, err := fr.SubmitNotice(ctx, &concordv1.Notice{LegalBasis: "fr.cp.421-2-5", Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
			Hashes: []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]}}}); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(root, "mirror")
	m, err := client.OpenMirror(dir, logVerifier(t, n), "videoshare")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx, n.Client(t, "videoshare"), nil); err != nil {
		t.Fatal(err)
	}
	m.Close()

	// A byte flipped inside entry 3's bytes on disk.
	path := filepath.Join(dir, "entries")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	third := indexOfEntry(t, data, 3)
	damaged := slices.Clone(data)
	damaged[third+40] ^= 0x01
	if err := os.WriteFile(path, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = client.OpenMirror(dir, logVerifier(t, n), "")
	if err == nil || !strings.Contains(err.Error(), "entry 3") {
		t.Fatalf("opening a mirror with a changed entry: %v; want an error naming entry 3", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// A second hub with the same keys but another history: the mirror sees the fork.
	other := filepath.Join(root, "b")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-r", filepath.Join(root, "a", "certs"), other).CombinedOutput(); err != nil {
		t.Fatalf("copy certs: %v %s", err, out)
	}
	fork := servertest.Start(t, servertest.Options{Dir: other})
	for i := range 7 {
		sum := sha256.Sum256([]byte(fmt.Sprint("fork ", i)))
		if _, err := fork.Client(t, "fr-pharos").SubmitNotice(ctx, &concordv1.Notice{LegalBasis: "fr.cp.421-2-5", Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
			Hashes: []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]}}}); err != nil {
			t.Fatal(err)
		}
	}
	m, err = client.OpenMirror(dir, logVerifier(t, n), "")
	if err != nil {
		t.Fatal(err)
	}
	honestSize := m.Size()
	err = m.Sync(ctx, fork.Client(t, "videoshare"), nil)
	if err == nil || !strings.Contains(err.Error(), "root") && !strings.Contains(err.Error(), "signature") {
		t.Fatalf("syncing from a forked log: %v; want the fork detected", err)
	}
	// The fork's entries were applied before its root was found wrong: the mirror answers
	// nothing until reopened, and reopened it holds only what the honest checkpoint vouches for.
	if _, err := m.Match(&concordv1.MatchRequest{Hashes: []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: make([]byte, 32)}}}); err == nil {
		t.Fatal("a mirror that applied unverified entries still answers matches")
	}
	m.Close()
	if m, err = client.OpenMirror(dir, logVerifier(t, n), ""); err != nil {
		t.Fatalf("reopen after the fork: %v", err)
	}
	if m.Size() != honestSize {
		t.Fatalf("reopened mirror holds %d entries, want the %d its checkpoint vouches for", m.Size(), honestSize)
	}
	forkSum := sha256.Sum256([]byte("fork 6"))
	resp, err := m.Match(&concordv1.MatchRequest{Hashes: []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: forkSum[:]}}})
	if err != nil || len(resp.GetResults()[0].GetMatches()) != 0 {
		t.Fatalf("the reopened mirror matches a hash only the fork has: %v, %v", resp, err)
	}
	if err := m.Sync(ctx, n.Client(t, "videoshare"), nil); err != nil {
		t.Fatalf("the honest hub after the fork: %v", err)
	}
	m.Close()

	// A statement changed after signing never enters a replay.
	rp, err := client.NewReplayer(nil)
	if err != nil {
		t.Fatal(err)
	}
	entries := leavesOf(t, data)
	for i, e := range entries {
		if i == 2 {
			var le concordv1.LogEntry
			if err := proto.Unmarshal(e, &le); err != nil {
				t.Fatal(err)
			}
			le.GetStatement().Payload[len(le.GetStatement().Payload)-1] ^= 1
			e, _ = proto.Marshal(&le)
		}
		err := rp.Add(uint64(i), e, nil)
		if i == 2 {
			if err == nil || !strings.Contains(err.Error(), "entry 2: signature") {
				t.Fatalf("a tampered statement: %v; want a signature error naming entry 2", err)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// indexOfEntry returns the offset of entry i's bytes in a mirror's entries file.
func indexOfEntry(t *testing.T, data []byte, i int) int {
	t.Helper()
	off := 0
	for k := 0; ; k++ {
		size, n := binary.Uvarint(data[off+1:])
		if k == i {
			return off + 1 + n
		}
		off += 1 + n + int(size) + 32
	}
}

func leavesOf(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for off := 0; off < len(data); {
		size, n := binary.Uvarint(data[off+1:])
		out = append(out, data[off+1+n:off+1+n+int(size)])
		off += 1 + n + int(size) + 32
	}
	return out
}
