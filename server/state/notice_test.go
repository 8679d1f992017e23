package state

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// noticeBootstrap extends testBootstrap with categories and policies for notices: FR covers
// INCITEMENT and GLORIFICATION; DE covers both and recognises FR for INCITEMENT within 24 h; US
// covers THREAT only; de-bka and us-doj are their authorities.
func noticeBootstrap() *statev1.BootstrapRegistry {
	b := testBootstrap()
	prov := func(id string, cs ...concordv1.Category) *concordv1.LegalProvision {
		return &concordv1.LegalProvision{Id: id, Citation: id, Categories: cs}
	}
	incite, glorify, threat := concordv1.Category_CATEGORY_INCITEMENT, concordv1.Category_CATEGORY_GLORIFICATION, concordv1.Category_CATEGORY_THREAT
	b.Jurisdictions = []*concordv1.Jurisdiction{
		{Code: "FR", Name: "France", Provisions: []*concordv1.LegalProvision{prov("fr.a", incite, glorify)},
			Policy: &concordv1.JurisdictionPolicy{DefaultRemovalDeadline: durationpb.New(time.Hour)}},
		{Code: "DE", Name: "Germany", Provisions: []*concordv1.LegalProvision{prov("de.a", incite), prov("de.b", glorify)},
			Policy: &concordv1.JurisdictionPolicy{DefaultRemovalDeadline: durationpb.New(2 * time.Hour), MutualRecognition: []*concordv1.MutualRecognition{
				{FromJurisdiction: "FR", Categories: []concordv1.Category{incite}, ObjectionWindow: durationpb.New(24 * time.Hour)}}}},
		{Code: "US", Name: "United States", Provisions: []*concordv1.LegalProvision{prov("us.a", threat)}, Policy: &concordv1.JurisdictionPolicy{}},
	}
	b.Partners = append(b.Partners,
		&concordv1.Partner{Id: "de-bka", DisplayName: "BKA", Jurisdiction: "DE", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY}},
		&concordv1.Partner{Id: "us-doj", DisplayName: "DOJ", Jurisdiction: "US", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY}},
	)
	b.SigningKeys = append(b.SigningKeys, testKey("de-bka", "bka"), testKey("us-doj", "doj"))
	return b
}

func noticeStore(t *testing.T) *Store {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.BootstrapRegistry(1, noticeBootstrap()); err != nil {
		t.Fatal(err)
	}
	return s
}

// noticeSeq numbers test notices; parallel tests share it.
var noticeSeq atomic.Int64

func testNotice(categories ...concordv1.Category) *concordv1.Notice {
	seq := noticeSeq.Add(1)
	sum := sha256.Sum256(fmt.Append(nil, seq))
	return &concordv1.Notice{
		NoticeId:     fmt.Sprintf("01K%023d", seq),
		Issuer:       "fr-pharos",
		Jurisdiction: "FR",
		LegalBasis:   "fr.a",
		Categories:   categories,
		Hashes:       []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]}},
	}
}

func envelopeOf(t *testing.T, payloadType string, msg proto.Message, signer string) *concordv1.Envelope {
	t.Helper()
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return &concordv1.Envelope{Payload: payload, PayloadType: payloadType,
		Signatures: []*concordv1.Signature{{Keyid: signer, Sig: bytes.Repeat([]byte{7}, 64)}}}
}

func submit(t *testing.T, s *Store, idx uint64, n *concordv1.Notice, at time.Time) (*concordv1.NoticeRecord, error) {
	t.Helper()
	cmd := &statev1.SubmitNotice{Envelope: envelopeOf(t, "application/vnd.concord.notice.v1+protobuf", n, pharosKeyID), SignerKeyId: pharosKeyID, At: timestamppb.New(at)}
	rec, _, _, err := s.SubmitNotice(idx, n, cmd)
	return rec, err
}

func applyStatement(t *testing.T, s *Store, idx uint64, st Statement, signerSeed string, at time.Time) (*StatementResult, error) {
	t.Helper()
	key := testKey("", signerSeed).GetKeyId()
	types := map[string]string{"*state.endorsementStatement": "endorsement", "*state.objectionStatement": "objection", "*state.withdrawalStatement": "withdrawal"}
	env := envelopeOf(t, "application/vnd.concord."+types[fmt.Sprintf("%T", st)]+".v1+protobuf", StatementMessage(st), key)
	res, _, err := s.ApplyNoticeStatement(idx, st, &statev1.NoticeStatement{Envelope: env, SignerKeyId: key, At: timestamppb.New(at)})
	return res, err
}

