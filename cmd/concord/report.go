package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"

	"google.golang.org/protobuf/types/known/timestamppb"
)

func init() {
	register(command{name: "report", summary: "transparency report figures for a period (Markdown, CSV, JSON; SVG chart)", run: runReport})
}

func runReport(ctx context.Context, args []string) error {
	fs := newFlags("report", "report --from DATE --to DATE [flags]", `
Produces the figures of a transparency report for a period, within what you may see: notices
issued per jurisdiction and category, action reports by outcome, the time-to-action distribution
per jurisdiction, withdrawals, objections, endorsements and reinstatements (the figures EU
Regulation 2021/784 asks authorities and platforms to publish, Art. 7 and 8). --chart writes a
bar chart of time-to-action per jurisdiction as SVG.`, `
concord report --as fr-pharos --from 2026-01-01 --to 2027-01-01 --chart tta.svg
concord report --as videoshare --from 2026-11-01 --to 2026-12-01 --format csv > november.csv`)
	var cf clientFlags
	cf.register(fs)
	from := fs.String("from", "", "start of the period: a date (2026-01-01) or an RFC 3339 time (required)")
	to := fs.String("to", "", "end of the period, exclusive (default: now)")
	format := fs.String("format", "md", "md, csv or json")
	chart := fs.String("chart", "", "write an SVG chart of time-to-action per jurisdiction to this file")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *from == "" {
		return fmt.Errorf("--from is required")
	}
	start, err := parseDate(*from)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	end := time.Now()
	if *to != "" {
		if end, err = parseDate(*to); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	switch *format {
	case "md", "csv", "json":
	default:
		return fmt.Errorf("--format %q: want md, csv or json", *format)
	}
	return withClient(ctx, &cf, false, func(ctx context.Context, c *client.Client) error {
		r, err := c.Actions.GetTransparencyReport(ctx, &concordv1.GetTransparencyReportRequest{From: timestamppb.New(start), To: timestamppb.New(end)})
		if err != nil {
			return callError("transparency report", err)
		}
		if *chart != "" {
			if err := os.WriteFile(*chart, []byte(timeToActionSVG(r)), 0o644); err != nil {
				return err
			}
		}
		switch *format {
		case "json":
			return printJSON(os.Stdout, r)
		case "csv":
			return reportCSV(os.Stdout, r)
		}
		reportMarkdown(os.Stdout, r)
		return nil
	})
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a date (2026-01-01) or an RFC 3339 time", s)
	}
	return t, nil
}

func reportMarkdown(w io.Writer, r *concordv1.GetTransparencyReportResponse) {
	fmt.Fprintf(w, "# Transparency report, %s to %s\n\nPrepared for `%s` from the figures Concord holds; it covers only what this partner may see.\n\n",
		r.GetFrom().AsTime().UTC().Format("2006-01-02"), r.GetTo().AsTime().UTC().Format("2006-01-02"), r.GetPreparedFor())
	fmt.Fprintf(w, "| figure | count |\n|---|---|\n| notices | %d |\n| hashes in them | %d |\n| endorsements | %d |\n| objections | %d |\n| withdrawals | %d |\n| reinstatements | %d |\n\n",
		r.GetNotices(), r.GetHashes(), r.GetEndorsements(), r.GetObjections(), r.GetWithdrawals(), r.GetReinstatements())
	table := func(title, key string, rows []*concordv1.CountByKey) {
		fmt.Fprintf(w, "## %s\n\n| %s | count |\n|---|---|\n", title, key)
		for _, row := range rows {
			fmt.Fprintf(w, "| %s | %d |\n", row.GetKey(), row.GetCount())
		}
		fmt.Fprintln(w)
	}
	table("Notices by issuing jurisdiction", "jurisdiction", r.GetNoticesByJurisdiction())
	table("Notices by category", "category", r.GetNoticesByCategory())
	table("Action reports by outcome", "outcome", r.GetActionsByOutcome())
	fmt.Fprintf(w, "## Time to action\n\n| jurisdiction | actions | median | p90 | max | within 1 h | 1–24 h | over 24 h | late |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range r.GetTimeToAction() {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %d | %d | %d | %d |\n", t.GetJurisdiction(), t.GetActions(),
			seconds(t.GetMedianSeconds()), seconds(t.GetP90Seconds()), seconds(t.GetMaxSeconds()), t.GetWithinHour(), t.GetWithinDay(), t.GetBeyondDay(), t.GetLate())
	}
}

