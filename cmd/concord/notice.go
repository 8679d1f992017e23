package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func init() {
	register(command{name: "notice", summary: "submit, endorse, object to, withdraw, get and list removal notices", run: runNotice})
}

func runNotice(ctx context.Context, args []string) error {
	return runGroup(ctx, "notice", `
Removal notices: an authority issues one under its own law (submit), other jurisdictions'
authorities adopt it under theirs (endorse) or declare it not actionable (object), and the
issuer may withdraw it. Every write is signed with your statement-signing key; every read shows
only what your sharing restrictions allow.`, `
concord notice submit --as fr-pharos --basis fr.cp.421-2-5 --category GLORIFICATION --file clip.mp4
concord notice list --as videoshare --jurisdiction FR`,
		[]subcommand{
			{"submit", "issue a notice (hashes from --hash, --file or a --list)", runNoticeSubmit},
			{"endorse", "adopt a notice under one of your jurisdiction's provisions", runNoticeEndorse},
			{"object", "declare a notice not actionable in your jurisdiction", runNoticeObject},
			{"withdraw", "withdraw your notice", runNoticeWithdraw},
			{"get", "show one notice and its state in every jurisdiction", runNoticeGet},
			{"list", "list the notices you may see", runNoticeList},
		}, args)
}

// listFlag collects a repeatable flag; each use may hold comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// repeatFlag collects a repeatable flag whose values may contain commas.
type repeatFlag []string

func (l *repeatFlag) String() string     { return strings.Join(*l, " ") }
func (l *repeatFlag) Set(v string) error { *l = append(*l, v); return nil }

// enumValue parses a name of a proto enum as people write it: without its prefix, any case.
func enumValue(values map[string]int32, prefix, s, what string) (int32, error) {
	name := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
	name = strings.TrimPrefix(name, prefix)
	if v, ok := values[prefix+name]; ok && v != 0 {
		return v, nil
	}
	var names []string
	for n, v := range values {
		if v != 0 {
			names = append(names, strings.TrimPrefix(n, prefix))
		}
	}
	return 0, fmt.Errorf("unknown %s %q: use one of %s", what, s, strings.Join(slices.Sorted(slices.Values(names)), ", "))
}

func parseCategories(names []string) ([]concordv1.Category, error) {
	var out []concordv1.Category
	for _, n := range names {
		v, err := enumValue(concordv1.Category_value, "CATEGORY_", n, "category")
		if err != nil {
			return nil, err
		}
		out = append(out, concordv1.Category(v))
	}
	return out, nil
}

