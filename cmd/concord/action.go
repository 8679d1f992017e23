package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"

	"google.golang.org/protobuf/types/known/timestamppb"
)

func init() {
	register(command{name: "action", summary: "report what your platform did about a notice (action report)", run: runAction})
	register(command{name: "compliance", summary: "deadlines of notices and whether they were met", run: runCompliance})
}

func runAction(ctx context.Context, args []string) error {
	return runGroup(ctx, "action", `
Platforms report what they did about a notice, in a statement signed with their signing key:
removed, geo-blocked, not found, not actioned (with a reason), reinstated after a withdrawal, or
preserved. Concord measures each report against the deadline of each jurisdiction it answers.`, `
concord action report 01JD5Z3Y5J8Q6T4V2W0X9Y8Z7A --as videoshare --outcome REMOVED --jurisdiction FR,BE`,
		[]subcommand{{"report", "report an action on a notice", runActionReport}}, args)
}

func runActionReport(ctx context.Context, args []string) error {
	fs := newFlags("action report", "action report NOTICE-ID --outcome OUTCOME --jurisdiction CODES [flags]", `
Reports, signed with your signing key, what your platform did about a notice and when, for the
jurisdictions where the notice is actionable. Prints, for each of them, the deadline and whether
the action met it.`, `
concord action report 01JD5Z3Y5J8Q6T4V2W0X9Y8Z7A --as videoshare --outcome REMOVED --jurisdiction FR,BE
concord action report 01JD5Z3Y5J8Q6T4V2W0X9Y8Z7A --as videoshare --outcome GEO_BLOCKED --jurisdiction FR --geo-blocked-in FR,BE
concord action report 01JD5Z3Y5J8Q6T4V2W0X9Y8Z7A --as videoshare --outcome NOT_ACTIONED --jurisdiction DE --reason "news reporting"`)
	var cf clientFlags
	outcome := fs.String("outcome", "", "REMOVED, GEO_BLOCKED, NOT_FOUND, NOT_ACTIONED, REINSTATED or PRESERVED (required)")
	var jurisdictions, geo listFlag
	fs.Var(&jurisdictions, "jurisdiction", "the jurisdictions the report answers (required)")
	fs.Var(&geo, "geo-blocked-in", "GEO_BLOCKED: the countries where access is blocked")
	reason := fs.String("reason", "", "NOT_ACTIONED: why")
	ref := fs.String("preservation-ref", "", "PRESERVED: your reference for the preserved copy")
	at := fs.String("at", "now", "when you acted: now, a duration ago (10m) or an RFC 3339 time")
	items := fs.Uint("items", 0, "how many copies the action covered, if known")
	cf.registerReceipt(fs)
	id, err := noticeStatementFlags(fs, &cf, args)
	if err != nil {
		return err
	}
	o, err := enumValue(concordv1.ActionOutcome_value, "ACTION_OUTCOME_", *outcome, "outcome")
	if err != nil {
		return err
	}
	if len(jurisdictions) == 0 {
		return fmt.Errorf("--jurisdiction is required: the jurisdictions whose obligation the report answers")
	}
	when := time.Now()
	if *at != "now" {
		if when, err = parseSince(*at, time.Now()); err != nil {
			return fmt.Errorf("--at: %w", err)
		}
	}
	r := &concordv1.ActionReport{NoticeId: id, Outcome: concordv1.ActionOutcome(o), Reason: *reason,
		PreservationReference: *ref, OccurredAt: timestamppb.New(when), Items: uint32(*items)}
	for _, j := range jurisdictions {
		r.Jurisdictions = append(r.Jurisdictions, strings.ToUpper(j))
	}
	for _, g := range geo {
		r.GeoBlockedIn = append(r.GeoBlockedIn, strings.ToUpper(g))
	}
	return withClient(ctx, &cf, true, func(ctx context.Context, c *client.Client) error {
		resp, err := c.ReportAction(ctx, r)
		if err != nil {
			return callError("report action", err)
		}
		if err := cf.keepReceipt(resp.GetReceipt()); err != nil {
			return err
		}
		if cf.json {
			return printJSON(os.Stdout, resp)
		}
		fmt.Printf("Report %s accepted (log entry %d): %s on notice %s\n", resp.GetAction().GetReport().GetReportId(),
			resp.GetAction().GetLogIndex(), enumName(r.GetOutcome(), "ACTION_OUTCOME_"), id)
		printItems(os.Stdout, resp.GetItems())
		return nil
	})
}

