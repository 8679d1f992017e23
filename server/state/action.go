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

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"
)

// Platforms' action reports: one row per accepted report, found by notice and by reporter.
const (
	tableActions  = "actions"
	indexReporter = "reporter"

	// MaxClockSkew is how far in the future a report's occurred_at may be, against the leader's
	// clock, before it is refused.
	MaxClockSkew = 5 * time.Minute
)

func actionsTableSchema() *memdb.TableSchema {
	report := func(get func(*concordv1.ActionReport) string) func(*concordv1.ActionRecord) string {
		return func(r *concordv1.ActionRecord) string { return get(r.GetReport()) }
	}
	return &memdb.TableSchema{
		Name: tableActions,
		Indexes: map[string]*memdb.IndexSchema{
			indexID:       {Name: indexID, Unique: true, Indexer: stringIndexer[*concordv1.ActionRecord]{field: report((*concordv1.ActionReport).GetReportId)}},
			indexOfNotice: {Name: indexOfNotice, Indexer: stringIndexer[*concordv1.ActionRecord]{field: report((*concordv1.ActionReport).GetNoticeId)}},
			indexReporter: {Name: indexReporter, Indexer: stringIndexer[*concordv1.ActionRecord]{field: report((*concordv1.ActionReport).GetReporter)}},
		},
	}
}

// CheckActionReport runs the rules of ReportAction on the current state without writing. It
// returns the original record, and no error, for an identical re-send.
func (s *Store) CheckActionReport(r *concordv1.ActionReport, signerKeyID string, at time.Time, envelopeDigest []byte) (*concordv1.ActionRecord, error) {
	orig, err := checkActionTxn(s.db.Txn(false), r, signerKeyID, at, envelopeDigest)
	if orig != nil {
		orig = proto.CloneOf(orig)
	}
	return orig, err
}

func checkActionTxn(txn ReadTxn, r *concordv1.ActionReport, signerKeyID string, at time.Time, envelopeDigest []byte) (*concordv1.ActionRecord, error) {
	id := r.GetReportId()
	if id == "" {
		return nil, fault.Invalid("report_id is empty: give every report a new ULID")
	}
	raw, err := txn.First(tableActions, indexID, id)
	if err != nil {
		return nil, fmt.Errorf("action report %s: %w", id, err)
	}
	if raw != nil {
		orig := raw.(*concordv1.ActionRecord)
		if !bytes.Equal(dsse.Digest(orig.GetEnvelope()), envelopeDigest) {
			return nil, fault.Exists("action report %s was already accepted with different content: give a new report a new report_id", id)
		}
		return orig, nil
	}
	if _, err := checkSignerRoleTxn(txn, r.GetReporter(), signerKeyID, at, concordv1.Role_ROLE_OPERATOR, "only platforms report actions"); err != nil {
		return nil, err
	}
	rec, err := noticeRowTxn(txn, r.GetNoticeId())
	if err != nil {
		return nil, err
	}
	if rec == nil || !NoticeVisibleTo(rec, r.GetReporter()) {
		return nil, fault.NotFound("notice %s not found", r.GetNoticeId())
	}
	if occurred := r.GetOccurredAt().AsTime(); occurred.After(at.Add(MaxClockSkew)) {
		return nil, fault.Invalid("occurred_at %s is in the future (the hub's clock says %s): report actions once done", occurred.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	outcome := r.GetOutcome()
	if outcome == concordv1.ActionOutcome_ACTION_OUTCOME_GEO_BLOCKED {
		for _, j := range r.GetJurisdictions() {
			if !slices.Contains(r.GetGeoBlockedIn(), j) {
				return nil, fault.Invalid("jurisdictions lists %s but geo_blocked_in does not: a geo-block answers a jurisdiction's notice only where access is blocked", j)
			}
		}
	}
	if outcome == concordv1.ActionOutcome_ACTION_OUTCOME_REINSTATED {
		return nil, checkReinstatementTxn(txn, rec, r)
	}
	if rec.GetState() != concordv1.NoticeState_NOTICE_STATE_ACTIVE {
		return nil, fault.Precondition("notice %s is %s: nothing is owed under it any more (report REINSTATED if you put content back)", r.GetNoticeId(), stateName(rec.GetState()))
	}
	for _, j := range r.GetJurisdictions() {
		js := jurisdictionState(rec, j)
		if js == nil || !js.GetActionable() {
			why := "it is not a partner jurisdiction"
			if js != nil {
				why = "its status there is " + adoptionName(js.GetStatus())
			}
			return nil, fault.Precondition("notice %s is not actionable in %s (%s): report only for jurisdictions where it is", r.GetNoticeId(), j, why)
		}
	}
	return nil, nil
}

// checkReinstatementTxn: content is reinstated only after a withdrawal that asks for it, and
// only where the platform reported removing or blocking it.
func checkReinstatementTxn(txn ReadTxn, rec *concordv1.NoticeRecord, r *concordv1.ActionReport) error {
	if rec.GetState() != concordv1.NoticeState_NOTICE_STATE_WITHDRAWN || !rec.GetWithdrawal().GetReinstate() {
		return fault.Precondition("notice %s was not withdrawn with a reinstate instruction: REINSTATED answers such a withdrawal", r.GetNoticeId())
	}
	removed := map[string]bool{}
	iter, err := txn.Get(tableActions, indexOfNotice, r.GetNoticeId())
	if err != nil {
		return err
	}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		prev := raw.(*concordv1.ActionRecord).GetReport()
		if prev.GetReporter() != r.GetReporter() {
			continue
		}
		switch prev.GetOutcome() {
		case concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, concordv1.ActionOutcome_ACTION_OUTCOME_GEO_BLOCKED:
			for _, j := range prev.GetJurisdictions() {
				removed[j] = true
			}
		}
	}
	for _, j := range r.GetJurisdictions() {
		if !removed[j] {
			return fault.Precondition("you reported no removal or geo-block of notice %s in %s: there is nothing to reinstate there", r.GetNoticeId(), j)
		}
	}
	return nil
}

// checkSignerRoleTxn checks that author is registered with role and that signerKeyID is one of
// its keys, usable at at; it returns the author's partner row (read-only).
func checkSignerRoleTxn(txn ReadTxn, author, signerKeyID string, at time.Time, role concordv1.Role, why string) (*concordv1.Partner, error) {
	p, err := partnerRowTxn(txn, author)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fault.Denied("author %q is not a registered partner", author)
	}
	if !slices.Contains(p.GetRoles(), role) {
		return nil, fault.Denied("author %q does not hold %s: %s", author, role, why)
	}
	k, err := signingKeyTxn(txn, signerKeyID)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, fault.Denied("signing key %s is not registered", signerKeyID)
	}
	if k.GetPartnerId() != author {
		return nil, fault.Denied("signing key %s belongs to partner %q, not to %q: sign with your own key", signerKeyID, k.GetPartnerId(), author)
	}
	if why := keyUnusable(k, at); why != "" {
		return nil, fault.Denied("signing key %s %s", signerKeyID, why)
	}
	return p, nil
}