func runNoticeSubmit(ctx context.Context, args []string) error {
	fs := newFlags("notice submit", "notice submit [flags]", `
Issues a removal notice under your jurisdiction's law, signed with your signing key. Hashes come
from --hash (given), --file (computed here: the file never leaves this machine; images get a
PDQ hash too), --url (a URL to block) and --list (a CSV or JSON bulk list, or the --json output
of 'concord hash'; more than 10 000 hashes go as several notices, one id each). The notice
is acknowledged once committed; the command prints each notice's id and its state in every
partner jurisdiction.

CSV lists: kind,hex[,quality] per line (header optional). JSON lists: [{"kind": "sha256",
"hex": "...", "quality": 90}]. Kinds: `+hashKindNames+`.`, `
concord notice submit --as fr-pharos --basis fr.cp.421-2-5 --category GLORIFICATION \
  --hash sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 --tlp GREEN
concord notice submit --as fr-pharos --basis fr.lcen.6-1 --category ATTACK_FOOTAGE --list hashes.csv`)
	var cf clientFlags
	cf.register(fs)
	cf.registerReceipt(fs)
	quiet := fs.Bool("quiet", false, "print only the notice id (one a line), for scripts: ID=$(concord notice submit ... --quiet)")
	var hashes, files, lists, categories, share, narratives repeatFlag
	fs.Var(&hashes, "hash", "a hash, KIND:HEX or KIND:HEX:QUALITY (repeatable)")
	fs.Var(&files, "file", "a local file to hash: SHA-256, MD5, and PDQ for images (repeatable)")
	var urls repeatFlag
	fs.Var(&urls, "url", "a URL to block, shared as the SHA-256 of its normalised form (repeatable)")
	fs.Var(&lists, "list", "a CSV or JSON file of hashes, or - for standard input (repeatable)")
	fs.Var(&categories, "category", "a harmonised category, e.g. GLORIFICATION (repeatable, or comma-separated)")
	basis := fs.String("basis", "", "the provision of your jurisdiction the notice is issued under, e.g. fr.cp.421-2-5 (required)")
	tlp := fs.String("tlp", "AMBER", "who may see it: CLEAR, GREEN, AMBER, AMBER_STRICT or RED")
	fs.Var(&share, "share-with", "partner ids of the sharing group, for AMBER_STRICT and RED (repeatable, or comma-separated)")
	deadline := fs.Duration("deadline", 0, "removal deadline in your jurisdiction (default: your jurisdiction's, or 1h)")
	preserve := fs.Bool("preserve", false, "ask platforms to preserve the content they remove")
	fs.Var(&narratives, "counter-narrative", "a counter-narrative resource, URL or URL@LANG (repeatable)")
	contextText := fs.String("context", "", "context for the platforms' reviewers")
	supersedes := fs.String("supersedes", "", "id of an earlier notice of yours that this one replaces")
	id := fs.String("id", "", "the notice's id (a ULID carrying your statement id tag at characters 11 to 16, see WhoAmI; default: a new one)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *basis == "" {
		return fmt.Errorf("--basis is required: the provision the notice is issued under (see 'concord notice submit --help')")
	}
	var catNames listFlag
	for _, c := range categories {
		_ = catNames.Set(c)
	}
	cats, err := parseCategories(catNames)
	if err != nil {
		return err
	}
	if len(cats) == 0 {
		return fmt.Errorf("--category is required: e.g. --category GLORIFICATION")
	}
	tlpValue, err := enumValue(concordv1.TLP_value, "TLP_", *tlp, "TLP level")
	if err != nil {
		return err
	}
	var group listFlag
	for _, s := range share {
		_ = group.Set(s)
	}
	template := &concordv1.Notice{
		LegalBasis:            *basis,
		Categories:            cats,
		Context:               *contextText,
		Tlp:                   concordv1.TLP(tlpValue),
		SharingGroup:          group,
		PreservationRequested: *preserve,
		Supersedes:            *supersedes,
	}
	if *deadline > 0 {
		template.RemovalDeadline = durationpb.New(*deadline)
	}
	for _, n := range narratives {
		url, lang, _ := strings.Cut(n, "@")
		template.CounterNarratives = append(template.CounterNarratives, &concordv1.CounterNarrative{Url: url, Language: lang})
	}

	var all []*concordv1.Hash
	for _, h := range hashes {
		parsed, err := parseHashArg(h)
		if err != nil {
			return err
		}
		all = append(all, parsed)
	}
	for _, f := range files {
		hs, err := fileHashes(f)
		if err != nil {
			return err
		}
		all = append(all, hs...)
	}
	for _, u := range urls {
		r := hashURL(u)
		if r.Error != "" {
			return fmt.Errorf("--url %q: %s", u, r.Error)
		}
		h, err := newHash(r.Hashes[0].Kind, r.Hashes[0].Hex, "")
		if err != nil {
			return err
		}
		all = append(all, h)
	}
	for _, l := range lists {
		hs, err := readHashList(l)
		if err != nil {
			return err
		}
		all = append(all, hs...)
	}
	if len(all) == 0 {
		return fmt.Errorf("no hashes: give --hash, --file or --list")
	}
	chunks := chunkHashes(all, maxHashesPerNotice)
	if len(chunks) > 1 && (*id != "" || *supersedes != "" || cf.receipt != "") {
		return usageErrorf("%d hashes make %d notices: --id, --supersedes and --receipt apply to a single notice (at most %d hashes)", len(all), len(chunks), maxHashesPerNotice)
	}

	c, err := cf.dial(true)
	if err != nil {
		return err
	}
	defer c.Close()
	for i, chunk := range chunks {
		n := proto.CloneOf(template)
		n.Hashes = chunk
		n.NoticeId = *id
		callCtx, cancel := context.WithTimeout(ctx, cf.timeout)
		resp, err := c.SubmitNoticeWithReceipt(callCtx, n)
		cancel()
		var unverified *client.UnverifiedReceiptError
		if errors.As(err, &unverified) {
			// Committed: its receipt is signed and proves it; only its link to the checkpoints
			// seen before is not proven yet.
			fmt.Fprintf(os.Stderr, "warning: notice %s is committed, but %v\n", n.GetNoticeId(), unverified.Err)
			resp, err = unverified.Response.(*concordv1.SubmitNoticeResponse), nil
		}
		rec := resp.GetNotice()
		if err != nil {
			var unknown *client.OutcomeUnknownError
			if errors.As(err, &unknown) {
				fmt.Fprintf(os.Stderr, "notice %s may or may not be committed (no answer in time): 'concord notice get %s' tells\n", n.GetNoticeId(), n.GetNoticeId())
			}
			if i > 0 {
				fmt.Fprintf(os.Stderr, "%d of %d notices were accepted before this error; submit the remaining hashes again\n", i, len(chunks))
			}
			return callError("submit notice", err)
		}
		if len(chunks) > 1 {
			fmt.Fprintf(os.Stderr, "notice %d/%d accepted: %s (%d hashes)\n", i+1, len(chunks), rec.GetNotice().GetNoticeId(), len(chunk))
		}
		if err := cf.keepReceipt(resp.GetReceipt()); err != nil {
			return err
		}
		if *quiet {
			fmt.Println(rec.GetNotice().GetNoticeId())
			continue
		}
		if err := printRecord(os.Stdout, rec, cf.json); err != nil {
			return err
		}
	}
	return nil
}

