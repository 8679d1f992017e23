package notice

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/server/statetest"

	"google.golang.org/protobuf/proto"
)

// fuzzService is the notice service over a node holding statetest.Notice, committing nothing.
func fuzzService(f *testing.F) (*Service, *statetest.Node, *statetest.Raft) {
	n := statetest.New(f)
	n.SubmitNotice(f)
	raft := &statetest.Raft{}
	s, err := New(n.State, raft, nil, n.Now)
	if err != nil {
		f.Fatal(err)
	}
	return s, n, raft
}

func FuzzSubmitNotice(f *testing.F) {
	s, n, raft := fuzzService(f)
	restricted := statetest.NextNotice()
	restricted.NoticeId = "01KB9Q0000XY5S42000000NTC3"
	restricted.Supersedes = ""
	restricted.Tlp = concordv1.TLP_TLP_RED
	restricted.SharingGroup = []string{"videoshare", "de-bka"}
	n.Fuzz(f, raft, statetest.Statement{
		PayloadType: dsse.PayloadTypeNotice, Author: "fr-pharos", Other: "de-bka",
		New: func() proto.Message { return &concordv1.Notice{} },
		Submit: func(ctx context.Context, env *concordv1.Envelope) error {
			_, err := s.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
			return err
		},
		Accepted: []proto.Message{statetest.NextNotice(), restricted},
	})
}

func FuzzEndorseNotice(f *testing.F) {
	s, n, raft := fuzzService(f)
	n.Fuzz(f, raft, statetest.Statement{
		PayloadType: dsse.PayloadTypeEndorsement, Author: "de-bka", Other: "be-fedpol",
		New: func() proto.Message { return &concordv1.Endorsement{} },
		Submit: func(ctx context.Context, env *concordv1.Envelope) error {
			_, err := s.EndorseNotice(ctx, &concordv1.EndorseNoticeRequest{Envelope: env})
			return err
		},
		Accepted: []proto.Message{statetest.Endorsement()},
	})
}

func FuzzObjectToNotice(f *testing.F) {
	s, n, raft := fuzzService(f)
	n.Fuzz(f, raft, statetest.Statement{
		PayloadType: dsse.PayloadTypeObjection, Author: "be-fedpol", Other: "de-bka",
		New: func() proto.Message { return &concordv1.Objection{} },
		Submit: func(ctx context.Context, env *concordv1.Envelope) error {
			_, err := s.ObjectToNotice(ctx, &concordv1.ObjectToNoticeRequest{Envelope: env})
			return err
		},
		Accepted: []proto.Message{statetest.Objection()},
	})
}

func FuzzWithdrawNotice(f *testing.F) {
	s, n, raft := fuzzService(f)
	n.Fuzz(f, raft, statetest.Statement{
		PayloadType: dsse.PayloadTypeWithdrawal, Author: "fr-pharos", Other: "de-bka",
		New: func() proto.Message { return &concordv1.Withdrawal{} },
		Submit: func(ctx context.Context, env *concordv1.Envelope) error {
			_, err := s.WithdrawNotice(ctx, &concordv1.WithdrawNoticeRequest{Envelope: env})
			return err
		},
		Accepted: []proto.Message{statetest.Withdrawal()},
	})
}

// FuzzPageToken: a page token opens only for the partner and the filters it was sealed for,
// giving back the id it sealed; anything else a caller sends is refused, never opened.
func FuzzPageToken(f *testing.F) {
	s := &Service{PageTokenKey: bytes.Repeat([]byte{7}, 32)}
	filters := filterDigest(&concordv1.ListNoticesRequest{Jurisdiction: "FR"})
	f.Add("videoshare", statetest.NoticeID, "de-bka", "")
	f.Add("fr-pharos", "01KB9Q0000XY5S42000000NTC2:x", "fr-pharos", s.encodePageToken("fr-pharos", filters, statetest.NoticeID))
	f.Add("hub-ops", "", "hub-ops", "bjE6")
	f.Fuzz(func(t *testing.T, partner, lastID, other, sent string) {
		tok := s.encodePageToken(partner, filters, lastID)
		got, err := s.decodePageToken(partner, tok, filters)
		if err != nil || got != lastID {
			t.Fatalf("the token sealed for %q with %q opens as %q, %v", partner, lastID, got, err)
		}
		if _, err := s.decodePageToken(partner, tok, filters+"0"); err == nil || !strings.Contains(err.Error(), "other filters") {
			t.Fatalf("the token opened with other filters: %v", err)
		}
		if other != partner {
			if _, err := s.decodePageToken(other, tok, filters); err == nil {
				t.Fatalf("the token of %q opened for %q", partner, other)
			}
		}
		if sent == "" {
			return
		}
		if id, err := s.decodePageToken(other, sent, filters); err == nil && sent != tok {
			// Only a token this service sealed opens; the fuzzer cannot forge AES-GCM, so an
			// accepted one is one of the seeds', sealed above.
			reopened := s.encodePageToken(other, filters, id)
			if back, err := s.decodePageToken(other, reopened, filters); err != nil || back != id {
				t.Fatalf("token %q opened as %q, which does not seal again: %q, %v", sent, id, back, err)
			}
		}
	})
}
