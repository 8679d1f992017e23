package server_test

// The attack catalogue: what a partner with a valid certificate might try against the hub, each
// as a test against a real node's ports, so that every defence keeps holding.

import (
	"context"
	"strings"
	"testing"

	"concord/client"
	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/statementid"
	"concord/server/servertest"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// logSize is the size of the node's log, as its latest checkpoint states it.
func logSize(t *testing.T, c *client.Client) uint64 {
	t.Helper()
	resp, err := c.Log.GetCheckpoint(context.Background(), &concordv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetCheckpoint().GetSize()
}

// statementCase is one kind of signed statement: how a partner signs one (ids filled in by the
// client unless preset) and sends it.
type statementCase struct {
	kind   string
	signer string
	// sign signs a new statement of this kind, with id unless id is empty.
	sign func(t *testing.T, id string) (*concordv1.Envelope, proto.Message)
	// send sends an envelope of this kind as its signer.
	send func(env *concordv1.Envelope) error
	// payloadType is the envelope's payload type, for re-signing.
	payloadType string
}

// statementCases builds one case per statement kind on node n, about notice subject (issued by
// fr-pharos, public). Its signers (gb-ctiru, socialnet, hub-ops) are outside the sharing group
// of TestStatementIDsRevealNothing's hidden notices.
func statementCases(t *testing.T, n *servertest.Node, subject string) []statementCase {
	ctx := context.Background()
	gb, platform, admin := n.Client(t, "gb-ctiru"), n.Client(t, "socialnet"), n.Client(t, "hub-ops")
	must := func(env *concordv1.Envelope, err error) *concordv1.Envelope {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	return []statementCase{
		{kind: "notice", signer: "gb-ctiru", payloadType: dsse.PayloadTypeNotice,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				nt := glorificationNotice()
				nt.LegalBasis, nt.NoticeId = "gb.ta2006.s1", id
				return must(gb.SignNotice(ctx, nt)), nt
			},
			send: func(env *concordv1.Envelope) error {
				_, err := gb.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
				return err
			}},
		{kind: "endorsement", signer: "gb-ctiru", payloadType: dsse.PayloadTypeEndorsement,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				e := &concordv1.Endorsement{EndorsementId: id, NoticeId: subject, LegalBasis: "gb.ta2006.s1"}
				return must(gb.SignEndorsement(ctx, e)), e
			},
			send: func(env *concordv1.Envelope) error {
				_, err := gb.Notices.EndorseNotice(ctx, &concordv1.EndorseNoticeRequest{Envelope: env})
				return err
			}},
		{kind: "objection", signer: "gb-ctiru", payloadType: dsse.PayloadTypeObjection,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				o := &concordv1.Objection{ObjectionId: id, NoticeId: subject, Reason: "protected speech"}
				return must(gb.SignObjection(ctx, o)), o
			},
			send: func(env *concordv1.Envelope) error {
				_, err := gb.Notices.ObjectToNotice(ctx, &concordv1.ObjectToNoticeRequest{Envelope: env})
				return err
			}},
		{kind: "withdrawal", signer: "gb-ctiru", payloadType: dsse.PayloadTypeWithdrawal,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				w := &concordv1.Withdrawal{WithdrawalId: id, NoticeId: subject, Reason: "annulled on appeal"}
				return must(gb.SignWithdrawal(ctx, w)), w
			},
			send: func(env *concordv1.Envelope) error {
				_, err := gb.Notices.WithdrawNotice(ctx, &concordv1.WithdrawNoticeRequest{Envelope: env})
				return err
			}},
		{kind: "action report", signer: "socialnet", payloadType: dsse.PayloadTypeActionReport,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				r := &concordv1.ActionReport{ReportId: id, NoticeId: subject, Jurisdictions: []string{"FR"},
					Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, OccurredAt: timestamppb.Now()}
				return must(platform.SignActionReport(ctx, r)), r
			},
			send: func(env *concordv1.Envelope) error {
				_, err := platform.Actions.ReportAction(ctx, &concordv1.ReportActionRequest{Envelope: env})
				return err
			}},
		{kind: "registry change", signer: "hub-ops", payloadType: dsse.PayloadTypeRegistryChange,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				change := &concordv1.RegistryChange{ChangeId: id, Author: "hub-ops", Change: &concordv1.RegistryChange_RevokeSigningKey{
					RevokeSigningKey: &concordv1.RevokeSigningKey{PartnerId: "us-doj", KeyId: "no-such-key", Reason: "test"}}}
				return must(admin.SignRegistryChange(change)), change
			},
			send: func(env *concordv1.Envelope) error {
				_, err := admin.Registry.UpdateRegistry(ctx, &concordv1.UpdateRegistryRequest{Envelope: env})
				return err
			}},
	}
}

// TestStatementsWithUnknownFieldsAreRefused: a signed statement carrying a field its schema does
// not define (a 12 KB blob in field 4242, the attack found) is refused with InvalidArgument naming
// the field, whether the field is in the payload or in the envelope, and the log does not grow.
func TestStatementsWithUnknownFieldsAreRefused(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr, auditor := n.Client(t, "fr-pharos"), n.Client(t, "observatory")
	subject, err := fr.SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 12<<10)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	for _, sc := range statementCases(t, n, subject.GetNotice().GetNoticeId()) {
		t.Run(sc.kind, func(t *testing.T) {
			c := n.Client(t, sc.signer)
			_, msg := sc.sign(t, "")
			clean, err := proto.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			withBlob := protowire.AppendBytes(protowire.AppendTag(clean, 4242, protowire.BytesType), blob)
			inPayload, err := dsse.Sign(sc.payloadType, withBlob, *c.Signer())
			if err != nil {
				t.Fatal(err)
			}
			inEnvelope, err := dsse.Sign(sc.payloadType, clean, *c.Signer())
			if err != nil {
				t.Fatal(err)
			}
			inEnvelope.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 4242, protowire.BytesType), blob))
			before := logSize(t, auditor)
			for _, tc := range []struct {
				name string
				env  *concordv1.Envelope
				says string
			}{
				{"in the payload", inPayload, "envelope.payload: field number 4242"},
				{"in the envelope", inEnvelope, "envelope: field number 4242"},
			} {
				err := sc.send(tc.env)
				if codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.says) {
					t.Errorf("%s: got %v, want InvalidArgument saying %q", tc.name, err, tc.says)
				}
			}
			if after := logSize(t, auditor); after != before {
				t.Fatalf("the log grew from %d to %d entries", before, after)
			}
		})
	}
}

