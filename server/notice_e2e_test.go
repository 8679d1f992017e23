package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"concord/client"
	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"
	"concord/internal/statementid"
	"concord/server/servertest"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Shorter names for the statuses the tests check.
const (
	issuing    = concordv1.AdoptionStatus_ADOPTION_STATUS_ISSUING
	recognised = concordv1.AdoptionStatus_ADOPTION_STATUS_RECOGNISED
	endorsed   = concordv1.AdoptionStatus_ADOPTION_STATUS_ENDORSED
	pending    = concordv1.AdoptionStatus_ADOPTION_STATUS_PENDING
	objected   = concordv1.AdoptionStatus_ADOPTION_STATUS_OBJECTED
	notCovered = concordv1.AdoptionStatus_ADOPTION_STATUS_NOT_COVERED
	withdrawn  = concordv1.AdoptionStatus_ADOPTION_STATUS_WITHDRAWN
)

// sha256Hash is the SHA256 hash of a made-up content string.
func sha256Hash(content string) *concordv1.Hash {
	sum := sha256.Sum256([]byte(content))
	return &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]}
}

// glorificationNotice is a French notice for glorification content under art. 421-2-5.
func glorificationNotice(content ...string) *concordv1.Notice {
	if len(content) == 0 {
		content = []string{"video-" + client.NewID("x")}
	}
	n := &concordv1.Notice{
		LegalBasis: "fr.cp.421-2-5",
		Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
		Context:    "Glorification of the attack of 13 November, reposted with new captions.",
	}
	for _, c := range content {
		n.Hashes = append(n.Hashes, sha256Hash(c))
	}
	return n
}

func statuses(rec *concordv1.NoticeRecord) map[string]concordv1.AdoptionStatus {
	out := map[string]concordv1.AdoptionStatus{}
	for _, js := range rec.GetJurisdictions() {
		out[js.GetJurisdiction()] = js.GetStatus()
	}
	return out
}

func wantStatuses(t *testing.T, rec *concordv1.NoticeRecord, want map[string]concordv1.AdoptionStatus) {
	t.Helper()
	got := statuses(rec)
	for j, w := range want {
		if got[j] != w {
			t.Errorf("notice %s in %s: status %v, want %v (all: %v)", rec.GetNotice().GetNoticeId(), j, got[j], w, got)
		}
	}
}

func jurisdictionOf(rec *concordv1.NoticeRecord, code string) *concordv1.JurisdictionState {
	for _, js := range rec.GetJurisdictions() {
		if js.GetJurisdiction() == code {
			return js
		}
	}
	return nil
}

func getNotice(t *testing.T, c *client.Client, id string) *concordv1.NoticeRecord {
	t.Helper()
	resp, err := c.Notices.GetNotice(context.Background(), &concordv1.GetNoticeRequest{NoticeId: id})
	if err != nil {
		t.Fatalf("get notice %s: %v", id, err)
	}
	return resp.GetNotice()
}

