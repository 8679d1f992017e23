package state

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limits and defaults of notices.
const (
	// MaxNoticeHashes is the most hashes one notice carries; a longer list goes as several
	// notices.
	MaxNoticeHashes = 10000
	// MinPDQQuality is the lowest PDQ quality Concord accepts: below it a hash matches too much
	// unrelated content to be shared.
	MinPDQQuality = 50
	// DefaultRemovalDeadline applies to the issuing jurisdiction when neither the notice nor the
	// jurisdiction sets one.
	DefaultRemovalDeadline = time.Hour
	// DefaultObjectionWindow applies to a mutual recognition that sets no window, in a
	// jurisdiction that sets no scrutiny window.
	DefaultObjectionWindow = 72 * time.Hour
)

// NoticeVisibleTo reports whether partner may see rec at all: the issuer always may; TLP_RED and
// TLP_AMBER_STRICT notices only their sharing group; every other level every registered partner
// (the caller is one: authorization checked its registration).
func NoticeVisibleTo(rec *concordv1.NoticeRecord, partner string) bool {
	n := rec.GetNotice()
	if partner == "" {
		return false
	}
	if n.GetIssuer() == partner {
		return true
	}
	switch n.GetTlp() {
	case concordv1.TLP_TLP_RED, concordv1.TLP_TLP_AMBER_STRICT:
		return slices.Contains(n.GetSharingGroup(), partner)
	}
	return true
}

// CheckNotice runs the rules of SubmitNotice on the current state without writing, so the
// service can refuse a notice before a raft round trip. notice is the verified payload,
// signerKeyID the key whose signature the service verified, at the time the leader will stamp and
// envelopeDigest dsse.Digest of the envelope. It returns the original record (SUMMARY view), and
// no error, when the notice was already accepted from an identical envelope.
func (s *Store) CheckNotice(notice *concordv1.Notice, signerKeyID string, at time.Time, envelopeDigest []byte) (*concordv1.NoticeRecord, error) {
	orig, err := checkNoticeTxn(s.db.Txn(false), notice, signerKeyID, at, envelopeDigest)
	if orig != nil {
		orig = proto.CloneOf(orig)
	}
	return orig, err
}

// checkNoticeTxn holds the rules shared by CheckNotice and the FSM's write path. A non-nil record
// (read-only) means an identical re-send.
func checkNoticeTxn(txn ReadTxn, n *concordv1.Notice, signerKeyID string, at time.Time, envelopeDigest []byte) (*concordv1.NoticeRecord, error) {
	id := n.GetNoticeId()
	if id == "" {
		return nil, fault.Invalid("notice_id is empty: give every notice a new ULID")
	}
	// Idempotency first, so that a re-send gets the original answer even if the rules would now
	// refuse it.
	orig, err := noticeRowTxn(txn, id)
	if err != nil {
		return nil, err
	}
	if orig != nil {
		if !bytes.Equal(dsse.Digest(orig.GetEnvelope()), envelopeDigest) {
			return nil, fault.Exists("notice %s was already submitted with different content: give a new notice a new notice_id", id)
		}
		return orig, nil
	}

	issuer, err := checkStatementSignerTxn(txn, n.GetIssuer(), signerKeyID, at)
	if err != nil {
		return nil, err
	}
	if issuer.GetJurisdiction() != n.GetJurisdiction() {
		return nil, fault.Denied("notice %s names jurisdiction %q but issuer %s acts for %q: an authority issues notices under its own jurisdiction's law", id, n.GetJurisdiction(), issuer.GetId(), issuer.GetJurisdiction())
	}
	j, err := jurisdictionRowTxn(txn, n.GetJurisdiction())
	if err != nil {
		return nil, err
	}
	if j == nil {
		return nil, fault.Precondition("jurisdiction %s is not registered", n.GetJurisdiction())
	}
	if err := checkLegalBasis(j, n.GetLegalBasis(), n.GetCategories(), "legal_basis"); err != nil {
		return nil, err
	}
	if err := checkNoticeHashes(n.GetHashes()); err != nil {
		return nil, err
	}
	for _, member := range n.GetSharingGroup() {
		p, err := partnerRowTxn(txn, member)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, fault.Precondition("sharing_group names %q, which is not a registered partner: see ListPartners", member)
		}
	}
	if old := n.GetSupersedes(); old != "" {
		if old == id {
			return nil, fault.Invalid("supersedes names the notice itself")
		}
		prev, err := noticeRowTxn(txn, old)
		if err != nil {
			return nil, err
		}
		if prev == nil || !NoticeVisibleTo(prev, n.GetIssuer()) {
			return nil, fault.Precondition("supersedes: notice %s does not exist", old)
		}
		if prev.GetNotice().GetIssuer() != n.GetIssuer() {
			return nil, fault.Denied("supersedes: notice %s was issued by %s; only the issuer replaces its own notices", old, prev.GetNotice().GetIssuer())
		}
		if prev.GetState() != concordv1.NoticeState_NOTICE_STATE_ACTIVE {
			return nil, fault.Precondition("supersedes: notice %s is already %s", old, stateName(prev.GetState()))
		}
		if !reachesAudience(n, prev.GetNotice()) {
			return nil, fault.Precondition("supersedes: notice %s is seen by partners this notice's TLP and sharing group would hide it from: supersede it with a notice at least as widely shared, or withdraw it", old)
		}
	}
	return nil, nil
}