func reportCSV(w io.Writer, r *concordv1.GetTransparencyReportResponse) error {
	cw := csv.NewWriter(w)
	rows := [][]string{{"section", "key", "count", "median_seconds", "p90_seconds", "late"}}
	add := func(section string, cs []*concordv1.CountByKey) {
		for _, c := range cs {
			rows = append(rows, []string{section, c.GetKey(), fmt.Sprint(c.GetCount()), "", "", ""})
		}
	}
	for _, kv := range []struct {
		k string
		v uint32
	}{{"notices", r.GetNotices()}, {"hashes", r.GetHashes()}, {"endorsements", r.GetEndorsements()}, {"objections", r.GetObjections()},
		{"withdrawals", r.GetWithdrawals()}, {"reinstatements", r.GetReinstatements()}} {
		rows = append(rows, []string{"total", kv.k, fmt.Sprint(kv.v), "", "", ""})
	}
	add("notices_by_jurisdiction", r.GetNoticesByJurisdiction())
	add("notices_by_category", r.GetNoticesByCategory())
	add("actions_by_outcome", r.GetActionsByOutcome())
	for _, t := range r.GetTimeToAction() {
		rows = append(rows, []string{"time_to_action", t.GetJurisdiction(), fmt.Sprint(t.GetActions()),
			fmt.Sprintf("%.0f", t.GetMedianSeconds()), fmt.Sprintf("%.0f", t.GetP90Seconds()), fmt.Sprint(t.GetLate())})
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// timeToActionSVG draws, per jurisdiction, the median and 90th percentile time-to-action as
// horizontal bars on a log scale from 1 minute to 1 week, with the 1-hour deadline marked.
func timeToActionSVG(r *concordv1.GetTransparencyReportResponse) string {
	const (
		left, width, rowH, top = 60, 520, 34, 50
	)
	rows := r.GetTimeToAction()
	height := top + rowH*max(len(rows), 1) + 40
	minS, maxS := 60.0, 7*24*3600.0
	x := func(s float64) float64 {
		s = min(max(s, minS), maxS)
		return left + width*math.Log10(s/minS)/math.Log10(maxS/minS)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", left+width+40, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">Time to action per jurisdiction, %s to %s (median; 90th percentile lighter)</text>`+"\n",
		left, r.GetFrom().AsTime().UTC().Format("2006-01-02"), r.GetTo().AsTime().UTC().Format("2006-01-02"))
	for _, tick := range []struct {
		s     float64
		label string
	}{{60, "1 min"}, {600, "10 min"}, {3600, "1 h"}, {6 * 3600, "6 h"}, {86400, "1 day"}, {7 * 86400, "1 week"}} {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n",
			x(tick.s), top-5, x(tick.s), height-35, x(tick.s), height-20, tick.label)
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c00" stroke-dasharray="4 3"/><text x="%.1f" y="%d" fill="#c00">1 h deadline</text>`+"\n",
		x(3600), top-10, x(3600), height-35, x(3600)+4, top-12)
	for i, t := range rows {
		y := top + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+18, html.EscapeString(t.GetJurisdiction()))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="22" fill="#9ecae1"/>`+"\n", left, y+4, x(t.GetP90Seconds())-left)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="22" fill="#3182bd"/>`+"\n", left, y+4, x(t.GetMedianSeconds())-left)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#333">%d actions, median %s</text>`+"\n", x(t.GetP90Seconds())+6, y+19, t.GetActions(), seconds(t.GetMedianSeconds()))
	}
	if len(rows) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">no actions in the period</text>`+"\n", left, top+20)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
