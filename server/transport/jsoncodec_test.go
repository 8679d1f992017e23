package transport

import (
	"bytes"
	"context"
	"strings"
	"testing"

	concordv1 "concord/gen/concord/v1"

	"google.golang.org/protobuf/proto"
)

// TestJSONCodec: enum names and hexadecimal bytes are caught wherever they sit (nested
// messages, lists), with the path of the field; what protojson takes as it is passes and
// decodes as Connect's own codec decodes it: enum numbers, base64 bytes (short ones that happen
// to be hex digits too), well-known types, unknown fields; JSON that does not parse is left to
// the decoder.
func TestJSONCodec(t *testing.T) {
	codec := newJSONCodec()
	for _, tc := range []struct {
		body string
		msg  proto.Message
		want string // "" means accepted
	}{
		{`{"hashes":[{"kind":"HASH_KIND_PDQ"},{"kind":"PDQ"}]}`, &concordv1.MatchRequest{}, `hashes[1].kind: "PDQ" is not a HashKind: use one of HASH_KIND_SHA256`},
		{`{"hashes":[{"kind":"NOPE"}],"newerOption":true}`, &concordv1.MatchRequest{}, `hashes[0].kind: "NOPE" is not a HashKind`},
		{`{"hashes":[{"kind":5}]}`, &concordv1.MatchRequest{}, ""},
		{`{"hashes":[{"value":"abcd"}]}`, &concordv1.MatchRequest{}, ""},
		{`{"hashes":[{"value":"0123456789abcdef"}]}`, &concordv1.MatchRequest{}, `hashes[0].value: "0123456789abcdef" is hexadecimal`},
		{`{"hashes":[{"value":"0123456789abcdef"}],"newerOption":1}`, &concordv1.MatchRequest{}, `hashes[0].value: "0123456789abcdef" is hexadecimal`},
		{`{"maxStaleness":"60s","requestId":"deadbeefdeadbeef"}`, &concordv1.MatchRequest{}, ""},
		{`{"unknownThing":{"kind":"NOPE"}}`, &concordv1.MatchRequest{}, ""},
		{`{"envelope":{"payload":"00112233445566778899","payloadType":"x"}}`, &concordv1.SubmitNoticeRequest{}, "envelope.payload"},
		{`{"hashes":[`, &concordv1.MatchRequest{}, "unexpected"},
	} {
		err := codec.UnmarshalRead(context.Background(), bytes.NewReader([]byte(tc.body)), tc.msg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.body, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error saying %q", tc.body, err, tc.want)
		}
	}
	// Accepted requests decode as the lenient codec alone decodes them.
	for _, body := range []string{`{"hashes":[{"kind":"HASH_KIND_SHA256","value":"n4bQgYhMfWWaL+qgxVrQFaO/TwsrC4Is0V1sFbDwCgg="}],"maxPdqDistance":7,"newerOption":[1,2]}`,
		`{"hashes":[{"kind":3,"value":"AAEC","quality":90}],"pdqDihedral":true}`} {
		got, want := &concordv1.MatchRequest{}, &concordv1.MatchRequest{}
		if err := codec.UnmarshalRead(context.Background(), strings.NewReader(body), got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if err := codec.JSONCodec.UnmarshalRead(context.Background(), strings.NewReader(body), want); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("%s: decoded %v, Connect's codec %v", body, got, want)
		}
	}
}
