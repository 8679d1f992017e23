package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"
	"concord/translog"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
)

func init() {
	register(command{name: "log", summary: "read and verify the transparency log and receipts (log verify|checkpoint|verify-receipt)", run: runLog})
	register(command{name: "mirror", summary: "keep a local, verified copy of the log for offline matching", run: runMirror})
}

func runLog(ctx context.Context, args []string) error {
	return runGroup(ctx, "log", `
Concord's transparency log holds every accepted statement, in commit order, as a leaf of a
Merkle tree whose checkpoints the hub signs. These commands check it with nothing but the hub's
log key (log.pub).`, `
concord log verify --as observatory
concord log verify --dir mirror/ --log-key log.pub`,
		[]subcommand{
			{"verify", "replay the whole log, re-verifying every signature and the tree", runLogVerify},
			{"checkpoint", "print the latest signed checkpoint, verified", runLogCheckpoint},
			{"verify-receipt", "check a saved receipt offline: the hub logged that statement", runLogVerifyReceipt},
		}, args)
}

// logVerifier loads the log key from --log-key or, with --as, the dev PKI's log.pub.
func logVerifier(cf *clientFlags) (note.Verifier, error) {
	path := cf.logKey
	if path == "" && cf.as != "" {
		path = pki.Layout{Dir: cf.pkiDir}.LogPub()
	}
	if path == "" {
		return nil, errors.New("--log-key is required: the hub's log verifier key (log.pub), the only thing the check trusts")
	}
	return pki.LoadLogVerifier(path)
}

func runLogVerify(ctx context.Context, args []string) error {
	fs := newFlags("log verify", "log verify [--dir MIRROR] [flags]", `
Replays the whole log from entry 0 — from a node, or from a mirror directory (--dir) without any
network call — re-verifying every entry: its bytes against its leaf hash, each statement's
signature against the signer's key as the registry stood at that point of the log, the state
each statement leads to, and the tree against the latest signed checkpoint. Prints a summary
(entries per kind and per signer, first and last time). Exits with status 1, naming the entry,
at the first discrepancy.`, `
concord log verify --as observatory
concord log verify --dir /var/lib/concord-mirror --log-key log.pub`)
	var cf clientFlags
	cf.register(fs)
	dir := fs.String("dir", "", "verify this mirror directory instead of a node's log")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	key, err := logVerifier(&cf)
	if err != nil {
		return err
	}
	start := time.Now()
	var stats client.ReplayStats
	var cp *translog.Checkpoint
	if *dir != "" {
		if _, err := os.Stat(*dir); err != nil {
			return err
		}
		m, err := client.OpenMirror(*dir, key, "")
		if err != nil {
			return err
		}
		defer m.Close()
		stats, cp = m.Stats(), m.Checkpoint()
		if cp == nil {
			return fmt.Errorf("mirror %s holds no verified checkpoint yet: run 'concord mirror' first", *dir)
		}
	} else {
		c, err := cf.dial(false)
		if err != nil {
			return err
		}
		defer c.Close()
		stats, cp, err = verifyFromNode(ctx, c, key)
		if err != nil {
			return err
		}
	}
	printLogSummary(os.Stdout, stats, cp, time.Since(start))
	return nil
}

// verifyFromNode replays the node's whole log up to its latest checkpoint.
func verifyFromNode(ctx context.Context, c *client.Client, key note.Verifier) (client.ReplayStats, *translog.Checkpoint, error) {
	resp, err := c.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
	if err != nil {
		return client.ReplayStats{}, nil, callError("get checkpoint", err)
	}
	cp, _, err := translog.OpenCheckpoint(resp.GetCheckpoint().GetNote(), key)
	if err != nil {
		return client.ReplayStats{}, nil, err
	}
	r, err := client.NewReplayer(nil)
	if err != nil {
		return client.ReplayStats{}, nil, err
	}
	stream, err := c.Log.GetEntries(ctx, &concordv1.GetEntriesRequest{End: uint64(cp.Size)})
	if err != nil {
		return client.ReplayStats{}, nil, callError("get entries", err)
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return client.ReplayStats{}, nil, callError("get entries", err)
		}
		batch := make([]client.Leaf, len(msg.GetLeaves()))
		for i, l := range msg.GetLeaves() {
			batch[i] = client.Leaf{Index: l.GetIndex(), Entry: l.GetEntry(), LeafHash: l.GetLeafHash()}
		}
		if err := r.AddBatch(batch); err != nil {
			return client.ReplayStats{}, nil, err
		}
	}
	if err := r.CheckCheckpoint(cp); err != nil {
		return client.ReplayStats{}, nil, err
	}
	return r.Stats(), &cp, nil
}