func runCompliance(ctx context.Context, args []string) error {
	fs := newFlags("compliance", "compliance [flags]", `
Shows, for each notice × jurisdiction × platform you may see, the deadline and whether and when
it was met, with counts, the median and 90th percentile time-to-action, breaches and open items.
An issuing authority sees its notices, a platform itself, an auditor everything it may see.`, `
concord compliance --as fr-pharos --status OVERDUE
concord compliance --as videoshare --since 168h --json`)
	var cf clientFlags
	cf.register(fs)
	notice := fs.String("notice", "", "one notice")
	jurisdiction := fs.String("jurisdiction", "", "one jurisdiction")
	platform := fs.String("platform", "", "one platform")
	since := fs.String("since", "", "notices accepted since: a duration (168h) or an RFC 3339 time")
	var statuses listFlag
	fs.Var(&statuses, "status", "list only items in these statuses: MET, LATE, OPEN, OVERDUE")
	limit := fs.Int("limit", 1000, "at most this many items")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	req := &concordv1.GetComplianceRequest{NoticeId: *notice, Jurisdiction: strings.ToUpper(*jurisdiction), Platform: *platform, MaxItems: int32(*limit)}
	for _, s := range statuses {
		v, err := enumValue(concordv1.ComplianceStatus_value, "COMPLIANCE_STATUS_", s, "status")
		if err != nil {
			return err
		}
		req.Statuses = append(req.Statuses, concordv1.ComplianceStatus(v))
	}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return err
		}
		req.From = timestamppb.New(t)
	}
	return withClient(ctx, &cf, false, func(ctx context.Context, c *client.Client) error {
		resp, err := c.Actions.GetCompliance(ctx, req)
		if err != nil {
			return callError("compliance", err)
		}
		if cf.json {
			return printJSON(os.Stdout, resp)
		}
		printSummary(os.Stdout, "all", resp.GetSummary())
		js := make([]string, 0, len(resp.GetByJurisdiction()))
		for j := range resp.GetByJurisdiction() {
			js = append(js, j)
		}
		sort.Strings(js)
		for _, j := range js {
			printSummary(os.Stdout, j, resp.GetByJurisdiction()[j])
		}
		fmt.Println()
		printItems(os.Stdout, resp.GetItems())
		if resp.GetTruncated() {
			fmt.Printf("(more items: raise --limit or filter)\n")
		}
		return nil
	})
}

func printSummary(w io.Writer, label string, s *concordv1.ComplianceSummary) {
	median, p90 := "n/a", "n/a" // nothing acted on: no time to measure
	if s.GetMet()+s.GetLate() > 0 {
		median, p90 = seconds(s.GetMedianSeconds()), seconds(s.GetP90Seconds())
	}
	fmt.Fprintf(w, "%-4s %d obligations: %d met, %d late, %d open, %d overdue; time to action median %s, p90 %s",
		label, s.GetObligations(), s.GetMet(), s.GetLate(), s.GetOpen(), s.GetOverdue(), median, p90)
	if s.GetPreservationRequested() > 0 {
		fmt.Fprintf(w, "; preservation confirmed %d/%d", s.GetPreservationConfirmed(), s.GetPreservationRequested())
	}
	fmt.Fprintln(w)
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}

func printItems(w io.Writer, items []*concordv1.ComplianceItem) {
	if len(items) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NOTICE\tJURISDICTION\tPLATFORM\tSTATUS\tDEADLINE\tACTED\tOUTCOME\tTIME TO ACTION")
	for _, it := range items {
		deadline := "best effort"
		if it.GetDeadline() != nil {
			deadline = formatTS(it.GetDeadline())
		}
		tta, outcome := "-", "-"
		if it.GetActedAt() != nil {
			tta, outcome = seconds(it.GetTimeToActionSeconds()), enumName(it.GetOutcome(), "ACTION_OUTCOME_")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.GetNoticeId(), it.GetJurisdiction(), it.GetPlatform(),
			enumName(it.GetStatus(), "COMPLIANCE_STATUS_"), deadline, formatTS(it.GetActedAt()), outcome, tta)
	}
	tw.Flush()
}