// maxHashesPerNotice is the most hashes the hub accepts in one notice.
const maxHashesPerNotice = 10000

func chunkHashes(all []*concordv1.Hash, size int) [][]*concordv1.Hash {
	var out [][]*concordv1.Hash
	for len(all) > size {
		out = append(out, all[:size])
		all = all[size:]
	}
	return append(out, all)
}

// noticeStatementFlags parses the flags of a command whose one argument is a notice id, given
// before, between or after the flags.
func noticeStatementFlags(fs *flag.FlagSet, cf *clientFlags, args []string) (string, error) {
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	switch fs.NArg() {
	case 0:
		fs.Usage()
		return "", errUsage
	case 1:
		return fs.Arg(0), nil
	}
	fmt.Fprintf(fs.Output(), "concord %s: one notice id only: got %q and %q\n", fs.Name(), fs.Arg(0), fs.Arg(1))
	return "", errUsage
}

func runNoticeEndorse(ctx context.Context, args []string) error {
	fs := newFlags("notice endorse", "notice endorse NOTICE-ID --basis PROVISION [flags]", `
Adopts another jurisdiction's notice in yours, under one of your jurisdiction's provisions that
covers one of its categories. Signed with your signing key.`, `
concord notice endorse 01JD5Z3Y5J8Q6T4V2W0X9Y8Z7A --as de-bka --basis de.stgb.140`)
	var cf clientFlags
	basis := fs.String("basis", "", "the provision of your jurisdiction you adopt the notice under (required)")
	cf.registerReceipt(fs)
	id, err := noticeStatementFlags(fs, &cf, args)
	if err != nil {
		return err
	}
	if *basis == "" {
		return fmt.Errorf("--basis is required: the provision you adopt the notice under")
	}
	return withClient(ctx, &cf, true, func(ctx context.Context, c *client.Client) error {
		resp, err := c.EndorseNotice(ctx, id, *basis)
		if err != nil {
			return callError("endorse", err)
		}
		if err := cf.keepReceipt(resp.GetReceipt()); err != nil {
			return err
		}
		return printRecord(os.Stdout, resp.GetNotice(), cf.json)
	})
}

func runNoticeObject(ctx context.Context, args []string) error {
	fs := newFlags("notice object", "notice object NOTICE-ID --reason TEXT [flags]", `
Declares a notice not actionable in your jurisdiction, with a reason platforms and the issuer
will read. Under mutual recognition it must come before the objection window closes.`, `
concord notice object 01JD5Z3Y5J8Q6T4V2W0X9Y8Z7A --as be-fedpol --reason "Satire: not apologie under art. 140bis"`)
	var cf clientFlags
	reason := fs.String("reason", "", "why the notice is not actionable in your jurisdiction (required)")
	cf.registerReceipt(fs)
	id, err := noticeStatementFlags(fs, &cf, args)
	if err != nil {
		return err
	}
	if *reason == "" {
		return fmt.Errorf("--reason is required")
	}
	return withClient(ctx, &cf, true, func(ctx context.Context, c *client.Client) error {
		resp, err := c.ObjectToNotice(ctx, id, *reason)
		if err != nil {
			return callError("object", err)
		}
		if err := cf.keepReceipt(resp.GetReceipt()); err != nil {
			return err
		}
		return printRecord(os.Stdout, resp.GetNotice(), cf.json)
	})
}