func TestDeriveJurisdictions(t *testing.T) {
	t.Parallel()
	js := noticeBootstrap().GetJurisdictions()
	incite, glorify := concordv1.Category_CATEGORY_INCITEMENT, concordv1.Category_CATEGORY_GLORIFICATION
	withDeadline := testNotice(glorify)
	withDeadline.RemovalDeadline = durationpb.New(15 * time.Minute)
	cases := []struct {
		name     string
		notice   *concordv1.Notice
		want     map[string]concordv1.AdoptionStatus
		deadline map[string]time.Duration // after acceptance; 0: none
	}{
		{"recognised category", testNotice(incite),
			map[string]concordv1.AdoptionStatus{"FR": concordv1.AdoptionStatus_ADOPTION_STATUS_ISSUING, "DE": concordv1.AdoptionStatus_ADOPTION_STATUS_RECOGNISED, "US": concordv1.AdoptionStatus_ADOPTION_STATUS_NOT_COVERED},
			map[string]time.Duration{"FR": time.Hour, "DE": 2 * time.Hour}},
		{"covered but not recognised", testNotice(glorify),
			map[string]concordv1.AdoptionStatus{"FR": concordv1.AdoptionStatus_ADOPTION_STATUS_ISSUING, "DE": concordv1.AdoptionStatus_ADOPTION_STATUS_PENDING, "US": concordv1.AdoptionStatus_ADOPTION_STATUS_NOT_COVERED},
			map[string]time.Duration{"FR": time.Hour}},
		{"the notice's own deadline wins in the issuing jurisdiction", withDeadline,
			map[string]concordv1.AdoptionStatus{"FR": concordv1.AdoptionStatus_ADOPTION_STATUS_ISSUING},
			map[string]time.Duration{"FR": 15 * time.Minute}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := deriveJurisdictions(js, tc.notice, t0)
			if !slices.IsSortedFunc(got, func(a, b *concordv1.JurisdictionState) int {
				return bytes.Compare([]byte(a.GetJurisdiction()), []byte(b.GetJurisdiction()))
			}) {
				t.Error("jurisdictions not sorted by code")
			}
			for _, st := range got {
				if w, ok := tc.want[st.GetJurisdiction()]; ok && st.GetStatus() != w {
					t.Errorf("%s: %v, want %v", st.GetJurisdiction(), st.GetStatus(), w)
				}
				var d time.Duration
				if st.GetActionDeadline() != nil {
					d = st.GetActionDeadline().AsTime().Sub(t0)
				}
				if d != tc.deadline[st.GetJurisdiction()] {
					t.Errorf("%s: deadline %v after acceptance, want %v", st.GetJurisdiction(), d, tc.deadline[st.GetJurisdiction()])
				}
				if st.GetActionable() != (st.GetActionDeadline() != nil) && st.GetStatus() != concordv1.AdoptionStatus_ADOPTION_STATUS_RECOGNISED {
					t.Errorf("%s: actionable %v with deadline %v", st.GetJurisdiction(), st.GetActionable(), st.GetActionDeadline())
				}
			}
		})
	}
	de := deriveJurisdictions(js, testNotice(incite), t0)[0]
	if de.GetJurisdiction() != "DE" || de.GetObjectionWindowClosesAt().AsTime() != t0.Add(24*time.Hour) || de.GetLegalBasis() != "de.a" {
		t.Errorf("DE under mutual recognition: %v; want the 24 h window of its policy and basis de.a", de)
	}
}

