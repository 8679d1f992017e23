package cluster

import (
	"errors"
	"testing"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"
	"concord/server/state"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Every value the FSM answers a command with comes back from a forwarded write as the same Go
// value, refusals with their code and message.
func TestForwardedResponsesRoundTrip(t *testing.T) {
	t.Parallel()
	rec := &concordv1.NoticeRecord{Notice: &concordv1.Notice{NoticeId: "01J00000000000000000000000"}, LogIndex: 7}
	tests := []struct {
		name string
		resp any
	}{
		{"bootstrap", nil},
		{"registry change", &statev1.AppliedChange{ChangeId: "c1", Index: 3, LogIndex: 2}},
		{"notice", rec},
		{"statement", &state.StatementResult{Record: rec, Index: 9, LogIndex: 8}},
		{"action report", &concordv1.ActionRecord{LogIndex: 4}},
		{"refusal", fault.Exists("notice %s exists with other content", "x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := encodeResponse(42, tt.resp)
			if err != nil {
				t.Fatal(err)
			}
			// Over the wire.
			b, err := proto.Marshal(enc)
			if err != nil {
				t.Fatal(err)
			}
			enc.Reset()
			if err := proto.Unmarshal(b, enc); err != nil {
				t.Fatal(err)
			}
			got, err := decodeResponse(enc)
			if err != nil || enc.GetIndex() != 42 {
				t.Fatalf("decode: %v (index %d)", err, enc.GetIndex())
			}
			switch want := tt.resp.(type) {
			case nil:
				if got != nil {
					t.Fatalf("got %v, want nil", got)
				}
			case *state.StatementResult:
				g, ok := got.(*state.StatementResult)
				if !ok || g.Index != want.Index || g.LogIndex != want.LogIndex || !proto.Equal(g.Record, want.Record) {
					t.Fatalf("got %#v, want %#v", got, want)
				}
			case error:
				var f *fault.Error
				if !errors.As(got.(error), &f) || f.Code != codes.AlreadyExists || f.Msg != want.Error() {
					t.Fatalf("got %v, want the AlreadyExists refusal", got)
				}
			case proto.Message:
				if !proto.Equal(got.(proto.Message), want) {
					t.Fatalf("got %v, want %v", got, want)
				}
			}
		})
	}
	// A failure on the leader that is not a rule stays internal: no code, no fault.
	enc, _ := encodeResponse(5, errors.New("disk on fire"))
	got, _ := decodeResponse(enc)
	var f *fault.Error
	if err, ok := got.(error); !ok || errors.As(err, &f) {
		t.Fatalf("an internal failure decoded as %v", got)
	}
	if _, err := encodeResponse(5, struct{}{}); err == nil {
		t.Fatal("an unknown response type was encoded")
	}
}
