package server_test

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"concord/client"
	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"
	"concord/server/servertest"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// watcher reads a WatchNotices stream in the background.
type watcher struct {
	events chan *concordv1.NoticeEvent
	errs   chan error
}

func watch(t *testing.T, ctx context.Context, c *client.Client, req *concordv1.WatchNoticesRequest) *watcher {
	t.Helper()
	stream, err := c.Notices.WatchNotices(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{events: make(chan *concordv1.NoticeEvent, 1000), errs: make(chan error, 1)}
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				w.errs <- err
				return
			}
			if ev := msg.GetEvent(); ev != nil {
				w.events <- ev
			}
		}
	}()
	return w
}

// next waits for the next event, failing the test after 10 s.
func (w *watcher) next(t *testing.T) *concordv1.NoticeEvent {
	t.Helper()
	select {
	case ev := <-w.events:
		return ev
	case err := <-w.errs:
		t.Fatalf("watch stream ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return nil
}

func (w *watcher) expect(t *testing.T, typ concordv1.NoticeEventType, noticeID string) *concordv1.NoticeEvent {
	t.Helper()
	ev := w.next(t)
	if ev.GetType() != typ || ev.GetNoticeId() != noticeID {
		t.Fatalf("event %v of %s, want %v of %s", ev.GetType(), ev.GetNoticeId(), typ, noticeID)
	}
	return ev
}

// TestPlatformLoop is the whole loop over the real server: a platform watches; FR submits; the
// platform receives the event, matches its content, reports REMOVED within the deadline; DE
// endorses and the platform receives that too; FR withdraws with a reinstate instruction, the
// platform receives it and reports REINSTATED; compliance shows it all.
func TestPlatformLoop(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fr, de, platform := n.Client(t, "fr-pharos"), n.Client(t, "de-bka"), n.Client(t, "videoshare")
	feed := watch(t, ctx, platform, &concordv1.WatchNoticesRequest{})

	content := "attack video " + client.NewID("x")
	notice := glorificationNotice(content)
	notice.PreservationRequested = true
	notice.CounterNarratives = []*concordv1.CounterNarrative{{Url: "https://example.org/exit", Language: "fr"}}
	rec, err := fr.SubmitNotice(ctx, notice)
	if err != nil {
		t.Fatal(err)
	}
	id := rec.GetNotice().GetNoticeId()
	ev := feed.expect(t, concordv1.NoticeEventType_NOTICE_EVENT_TYPE_NEW, id)
	if strings.Join(ev.GetRecognisedIn(), ",") != "BE" || ev.GetNotice().GetNotice().GetNoticeId() != id || ev.GetCursor() == 0 {
		t.Fatalf("NEW event: recognised in %v, notice %v, cursor %d", ev.GetRecognisedIn(), ev.GetNotice().GetNotice().GetNoticeId(), ev.GetCursor())
	}

	// The platform matches the content it hosts (only its hash travels).
	m, err := platform.Matches.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{sha256Hash(content), sha256Hash("unrelated")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.GetResults()) != 2 || len(m.GetResults()[0].GetMatches()) != 1 || len(m.GetResults()[1].GetMatches()) != 0 {
		t.Fatalf("match results: %v", m.GetResults())
	}
	hit := m.GetResults()[0].GetMatches()[0]
	var frDeadline *timestamppb.Timestamp
	for _, o := range hit.GetObligations() {
		if o.GetJurisdiction() == "FR" {
			frDeadline = o.GetActionDeadline()
		}
	}
	if hit.GetNoticeId() != id || frDeadline == nil || !strings.Contains(strings.Join(hit.GetNotActionableIn(), ","), "US") || len(hit.GetCounterNarratives()) != 1 {
		t.Fatalf("match: %v", hit)
	}

	// It removes the content within the deadline and reports it.
	removed, err := platform.ReportAction(ctx, &concordv1.ActionReport{NoticeId: id, Jurisdictions: []string{"FR", "BE"},
		Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, OccurredAt: timestamppb.Now(), Items: 3})
	if err != nil {
		t.Fatalf("report REMOVED: %v", err)
	}
	for _, it := range removed.GetItems() {
		if it.GetStatus() != concordv1.ComplianceStatus_COMPLIANCE_STATUS_MET {
			t.Errorf("after a prompt removal, %s is %v", it.GetJurisdiction(), it.GetStatus())
		}
	}
	if _, err := platform.ReportAction(ctx, &concordv1.ActionReport{NoticeId: id, Jurisdictions: []string{"FR"},
		Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_PRESERVED, PreservationReference: "vault-1234", OccurredAt: timestamppb.Now()}); err != nil {
		t.Fatalf("report PRESERVED: %v", err)
	}

	// DE endorses: the platform hears of it, and now owes DE too.
	if _, err := de.EndorseNotice(ctx, id, "de.stgb.140"); err != nil {
		t.Fatal(err)
	}
	ev = feed.expect(t, concordv1.NoticeEventType_NOTICE_EVENT_TYPE_ENDORSED, id)
	if len(ev.GetChanges()) != 1 || ev.GetChanges()[0].GetJurisdiction() != "DE" || ev.GetBy() != "de-bka" {
		t.Fatalf("ENDORSED event changes: %v", ev.GetChanges())
	}
	if _, err := platform.ReportAction(ctx, &concordv1.ActionReport{NoticeId: id, Jurisdictions: []string{"DE"},
		Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, OccurredAt: timestamppb.Now()}); err != nil {
		t.Fatal(err)
	}

	// FR withdraws and asks for reinstatement; the platform puts the content back.
	if _, err := fr.WithdrawNotice(ctx, id, "Annulled on appeal", true); err != nil {
		t.Fatal(err)
	}
	ev = feed.expect(t, concordv1.NoticeEventType_NOTICE_EVENT_TYPE_WITHDRAWN, id)
	if !ev.GetReinstate() {
		t.Fatal("WITHDRAWN event without the reinstate instruction")
	}
	if _, err := platform.ReportAction(ctx, &concordv1.ActionReport{NoticeId: id, Jurisdictions: []string{"FR", "BE", "DE"},
		Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REINSTATED, OccurredAt: timestamppb.Now()}); err != nil {
		t.Fatalf("report REINSTATED: %v", err)
	}
	if m, _ := platform.Matches.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{sha256Hash(content)}}); len(m.GetResults()[0].GetMatches()) != 0 {
		t.Fatal("a withdrawn notice still matches")
	}

	// Compliance, as the platform, the issuer and an auditor see it.
	for _, p := range []string{"videoshare", "fr-pharos", "observatory"} {
		resp, err := n.Client(t, p).Actions.GetCompliance(ctx, &concordv1.GetComplianceRequest{NoticeId: id, Platform: "videoshare"})
		if err != nil {
			t.Fatalf("compliance as %s: %v", p, err)
		}
		s := resp.GetSummary()
		if s.GetObligations() != 3 || s.GetMet() != 3 || s.GetOpen()+s.GetOverdue()+s.GetLate() != 0 ||
			s.GetOutcomes()["REMOVED"] != 2 || s.GetOutcomes()["REINSTATED"] != 1 || s.GetPreservationConfirmed() == 0 {
			t.Fatalf("compliance as %s: %v", p, s)
		}
	}
	// The other platform never acted: its FR, BE and DE obligations lapsed with the withdrawal,
	// before their deadlines, so none is a breach.
	other, err := n.Client(t, "observatory").Actions.GetCompliance(ctx, &concordv1.GetComplianceRequest{NoticeId: id, Platform: "socialnet"})
	if err != nil || other.GetSummary().GetObligations() != 0 {
		t.Fatalf("socialnet compliance: %v, %v", other.GetSummary(), err)
	}
}

