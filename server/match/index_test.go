package match

import (
	"bytes"
	"math/rand/v2"
	"testing"

	concordv1 "concord/gen/concord/v1"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestNoticeHashesReadsWhatUnmarshalReads: the index's own reading of a payload gives the id
// and hashes that proto.Unmarshal gives, whatever else the payload holds (unknown fields too),
// and refuses what it refuses.
func TestNoticeHashesReadsWhatUnmarshalReads(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 500 {
		n := &concordv1.Notice{NoticeId: "01J00000000000000000000000", Issuer: "fr-pharos", LegalBasis: "fr.cp.421-2-5",
			Context: "context", CreatedAt: timestamppb.Now(), Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}
		for range r.IntN(20) {
			v := make([]byte, []int{16, 32, 64}[r.IntN(3)])
			for k := range v {
				v[k] = byte(r.Uint32())
			}
			n.Hashes = append(n.Hashes, &concordv1.Hash{Kind: concordv1.HashKind(r.IntN(6)), Value: v, Quality: int32(r.IntN(101))})
		}
		b, err := proto.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // an unknown field, and the id given twice (the last one counts)
			b = protowire.AppendTag(b, 4242, protowire.BytesType)
			b = protowire.AppendBytes(b, []byte("unknown"))
			b = protowire.AppendTag(b, noticeIDField, protowire.BytesType)
			b = protowire.AppendString(b, "01J99999999999999999999999")
		}
		var want concordv1.Notice
		if err := proto.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		id, got, err := noticeHashes(b, nil)
		if err != nil || id != want.GetNoticeId() || len(got) != len(want.GetHashes()) {
			t.Fatalf("payload %d: id %q, %d hashes, %v; want %q, %d", i, id, len(got), err, want.GetNoticeId(), len(want.GetHashes()))
		}
		for k, h := range hashes(want.GetHashes()) {
			if got[k].Kind != h.Kind || !bytes.Equal(got[k].Value, h.Value) {
				t.Fatalf("payload %d, hash %d: %v, want %v", i, k, got[k], h)
			}
		}
		// Cut short, it is refused as Unmarshal refuses it.
		cut := b[:r.IntN(len(b))]
		_, _, err = noticeHashes(cut, nil)
		if uerr := proto.Unmarshal(cut, &concordv1.Notice{}); (err == nil) != (uerr == nil) {
			t.Fatalf("payload %d cut at %d: noticeHashes %v, Unmarshal %v", i, len(cut), err, uerr)
		}
	}
}
