package action

import (
	"slices"
	"sort"
	"strings"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/state"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// obligation is one period during which a notice was actionable in a jurisdiction, from its
// events: it begins when the jurisdiction first becomes actionable (issuing, recognised,
// endorsed) and ends when it stops being so (objection, withdrawal, supersession).
type obligation struct {
	jurisdiction    string
	since, deadline time.Time // deadline zero: best effort
	ended           time.Time // zero: still running
}

// obligationsOf replays a notice's events (in cursor order) into its obligations.
func obligationsOf(events []*concordv1.NoticeEvent) []*obligation {
	var out []*obligation
	open := map[string]*obligation{}
	for _, ev := range events {
		for _, js := range ev.GetChanges() {
			j := js.GetJurisdiction()
			cur := open[j]
			switch {
			case js.GetActionable() && cur == nil:
				o := &obligation{jurisdiction: j, since: ev.GetAt().AsTime()}
				if d := js.GetActionDeadline(); d != nil {
					o.deadline = d.AsTime()
				}
				open[j] = o
				out = append(out, o)
			case !js.GetActionable() && cur != nil:
				cur.ended = ev.GetAt().AsTime()
				delete(open, j)
			}
		}
	}
	return out
}

// answers reports whether report r answers the obligation in jurisdiction j: an action that
// settles what the platform had to do there.
func answers(r *concordv1.ActionReport, j string) bool {
	if !slices.Contains(r.GetJurisdictions(), j) {
		return false
	}
	switch r.GetOutcome() {
	case concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, concordv1.ActionOutcome_ACTION_OUTCOME_NOT_FOUND,
		concordv1.ActionOutcome_ACTION_OUTCOME_NOT_ACTIONED:
		return true
	case concordv1.ActionOutcome_ACTION_OUTCOME_GEO_BLOCKED:
		return slices.Contains(r.GetGeoBlockedIn(), j)
	}
	return false
}

// noticeItems computes the compliance items of one notice for the given platforms, as of now.
// keep selects the jurisdictions in scope.
func noticeItems(rec *concordv1.NoticeRecord, events []*concordv1.NoticeEvent, actions []*concordv1.ActionRecord, platforms []string, keep func(jurisdiction string) bool, now time.Time) []*concordv1.ComplianceItem {
	// Reports in the order the platforms say they acted.
	reports := make([]*concordv1.ActionReport, 0, len(actions))
	for _, a := range actions {
		reports = append(reports, a.GetReport())
	}
	sort.SliceStable(reports, func(i, k int) bool {
		return reports[i].GetOccurredAt().AsTime().Before(reports[k].GetOccurredAt().AsTime())
	})
	n := rec.GetNotice()
	var items []*concordv1.ComplianceItem
	for _, o := range obligationsOf(events) {
		if !keep(o.jurisdiction) {
			continue
		}
		for _, p := range platforms {
			item := &concordv1.ComplianceItem{
				NoticeId: n.GetNoticeId(), Jurisdiction: o.jurisdiction, Platform: p, Issuer: n.GetIssuer(),
				Since: timestamppb.New(o.since), PreservationRequested: n.GetPreservationRequested(),
			}
			if !o.deadline.IsZero() {
				item.Deadline = timestamppb.New(o.deadline)
			}
			for _, r := range reports {
				if r.GetReporter() != p {
					continue
				}
				if r.GetOutcome() == concordv1.ActionOutcome_ACTION_OUTCOME_PRESERVED && slices.Contains(r.GetJurisdictions(), o.jurisdiction) {
					item.PreservationConfirmed = true
				}
				if item.ActedAt == nil && answers(r, o.jurisdiction) {
					item.ActedAt, item.Outcome, item.ReportId = r.GetOccurredAt(), r.GetOutcome(), r.GetReportId()
					item.TimeToActionSeconds = max(r.GetOccurredAt().AsTime().Sub(o.since).Seconds(), 0)
				}
			}
			switch {
			case item.ActedAt != nil:
				item.Status = concordv1.ComplianceStatus_COMPLIANCE_STATUS_MET
				if !o.deadline.IsZero() && item.GetActedAt().AsTime().After(o.deadline) {
					item.Status = concordv1.ComplianceStatus_COMPLIANCE_STATUS_LATE
				}
			case !o.ended.IsZero():
				// The obligation lapsed unanswered: a breach only if its deadline passed first.
				if o.deadline.IsZero() || !o.ended.After(o.deadline) {
					continue
				}
				item.Status = concordv1.ComplianceStatus_COMPLIANCE_STATUS_OVERDUE
			case !o.deadline.IsZero() && now.After(o.deadline):
				item.Status = concordv1.ComplianceStatus_COMPLIANCE_STATUS_OVERDUE
			default:
				item.Status = concordv1.ComplianceStatus_COMPLIANCE_STATUS_OPEN
			}
			items = append(items, item)
		}
	}
	return items
}

// summarize sums up items, and the outcomes of reports.
func summarize(items []*concordv1.ComplianceItem, reports []*concordv1.ActionReport) *concordv1.ComplianceSummary {
	s := &concordv1.ComplianceSummary{Outcomes: map[string]uint32{}}
	var times []float64
	for _, it := range items {
		s.Obligations++
		switch it.GetStatus() {
		case concordv1.ComplianceStatus_COMPLIANCE_STATUS_MET:
			s.Met++
		case concordv1.ComplianceStatus_COMPLIANCE_STATUS_LATE:
			s.Late++
		case concordv1.ComplianceStatus_COMPLIANCE_STATUS_OPEN:
			s.Open++
		case concordv1.ComplianceStatus_COMPLIANCE_STATUS_OVERDUE:
			s.Overdue++
		}
		if it.GetActedAt() != nil {
			times = append(times, it.GetTimeToActionSeconds())
		}
		if it.GetPreservationRequested() {
			s.PreservationRequested++
			if it.GetPreservationConfirmed() {
				s.PreservationConfirmed++
			}
		}
	}
	s.MedianSeconds, s.P90Seconds = quantile(times, 0.5), quantile(times, 0.9)
	for _, r := range reports {
		s.Outcomes[outcomeName(r.GetOutcome())]++
	}
	return s
}

// quantile is the nearest-rank quantile q of xs (0 for none).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func outcomeName(o concordv1.ActionOutcome) string {
	return strings.TrimPrefix(o.String(), "ACTION_OUTCOME_")
}

// platformsSeeing lists the registered platforms that may see rec.
func platformsSeeing(partners []*concordv1.Partner, rec *concordv1.NoticeRecord) []string {
	var out []string
	for _, p := range partners {
		if slices.Contains(p.GetRoles(), concordv1.Role_ROLE_OPERATOR) && state.NoticeVisibleTo(rec, p.GetId()) {
			out = append(out, p.GetId())
		}
	}
	return out
}
