package transport

import (
	"strings"
	"testing"

	concordv1 "concord/gen/concord/v1"
)

// TestCheckJSON: enum names and hexadecimal bytes are caught wherever they sit (nested
// messages, lists), with the path of the field; what protojson takes as it is passes: enum
// numbers, base64 bytes (short ones that happen to be hex digits too), well-known types, unknown
// fields, JSON that does not parse (left to the decoder).
func TestCheckJSON(t *testing.T) {
	notice := (&concordv1.SubmitNoticeRequest{}).ProtoReflect().Descriptor()
	match := (&concordv1.MatchRequest{}).ProtoReflect().Descriptor()
	for _, tc := range []struct {
		body string
		want string // "" means accepted
	}{
		{`{"hashes":[{"kind":"HASH_KIND_PDQ"},{"kind":"PDQ"}]}`, `hashes[1].kind: "PDQ" is not a HashKind: use one of HASH_KIND_SHA256`},
		{`{"hashes":[{"kind":5}]}`, ""},
		{`{"hashes":[{"value":"abcd"}]}`, ""},
		{`{"hashes":[{"value":"0123456789abcdef"}]}`, `hashes[0].value: "0123456789abcdef" is hexadecimal`},
		{`{"maxStaleness":"60s","requestId":"deadbeefdeadbeef"}`, ""},
		{`{"unknownThing":{"kind":"NOPE"}}`, ""},
		{`{"hashes":[`, ""},
	} {
		err := checkJSON([]byte(tc.body), match)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.body, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error saying %q", tc.body, err, tc.want)
		}
	}
	// Inside a signed envelope the payload is bytes too; a statement's enum deep in a message.
	if err := checkJSON([]byte(`{"envelope":{"payload":"00112233445566778899","payloadType":"x"}}`), notice); err == nil ||
		!strings.Contains(err.Error(), "envelope.payload") {
		t.Errorf("hex in envelope.payload: %v", err)
	}
}