func listIDs(t *testing.T, c *client.Client, req *concordv1.ListNoticesRequest) []string {
	t.Helper()
	var ids []string
	for {
		resp, err := c.Notices.ListNotices(context.Background(), req)
		if err != nil {
			t.Fatalf("list notices %v: %v", req, err)
		}
		for _, r := range resp.GetNotices() {
			ids = append(ids, r.GetNotice().GetNoticeId())
		}
		if resp.GetNextPageToken() == "" {
			return ids
		}
		req = proto.CloneOf(req)
		req.PageToken = resp.GetNextPageToken()
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestNoticeAcrossJurisdictions(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	n := servertest.Start(t, servertest.Options{Now: clock.Now})
	ctx := context.Background()
	fr, de, be, us, gb := n.Client(t, "fr-pharos"), n.Client(t, "de-bka"), n.Client(t, "be-fedpol"), n.Client(t, "us-doj"), n.Client(t, "gb-ctiru")
	platform := n.Client(t, "videoshare")

	// FR issues a glorification notice under its own law.
	rec, err := fr.SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	id := rec.GetNotice().GetNoticeId()
	wantStatuses(t, rec, map[string]concordv1.AdoptionStatus{"FR": issuing, "DE": pending, "BE": recognised, "GB": pending, "US": notCovered})
	if frState := jurisdictionOf(rec, "FR"); !frState.GetActionable() || frState.GetActionDeadline().AsTime().Sub(rec.GetAcceptedAt().AsTime()) != time.Hour {
		t.Errorf("FR: actionable %v, deadline %v after acceptance; want actionable within 1 h", frState.GetActionable(), frState.GetActionDeadline().AsTime().Sub(rec.GetAcceptedAt().AsTime()))
	}
	beState := jurisdictionOf(rec, "BE")
	if !beState.GetActionable() || !beState.GetObjectionWindowOpen() || beState.GetObjectionWindowClosesAt().AsTime().Sub(rec.GetAcceptedAt().AsTime()) != 72*time.Hour {
		t.Errorf("BE: %v; want actionable under mutual recognition with a 72 h objection window open", beState)
	}
	if usState := jurisdictionOf(rec, "US"); usState.GetActionable() || !strings.Contains(usState.GetReason(), "GLORIFICATION") {
		t.Errorf("US: %v; want not actionable, saying no provision covers GLORIFICATION", usState)
	}

	// DE endorses it under its own provision.
	endorsedResp, err := de.EndorseNotice(ctx, id, "de.stgb.140")
	if err != nil {
		t.Fatalf("DE endorses: %v", err)
	}
	wantStatuses(t, endorsedResp.GetNotice(), map[string]concordv1.AdoptionStatus{"DE": endorsed})
	if js := jurisdictionOf(endorsedResp.GetNotice(), "DE"); js.GetLegalBasis() != "de.stgb.140" || js.GetStatementAuthor() != "de-bka" || !js.GetActionable() {
		t.Errorf("DE after endorsement: %v", js)
	}
	// DE under a provision that does not cover glorification: refused, naming the one that does.
	if _, err := gb.EndorseNotice(ctx, id, "gb.ta2006.s2"); codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "gb.ta2006.s1") {
		t.Errorf("GB endorses under a provision not covering GLORIFICATION: %v; want InvalidArgument naming gb.ta2006.s1", err)
	}

	// The US cannot endorse it: glorification is not covered there, and the reason says so.
	_, err = us.EndorseNotice(ctx, id, "us.usc18.2339b")
	if codeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not covered in US") || !strings.Contains(err.Error(), "GLORIFICATION") {
		t.Errorf("US endorses: %v; want FailedPrecondition saying it is not covered in US (GLORIFICATION)", err)
	}
	if _, err := us.ObjectToNotice(ctx, id, "protected speech"); codeOf(err) != codes.FailedPrecondition {
		t.Errorf("US objects to a notice not covered there: %v; want FailedPrecondition", err)
	}

	// BE recognised it under mutual recognition and objects within the window.
	clock.Advance(24 * time.Hour)
	objectedResp, err := be.ObjectToNotice(ctx, id, "Satire published by a Belgian newspaper: not apologie under art. 140bis.")
	if err != nil {
		t.Fatalf("BE objects within the window: %v", err)
	}
	wantStatuses(t, objectedResp.GetNotice(), map[string]concordv1.AdoptionStatus{"BE": objected, "DE": endorsed})
	if js := jurisdictionOf(objectedResp.GetNotice(), "BE"); js.GetActionable() || !strings.Contains(js.GetReason(), "Satire") {
		t.Errorf("BE after objection: %v", js)
	}

	// Before the withdrawal, the states are visible through Get and List.
	got := getNotice(t, platform, id)
	wantStatuses(t, got, map[string]concordv1.AdoptionStatus{"FR": issuing, "DE": endorsed, "BE": objected, "GB": pending, "US": notCovered})
	if len(got.GetNotice().GetHashes()) != 1 || got.GetEnvelope() == nil || len(got.GetStatements()) != 2 {
		t.Errorf("GetNotice FULL view: %d hashes, envelope %v, %d statements; want 1, the envelope, 2", len(got.GetNotice().GetHashes()), got.GetEnvelope() != nil, len(got.GetStatements()))
	}
	if !contains(listIDs(t, platform, &concordv1.ListNoticesRequest{Jurisdiction: "DE", Statuses: []concordv1.AdoptionStatus{endorsed}}), id) {
		t.Error("ListNotices(DE, ENDORSED) misses the notice")
	}
	if contains(listIDs(t, platform, &concordv1.ListNoticesRequest{Jurisdiction: "US"}), id) {
		t.Error("ListNotices(US) lists a notice not covered in the US")
	}
	if contains(listIDs(t, platform, &concordv1.ListNoticesRequest{Jurisdiction: "BE", Statuses: []concordv1.AdoptionStatus{recognised}}), id) {
		t.Error("ListNotices(BE, RECOGNISED) still lists the notice BE objected to")
	}

	// FR withdraws: every obligation ends, and platforms are told to reinstate.
	withdrawnResp, err := fr.WithdrawNotice(ctx, id, "Court of appeal annulled the removal order.", true)
	if err != nil {
		t.Fatalf("FR withdraws: %v", err)
	}
	after := withdrawnResp.GetNotice()
	if after.GetState() != concordv1.NoticeState_NOTICE_STATE_WITHDRAWN || !after.GetWithdrawal().GetReinstate() {
		t.Errorf("after withdrawal: state %v, reinstate %v", after.GetState(), after.GetWithdrawal().GetReinstate())
	}
	wantStatuses(t, getNotice(t, platform, id), map[string]concordv1.AdoptionStatus{"FR": withdrawn, "DE": withdrawn, "BE": withdrawn, "GB": withdrawn, "US": notCovered})
	for _, js := range getNotice(t, platform, id).GetJurisdictions() {
		if js.GetActionable() || js.GetActionDeadline() != nil {
			t.Errorf("%s after withdrawal: still actionable (%v, deadline %v)", js.GetJurisdiction(), js.GetActionable(), js.GetActionDeadline())
		}
	}
	if !contains(listIDs(t, platform, &concordv1.ListNoticesRequest{States: []concordv1.NoticeState{concordv1.NoticeState_NOTICE_STATE_WITHDRAWN}}), id) {
		t.Error("ListNotices(WITHDRAWN) misses the notice")
	}
	// A withdrawn notice cannot be endorsed.
	if _, err := gb.EndorseNotice(ctx, id, "gb.ta2006.s1"); codeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "withdrawn") {
		t.Errorf("GB endorses a withdrawn notice: %v; want FailedPrecondition saying it is withdrawn", err)
	}
}

