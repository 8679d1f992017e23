package client_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"concord/client"
	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/matchindex"
	"concord/server/fsm"
	"concord/server/match"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkMirrorCatchUp measures how fast a mirror catches up from an empty directory: a log of
// N entries (100 000 by default, CONCORD_BENCH_ENTRIES sets another number) is produced by the
// server's state machine, then replayed by a mirror's replayer with the match index attached:
// leaf hashes, signature verification against the registry as of each entry, state and index
// updates, the tree. It reports entries/s. Run with -benchtime 1x.
func BenchmarkMirrorCatchUp(b *testing.B) {
	total := 100_000
	if v := os.Getenv("CONCORD_BENCH_ENTRIES"); v != "" {
		var err error
		if total, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	entries := produceLog(b, total)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		r, err := client.NewReplayer(nil)
		if err != nil {
			b.Fatal(err)
		}
		r.Attach(match.NewIndex(matchindex.Options{}, nil))
		batch := make([]client.Leaf, 0, 256)
		for i, e := range entries {
			batch = append(batch, client.Leaf{Index: uint64(i), Entry: e})
			if len(batch) == cap(batch) || i == len(entries)-1 {
				if err := r.AddBatch(batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		b.ReportMetric(float64(len(entries))/time.Since(start).Seconds(), "entries/s")
	}
}

// produceLog makes a log of n entries — a bootstrap registry, then notices of one SHA-256 hash
// signed by a French authority — with the server's own state machine, and returns its entries.
func produceLog(b *testing.B, n int) [][]byte {
	b.Helper()
	f, err := fsm.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	adminPub, _, _ := ed25519.GenerateKey(nil)
	frPub, frKey, _ := ed25519.GenerateKey(nil)
	t0 := time.Now().Add(-time.Hour)
	run := func(idx uint64, data []byte) {
		if err, ok := f.Apply(&raft.Log{Index: idx, Data: data}).(error); ok {
			b.Fatalf("entry %d: %v", idx, err)
		}
	}
	boot, err := fsm.Encode(fsm.BootstrapRegistryType, &statev1.BootstrapRegistry{
		Jurisdictions: []*concordv1.Jurisdiction{{Code: "FR", Name: "France", Provisions: []*concordv1.LegalProvision{
			{Id: "fr.a", Citation: "a", Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}}}},
		Partners: []*concordv1.Partner{
			{Id: "hub-ops", DisplayName: "Hub", Roles: []concordv1.Role{concordv1.Role_ROLE_ADMIN}},
			{Id: "fr-pharos", DisplayName: "PHAROS", Jurisdiction: "FR", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY}},
		},
		SigningKeys: []*concordv1.SigningKey{{PartnerId: "hub-ops", PublicKey: adminPub}, {PartnerId: "fr-pharos", PublicKey: frPub}},
		At:          timestamppb.New(t0),
	})
	if err != nil {
		b.Fatal(err)
	}
	run(1, boot)
	signer := dsse.NewSigner(frKey)
	for i := 1; i < n; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprint(i)))
		env, err := dsse.SignMessage(dsse.PayloadTypeNotice, &concordv1.Notice{
			NoticeId: fmt.Sprintf("01K%023d", i), Issuer: "fr-pharos", Jurisdiction: "FR", LegalBasis: "fr.a",
			Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
			Hashes:     []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]}},
		}, signer)
		if err != nil {
			b.Fatal(err)
		}
		cmd, err := fsm.Encode(fsm.SubmitNoticeType, &statev1.SubmitNotice{Envelope: env, SignerKeyId: signer.KeyID(),
			At: timestamppb.New(t0.Add(time.Duration(i) * time.Millisecond))})
		if err != nil {
			b.Fatal(err)
		}
		run(uint64(i+1), cmd)
	}
	var out [][]byte
	if err := f.State().LogRows(0, func(row *statev1.LogRow) bool {
		out = append(out, row.GetEntry())
		return true
	}); err != nil {
		b.Fatal(err)
	}
	if len(out) != n {
		b.Fatalf("produced %d entries, want %d", len(out), n)
	}
	return out
}
