package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/hashing"
)

func init() {
	register(command{name: "match", summary: "check local files against the notices in force (only hashes are sent)", run: runMatch})
}

// errMatched is returned with --fail-on-match when something matched: exit status 3.
var errMatched = errors.New("content matched a notice")

// fileMatch is what `concord match` found for one file.
type fileMatch struct {
	File       string                   `json:"file"`
	Matches    []*concordv1.NoticeMatch `json:"-"`
	MatchesRaw []json.RawMessage        `json:"matches,omitempty"`
	LowQuality bool                     `json:"low_quality,omitempty"`
	Error      string                   `json:"error,omitempty"`
}

func runMatch(ctx context.Context, args []string) error {
	fs := newFlags("match", "match [flags] FILE|DIR...", `
Hashes each file here (SHA-256, MD5, and PDQ for images: the content is never uploaded) and asks
the hub which notices in force cover it, in batches. Directories are walked, with progress on
standard error. Prints a table of the files that matched: which notice, how close, and where the
platform must act by when; --json for scripts. --fail-on-match exits with status 3 when anything
matched. Rotated and mirrored copies of a notice's images match too, and say so (--dihedral).`, `
concord match --as videoshare uploads/
concord match --as videoshare --json --fail-on-match photo.jpg`)
	var cf clientFlags
	cf.register(fs)
	maxDistance := fs.Int("max-distance", 0, "largest PDQ distance that counts as a match, 1 to 31 (default 31)")
	batch := fs.Int("batch", 1000, "hashes per request (at most 10000)")
	failOnMatch := fs.Bool("fail-on-match", false, "exit with status 3 if any file matched")
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	mirrorDir := fs.String("mirror", "", "match against this verified mirror (see 'concord mirror') instead of the hub: no network call")
	dihedral := fs.Bool("dihedral", true, "also match rotated and mirrored copies of images (eight PDQ lookups an image); --dihedral=false: as they are only")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	if *batch < 1 || *batch > 10000 {
		return fmt.Errorf("--batch %d: want 1 to 10000", *batch)
	}
	files, err := expandPaths(fs.Args())
	if err != nil {
		return err
	}
	matchBatch, closeMatcher, err := matcher(ctx, &cf, *mirrorDir)
	if err != nil {
		return err
	}
	defer closeMatcher()
	progress := newProgress(os.Stderr, len(files), !*quiet && len(files) > 1)
	results := make([]*fileMatch, len(files))
	// Pending hashes of the current batch, and which file each belongs to.
	var pending []*concordv1.Hash
	var owners []int
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		resp, err := matchBatch(&concordv1.MatchRequest{Hashes: pending, MaxPdqDistance: int32(*maxDistance), PdqDihedral: *dihedral})
		if err != nil {
			return err
		}
		for i, r := range resp.GetResults() {
			fm := results[owners[i]]
			fm.LowQuality = fm.LowQuality || r.GetLowQuality()
			for _, m := range r.GetMatches() {
				if !containsMatch(fm.Matches, m) {
					fm.Matches = append(fm.Matches, m)
				}
			}
		}
		pending, owners = pending[:0], owners[:0]
		return nil
	}
	for i, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		results[i] = &fileMatch{File: f}
		hs, err := hashForMatch(f)
		if err != nil {
			results[i].Error = err.Error()
		}
		for _, h := range hs {
			pending = append(pending, h)
			owners = append(owners, i)
		}
		if len(pending) >= *batch {
			if err := flush(); err != nil {
				return err
			}
		}
		progress.step(results[i])
	}
	if err := flush(); err != nil {
		return err
	}
	progress.done()
	matched := 0
	for _, r := range results {
		if len(r.Matches) > 0 {
			matched++
		}
	}
	if cf.json {
		if err := printMatchesJSON(os.Stdout, results); err != nil {
			return err
		}
	} else {
		printMatchTable(os.Stdout, results)
	}
	if matched > 0 && *failOnMatch {
		return errMatched
	}
	return nil
}

// matcher answers batches from the hub, or from a local mirror.
func matcher(ctx context.Context, cf *clientFlags, mirrorDir string) (func(*concordv1.MatchRequest) (*concordv1.MatchResponse, error), func(), error) {
	if mirrorDir != "" {
		key, err := logVerifier(cf)
		if err != nil {
			return nil, nil, err
		}
		if _, err := os.Stat(mirrorDir); err != nil {
			return nil, nil, err
		}
		m, err := client.OpenMirror(mirrorDir, key, "")
		if err != nil {
			return nil, nil, err
		}
		if m.Checkpoint() == nil {
			m.Close()
			return nil, nil, fmt.Errorf("mirror %s holds no verified checkpoint yet: run 'concord mirror --once' first", mirrorDir)
		}
		return m.Match, func() { m.Close() }, nil
	}
	c, err := cf.dial(false)
	if err != nil {
		return nil, nil, err
	}
	return func(req *concordv1.MatchRequest) (*concordv1.MatchResponse, error) {
		callCtx, cancel := context.WithTimeout(ctx, cf.timeout)
		defer cancel()
		resp, err := c.Matches.Match(callCtx, req)
		if err != nil {
			return nil, callError("match", err)
		}
		return resp, nil
	}, func() { c.Close() }, nil
}

