package registry

import (
	"context"
	"testing"

	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/server/statetest"

	"google.golang.org/protobuf/proto"
)

func FuzzUpdateRegistry(f *testing.F) {
	n := statetest.New(f)
	raft := &statetest.Raft{}
	s, err := New(n.State, raft, nil, n.Now)
	if err != nil {
		f.Fatal(err)
	}
	var accepted []proto.Message
	for _, c := range statetest.RegistryChanges(n) {
		accepted = append(accepted, c)
	}
	n.Fuzz(f, raft, statetest.Statement{
		PayloadType: dsse.PayloadTypeRegistryChange, Author: "hub-ops", Other: "fr-pharos",
		New: func() proto.Message { return &concordv1.RegistryChange{} },
		Submit: func(ctx context.Context, env *concordv1.Envelope) error {
			_, err := s.UpdateRegistry(ctx, &concordv1.UpdateRegistryRequest{Envelope: env})
			return err
		},
		Accepted: accepted,
	})
}

// FuzzPageToken: a page token gives back the partner id it was made from; a token a caller sends
// is refused with a reason or names a partner id, whose own token names it again.
func FuzzPageToken(f *testing.F) {
	f.Add("fr-pharos", "")
	f.Add("hub-ops", encodePageToken("de-bka"))
	f.Add("x", "cDo")
	f.Fuzz(func(t *testing.T, lastID, sent string) {
		if lastID != "" {
			got, err := decodePageToken(encodePageToken(lastID))
			if err != nil || got != lastID {
				t.Fatalf("the token of %q decodes as %q, %v", lastID, got, err)
			}
		}
		id, err := decodePageToken(sent)
		if err != nil {
			if !statetest.Refusal(err) {
				t.Fatalf("token %q: %v is not a refusal", sent, err)
			}
			return
		}
		if sent == "" {
			if id != "" {
				t.Fatalf("no token decodes as %q", id)
			}
			return
		}
		if back, err := decodePageToken(encodePageToken(id)); id == "" || err != nil || back != id {
			t.Fatalf("token %q decodes as %q, whose own token decodes as %q, %v", sent, id, back, err)
		}
	})
}
