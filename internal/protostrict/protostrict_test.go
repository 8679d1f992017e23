package protostrict

import (
	"bytes"
	"testing"

	concordv1 "concord/gen/concord/v1"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// withField appends field num, a length-delimited value of n bytes, to b.
func withField(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, bytes.Repeat([]byte{0x5a}, n))
}

func TestUnknown(t *testing.T) {
	t.Parallel()
	notice := &concordv1.Notice{NoticeId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Hashes: []*concordv1.Hash{
		{Value: []byte{1, 2, 3}}, {Value: []byte{4, 5, 6}},
	}}
	clean, err := proto.Marshal(notice)
	if err != nil {
		t.Fatal(err)
	}
	// An unknown field inside the second hash: marshal the hash with the extra field and append
	// it as the list's second element.
	hashWithExtra := withField(mustMarshal(t, notice.GetHashes()[1]), 77, 3)
	nested := mustMarshal(t, &concordv1.Notice{NoticeId: notice.GetNoticeId(), Hashes: notice.GetHashes()[:1]})
	hashesField := fieldNumber(t, notice, "hashes")
	nested = protowire.AppendTag(nested, hashesField, protowire.BytesType)
	nested = protowire.AppendBytes(nested, hashWithExtra)

	for _, tc := range []struct {
		name      string
		wire      []byte
		wantPath  string
		wantField protowire.Number
		wantBytes int
	}{
		{"clean", clean, "", 0, 0},
		{"top level", withField(clean, 4242, 12<<10), "", 4242, protowire.SizeTag(4242) + protowire.SizeBytes(12<<10)},
		{"nested in a list", nested, "hashes[1]", 77, protowire.SizeTag(77) + protowire.SizeBytes(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got concordv1.Notice
			if err := proto.Unmarshal(tc.wire, &got); err != nil {
				t.Fatal(err)
			}
			u := Unknown(got.ProtoReflect())
			if tc.wantField == 0 {
				if u != nil {
					t.Fatalf("clean message: got %v", u)
				}
				return
			}
			if u == nil {
				t.Fatal("unknown field not found")
			}
			if u.Path != tc.wantPath || u.Number != tc.wantField || u.Bytes != tc.wantBytes {
				t.Errorf("got path %q field %d bytes %d; want %q %d %d", u.Path, u.Number, u.Bytes, tc.wantPath, tc.wantField, tc.wantBytes)
			}
			if u.Error() == "" {
				t.Error("empty message")
			}
		})
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fieldNumber(t *testing.T, m proto.Message, name string) protowire.Number {
	t.Helper()
	fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		t.Fatalf("no field %s", name)
	}
	return fd.Number()
}