func TestObjectionWindowClosesOnTime(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	n := servertest.Start(t, servertest.Options{Now: clock.Now})
	ctx := context.Background()
	rec, err := n.Client(t, "fr-pharos").SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(72*time.Hour + time.Second)
	be := n.Client(t, "be-fedpol")
	_, err = be.ObjectToNotice(ctx, rec.GetNotice().GetNoticeId(), "too late")
	if codeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "objection window") {
		t.Fatalf("BE objects after 72 h: %v; want FailedPrecondition saying the objection window closed", err)
	}
	got := getNotice(t, be, rec.GetNotice().GetNoticeId())
	if js := jurisdictionOf(got, "BE"); js.GetStatus() != recognised || js.GetObjectionWindowOpen() || !js.GetActionable() {
		t.Fatalf("BE after its window closed: %v; want RECOGNISED, actionable, window closed", js)
	}
	// BE can still adopt it explicitly.
	if _, err := be.EndorseNotice(ctx, rec.GetNotice().GetNoticeId(), "be.cp.140bis"); err != nil {
		t.Fatalf("BE endorses after its window closed: %v", err)
	}
}

func TestNoticeIdempotency(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr := n.Client(t, "fr-pharos")
	notice := glorificationNotice()
	env, err := fr.SignNotice(ctx, notice)
	if err != nil {
		t.Fatal(err)
	}
	first, err := fr.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
	if err != nil {
		t.Fatal(err)
	}
	again, err := fr.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
	if err != nil || !proto.Equal(again, first) {
		t.Fatalf("re-send of the identical envelope: %v, %v; want the original %v", again, err, first)
	}
	other := proto.CloneOf(notice)
	other.Context = "another context"
	if _, err := fr.SubmitNotice(ctx, other); codeOf(err) != codes.AlreadyExists {
		t.Fatalf("same notice id, other content: %v; want AlreadyExists", err)
	}

	de := n.Client(t, "de-bka")
	endorsement, err := de.SignEndorsement(ctx, &concordv1.Endorsement{NoticeId: notice.GetNoticeId(), LegalBasis: "de.stgb.140"})
	if err != nil {
		t.Fatal(err)
	}
	e1, err := de.Notices.EndorseNotice(ctx, &concordv1.EndorseNoticeRequest{Envelope: endorsement})
	if err != nil {
		t.Fatal(err)
	}
	e2, err := de.Notices.EndorseNotice(ctx, &concordv1.EndorseNoticeRequest{Envelope: endorsement})
	if err != nil || e2.GetIndex() != e1.GetIndex() {
		t.Fatalf("re-sent endorsement: %v, %v; want the original index %d", e2, err, e1.GetIndex())
	}
	// A second endorsement by DE under a new id is refused: DE already endorsed.
	if _, err := de.EndorseNotice(ctx, notice.GetNoticeId(), "de.stgb.140"); codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("second endorsement: %v; want FailedPrecondition", err)
	}
}

