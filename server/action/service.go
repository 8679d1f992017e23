// Package action is the core of ActionService: platforms report, in signed statements, what
// they did about notices; Concord measures each obligation (notice × jurisdiction × platform)
// against its deadline and computes the figures of transparency reports.
package action

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/statementid"
	"concord/server/authz"
	"concord/server/fault"
	"concord/server/fsm"
	"concord/server/signed"
	"concord/server/state"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MaxReportBytes bounds an action report's payload.
const MaxReportBytes = 16 << 10

const (
	defaultMaxItems = 1000
)

// Receipts proves that a log entry was logged (see transparency.Publisher).
type Receipts interface {
	Receipt(ctx context.Context, index, consistencyFrom uint64) (*concordv1.Receipt, error)
}

// Service implements ActionService for both transports.
type Service struct {
	concordv1.UnimplementedActionServiceServer

	state     func() *state.Store
	raft      fsm.Applier
	receipts  Receipts
	now       func() time.Time
	validator protovalidate.Validator

	figures figuresCache
}

// New returns the action service.
func New(st func() *state.Store, raft fsm.Applier, receipts Receipts, now func() time.Time) (*Service, error) {
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("action: protovalidate: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Service{state: st, raft: raft, receipts: receipts, now: now, validator: v}, nil
}

// ReportAction verifies a signed action report and commits it.
func (s *Service) ReportAction(ctx context.Context, req *concordv1.ReportActionRequest) (*concordv1.ReportActionResponse, error) {
	c, err := signed.Caller(ctx)
	if err != nil {
		return nil, err
	}
	at := s.now().UTC()
	st := s.state()
	r := &concordv1.ActionReport{}
	opened, err := signed.Open(st, c, req.GetEnvelope(), dsse.PayloadTypeActionReport, at, MaxReportBytes, "action report", r)
	if kr := signed.AsKeyRefused(err); kr != nil {
		// A re-send of a report its key signed in time gets the original answer.
		orig, _ := st.CheckActionReport(r, kr.Opened.Key.GetKeyId(), at, kr.Opened.Digest)
		if orig == nil {
			return nil, kr.Err
		}
		opened, err = kr.Opened, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.validator.Validate(r); err != nil {
		return nil, fault.Invalid("envelope.payload (ActionReport): %v", err)
	}
	if r.GetReporter() != c.PartnerID {
		return nil, fault.Invalid("envelope.payload.reporter is %q but the report is signed by %q: set reporter to the signer", r.GetReporter(), c.PartnerID)
	}
	rec, err := st.CheckActionReport(r, opened.Key.GetKeyId(), at, opened.Digest)
	if idErr := statementid.Check("report_id", r.GetReportId(), c.PartnerID); idErr != nil && rec == nil {
		// Only an identical re-send, of a report accepted before ids carried their signer's tag,
		// gets through; any other answer would tell whether the id is taken.
		return nil, fault.Invalid("envelope.payload.%v", idErr)
	}
	if err != nil {
		return nil, err
	}
	if rec == nil {
		rec, err = fsm.Commit[*concordv1.ActionRecord](ctx, s.raft, fsm.ReportActionType, &statev1.NoticeStatement{
			Envelope: req.GetEnvelope(), SignerKeyId: opened.Key.GetKeyId(), At: timestamppb.New(at),
		})
		if err != nil {
			return nil, err
		}
	}
	receipt, err := s.receipts.Receipt(ctx, rec.GetLogIndex(), req.GetConsistencyFrom())
	if err != nil {
		return nil, err
	}
	// The obligations this report answers, as they stand now.
	st = s.state()
	var items []*concordv1.ComplianceItem
	notice, err := st.Notice(nil, rec.GetReport().GetNoticeId())
	if err != nil {
		return nil, err
	}
	if notice != nil {
		items, _, err = s.noticeItems(st, notice, []string{c.PartnerID}, func(j string) bool {
			return slices.Contains(rec.GetReport().GetJurisdictions(), j)
		})
		if err != nil {
			return nil, err
		}
	}
	out := &concordv1.ActionRecord{Report: rec.GetReport(), AcceptedAt: rec.GetAcceptedAt(), LogIndex: rec.GetLogIndex()}
	return &concordv1.ReportActionResponse{Action: out, Items: items, Receipt: receipt}, nil
}

// noticeItems reads what has happened to rec and returns the obligations of platforms in the
// jurisdictions keep selects, with the action reports filed against rec.
func (s *Service) noticeItems(st *state.Store, rec *concordv1.NoticeRecord, platforms []string, keep func(string) bool) ([]*concordv1.ComplianceItem, []*concordv1.ActionRecord, error) {
	id := rec.GetNotice().GetNoticeId()
	events, err := st.NoticeEvents(id)
	if err != nil {
		return nil, nil, err
	}
	actions, err := st.ActionsOfNotice(id)
	if err != nil {
		return nil, nil, err
	}
	return noticeItems(rec, events, actions, platforms, keep, s.now()), actions, nil
}

// scope is what a caller may see of compliance: which notices, which jurisdictions of them,
// which platforms, which reports.
type scope struct {
	caller   *authz.Caller
	auditor  bool
	platform bool
}

func newScope(c *authz.Caller) scope {
	return scope{caller: c, auditor: c.HasRole(concordv1.Role_ROLE_AUDITOR), platform: c.HasRole(concordv1.Role_ROLE_OPERATOR)}
}

// notice reports whether the notice is in scope, and which of its jurisdictions.
func (sc scope) notice(rec *concordv1.NoticeRecord) (bool, func(string) bool) {
	all := func(string) bool { return true }
	id := sc.caller.PartnerID
	if !state.NoticeVisibleTo(rec, id) {
		return false, nil
	}
	switch {
	case sc.auditor, sc.platform:
		return true, all
	case rec.GetNotice().GetIssuer() == id:
		return true, all
	default:
		// Another authority: the obligations in its own jurisdiction.
		own := sc.caller.Partner.GetJurisdiction()
		return own != "", func(j string) bool { return j == own }
	}
}

// platforms narrows the platforms a caller may see.
func (sc scope) platforms(all []string) []string {
	if sc.auditor || !sc.platform {
		return all
	}
	if slices.Contains(all, sc.caller.PartnerID) {
		return []string{sc.caller.PartnerID}
	}
	return nil
}

// report reports whether an action report is in scope.
func (sc scope) report(rec *concordv1.NoticeRecord, r *concordv1.ActionReport) bool {
	if sc.auditor || rec.GetNotice().GetIssuer() == sc.caller.PartnerID {
		return true
	}
	return sc.platform && r.GetReporter() == sc.caller.PartnerID
}

// GetCompliance returns the obligations the caller may see, with summaries.
func (s *Service) GetCompliance(ctx context.Context, req *concordv1.GetComplianceRequest) (*concordv1.GetComplianceResponse, error) {
	c, err := signed.Caller(ctx)
	if err != nil {
		return nil, err
	}
	sc := newScope(c)
	if p := req.GetPlatform(); p != "" && !sc.auditor && sc.platform && p != c.PartnerID {
		return nil, fault.Denied("a platform sees its own compliance only: leave platform empty or set it to %q", c.PartnerID)
	}
	st := s.state()
	partners, err := st.Partners(nil)
	if err != nil {
		return nil, err
	}
	var items []*concordv1.ComplianceItem
	var reports []*concordv1.ActionReport
	visit := func(rec *concordv1.NoticeRecord) error {
		if req.GetFrom() != nil && rec.GetAcceptedAt().AsTime().Before(req.GetFrom().AsTime()) {
			return nil
		}
		if req.GetTo() != nil && !rec.GetAcceptedAt().AsTime().Before(req.GetTo().AsTime()) {
			return nil
		}
		ok, keep := sc.notice(rec)
		if !ok {
			return nil
		}
		if j := req.GetJurisdiction(); j != "" {
			inner := keep
			keep = func(x string) bool { return x == j && inner(x) }
		}
		platforms := sc.platforms(platformsSeeing(partners, rec))
		if p := req.GetPlatform(); p != "" {
			platforms = slices.DeleteFunc(platforms, func(x string) bool { return x != p })
		}
		got, actions, err := s.noticeItems(st, rec, platforms, keep)
		if err != nil {
			return err
		}
		items = append(items, got...)
		for _, a := range actions {
			if sc.report(rec, a.GetReport()) && (req.GetPlatform() == "" || a.GetReport().GetReporter() == req.GetPlatform()) {
				reports = append(reports, a.GetReport())
			}
		}
		return nil
	}
	if id := req.GetNoticeId(); id != "" {
		rec, err := st.Notice(nil, id)
		if err != nil {
			return nil, err
		}
		if rec == nil || !state.NoticeVisibleTo(rec, c.PartnerID) {
			return nil, fault.NotFound("notice %s not found", id)
		}
		if err := visit(rec); err != nil {
			return nil, err
		}
	} else {
		var visitErr error
		if err := st.Notices(func(rec *concordv1.NoticeRecord) bool {
			visitErr = visit(rec)
			return visitErr == nil
		}); err != nil {
			return nil, err
		}
		if visitErr != nil {
			return nil, visitErr
		}
	}
	resp := &concordv1.GetComplianceResponse{Summary: summarize(items, reports), ByJurisdiction: map[string]*concordv1.ComplianceSummary{}}
	byJ := map[string][]*concordv1.ComplianceItem{}
	for _, it := range items {
		byJ[it.GetJurisdiction()] = append(byJ[it.GetJurisdiction()], it)
	}
	for j, its := range byJ {
		resp.ByJurisdiction[j] = summarize(its, nil)
	}
	limit := int(req.GetMaxItems())
	if limit == 0 {
		limit = defaultMaxItems
	}
	for _, it := range items {
		if len(req.GetStatuses()) > 0 && !slices.Contains(req.GetStatuses(), it.GetStatus()) {
			continue
		}
		if len(resp.Items) == limit {
			resp.Truncated = true
			break
		}
		resp.Items = append(resp.Items, it)
	}
	return resp, nil
}

// GetTransparencyReport returns a period's figures, within what the caller may see.
func (s *Service) GetTransparencyReport(ctx context.Context, req *concordv1.GetTransparencyReportRequest) (*concordv1.GetTransparencyReportResponse, error) {
	c, err := signed.Caller(ctx)
	if err != nil {
		return nil, err
	}
	from, to := req.GetFrom().AsTime(), req.GetTo().AsTime()
	if !to.After(from) {
		return nil, fault.Invalid("to (%s) must be after from (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	in := func(ts *timestamppb.Timestamp) bool {
		t := ts.AsTime()
		return !t.Before(from) && t.Before(to)
	}
	sc := newScope(c)
	st := s.state()
	partners, err := st.Partners(nil)
	if err != nil {
		return nil, err
	}
	resp := &concordv1.GetTransparencyReportResponse{From: req.GetFrom(), To: req.GetTo(), PreparedFor: c.PartnerID}
	byJ, byCat, byOutcome := map[string]uint32{}, map[string]uint32{}, map[string]uint32{}
	times := map[string][]float64{}
	lateByJ := map[string]uint32{}
	var visitErr error
	err = st.Notices(func(rec *concordv1.NoticeRecord) bool {
		ok, keep := sc.notice(rec)
		if !ok {
			return true
		}
		n := rec.GetNotice()
		// Authorities count their own notices; platforms and auditors every notice they see.
		countNotice := sc.auditor || sc.platform || n.GetIssuer() == c.PartnerID
		if countNotice && in(rec.GetAcceptedAt()) {
			resp.Notices++
			resp.Hashes += rec.GetHashCount()
			byJ[n.GetJurisdiction()]++
			for _, cat := range n.GetCategories() {
				byCat[strings.TrimPrefix(cat.String(), "CATEGORY_")]++
			}
		}
		events, err := st.NoticeEvents(n.GetNoticeId())
		if err != nil {
			visitErr = err
			return false
		}
		for _, ev := range events {
			if !in(ev.GetAt()) || !countNotice {
				continue
			}
			switch ev.GetType() {
			case concordv1.NoticeEventType_NOTICE_EVENT_TYPE_WITHDRAWN:
				resp.Withdrawals++
			case concordv1.NoticeEventType_NOTICE_EVENT_TYPE_OBJECTED:
				resp.Objections++
			case concordv1.NoticeEventType_NOTICE_EVENT_TYPE_ENDORSED:
				resp.Endorsements++
			}
		}
		actions, err := st.ActionsOfNotice(n.GetNoticeId())
		if err != nil {
			visitErr = err
			return false
		}
		for _, a := range actions {
			r := a.GetReport()
			if !sc.report(rec, r) || !in(a.GetAcceptedAt()) {
				continue
			}
			byOutcome[outcomeName(r.GetOutcome())]++
			if r.GetOutcome() == concordv1.ActionOutcome_ACTION_OUTCOME_REINSTATED {
				resp.Reinstatements++
			}
		}
		items := noticeItems(rec, events, actions, sc.platforms(platformsSeeing(partners, rec)), keep, s.now())
		for _, it := range items {
			if it.GetActedAt() == nil || !in(it.GetActedAt()) {
				continue
			}
			times[it.GetJurisdiction()] = append(times[it.GetJurisdiction()], it.GetTimeToActionSeconds())
			if it.GetStatus() == concordv1.ComplianceStatus_COMPLIANCE_STATUS_LATE {
				lateByJ[it.GetJurisdiction()]++
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if visitErr != nil {
		return nil, visitErr
	}
	resp.NoticesByJurisdiction = counts(byJ)
	resp.NoticesByCategory = counts(byCat)
	resp.ActionsByOutcome = counts(byOutcome)
	for _, j := range slices.Sorted(maps.Keys(times)) {
		ts := times[j]
		tta := &concordv1.TimeToAction{Jurisdiction: j, Actions: uint32(len(ts)), MedianSeconds: quantile(ts, 0.5), P90Seconds: quantile(ts, 0.9), Late: lateByJ[j]}
		for _, x := range ts {
			tta.MaxSeconds = max(tta.MaxSeconds, x)
			switch {
			case x <= 3600:
				tta.WithinHour++
			case x <= 86400:
				tta.WithinDay++
			default:
				tta.BeyondDay++
			}
		}
		resp.TimeToAction = append(resp.TimeToAction, tta)
	}
	return resp, nil
}

func counts(m map[string]uint32) []*concordv1.CountByKey {
	out := make([]*concordv1.CountByKey, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, &concordv1.CountByKey{Key: k, Count: m[k]})
	}
	return out
}