func runNoticeWithdraw(ctx context.Context, args []string) error {
	fs := newFlags("notice withdraw", "notice withdraw NOTICE-ID --reason TEXT [--reinstate] [flags]", `
Withdraws your notice: every jurisdiction's obligation ends. With --reinstate, platforms that
removed or blocked the content are told to put it back.`, `
concord notice withdraw 01JD5Z3Y5J8Q6T4V2W0X9Y8Z7A --as fr-pharos --reason "Order annulled on appeal" --reinstate`)
	var cf clientFlags
	reason := fs.String("reason", "", "why the notice is withdrawn (required)")
	reinstate := fs.Bool("reinstate", false, "tell platforms to reinstate what they removed")
	cf.registerReceipt(fs)
	id, err := noticeStatementFlags(fs, &cf, args)
	if err != nil {
		return err
	}
	if *reason == "" {
		return fmt.Errorf("--reason is required")
	}
	return withClient(ctx, &cf, true, func(ctx context.Context, c *client.Client) error {
		resp, err := c.WithdrawNotice(ctx, id, *reason, *reinstate)
		if err != nil {
			return callError("withdraw", err)
		}
		if err := cf.keepReceipt(resp.GetReceipt()); err != nil {
			return err
		}
		return printRecord(os.Stdout, resp.GetNotice(), cf.json)
	})
}

func runNoticeGet(ctx context.Context, args []string) error {
	fs := newFlags("notice get", "notice get NOTICE-ID [flags]", `
Shows one notice: its legal basis, categories, hashes and its state in every partner
jurisdiction. --json prints the record with the signed envelopes, to verify independently.`, `
concord notice get 01JD5Z3Y5J8Q6T4V2W0X9Y8Z7A --as videoshare`)
	var cf clientFlags
	id, err := noticeStatementFlags(fs, &cf, args)
	if err != nil {
		return err
	}
	return withClient(ctx, &cf, false, func(ctx context.Context, c *client.Client) error {
		resp, err := c.Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: id})
		if err != nil {
			return callError("get notice", err)
		}
		return printRecord(os.Stdout, resp.GetNotice(), cf.json)
	})
}

func runNoticeList(ctx context.Context, args []string) error {
	fs := newFlags("notice list", "notice list [flags]", `
Lists the notices you may see, oldest first, following pages until --limit.`, `
concord notice list --as videoshare --jurisdiction DE --status ENDORSED,RECOGNISED
concord notice list --as observatory --category GLORIFICATION --since 24h --json`)
	var cf clientFlags
	cf.register(fs)
	jurisdiction := fs.String("jurisdiction", "", "only notices covered in this jurisdiction (ISO code)")
	var statusNames, catNames, stateNames listFlag
	fs.Var(&statusNames, "status", "with --jurisdiction: only these statuses there (ISSUING, RECOGNISED, ENDORSED, PENDING, OBJECTED, NOT_COVERED, WITHDRAWN)")
	fs.Var(&catNames, "category", "only notices with one of these categories")
	fs.Var(&stateNames, "state", "only notices in these states (ACTIVE, WITHDRAWN, SUPERSEDED)")
	issuer := fs.String("issuer", "", "only notices of this issuer (partner id)")
	since := fs.String("since", "", "only notices changed since then: a duration (24h) or an RFC 3339 time")
	limit := fs.Int("limit", 100, "at most this many notices (0: all)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	req := &concordv1.ListNoticesRequest{Jurisdiction: strings.ToUpper(*jurisdiction), Issuer: *issuer, PageSize: 500}
	for _, s := range statusNames {
		v, err := enumValue(concordv1.AdoptionStatus_value, "ADOPTION_STATUS_", s, "status")
		if err != nil {
			return err
		}
		req.Statuses = append(req.Statuses, concordv1.AdoptionStatus(v))
	}
	cats, err := parseCategories(catNames)
	if err != nil {
		return err
	}
	req.Categories = cats
	for _, s := range stateNames {
		v, err := enumValue(concordv1.NoticeState_value, "NOTICE_STATE_", s, "state")
		if err != nil {
			return err
		}
		req.States = append(req.States, concordv1.NoticeState(v))
	}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return err
		}
		req.UpdatedSince = timestamppb.New(t)
	}
	return withClient(ctx, &cf, false, func(ctx context.Context, c *client.Client) error {
		all := &concordv1.ListNoticesResponse{}
		for {
			resp, err := c.Notices.ListNotices(ctx, req)
			if err != nil {
				return callError("list notices", err)
			}
			all.Notices = append(all.Notices, resp.GetNotices()...)
			all.Index = resp.GetIndex()
			if resp.GetNextPageToken() == "" || (*limit > 0 && len(all.Notices) >= *limit) {
				break
			}
			req.PageToken = resp.GetNextPageToken()
		}
		if *limit > 0 && len(all.Notices) > *limit {
			all.Notices = all.Notices[:*limit]
		}
		if cf.json {
			return printJSON(os.Stdout, all)
		}
		return printNoticeTable(os.Stdout, all.GetNotices())
	})
}