// snapshotNotices is everything partner sees of the notices, to prove a refusal changed nothing.
func snapshotNotices(t *testing.T, c *client.Client) []byte {
	t.Helper()
	resp, err := c.Notices.ListNotices(context.Background(), &concordv1.ListNoticesRequest{PageSize: 1000, View: concordv1.NoticeView_NOTICE_VIEW_FULL})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.GetNotices() {
		// Computed when read: not part of the state.
		for _, js := range r.GetJurisdictions() {
			js.ObjectionWindowOpen = false
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNoticeRefusals(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr, de, admin := n.Client(t, "fr-pharos"), n.Client(t, "de-bka"), n.Client(t, "hub-ops")
	existing, err := fr.SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	existingID := existing.GetNotice().GetNoticeId()

	deKey, err := pki.LoadSigningKey(n.PKI.SigningKey("de-bka"))
	if err != nil {
		t.Fatal(err)
	}
	// A key of fr-pharos, registered then revoked by the hub's operations team.
	revoked := newKey(t)
	if _, err := admin.UpdateRegistry(ctx, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_AddSigningKey{AddSigningKey: &concordv1.AddSigningKey{
		PartnerId: "fr-pharos", PublicKey: revoked.Public().(ed25519.PublicKey)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateRegistry(ctx, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_RevokeSigningKey{RevokeSigningKey: &concordv1.RevokeSigningKey{
		PartnerId: "fr-pharos", KeyId: dsse.KeyID(revoked.Public().(ed25519.PublicKey)), Reason: "key compromised"}}}); err != nil {
		t.Fatal(err)
	}

	// complete fills the notice's ids as the client would, so a test can sign it with any key.
	complete := func(nt *concordv1.Notice) *concordv1.Notice {
		nt.NoticeId, nt.Issuer, nt.Jurisdiction = client.NewID("fr-pharos"), "fr-pharos", "FR"
		return nt
	}
	signWith := func(key ed25519.PrivateKey, payloadType string, msg proto.Message) *concordv1.Envelope {
		env, err := dsse.SignMessage(payloadType, msg, dsse.NewSigner(key))
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	frSigned := func(nt *concordv1.Notice) *concordv1.Envelope {
		env, err := fr.SignNotice(ctx, complete(nt))
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	submitAs := func(c *client.Client) func(*concordv1.Envelope) error {
		return func(env *concordv1.Envelope) error {
			_, err := c.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
			return err
		}
	}

	tampered := frSigned(glorificationNotice())
	tampered.Payload[len(tampered.Payload)-1] ^= 0x01
	lowQuality := glorificationNotice()
	lowQuality.Hashes = append(lowQuality.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: make([]byte, 32), Quality: 49})
	unknownBasis := glorificationNotice()
	unknownBasis.LegalBasis = "fr.cp.999"
	tooMany := glorificationNotice()
	tooMany.Hashes = nil
	for i := range 10001 {
		tooMany.Hashes = append(tooMany.Hashes, sha256Hash(fmt.Sprint("item-", i)))
	}
	duplicate := glorificationNotice("a", "b", "a")
	foreignBasis := glorificationNotice()
	foreignBasis.LegalBasis = "de.stgb.140"
	redNoGroup := glorificationNotice()
	redNoGroup.Tlp = concordv1.TLP_TLP_RED
	endorsementAsNotice, err := de.SignEndorsement(ctx, &concordv1.Endorsement{NoticeId: existingID, LegalBasis: "de.stgb.140"})
	if err != nil {
		t.Fatal(err)
	}
	deWithdrawal, err := de.SignWithdrawal(ctx, &concordv1.Withdrawal{NoticeId: existingID, Reason: "not ours"})
	if err != nil {
		t.Fatal(err)
	}

	refusals := []struct {
		name string
		call func() error
		code codes.Code
		says string
	}{
		{"signed by another partner's key", func() error {
			return submitAs(fr)(signWith(deKey, dsse.PayloadTypeNotice, complete(glorificationNotice())))
		}, codes.PermissionDenied, "sign with your own key"},
		{"signed by a revoked key", func() error {
			return submitAs(fr)(signWith(revoked, dsse.PayloadTypeNotice, complete(glorificationNotice())))
		}, codes.PermissionDenied, "revoked"},
		{"tampered payload", func() error { return submitAs(fr)(tampered) }, codes.PermissionDenied, "does not verify"},
		{"payload type of another statement", func() error { return submitAs(de)(endorsementAsNotice) }, codes.InvalidArgument, "payload_type"},
		{"a notice sent to EndorseNotice", func() error {
			_, err := fr.Notices.EndorseNotice(ctx, &concordv1.EndorseNoticeRequest{Envelope: frSigned(glorificationNotice())})
			return err
		}, codes.InvalidArgument, "payload_type"},
		{"an operator submits", func() error {
			return submitAs(n.Client(t, "videoshare"))(frSigned(glorificationNotice()))
		}, codes.PermissionDenied, "requires role AUTHORITY"},
		{"an authority withdraws another's notice", func() error {
			_, err := de.Notices.WithdrawNotice(ctx, &concordv1.WithdrawNoticeRequest{Envelope: deWithdrawal})
			return err
		}, codes.PermissionDenied, "only its issuer"},
		{"an authority issues under another jurisdiction", func() error {
			nt := glorificationNotice()
			nt.Jurisdiction = "DE"
			nt.LegalBasis = "de.stgb.140"
			_, err := fr.SubmitNotice(ctx, nt)
			return err
		}, codes.PermissionDenied, "own jurisdiction"},
		{"a PDQ hash of quality 49", func() error { return submitAs(fr)(frSigned(lowQuality)) }, codes.InvalidArgument, "quality 49"},
		{"an unknown legal provision", func() error { return submitAs(fr)(frSigned(unknownBasis)) }, codes.InvalidArgument, "fr.cp.999"},
		{"a provision of another jurisdiction", func() error { return submitAs(fr)(frSigned(foreignBasis)) }, codes.InvalidArgument, "de.stgb.140"},
		{"10 001 hashes", func() error { return submitAs(fr)(frSigned(tooMany)) }, codes.InvalidArgument, "10000"},
		{"a duplicate hash", func() error { return submitAs(fr)(frSigned(duplicate)) }, codes.InvalidArgument, "hashes[2] repeats hashes[0]"},
		{"TLP:RED without a sharing group", func() error { return submitAs(fr)(frSigned(redNoGroup)) }, codes.InvalidArgument, "sharing_group"},
		{"endorsing a notice that does not exist", func() error {
			_, err := de.EndorseNotice(ctx, client.NewID("fr-pharos"), "de.stgb.140")
			return err
		}, codes.NotFound, "not found"},
	}
	before := snapshotNotices(t, fr)
	beforeAuditor := snapshotNotices(t, n.Client(t, "observatory"))
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			err := r.call()
			if codeOf(err) != r.code || !strings.Contains(err.Error(), r.says) {
				t.Fatalf("got %v, want %v saying %q", err, r.code, r.says)
			}
			if !bytesEqual(before, snapshotNotices(t, fr)) || !bytesEqual(beforeAuditor, snapshotNotices(t, n.Client(t, "observatory"))) {
				t.Fatal("a refused statement changed the notices")
			}
		})
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func TestRedNoticeNeverReachesOutsiders(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr := n.Client(t, "fr-pharos")
	red := glorificationNotice("red-content")
	red.Tlp = concordv1.TLP_TLP_RED
	red.SharingGroup = []string{"de-bka", "videoshare"}
	rec, err := fr.SubmitNotice(ctx, red)
	if err != nil {
		t.Fatal(err)
	}
	id := rec.GetNotice().GetNoticeId()
	public, err := fr.SubmitNotice(ctx, glorificationNotice("public-content"))
	if err != nil {
		t.Fatal(err)
	}

	// Inside the group: seen.
	for _, p := range []string{"fr-pharos", "de-bka", "videoshare"} {
		c := n.Client(t, p)
		if got := getNotice(t, c, id); got.GetNotice().GetTlp() != concordv1.TLP_TLP_RED {
			t.Errorf("%s: TLP %v", p, got.GetNotice().GetTlp())
		}
		if !contains(listIDs(t, c, &concordv1.ListNoticesRequest{}), id) {
			t.Errorf("%s, in the sharing group, does not see the notice in ListNotices", p)
		}
	}
	if _, err := n.Client(t, "de-bka").EndorseNotice(ctx, id, "de.stgb.140"); err != nil {
		t.Errorf("de-bka, in the group, endorses: %v", err)
	}

	// Outside: never, in any response, whatever the call.
	for _, p := range []string{"socialnet", "observatory", "be-fedpol", "gb-ctiru", "us-doj"} {
		t.Run(p, func(t *testing.T) {
			c := n.Client(t, p)
			_, err := c.Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: id})
			if codeOf(err) != codes.NotFound {
				t.Errorf("GetNotice: %v; want NotFound", err)
			}
			for _, req := range []*concordv1.ListNoticesRequest{
				{}, {View: concordv1.NoticeView_NOTICE_VIEW_FULL}, {Issuer: "fr-pharos"},
				{Jurisdiction: "DE", Statuses: []concordv1.AdoptionStatus{endorsed}},
				{Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}},
			} {
				resp, err := c.Notices.ListNotices(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := proto.Marshal(resp)
				if strings.Contains(string(b), id) || strings.Contains(string(b), "red-content") {
					t.Errorf("ListNotices(%v) response carries the red notice", req)
				}
				if req.Issuer != "" && !contains(listIDs(t, c, req), public.GetNotice().GetNoticeId()) {
					t.Errorf("ListNotices(%v) misses the public notice", req)
				}
			}
			if p == "be-fedpol" || p == "gb-ctiru" {
				_, err := c.EndorseNotice(ctx, id, map[string]string{"be-fedpol": "be.cp.140bis", "gb-ctiru": "gb.ta2006.s1"}[p])
				if codeOf(err) != codes.NotFound || strings.Contains(err.Error(), "RED") {
					t.Errorf("endorsing the red notice from outside: %v; want NotFound, as for a missing notice", err)
				}
			}
		})
	}
}

func TestListNoticesPagesAreStable(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr, de := n.Client(t, "fr-pharos"), n.Client(t, "de-bka")
	var ids []string
	for range 7 {
		rec, err := fr.SubmitNotice(ctx, glorificationNotice())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.GetNotice().GetNoticeId())
	}
	reader := n.Client(t, "observatory")
	first, err := reader.Notices.ListNotices(ctx, &concordv1.ListNoticesRequest{PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Changes between pages move nothing across pages: an endorsement of a notice already seen,
	// and a new notice, which comes last.
	if _, err := de.EndorseNotice(ctx, ids[0], "de.stgb.140"); err != nil {
		t.Fatal(err)
	}
	lateNotice := glorificationNotice()
	lateNotice.NoticeId = statementid.NewAt("fr-pharos", time.Now().Add(time.Minute)) // sorts after every earlier id
	late, err := fr.SubmitNotice(ctx, lateNotice)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, r := range first.GetNotices() {
		seen = append(seen, r.GetNotice().GetNoticeId())
	}
	seen = append(seen, listIDs(t, reader, &concordv1.ListNoticesRequest{PageSize: 3, PageToken: first.GetNextPageToken()})...)
	// ULIDs made in the same millisecond are not ordered among themselves: pages are in id order.
	slices.Sort(ids)
	want := append(append([]string{}, ids...), late.GetNotice().GetNoticeId())
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("pages: %v\nwant %v", seen, want)
	}
	// A token with other filters is refused.
	_, err = reader.Notices.ListNotices(ctx, &concordv1.ListNoticesRequest{PageSize: 3, PageToken: first.GetNextPageToken(), Issuer: "de-bka"})
	if codeOf(err) != codes.InvalidArgument {
		t.Fatalf("token with other filters: %v; want InvalidArgument", err)
	}
	// statuses without a jurisdiction names the field to fix.
	_, err = reader.Notices.ListNotices(ctx, &concordv1.ListNoticesRequest{Statuses: []concordv1.AdoptionStatus{endorsed}})
	if codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "jurisdiction") {
		t.Fatalf("statuses without jurisdiction: %v", err)
	}
}

// TestResendAfterKeyRevoked: a client whose answer was lost re-sends the identical envelope
// after its key was revoked: it gets the original answer; a new statement with that key is
// refused.
func TestResendAfterKeyRevoked(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr, admin := n.Client(t, "fr-pharos"), n.Client(t, "hub-ops")
	env, err := fr.SignNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	first, err := fr.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateRegistry(ctx, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_RevokeSigningKey{RevokeSigningKey: &concordv1.RevokeSigningKey{
		PartnerId: "fr-pharos", KeyId: env.GetSignatures()[0].GetKeyid(), Reason: "rotated"}}}); err != nil {
		t.Fatal(err)
	}
	again, err := fr.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
	if err != nil || again.GetNotice().GetNotice().GetNoticeId() != first.GetNotice().GetNotice().GetNoticeId() || again.GetReceipt().GetIndex() != first.GetReceipt().GetIndex() {
		t.Fatalf("re-send after the key's revocation: %v, %v; want the original answer", again, err)
	}
	if _, err := fr.SubmitNotice(ctx, glorificationNotice()); codeOf(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("a new notice signed with the revoked key: %v; want PermissionDenied saying revoked", err)
	}
	// Another partner sending the same envelope gets no answer but the refusal.
	if _, err := n.Client(t, "de-bka").Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env}); codeOf(err) != codes.PermissionDenied {
		t.Fatalf("another partner re-sending the envelope: %v; want PermissionDenied", err)
	}
}

