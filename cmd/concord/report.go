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

// chartTicks are the times a time-to-action chart may mark, from a second to a quarter.
var chartTicks = []struct {
	s     float64
	label string
}{{1, "1 s"}, {10, "10 s"}, {60, "1 min"}, {600, "10 min"}, {3600, "1 h"}, {6 * 3600, "6 h"}, {86400, "1 day"},
	{7 * 86400, "1 week"}, {30 * 86400, "30 days"}, {90 * 86400, "90 days"}}

// timeToActionSVG draws, per jurisdiction, the median and 90th percentile time-to-action as
// horizontal bars on a log scale that fits the data (from the tick at or below the fastest
// median to the tick at or above the slowest 90th percentile: seconds to days), with the 1-hour
// deadline marked when it is in range. Every jurisdiction with actions gets a visible bar, even
// at the scale's lowest value.
func timeToActionSVG(r *concordv1.GetTransparencyReportResponse) string {
	const (
		left, width, rowH, top, labelW = 60, 520, 34, 64, 230
	)
	rows := r.GetTimeToAction()
	lo, hi := math.Inf(1), 0.0
	for _, t := range rows {
		lo = min(lo, t.GetMedianSeconds())
		hi = max(hi, t.GetP90Seconds(), t.GetMedianSeconds())
	}
	if len(rows) == 0 {
		lo, hi = 60, 7*86400
	}
	// At least two ticks: the scale spans one decade or more.
	first, last := 0, len(chartTicks)-1
	for first+1 < last && chartTicks[first+1].s <= lo {
		first++
	}
	for last-1 > first && chartTicks[last-1].s >= hi {
		last--
	}
	ticks := chartTicks[first : last+1]
	minS, maxS := ticks[0].s, ticks[len(ticks)-1].s
	x := func(s float64) float64 {
		s = min(max(s, minS), maxS)
		return left + width*math.Log10(s/minS)/math.Log10(maxS/minS)
	}
	// A bar is at least 3 px wide, so an action at the scale's floor still shows.
	bar := func(s float64) float64 { return max(x(s)-left, 3) }
	title := fmt.Sprintf("Time to action per jurisdiction, %s to %s", r.GetFrom().AsTime().UTC().Format("2006-01-02"),
		r.GetTo().AsTime().UTC().Format("2006-01-02"))
	// Wide enough for the title (≈8.5 px a character at 14 px) and the bars' labels.
	svgW := max(left+width+labelW, 20+int(8.5*float64(len([]rune(title)))))
	height := top + rowH*max(len(rows), 1) + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgW, height, svgW, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", svgW, height)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14">%s</text>`+"\n", html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="10" y="38" fill="#555">median (dark) and 90th percentile (light); log scale</text>`+"\n")
	for _, tick := range ticks {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n",
			x(tick.s), top-5, x(tick.s), height-35, x(tick.s), height-20, tick.label)
	}
	if minS < 3600 && 3600 < maxS {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c00" stroke-dasharray="4 3"/><text x="%.1f" y="%d" fill="#c00">1 h deadline</text>`+"\n",
			x(3600), top-10, x(3600), height-35, x(3600)+4, top-12)
	}
	for i, t := range rows {
		y := top + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+18, html.EscapeString(t.GetJurisdiction()))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="22" fill="#9ecae1"/>`+"\n", left, y+4, bar(t.GetP90Seconds()))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="22" fill="#3182bd"/>`+"\n", left, y+4, bar(t.GetMedianSeconds()))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#333">%d actions, median %s</text>`+"\n", left+bar(t.GetP90Seconds())+6, y+19, t.GetActions(), seconds(t.GetMedianSeconds()))
	}
	if len(rows) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">no actions in the period</text>`+"\n", left, top+20)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