func TestActionReportRefusals(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr, platform := n.Client(t, "fr-pharos"), n.Client(t, "videoshare")
	rec, err := fr.SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	id := rec.GetNotice().GetNoticeId()
	red := glorificationNotice()
	red.Tlp, red.SharingGroup = concordv1.TLP_TLP_RED, []string{"socialnet"}
	redRec, err := fr.SubmitNotice(ctx, red)
	if err != nil {
		t.Fatal(err)
	}
	socialKey, err := pki.LoadSigningKey(n.PKI.SigningKey("socialnet"))
	if err != nil {
		t.Fatal(err)
	}
	report := func(j ...string) *concordv1.ActionReport {
		return &concordv1.ActionReport{ReportId: client.NewID("videoshare"), NoticeId: id, Reporter: "videoshare", Jurisdictions: j,
			Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, OccurredAt: timestamppb.Now()}
	}
	before, err := n.Client(t, "observatory").Actions.GetCompliance(ctx, &concordv1.GetComplianceRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		says string
	}{
		{"signed by another platform's key", func() error {
			env := signWithKey(t, socialKey, report("FR"))
			_, err := platform.Actions.ReportAction(ctx, &concordv1.ReportActionRequest{Envelope: env})
			return err
		}, codes.PermissionDenied, "sign with your own key"},
		{"an authority reporting", func() error {
			env := signWithKey(t, socialKey, report("FR"))
			_, err := fr.Actions.ReportAction(ctx, &concordv1.ReportActionRequest{Envelope: env})
			return err
		}, codes.PermissionDenied, "requires role OPERATOR"},
		{"a report on an invisible notice", func() error {
			r := report("FR")
			r.NoticeId = redRec.GetNotice().GetNoticeId()
			_, err := platform.ReportAction(ctx, r)
			return err
		}, codes.NotFound, "not found"},
		{"a jurisdiction where the notice is not actionable", func() error {
			_, err := platform.ReportAction(ctx, report("US"))
			return err
		}, codes.FailedPrecondition, "not actionable in US"},
		{"a reinstatement before any withdrawal", func() error {
			r := report("FR")
			r.Outcome = concordv1.ActionOutcome_ACTION_OUTCOME_REINSTATED
			_, err := platform.ReportAction(ctx, r)
			return err
		}, codes.FailedPrecondition, "reinstate"},
		{"an action in the future", func() error {
			r := report("FR")
			r.OccurredAt = timestamppb.New(time.Now().Add(time.Hour))
			_, err := platform.ReportAction(ctx, r)
			return err
		}, codes.InvalidArgument, "future"},
		{"a geo-block that does not cover the jurisdiction", func() error {
			r := report("FR")
			r.Outcome, r.GeoBlockedIn = concordv1.ActionOutcome_ACTION_OUTCOME_GEO_BLOCKED, []string{"DE"}
			_, err := platform.ReportAction(ctx, r)
			return err
		}, codes.InvalidArgument, "geo_blocked_in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if codeOf(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %v saying %q", err, tc.code, tc.says)
			}
			after, err := n.Client(t, "observatory").Actions.GetCompliance(ctx, &concordv1.GetComplianceRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if after.GetSummary().String() != before.GetSummary().String() {
				t.Fatalf("a refused report changed compliance: %v → %v", before.GetSummary(), after.GetSummary())
			}
		})
	}
}

func signWithKey(t *testing.T, key ed25519.PrivateKey, r *concordv1.ActionReport) *concordv1.Envelope {
	t.Helper()
	env, err := dsse.SignMessage(dsse.PayloadTypeActionReport, r, dsse.NewSigner(key))
	if err != nil {
		t.Fatal(err)
	}
	return env
}