// TestPageTokensRevealNothing: a page token names no notice in clear, and works only for the
// partner it was issued to.
func TestPageTokensRevealNothing(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr := n.Client(t, "fr-pharos")
	var ids []string
	for range 3 {
		rec, err := fr.SubmitNotice(ctx, glorificationNotice())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.GetNotice().GetNoticeId())
	}
	resp, err := n.Client(t, "videoshare").Notices.ListNotices(ctx, &concordv1.ListNoticesRequest{PageSize: 1})
	if err != nil || resp.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", resp, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(resp.GetNextPageToken())
	for _, id := range ids {
		if strings.Contains(string(raw), id) || strings.Contains(resp.GetNextPageToken(), id) {
			t.Fatalf("the page token shows notice id %s", id)
		}
	}
	if _, err := n.Client(t, "socialnet").Notices.ListNotices(ctx, &concordv1.ListNoticesRequest{PageSize: 1, PageToken: resp.GetNextPageToken()}); codeOf(err) != codes.InvalidArgument {
		t.Fatalf("another partner's token: %v; want InvalidArgument", err)
	}
	if _, err := n.Client(t, "videoshare").Notices.ListNotices(ctx, &concordv1.ListNoticesRequest{PageSize: 1, PageToken: resp.GetNextPageToken()}); err != nil {
		t.Fatalf("the partner's own token: %v", err)
	}
}