// restricted reports whether a notice is seen only by its sharing group (and its issuer).
func restricted(n *concordv1.Notice) bool {
	return n.GetTlp() == concordv1.TLP_TLP_RED || n.GetTlp() == concordv1.TLP_TLP_AMBER_STRICT
}

// reachesAudience reports whether everyone who may see old may see next: a notice replaced by
// one they cannot see would vanish for them, and its superseded_by would name a notice they may
// not know of.
func reachesAudience(next, old *concordv1.Notice) bool {
	if !restricted(next) {
		return true
	}
	if !restricted(old) {
		return false
	}
	for _, p := range old.GetSharingGroup() {
		if p != next.GetIssuer() && !slices.Contains(next.GetSharingGroup(), p) {
			return false
		}
	}
	return true
}

// checkNoticeHashes refuses low-quality perceptual hashes and duplicates. The shapes of the
// values (lengths per kind, count) are checked by protovalidate before this.
func checkNoticeHashes(hashes []*concordv1.Hash) error {
	if len(hashes) == 0 {
		return fault.Invalid("hashes is empty: a notice carries 1 to %d hashes", MaxNoticeHashes)
	}
	if len(hashes) > MaxNoticeHashes {
		return fault.Invalid("hashes has %d entries, the limit is %d: split the list into several notices", len(hashes), MaxNoticeHashes)
	}
	seen := make(map[string]int, len(hashes))
	for i, h := range hashes {
		switch h.GetKind() {
		case concordv1.HashKind_HASH_KIND_PDQ, concordv1.HashKind_HASH_KIND_PDQ_VIDEO:
			if h.GetQuality() < MinPDQQuality {
				return fault.Invalid("hashes[%d]: PDQ quality %d is below %d: such a hash matches unrelated content; leave it out or hash a better copy", i, h.GetQuality(), MinPDQQuality)
			}
		case concordv1.HashKind_HASH_KIND_UNSPECIFIED:
			return fault.Invalid("hashes[%d].kind is unset", i)
		}
		key := string(rune(h.GetKind())) + string(h.GetValue())
		if first, dup := seen[key]; dup {
			return fault.Invalid("hashes[%d] repeats hashes[%d] (%s): list each hash once", i, first, strings.TrimPrefix(h.GetKind().String(), "HASH_KIND_"))
		}
		seen[key] = i
	}
	return nil
}

// checkLegalBasis checks that provision is one of j's and covers at least one of categories.
func checkLegalBasis(j *concordv1.Jurisdiction, provision string, categories []concordv1.Category, field string) error {
	var p *concordv1.LegalProvision
	ids := make([]string, 0, len(j.GetProvisions()))
	for _, cand := range j.GetProvisions() {
		ids = append(ids, cand.GetId())
		if cand.GetId() == provision {
			p = cand
		}
	}
	if p == nil {
		return fault.Invalid("%s %q is not a registered provision of %s: use one of %s", field, provision, j.GetCode(), strings.Join(ids, ", "))
	}
	for _, c := range categories {
		if slices.Contains(p.GetCategories(), c) {
			return nil
		}
	}
	covering := coveringProvisions(j, categories)
	if len(covering) == 0 {
		return fault.Precondition("%s %s covers %s, none of the notice's categories (%s); no provision of %s covers them", field, provision, categoryNames(p.GetCategories()), categoryNames(categories), j.GetCode())
	}
	return fault.Invalid("%s %s covers %s, none of the notice's categories (%s): use %s", field, provision, categoryNames(p.GetCategories()), categoryNames(categories), strings.Join(covering, " or "))
}