// parseSince reads a duration before now ("24h") or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want a duration (24h) or an RFC 3339 time (2026-11-24T08:00:00Z)", s)
	}
	return t, nil
}

// withClient dials, runs fn with a call deadline, and closes the connection.
func withClient(ctx context.Context, cf *clientFlags, signer bool, fn func(context.Context, *client.Client) error) error {
	c, err := cf.dial(signer)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	return fn(ctx, c)
}

func enumName(s fmt.Stringer, prefix string) string { return strings.TrimPrefix(s.String(), prefix) }

func printRecord(w io.Writer, rec *concordv1.NoticeRecord, asJSON bool) error {
	if asJSON {
		return printJSON(w, rec)
	}
	n := rec.GetNotice()
	cats := make([]string, len(n.GetCategories()))
	for i, c := range n.GetCategories() {
		cats[i] = enumName(c, "CATEGORY_")
	}
	fmt.Fprintf(w, "Notice %s  %s\n", n.GetNoticeId(), enumName(rec.GetState(), "NOTICE_STATE_"))
	fmt.Fprintf(w, "  issuer      %s (%s), under %s\n", n.GetIssuer(), n.GetJurisdiction(), n.GetLegalBasis())
	fmt.Fprintf(w, "  categories  %s\n", strings.Join(cats, ", "))
	fmt.Fprintf(w, "  hashes      %d\n", rec.GetHashCount())
	fmt.Fprintf(w, "  TLP         %s", enumName(n.GetTlp(), "TLP_"))
	if len(n.GetSharingGroup()) > 0 {
		fmt.Fprintf(w, " (shared with %s)", strings.Join(n.GetSharingGroup(), ", "))
	}
	fmt.Fprintf(w, "\n  accepted    %s (raft index %d)\n", formatTS(rec.GetAcceptedAt()), rec.GetAcceptedIndex())
	if rec.GetSupersededBy() != "" {
		fmt.Fprintf(w, "  superseded by %s\n", rec.GetSupersededBy())
	}
	if wd := rec.GetWithdrawal(); wd != nil {
		fmt.Fprintf(w, "  withdrawn   %q; reinstate: %v\n", wd.GetReason(), wd.GetReinstate())
	}
	for _, h := range n.GetHashes() {
		fmt.Fprintf(w, "  %-10s  %x", kindName(h.GetKind()), h.GetValue())
		if h.GetQuality() > 0 {
			fmt.Fprintf(w, "  quality %d", h.GetQuality())
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\n  JURISDICTION\tSTATUS\tACT\tBASIS\tDEADLINE\tNOTE")
	for _, js := range rec.GetJurisdictions() {
		act := "-"
		if js.GetActionable() {
			act = "yes"
		}
		deadline := "-"
		switch {
		case js.GetActionDeadline() != nil:
			deadline = formatTS(js.GetActionDeadline())
		case js.GetActionable():
			deadline = "best effort"
		}
		note := js.GetReason()
		if js.GetObjectionWindowOpen() {
			note = "objection window open until " + formatTS(js.GetObjectionWindowClosesAt())
		}
		basis := js.GetLegalBasis()
		if basis == "" {
			basis = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", js.GetJurisdiction(), enumName(js.GetStatus(), "ADOPTION_STATUS_"), act, basis, deadline, note)
	}
	return tw.Flush()
}

func printNoticeTable(w io.Writer, recs []*concordv1.NoticeRecord) error {
	if len(recs) == 0 {
		fmt.Fprintln(w, "no notices")
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NOTICE\tSTATE\tISSUER\tCATEGORIES\tHASHES\tACTIONABLE IN\tUPDATED")
	for _, rec := range recs {
		n := rec.GetNotice()
		cats := make([]string, len(n.GetCategories()))
		for i, c := range n.GetCategories() {
			cats[i] = enumName(c, "CATEGORY_")
		}
		var where []string
		for _, js := range rec.GetJurisdictions() {
			if js.GetActionable() {
				where = append(where, js.GetJurisdiction())
			}
		}
		if len(where) == 0 {
			where = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.GetNoticeId(), enumName(rec.GetState(), "NOTICE_STATE_"),
			n.GetIssuer(), strings.Join(cats, ","), rec.GetHashCount(), strings.Join(where, ","), formatTS(rec.GetUpdatedAt()))
	}
	return tw.Flush()
}

func formatTS(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format("2006-01-02 15:04:05Z")
}