// hashForMatch hashes a file for matching: every hash, including a low-quality PDQ (the hub
// answers it with a flag rather than a silent miss).
func hashForMatch(path string) ([]*concordv1.Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := hashing.Content(f)
	if err != nil {
		return nil, err
	}
	out := make([]*concordv1.Hash, 0, len(res.Hashes)+1)
	for _, h := range res.Hashes {
		out = append(out, h.Proto())
	}
	return withVideoHash(path, out), nil
}

func containsMatch(ms []*concordv1.NoticeMatch, m *concordv1.NoticeMatch) bool {
	for _, x := range ms {
		if x.GetNoticeId() == m.GetNoticeId() && x.GetHashPosition() == m.GetHashPosition() {
			return true
		}
	}
	return false
}

func printMatchesJSON(w io.Writer, results []*fileMatch) error {
	for _, r := range results {
		for _, m := range r.Matches {
			b, err := protojsonMarshal(m)
			if err != nil {
				return err
			}
			r.MatchesRaw = append(r.MatchesRaw, b)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(results)
}

func printMatchTable(w io.Writer, results []*fileMatch) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	var matched, low, failed int
	fmt.Fprintln(tw, "FILE\tNOTICE\tKIND\tDISTANCE\tACT IN (DEADLINE)\tNOT ACTIONABLE IN")
	for _, r := range results {
		switch {
		case r.Error != "":
			failed++
			fmt.Fprintf(tw, "%s\terror: %s\t\t\t\t\n", r.File, r.Error)
			continue
		case r.LowQuality && len(r.Matches) == 0:
			low++
		}
		if len(r.Matches) > 0 {
			matched++
		}
		for _, m := range r.Matches {
			var act []string
			for _, o := range m.GetObligations() {
				d := "best effort"
				if o.GetActionDeadline() != nil {
					d = formatTS(o.GetActionDeadline())
				}
				act = append(act, fmt.Sprintf("%s (%s)", o.GetJurisdiction(), d))
			}
			dist := "exact"
			switch m.GetKind() {
			case concordv1.HashKind_HASH_KIND_PDQ:
				dist = fmt.Sprint(m.GetDistance())
				if t := transformWords[m.GetPdqTransform()]; t != "" {
					dist += " (" + t + ")"
				}
			case concordv1.HashKind_HASH_KIND_PDQ_VIDEO:
				dist = fmt.Sprintf("%.0f%% of frames", m.GetQueryMatchPercent())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.File, m.GetNoticeId(), kindName(m.GetKind()), dist,
				strings.Join(act, ", "), strings.Join(m.GetNotActionableIn(), ","))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d files checked: %d matched, %d not matched", len(results), matched, len(results)-matched-failed)
	if low > 0 {
		fmt.Fprintf(w, " (%d images of PDQ quality below 50, matched by exact hashes only)", low)
	}
	if failed > 0 {
		fmt.Fprintf(w, ", %d could not be read", failed)
	}
	fmt.Fprintln(w)
}

// transformWords says how a matched picture differs from the notice's (NoticeMatch.pdq_transform).
var transformWords = map[concordv1.PdqTransform]string{
	concordv1.PdqTransform_PDQ_TRANSFORM_ROTATE_90:       "rotated 90° clockwise",
	concordv1.PdqTransform_PDQ_TRANSFORM_ROTATE_180:      "rotated 180°",
	concordv1.PdqTransform_PDQ_TRANSFORM_ROTATE_270:      "rotated 90° anticlockwise",
	concordv1.PdqTransform_PDQ_TRANSFORM_FLIP_HORIZONTAL: "mirrored left to right",
	concordv1.PdqTransform_PDQ_TRANSFORM_FLIP_VERTICAL:   "mirrored top to bottom",
	concordv1.PdqTransform_PDQ_TRANSFORM_TRANSPOSE:       "transposed",
	concordv1.PdqTransform_PDQ_TRANSFORM_TRANSVERSE:      "transversed",
}

// progress draws a one-line progress bar on a terminal.
type progress struct {
	w            io.Writer
	total, count int
	matched      int
	on           bool
	last         time.Time
}

func newProgress(w *os.File, total int, want bool) *progress {
	info, err := w.Stat()
	terminal := err == nil && info.Mode()&os.ModeCharDevice != 0
	return &progress{w: w, total: total, on: want && terminal}
}

func (p *progress) step(r *fileMatch) {
	p.count++
	if len(r.Matches) > 0 {
		p.matched++
	}
	if !p.on || (time.Since(p.last) < 100*time.Millisecond && p.count < p.total) {
		return
	}
	p.last = time.Now()
	const width = 30
	filled := width * p.count / max(p.total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d files hashed", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.count, p.total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}