func TestNoticeStatementRules(t *testing.T) {
	t.Parallel()
	s := noticeStore(t)
	n := testNotice(concordv1.Category_CATEGORY_GLORIFICATION)
	if _, err := submit(t, s, 2, n, t0); err != nil {
		t.Fatal(err)
	}
	id := n.GetNoticeId()
	seq := noticeSeq.Add(1)
	endorse := func(basis string) Statement {
		return &endorsementStatement{&concordv1.Endorsement{EndorsementId: fmt.Sprintf("01E%023d", seq), NoticeId: id, Author: "de-bka", Jurisdiction: "DE", LegalBasis: basis}}
	}
	before := snapshotBytes(t, s)
	for _, tc := range []struct {
		name   string
		st     Statement
		signer string
		code   codes.Code
	}{
		{"provision not covering the category", endorse("de.a"), "bka", codes.InvalidArgument},
		{"provision of another jurisdiction", endorse("fr.a"), "bka", codes.InvalidArgument},
		{"signed with another partner's key", endorse("de.b"), "doj", codes.PermissionDenied},
		{"not covered there", &endorsementStatement{&concordv1.Endorsement{EndorsementId: "01E00000000000000000000099", NoticeId: id, Author: "us-doj", Jurisdiction: "US", LegalBasis: "us.a"}}, "doj", codes.FailedPrecondition},
		{"author of another jurisdiction", &endorsementStatement{&concordv1.Endorsement{EndorsementId: "01E00000000000000000000098", NoticeId: id, Author: "de-bka", Jurisdiction: "US", LegalBasis: "us.a"}}, "bka", codes.PermissionDenied},
		{"withdrawal by another authority", &withdrawalStatement{&concordv1.Withdrawal{WithdrawalId: "01W00000000000000000000001", NoticeId: id, Author: "de-bka", Reason: "x"}}, "bka", codes.PermissionDenied},
		{"unknown notice", &objectionStatement{&concordv1.Objection{ObjectionId: "01B00000000000000000000001", NoticeId: "01K99999999999999999999999", Author: "de-bka", Jurisdiction: "DE", Reason: "x"}}, "bka", codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := applyStatement(t, s, 3, tc.st, tc.signer, t0)
			if fault.CodeOf(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			if !bytes.Equal(before, snapshotBytes(t, s)) {
				t.Fatal("a refused statement changed the state")
			}
		})
	}
	res, err := applyStatement(t, s, 3, endorse("de.b"), "bka", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	de := jurisdictionState(res.Record, "DE")
	if de.GetStatus() != concordv1.AdoptionStatus_ADOPTION_STATUS_ENDORSED || de.GetActionDeadline().AsTime() != t0.Add(time.Minute+2*time.Hour) {
		t.Fatalf("DE after endorsement: %v; want ENDORSED with its 2 h default deadline from the endorsement", de)
	}
}

func TestSupersede(t *testing.T) {
	t.Parallel()
	s := noticeStore(t)
	old := testNotice(concordv1.Category_CATEGORY_INCITEMENT)
	if _, err := submit(t, s, 2, old, t0); err != nil {
		t.Fatal(err)
	}
	next := testNotice(concordv1.Category_CATEGORY_INCITEMENT)
	next.Supersedes = old.GetNoticeId()
	if _, err := submit(t, s, 3, next, t0); err != nil {
		t.Fatal(err)
	}
	prev, _ := s.Notice(nil, old.GetNoticeId())
	if prev.GetState() != concordv1.NoticeState_NOTICE_STATE_SUPERSEDED || prev.GetSupersededBy() != next.GetNoticeId() || prev.GetUpdatedIndex() != 3 {
		t.Fatalf("superseded notice: state %v, superseded_by %q, updated at %d", prev.GetState(), prev.GetSupersededBy(), prev.GetUpdatedIndex())
	}
	for _, js := range prev.GetJurisdictions() {
		if js.GetActionable() {
			t.Errorf("%s still actionable after supersession", js.GetJurisdiction())
		}
	}
	again := testNotice(concordv1.Category_CATEGORY_INCITEMENT)
	again.Supersedes = old.GetNoticeId()
	if _, err := submit(t, s, 4, again, t0); fault.CodeOf(err) != codes.FailedPrecondition {
		t.Fatalf("superseding a superseded notice: %v; want FailedPrecondition", err)
	}
}

func TestNoticesSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	s := noticeStore(t)
	var ids []string
	for i := range 5 {
		n := testNotice(concordv1.Category_CATEGORY_INCITEMENT)
		if _, err := submit(t, s, uint64(2+i), n, t0); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, n.GetNoticeId())
	}
	if _, err := applyStatement(t, s, 10, &objectionStatement{&concordv1.Objection{ObjectionId: "01B00000000000000000000002", NoticeId: ids[1], Author: "de-bka", Jurisdiction: "DE", Reason: "no"}}, "bka", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := applyStatement(t, s, 11, &withdrawalStatement{&concordv1.Withdrawal{WithdrawalId: "01W00000000000000000000002", NoticeId: ids[2], Author: "fr-pharos", Reason: "no"}}, "pharos", t0); err != nil {
		t.Fatal(err)
	}
	persisted := snapshotBytes(t, s)
	r, err := Restore(bytes.NewReader(persisted))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, r), persisted) || r.NoticesIndex() != 11 {
		t.Fatalf("restored store differs (notices index %d, want 11)", r.NoticesIndex())
	}
	// Every list query answers the same on both, and idempotency survives the restore.
	for _, q := range []NoticeQuery{
		{Viewer: "videoshare"},
		{Viewer: "videoshare", Jurisdiction: "DE", Statuses: []concordv1.AdoptionStatus{concordv1.AdoptionStatus_ADOPTION_STATUS_OBJECTED}},
		{Viewer: "videoshare", States: []concordv1.NoticeState{concordv1.NoticeState_NOTICE_STATE_WITHDRAWN}},
	} {
		a, _ := s.ListNotices(q)
		b, _ := r.ListNotices(q)
		if !equalProtos(a.Records, b.Records) || len(a.Records) == 0 {
			t.Fatalf("ListNotices(%+v): %d records before, %d after restore", q, len(a.Records), len(b.Records))
		}
	}
	if res, err := applyStatement(t, r, 12, &withdrawalStatement{&concordv1.Withdrawal{WithdrawalId: "01W00000000000000000000002", NoticeId: ids[2], Author: "fr-pharos", Reason: "no"}}, "pharos", t0); err != nil || res.Index != 11 {
		t.Fatalf("re-sent withdrawal after restore: %v, %v; want the original index 11", res, err)
	}
}