// ReportAction accepts report r, the parsed payload of cmd's envelope whose signature the
// service verified, at raft index idx, after checking the rules again as of the leader-stamped
// cmd.at. An identical re-send returns the original record.
func (s *Store) ReportAction(idx uint64, r *concordv1.ActionReport, cmd *statev1.NoticeStatement) (*concordv1.ActionRecord, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	at, atTS, err := acceptedTimeTxn(txn, cmd.GetAt())
	if err != nil {
		return nil, err
	}
	orig, err := checkActionTxn(txn, r, cmd.GetSignerKeyId(), at, dsse.Digest(cmd.GetEnvelope()))
	if err != nil {
		return nil, err
	}
	if orig != nil {
		return proto.CloneOf(orig), nil
	}
	if err := checkCosignersTxn(txn, cmd.GetEnvelope(), at); err != nil {
		return nil, err
	}
	logIdx, _, err := appendLogRowTxn(txn, idx, atTS, statementEntry(cmd.GetEnvelope(), cmd.GetSignerKeyId()),
		&statev1.LogRow{NoticeId: r.GetNoticeId(), Reporter: r.GetReporter()})
	if err != nil {
		return nil, err
	}
	rec := &concordv1.ActionRecord{Report: r, AcceptedAt: atTS, LogIndex: logIdx, Envelope: cmd.GetEnvelope()}
	if err := txn.Insert(tableActions, rec); err != nil {
		return nil, fmt.Errorf("insert action report %s: %w", r.GetReportId(), err)
	}
	if err := bumpIndexTxn(txn, tableActions, idx); err != nil {
		return nil, err
	}
	txn.Commit()
	return proto.CloneOf(rec), nil
}

// ActionsOfNotice returns the reports on a notice (read-only: never modify them), in report id
// order.
func (s *Store) ActionsOfNotice(noticeID string) ([]*concordv1.ActionRecord, error) {
	iter, err := s.db.Txn(false).Get(tableActions, indexOfNotice, noticeID)
	if err != nil {
		return nil, fmt.Errorf("actions on notice %s: %w", noticeID, err)
	}
	var out []*concordv1.ActionRecord
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		out = append(out, raw.(*concordv1.ActionRecord))
	}
	return out, nil
}

// Notices calls fn with every notice record (read-only), in id order, until fn returns false.
func (s *Store) Notices(fn func(*concordv1.NoticeRecord) bool) error {
	iter, err := s.db.Txn(false).Get(tableNotices, indexIDPrefix, "")
	if err != nil {
		return fmt.Errorf("notices: %w", err)
	}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		if !fn(raw.(*concordv1.NoticeRecord)) {
			return nil
		}
	}
	return nil
}

func adoptionName(s concordv1.AdoptionStatus) string {
	return strings.TrimPrefix(s.String(), "ADOPTION_STATUS_")
}