// coveringProvisions returns the ids of j's provisions that cover at least one of categories.
func coveringProvisions(j *concordv1.Jurisdiction, categories []concordv1.Category) []string {
	var ids []string
	for _, p := range j.GetProvisions() {
		for _, c := range categories {
			if slices.Contains(p.GetCategories(), c) {
				ids = append(ids, p.GetId())
				break
			}
		}
	}
	return ids
}

// coveredCategories returns the categories (of categories, in their order) that j's provisions
// cover.
func coveredCategories(j *concordv1.Jurisdiction, categories []concordv1.Category) []concordv1.Category {
	var out []concordv1.Category
	for _, c := range categories {
		for _, p := range j.GetProvisions() {
			if slices.Contains(p.GetCategories(), c) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// checkStatementSignerTxn checks that author is a registered authority and that signerKeyID is one
// of its keys, usable at at; it returns the author's partner row (read-only). The service checked
// the key when it verified the signature; checking again at apply time closes the race with a
// revocation committed in between.
func checkStatementSignerTxn(txn ReadTxn, author, signerKeyID string, at time.Time) (*concordv1.Partner, error) {
	return checkSignerRoleTxn(txn, author, signerKeyID, at, concordv1.Role_ROLE_AUTHORITY, "only authorities issue, endorse, object to and withdraw notices")
}

// checkCosignersTxn checks that every key that signed env is registered and may sign at at. The
// service verified every signature; the first is the author's, checked with its role; a
// co-signer's key revoked between that check and the commit must not slip through either
// (a replay of the log judges every signature at the entry's time).
func checkCosignersTxn(txn ReadTxn, env *concordv1.Envelope, at time.Time) error {
	for i, sig := range env.GetSignatures() {
		k, err := signingKeyTxn(txn, sig.GetKeyid())
		if err != nil {
			return err
		}
		if k == nil {
			return fault.Denied("signature %d: signing key %s is not registered", i, sig.GetKeyid())
		}
		if why := keyUnusable(k, at); why != "" {
			return fault.Denied("signature %d: signing key %s %s", i, sig.GetKeyid(), why)
		}
	}
	return nil
}

// deriveJurisdictions computes a new notice's state in every registered jurisdiction, sorted by
// code. It reads only the registry and the leader-stamped time at, so every node derives the same.
func deriveJurisdictions(js []*concordv1.Jurisdiction, n *concordv1.Notice, at time.Time) []*concordv1.JurisdictionState {
	out := make([]*concordv1.JurisdictionState, 0, len(js))
	for _, j := range js {
		out = append(out, deriveJurisdiction(j, n, at))
	}
	slices.SortFunc(out, func(a, b *concordv1.JurisdictionState) int {
		return strings.Compare(a.GetJurisdiction(), b.GetJurisdiction())
	})
	return out
}

func deriveJurisdiction(j *concordv1.Jurisdiction, n *concordv1.Notice, at time.Time) *concordv1.JurisdictionState {
	st := &concordv1.JurisdictionState{
		Jurisdiction:       j.GetCode(),
		CoveredCategories:  coveredCategories(j, n.GetCategories()),
		CoveringProvisions: coveringProvisions(j, n.GetCategories()),
		ChangedAt:          timestamp(at),
	}
	if j.GetCode() == n.GetJurisdiction() {
		st.Status = concordv1.AdoptionStatus_ADOPTION_STATUS_ISSUING
		st.Actionable = true
		st.LegalBasis = n.GetLegalBasis()
		deadline := DefaultRemovalDeadline
		if d := n.GetRemovalDeadline(); d != nil {
			deadline = d.AsDuration()
		} else if d := j.GetPolicy().GetDefaultRemovalDeadline(); d != nil {
			deadline = d.AsDuration()
		}
		st.ActionDeadline = timestamp(at.Add(deadline))
		return st
	}
	if len(st.CoveredCategories) == 0 {
		st.Status = concordv1.AdoptionStatus_ADOPTION_STATUS_NOT_COVERED
		st.Reason = fmt.Sprintf("no provision of %s registered in Concord covers %s", j.GetCode(), categoryNames(n.GetCategories()))
		return st
	}
	st.Status = concordv1.AdoptionStatus_ADOPTION_STATUS_PENDING
	for _, mr := range j.GetPolicy().GetMutualRecognition() {
		if mr.GetFromJurisdiction() != n.GetJurisdiction() {
			continue
		}
		recognised := st.CoveredCategories
		if len(mr.GetCategories()) > 0 {
			recognised = slices.DeleteFunc(slices.Clone(recognised), func(c concordv1.Category) bool { return !slices.Contains(mr.GetCategories(), c) })
		}
		if len(recognised) == 0 {
			break
		}
		window := DefaultObjectionWindow
		if w := mr.GetObjectionWindow(); w != nil && w.AsDuration() > 0 {
			window = w.AsDuration()
		} else if w := j.GetPolicy().GetScrutinyWindow(); w != nil && w.AsDuration() > 0 {
			window = w.AsDuration()
		}
		st.Status = concordv1.AdoptionStatus_ADOPTION_STATUS_RECOGNISED
		st.Actionable = true
		st.LegalBasis = coveringProvisions(j, recognised)[0]
		st.ObjectionWindowClosesAt = timestamp(at.Add(window))
		st.ActionDeadline = jurisdictionDeadline(j, at)
		st.Reason = fmt.Sprintf("%s recognises %s notices for %s", j.GetCode(), n.GetJurisdiction(), categoryNames(recognised))
		break
	}
	return st
}

// jurisdictionDeadline is when platforms must have acted in j on an obligation that began at at;
// nil when j sets no default deadline (best effort).
func jurisdictionDeadline(j *concordv1.Jurisdiction, at time.Time) *timestamppb.Timestamp {
	d := j.GetPolicy().GetDefaultRemovalDeadline()
	if d == nil {
		return nil
	}
	return timestamp(at.Add(d.AsDuration()))
}

// endorsementRefusal explains why jurisdiction state st does not take an endorsement.
func endorsementRefusal(st *concordv1.JurisdictionState) error {
	switch st.GetStatus() {
	case concordv1.AdoptionStatus_ADOPTION_STATUS_ISSUING:
		return fault.Precondition("%s issued this notice: it needs no endorsement from %s", st.GetJurisdiction(), st.GetJurisdiction())
	case concordv1.AdoptionStatus_ADOPTION_STATUS_NOT_COVERED:
		return fault.Precondition("the notice is not covered in %s (%s): it cannot be endorsed there", st.GetJurisdiction(), st.GetReason())
	case concordv1.AdoptionStatus_ADOPTION_STATUS_ENDORSED:
		return fault.Precondition("%s already endorsed this notice (statement %s by %s)", st.GetJurisdiction(), st.GetStatementId(), st.GetStatementAuthor())
	case concordv1.AdoptionStatus_ADOPTION_STATUS_WITHDRAWN:
		return fault.Precondition("the notice is withdrawn: it cannot be endorsed")
	}
	return nil
}

// objectionRefusal explains why jurisdiction state st does not take an objection at at.
func objectionRefusal(st *concordv1.JurisdictionState, at time.Time) error {
	switch st.GetStatus() {
	case concordv1.AdoptionStatus_ADOPTION_STATUS_ISSUING:
		return fault.Precondition("%s issued this notice: its issuer withdraws it instead of objecting", st.GetJurisdiction())
	case concordv1.AdoptionStatus_ADOPTION_STATUS_NOT_COVERED:
		return fault.Precondition("the notice is not covered in %s (%s): it is already not actionable there", st.GetJurisdiction(), st.GetReason())
	case concordv1.AdoptionStatus_ADOPTION_STATUS_ENDORSED:
		return fault.Precondition("%s endorsed this notice (statement %s by %s): an endorsement is not taken back by an objection", st.GetJurisdiction(), st.GetStatementId(), st.GetStatementAuthor())
	case concordv1.AdoptionStatus_ADOPTION_STATUS_OBJECTED:
		return fault.Precondition("%s already objected to this notice (statement %s by %s)", st.GetJurisdiction(), st.GetStatementId(), st.GetStatementAuthor())
	case concordv1.AdoptionStatus_ADOPTION_STATUS_WITHDRAWN:
		return fault.Precondition("the notice is withdrawn: there is nothing to object to")
	case concordv1.AdoptionStatus_ADOPTION_STATUS_RECOGNISED:
		if closes := st.GetObjectionWindowClosesAt(); closes != nil && !at.Before(closes.AsTime()) {
			return fault.Precondition("the objection window of %s closed at %s: %s recognised the notice under its mutual-recognition policy", st.GetJurisdiction(), formatTime(closes), st.GetJurisdiction())
		}
	}
	return nil
}

// checkNoticeStatementTxn holds the rules shared by CheckNoticeStatement and the FSM's write
// path for an endorsement, objection or withdrawal. It returns the notice's stored record
// (read-only) and, for an endorsement or objection, the author's jurisdiction state (a copy,
// possibly derived now for a jurisdiction registered after the notice). A non-nil applied record
// means an identical re-send.
func checkNoticeStatementTxn(txn ReadTxn, st Statement, signerKeyID string, at time.Time, envelopeDigest []byte) (*statev1.AppliedStatement, *concordv1.NoticeRecord, *concordv1.JurisdictionState, error) {
	id := st.ID()
	if id == "" {
		return nil, nil, nil, fault.Invalid("the statement's id is empty: give every statement a new ULID")
	}
	applied, err := appliedStatementTxn(txn, id)
	if err != nil {
		return nil, nil, nil, err
	}
	if applied != nil {
		if !bytes.Equal(applied.GetEnvelopeDigest(), envelopeDigest) || applied.GetNoticeId() != st.NoticeID() {
			return nil, nil, nil, fault.Exists("statement %s was already accepted with different content: give a new statement a new id", id)
		}
		return applied, nil, nil, nil
	}
	author, err := checkStatementSignerTxn(txn, st.Author(), signerKeyID, at)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err := noticeRowTxn(txn, st.NoticeID())
	if err != nil {
		return nil, nil, nil, err
	}
	if rec == nil || !NoticeVisibleTo(rec, author.GetId()) {
		// A notice the author may not see is answered as missing, so its existence leaks nothing.
		return nil, nil, nil, fault.NotFound("notice %s not found", st.NoticeID())
	}

	if w, ok := st.(*withdrawalStatement); ok {
		if issuer := rec.GetNotice().GetIssuer(); issuer != author.GetId() {
			return nil, nil, nil, fault.Denied("notice %s was issued by %s: only its issuer may withdraw it (%s may object to it instead)", st.NoticeID(), issuer, author.GetId())
		}
		if rec.GetState() != concordv1.NoticeState_NOTICE_STATE_ACTIVE {
			return nil, nil, nil, fault.Precondition("notice %s is already %s", w.NoticeID(), stateName(rec.GetState()))
		}
		return nil, rec, nil, nil
	}

	code := st.Jurisdiction()
	if author.GetJurisdiction() != code {
		return nil, nil, nil, fault.Denied("the statement names jurisdiction %q but %s acts for %q", code, author.GetId(), author.GetJurisdiction())
	}
	if rec.GetState() != concordv1.NoticeState_NOTICE_STATE_ACTIVE {
		return nil, nil, nil, fault.Precondition("notice %s is %s: it can no longer be endorsed or objected to", st.NoticeID(), stateName(rec.GetState()))
	}
	js, err := jurisdictionStateTxn(txn, rec, code, at)
	if err != nil {
		return nil, nil, nil, err
	}
	switch s := st.(type) {
	case *endorsementStatement:
		if err := endorsementRefusal(js); err != nil {
			return nil, nil, nil, err
		}
		j, err := jurisdictionRowTxn(txn, code)
		if err != nil {
			return nil, nil, nil, err
		}
		if err := checkLegalBasis(j, s.GetLegalBasis(), rec.GetNotice().GetCategories(), "legal_basis"); err != nil {
			return nil, nil, nil, err
		}
	case *objectionStatement:
		if err := objectionRefusal(js, at); err != nil {
			return nil, nil, nil, err
		}
	}
	return nil, rec, js, nil
}

// jurisdictionStateTxn returns a copy of rec's state in jurisdiction code. A jurisdiction
// registered after the notice was accepted has no state yet: it is derived now, from today's
// registry, as PENDING or NOT_COVERED (mutual recognition applies only at acceptance).
func jurisdictionStateTxn(txn ReadTxn, rec *concordv1.NoticeRecord, code string, at time.Time) (*concordv1.JurisdictionState, error) {
	for _, js := range rec.GetJurisdictions() {
		if js.GetJurisdiction() == code {
			return proto.CloneOf(js), nil
		}
	}
	j, err := jurisdictionRowTxn(txn, code)
	if err != nil {
		return nil, err
	}
	if j == nil {
		return nil, fault.Precondition("jurisdiction %s is not registered", code)
	}
	st := deriveJurisdiction(j, rec.GetNotice(), at)
	if st.GetStatus() == concordv1.AdoptionStatus_ADOPTION_STATUS_RECOGNISED {
		st.Status = concordv1.AdoptionStatus_ADOPTION_STATUS_PENDING
		st.Actionable = false
		st.ActionDeadline, st.ObjectionWindowClosesAt, st.LegalBasis, st.Reason = nil, nil, "", ""
	}
	return st, nil
}

func stateName(s concordv1.NoticeState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "NOTICE_STATE_"))
}

func categoryNames(cs []concordv1.Category) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = strings.TrimPrefix(c.String(), "CATEGORY_")
	}
	return strings.Join(names, ", ")
}
