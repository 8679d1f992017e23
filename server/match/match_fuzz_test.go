package match

import (
	"bytes"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/statetest"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// FuzzNoticeHashes: the index's own reading of a signed notice's payload gives the id and the
// hashes (kinds and values, in order) that proto.Unmarshal gives, for every payload Unmarshal
// accepts (the only ones a node stores), and refuses only what Unmarshal refuses.
func FuzzNoticeHashes(f *testing.F) {
	for _, n := range []*concordv1.Notice{statetest.Notice(), statetest.NextNotice()} {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, _ := proto.Marshal(statetest.Notice())
	b = protowire.AppendTag(b, 4242, protowire.StartGroupType)
	b = protowire.AppendTag(b, 4242, protowire.EndGroupType)
	b = protowire.AppendTag(b, noticeIDField, protowire.BytesType)
	f.Add(protowire.AppendString(b, "01J99999999999999999999999"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		id, got, err := noticeHashes(payload, nil)
		var want concordv1.Notice
		if uerr := proto.Unmarshal(payload, &want); uerr != nil {
			return // never stored: the service parsed the payload before accepting it
		}
		if err != nil || id != want.GetNoticeId() || len(got) != len(want.GetHashes()) {
			t.Fatalf("id %q, %d hashes, %v; Unmarshal gives %q, %d hashes", id, len(got), err, want.GetNoticeId(), len(want.GetHashes()))
		}
		for k, h := range hashes(want.GetHashes()) {
			if got[k].Kind != h.Kind || !bytes.Equal(got[k].Value, h.Value) {
				t.Fatalf("hash %d: %v, Unmarshal gives %v", k, got[k], h)
			}
		}
	})
}

// FuzzValidateRequest: the hand-written check of a MatchRequest, as it arrives on the wire,
// accepts exactly what protovalidate accepts under the .proto's rules.
func FuzzValidateRequest(f *testing.F) {
	for _, req := range []*concordv1.MatchRequest{
		{Hashes: statetest.Notice().GetHashes(), MaxPdqDistance: 31, RequestId: "batch-7", MaxStaleness: durationpb.New(time.Minute)},
		{Hashes: []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: bytes.Repeat([]byte{1}, 32), Quality: 101}}},
		{Hashes: []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_PDQ_VIDEO, Value: bytes.Repeat([]byte{1}, 48)}}, MaxStaleness: durationpb.New(-time.Second)},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	v, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		var req concordv1.MatchRequest
		if proto.Unmarshal(wire, &req) != nil {
			return
		}
		got, want := ValidateRequest(&req), v.Validate(&req)
		if (got == nil) != (want == nil) {
			t.Fatalf("%v: ValidateRequest says %v, protovalidate %v", &req, got, want)
		}
		if got != nil && !statetest.Refusal(got) {
			t.Fatalf("%v is not a refusal", got)
		}
	})
}