// TestStatementIDsRevealNothing: for each kind of statement, a partner outside a TLP:RED
// notice's sharing group that reuses the id of a statement it may not see gets exactly the answer
// it gets for a free id of the same form, and the log does not grow.
func TestStatementIDsRevealNothing(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr, de, be, videoshare := n.Client(t, "fr-pharos"), n.Client(t, "de-bka"), n.Client(t, "be-fedpol"), n.Client(t, "videoshare")

	// What gb-ctiru and socialnet may not see: two TLP:RED notices shared with de-bka, be-fedpol
	// and videoshare; an endorsement by de-bka, an objection by be-fedpol and a report by
	// videoshare of the first; the withdrawal of the second.
	red := func(content string) string {
		nt := glorificationNotice(content)
		nt.Tlp, nt.SharingGroup = concordv1.TLP_TLP_RED, []string{"de-bka", "be-fedpol", "videoshare"}
		rec, err := fr.SubmitNotice(ctx, nt)
		if err != nil {
			t.Fatal(err)
		}
		return rec.GetNotice().GetNoticeId()
	}
	hiddenNotice, withdrawn := red("red one"), red("red two")
	signed := func(env *concordv1.Envelope, err error) *concordv1.Envelope {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	committed := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	endorsement := &concordv1.Endorsement{NoticeId: hiddenNotice, LegalBasis: "de.stgb.140"}
	committed(de.Notices.EndorseNotice(ctx, &concordv1.EndorseNoticeRequest{Envelope: signed(de.SignEndorsement(ctx, endorsement))}))
	objection := &concordv1.Objection{NoticeId: hiddenNotice, Reason: "satire published by a Belgian newspaper"}
	committed(be.Notices.ObjectToNotice(ctx, &concordv1.ObjectToNoticeRequest{Envelope: signed(be.SignObjection(ctx, objection))}))
	report := &concordv1.ActionReport{NoticeId: hiddenNotice, Jurisdictions: []string{"FR"},
		Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, OccurredAt: timestamppb.Now()}
	committed(videoshare.Actions.ReportAction(ctx, &concordv1.ReportActionRequest{Envelope: signed(videoshare.SignActionReport(ctx, report))}))
	withdrawal := &concordv1.Withdrawal{NoticeId: withdrawn, Reason: "annulled on appeal"}
	committed(fr.Notices.WithdrawNotice(ctx, &concordv1.WithdrawNoticeRequest{Envelope: signed(fr.SignWithdrawal(ctx, withdrawal))}))
	public, err := fr.SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}

	hidden := map[string]struct{ id, owner string }{
		"notice":        {hiddenNotice, "fr-pharos"},
		"endorsement":   {endorsement.GetEndorsementId(), "de-bka"},
		"objection":     {objection.GetObjectionId(), "be-fedpol"},
		"withdrawal":    {withdrawal.GetWithdrawalId(), "fr-pharos"},
		"action report": {report.GetReportId(), "videoshare"},
	}
	auditor := n.Client(t, "observatory")
	for _, sc := range statementCases(t, n, public.GetNotice().GetNoticeId()) {
		h, ok := hidden[sc.kind]
		if !ok {
			continue
		}
		t.Run(sc.kind, func(t *testing.T) {
			if _, err := n.Client(t, sc.signer).Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: hiddenNotice}); codeOf(err) != codes.NotFound {
				t.Fatalf("%s is not outside the sharing group: %v", sc.signer, err)
			}
			free := statementid.New(h.owner)
			before := logSize(t, auditor)
			taken, _ := sc.sign(t, h.id)
			errTaken := sc.send(taken)
			freeEnv, _ := sc.sign(t, free)
			errFree := sc.send(freeEnv)
			if errTaken == nil || errFree == nil {
				t.Fatalf("a statement with another partner's id was accepted: taken %v, free %v", errTaken, errFree)
			}
			gotTaken := codeOf(errTaken).String() + ": " + strings.ReplaceAll(errTaken.Error(), h.id, "<id>")
			gotFree := codeOf(errFree).String() + ": " + strings.ReplaceAll(errFree.Error(), free, "<id>")
			if gotTaken != gotFree {
				t.Fatalf("the answers differ:\n taken: %s\n free:  %s", gotTaken, gotFree)
			}
			if codeOf(errTaken) != codes.InvalidArgument || !strings.Contains(errTaken.Error(), statementid.Tag(sc.signer)) {
				t.Fatalf("got %v, want InvalidArgument naming the signer's tag %s", errTaken, statementid.Tag(sc.signer))
			}
			if after := logSize(t, auditor); after != before {
				t.Fatalf("the log grew from %d to %d", before, after)
			}
			// The same statement with an id of its signer's own is accepted or refused on its
			// merits, never for its id.
			own, _ := sc.sign(t, "")
			if err := sc.send(own); err != nil && strings.Contains(err.Error(), "tag") {
				t.Fatalf("an id of the signer's own refused: %v", err)
			}
		})
	}
}