func printLogSummary(w io.Writer, s client.ReplayStats, cp *translog.Checkpoint, took time.Duration) {
	fmt.Fprintf(w, "OK: %d entries verified in %v; the tree has the root of the checkpoint of %d entries signed by %s.\n",
		s.Entries, took.Round(time.Millisecond), cp.Size, cp.Origin)
	if s.Restricted > 0 {
		fmt.Fprintf(w, "%d entries are restricted for you (sharing groups): checked as leaf hashes only.\n", s.Restricted)
	}
	if s.NotApplied > 0 {
		fmt.Fprintf(w, "%d signed statements depend on restricted entries and were verified but not replayed.\n", s.NotApplied)
	}
	fmt.Fprintf(w, "First entry %s, last %s.\n\n", s.First.UTC().Format(time.RFC3339), s.Last.UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tENTRIES")
	for _, k := range slices.Sorted(maps.Keys(s.ByKind)) {
		fmt.Fprintf(tw, "%s\t%d\n", k, s.ByKind[k])
	}
	fmt.Fprintln(tw, "\nSIGNER\tSTATEMENTS")
	for _, k := range slices.Sorted(maps.Keys(s.BySigner)) {
		fmt.Fprintf(tw, "%s\t%d\n", k, s.BySigner[k])
	}
	tw.Flush()
}

func runLogCheckpoint(ctx context.Context, args []string) error {
	fs := newFlags("log checkpoint", "log checkpoint [flags]", `
Prints the hub's latest signed checkpoint (a C2SP tlog-checkpoint signed note) after verifying
its signature with the log key.`, `
concord log checkpoint --as observatory`)
	var cf clientFlags
	cf.register(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	key, err := logVerifier(&cf)
	if err != nil {
		return err
	}
	return withClient(ctx, &cf, false, func(ctx context.Context, c *client.Client) error {
		resp, err := c.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
		if err != nil {
			return callError("get checkpoint", err)
		}
		if _, _, err := translog.OpenCheckpoint(resp.GetCheckpoint().GetNote(), key); err != nil {
			return err
		}
		if cf.json {
			return printJSON(os.Stdout, resp.GetCheckpoint())
		}
		fmt.Print(resp.GetCheckpoint().GetNote())
		return nil
	})
}

func runMirror(ctx context.Context, args []string) error {
	fs := newFlags("mirror", "mirror --dir DIR [flags]", `
Keeps in DIR a local copy of the transparency log as you may see it, verified entry by entry
(signatures, leaf hashes, checkpoints signed with the log key and their roots), and the state
rebuilt from it: 'concord match --mirror DIR' then matches files with no network call, so the
hub never learns what you looked up. Follows the log until Ctrl-C; --once syncs and exits.`, `
concord mirror --as videoshare --dir /var/lib/concord-mirror
concord match --mirror /var/lib/concord-mirror uploads/`)
	var cf clientFlags
	cf.register(fs)
	dir := fs.String("dir", "", "the mirror's directory (required)")
	once := fs.Bool("once", false, "sync once and exit")
	interval := fs.Duration("interval", 5*time.Second, "how often to look for new entries")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	key, err := logVerifier(&cf)
	if err != nil {
		return err
	}
	c, err := cf.dial(false)
	if err != nil {
		return err
	}
	defer c.Close()
	me, err := c.Me(ctx)
	if err != nil {
		return callError("who am I", err)
	}
	start := time.Now()
	m, err := client.OpenMirror(*dir, key, me.GetId())
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(os.Stderr, "mirror %s: %d entries on disk, checked in %v\n", *dir, m.Size(), time.Since(start).Round(time.Millisecond))
	last := time.Now()
	from := m.Size()
	progress := func(have, want int64) {
		if time.Since(last) < time.Second && have < want {
			return
		}
		last = time.Now()
		rate := float64(have-from) / time.Since(start).Seconds()
		fmt.Fprintf(os.Stderr, "\rmirror: %d/%d entries (%.0f entries/s)", have, want, rate)
		if have == want {
			fmt.Fprintln(os.Stderr)
		}
	}
	if *once {
		if err := m.Sync(ctx, c, progress); err != nil {
			return err
		}
		fmt.Printf("mirror %s holds %d entries, verified against the checkpoint of %d entries\n", *dir, m.Size(), m.Checkpoint().Size)
		return nil
	}
	return m.Follow(ctx, c, *interval, progress)
}

func runLogVerifyReceipt(ctx context.Context, args []string) error {
	fs := newFlags("log verify-receipt", "log verify-receipt FILE [--log-key log.pub] [--witness KEY... --quorum N]", `
Checks, offline, a receipt a write saved with --receipt: its checkpoint is signed by the hub's log
key (and, with --quorum, cosigned by that many of the --witness keys), the logged entry's leaf
hash is proven included in that checkpoint's tree at the entry's index, and the entry holds the
statement. Prints what the receipt proves; exit status 1 when any check fails. Nothing is sent:
the log key (and the witness keys) are all it trusts.`, `
concord notice submit --as fr-pharos --basis fr.lcen.6-1 --category ATTACK_FOOTAGE --file clip.mp4 --receipt clip.receipt.json
concord log verify-receipt clip.receipt.json --log-key log.pub
concord log verify-receipt clip.receipt.json --as fr-pharos --witness witness.pub --quorum 1`)
	var cf clientFlags
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	verifier, err := logVerifier(&cf)
	if err != nil {
		return usageErrorf("%v", err)
	}
	data, err := readInput(fs.Arg(0))
	if err != nil {
		return err
	}
	var r concordv1.Receipt
	if err := protojson.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s is not a receipt (JSON of concord.v1.Receipt, as --receipt writes): %w", fs.Arg(0), err)
	}
	entry, cp, err := translog.VerifyReceipt(&r, verifier, nil)
	if err != nil {
		return fmt.Errorf("%s does not verify: %w", fs.Arg(0), err)
	}
	cosigned := "no witness cosignature required (--quorum)"
	if cf.quorum > 0 {
		keys, err := cf.witnessKeys()
		if err != nil {
			return err
		}
		var witnesses []note.Verifier
		for _, k := range keys {
			v, err := formats.NewVerifierForCosignatureV1(k)
			if err != nil {
				return usageErrorf("--witness %q: %v", k, err)
			}
			witnesses = append(witnesses, v)
		}
		if cf.quorum > len(witnesses) {
			return usageErrorf("--quorum %d: only %d --witness keys given", cf.quorum, len(witnesses))
		}
		if _, err := translog.OpenCosignedCheckpoint(r.GetCheckpoint().GetNote(), verifier, witnesses, cf.quorum); err != nil {
			return fmt.Errorf("%s: the log key's signature and the proof verify, but not the witnesses: %w", fs.Arg(0), err)
		}
		cosigned = fmt.Sprintf("cosigned by at least %d of the %d witnesses given", cf.quorum, len(witnesses))
	}
	what := "the registry a node started from"
	if st := entry.GetStatement(); st != nil {
		what = fmt.Sprintf("a statement of type %s signed by key %s", st.GetPayloadType(), entry.GetSignerKeyId())
	}
	if cf.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"verified": true, "index": entry.GetIndex(), "origin": cp.Origin, "tree_size": cp.Size,
			"root_hash": cp.Root.String(), "accepted_at": formatTS(entry.GetAcceptedAt()),
			"payload_type": entry.GetStatement().GetPayloadType(), "signer_key_id": entry.GetSignerKeyId(), "witness_quorum": cf.quorum})
	}
	fmt.Printf("%s verifies: entry %d of the log %s, accepted %s, holds %s.\n", fs.Arg(0), entry.GetIndex(), cp.Origin,
		formatTS(entry.GetAcceptedAt()), what)
	fmt.Printf("It is included in the checkpoint of %d entries with root %s, signed by the log key; %s.\n", cp.Size, cp.Root, cosigned)
	return nil
}