// TestListNoticesDrivers checks that every index a query can be served from gives the same pages
// as filtering a full scan.
func TestListNoticesDrivers(t *testing.T) {
	t.Parallel()
	s := noticeStore(t)
	cats := []concordv1.Category{concordv1.Category_CATEGORY_INCITEMENT, concordv1.Category_CATEGORY_GLORIFICATION}
	idx := uint64(1)
	for i := range 40 {
		n := testNotice(cats[i%2])
		idx++
		if _, err := submit(t, s, idx, n, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			idx++
			if _, err := applyStatement(t, s, idx, &withdrawalStatement{&concordv1.Withdrawal{WithdrawalId: fmt.Sprintf("01W%023d", i), NoticeId: n.GetNoticeId(), Author: "fr-pharos", Reason: "x"}}, "pharos", t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	all := func(q NoticeQuery) []string {
		var ids []string
		for {
			page, err := s.ListNotices(q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Records {
				ids = append(ids, r.GetNotice().GetNoticeId())
			}
			if page.Next == "" {
				return ids
			}
			q.After = page.Next
		}
	}
	oracle := func(q NoticeQuery) []string {
		var ids []string
		for _, id := range all(NoticeQuery{Viewer: q.Viewer, Limit: 1000}) {
			rec, _ := s.Notice(nil, id)
			if q.matches(rec) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	for _, q := range []NoticeQuery{
		{Issuer: "fr-pharos"},
		{Issuer: "de-bka"},
		{Jurisdiction: "DE", Statuses: []concordv1.AdoptionStatus{concordv1.AdoptionStatus_ADOPTION_STATUS_RECOGNISED}},
		{Jurisdiction: "DE"},
		{Jurisdiction: "US"},
		{Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}},
		{Categories: cats},
		{States: []concordv1.NoticeState{concordv1.NoticeState_NOTICE_STATE_WITHDRAWN}},
		{States: []concordv1.NoticeState{concordv1.NoticeState_NOTICE_STATE_ACTIVE}, Categories: []concordv1.Category{concordv1.Category_CATEGORY_INCITEMENT}},
		{UpdatedSince: t0.Add(30 * time.Minute)},
		{Issuer: "fr-pharos", MaxScan: 3},
	} {
		q.Viewer, q.Limit = "videoshare", 7
		got, want := all(q), oracle(q)
		if !slices.Equal(got, want) {
			t.Errorf("%+v: pages give %d notices %v\nfiltering gives %d %v", q, len(got), got, len(want), want)
		}
	}
}

// TestAcceptedTimesFollowLogOrder: a command stamped earlier than the last entry is accepted at
// the last entry's time, and judged as of it.
func TestAcceptedTimesFollowLogOrder(t *testing.T) {
	t.Parallel()
	s := noticeStore(t)
	late := testNotice(concordv1.Category_CATEGORY_INCITEMENT)
	if _, err := submit(t, s, 2, late, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	early := testNotice(concordv1.Category_CATEGORY_INCITEMENT)
	rec, err := submit(t, s, 3, early, t0.Add(time.Second)) // stamped first, committed second
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.GetAcceptedAt().AsTime(); !got.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("accepted at %v, want the previous entry's %v", got, t0.Add(2*time.Second))
	}
	var last time.Time
	if err := s.LogRows(0, func(row *statev1.LogRow) bool {
		var e concordv1.LogEntry
		if err := proto.Unmarshal(row.GetEntry(), &e); err != nil {
			t.Fatal(err)
		}
		if e.GetAcceptedAt().AsTime().Before(last) {
			t.Fatalf("entry %d accepted at %v, before the entry before it (%v)", row.GetIndex(), e.GetAcceptedAt().AsTime(), last)
		}
		last = e.GetAcceptedAt().AsTime()
		return true
	}); err != nil {
		t.Fatal(err)
	}
}

// TestSupersedeKeepsTheAudience: a notice is only replaced by one everyone who saw it may see.
func TestSupersedeKeepsTheAudience(t *testing.T) {
	t.Parallel()
	s := noticeStore(t)
	idx := uint64(1)
	sub := func(n *concordv1.Notice) error {
		idx++
		_, err := submit(t, s, idx, n, t0)
		return err
	}
	open := testNotice(concordv1.Category_CATEGORY_INCITEMENT)
	if err := sub(open); err != nil {
		t.Fatal(err)
	}
	red := testNotice(concordv1.Category_CATEGORY_INCITEMENT)
	red.Tlp, red.SharingGroup, red.Supersedes = concordv1.TLP_TLP_RED, []string{"de-bka"}, open.GetNoticeId()
	if err := sub(red); fault.CodeOf(err) != codes.FailedPrecondition {
		t.Fatalf("an open notice superseded by a red one: %v; want FailedPrecondition", err)
	}
	red.Supersedes = ""
	if err := sub(red); err != nil {
		t.Fatal(err)
	}
	wider := testNotice(concordv1.Category_CATEGORY_INCITEMENT)
	wider.Tlp, wider.SharingGroup, wider.Supersedes = concordv1.TLP_TLP_RED, []string{"de-bka", "videoshare"}, red.GetNoticeId()
	if err := sub(wider); err != nil {
		t.Fatalf("a red notice superseded by one shared more widely: %v", err)
	}
}

// TestCosignerKeysAreJudgedAtCommit: a statement co-signed with a key revoked before it is
// committed is refused by the state machine, as a replay of the log would refuse it.
func TestCosignerKeysAreJudgedAtCommit(t *testing.T) {
	t.Parallel()
	s := noticeStore(t)
	n := testNotice(concordv1.Category_CATEGORY_INCITEMENT)
	env := envelopeOf(t, "application/vnd.concord.notice.v1+protobuf", n, pharosKeyID)
	// de-bka's key co-signs; it was revoked an hour before.
	mustApply(t, s, 2, revoke("de-bka", testKey("", "bka").GetKeyId()), t0.Add(-time.Hour))
	env.Signatures = append(env.Signatures, &concordv1.Signature{Keyid: testKey("", "bka").GetKeyId(), Sig: env.Signatures[0].Sig})
	cmd := &statev1.SubmitNotice{Envelope: env, SignerKeyId: pharosKeyID, At: timestamppb.New(t0)}
	if _, _, _, err := s.SubmitNotice(3, n, cmd); fault.CodeOf(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("co-signed with a revoked key: %v; want PermissionDenied saying revoked", err)
	}
}
