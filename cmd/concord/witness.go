package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"concord/client"
	"concord/internal/pki"
	"concord/translog"
)

func init() {
	register(command{name: "witness", summary: "witness the transparency log: check and cosign its checkpoints", run: runWitness})
}

func runWitness(ctx context.Context, args []string) error {
	fs := newFlags("witness", "witness --dir DIR [flags]", `
Runs a witness of the hub's transparency log (C2SP tlog-witness): every interval it fetches the
latest checkpoint, checks its signature and that it is consistent with the last checkpoint it
cosigned (a consistency proof), and cosigns it with your witness key (C2SP tlog-cosignature),
handing the cosignature to the hub, which serves it to every client. Your partner record must
carry the witness key (witness_key in the registry). It never cosigns two histories: the last
checkpoint cosigned is kept in DIR, and a checkpoint inconsistent with it stops the witness with
SPLIT VIEW and exit status 4 — keep DIR as evidence.`, `
concord witness --as observatory --dir /var/lib/concord-witness
concord witness --as observatory --dir w/ --witness-key partners/observatory/witness.key --once`)
	var cf clientFlags
	cf.register(fs)
	dir := fs.String("dir", "", "the witness's state directory (required)")
	keyFile := fs.String("witness-key", "", "your witness signing key (default with --as: the dev PKI's witness.key)")
	interval := fs.Duration("interval", 10*time.Second, "how often to look for a new checkpoint")
	once := fs.Bool("once", false, "check and cosign once, then exit")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	if *keyFile == "" && cf.as != "" {
		*keyFile = pki.Layout{Dir: cf.pkiDir}.WitnessKey(cf.as)
	}
	if *keyFile == "" {
		return errors.New("--witness-key is required (or --as with the dev PKI)")
	}
	key, err := logVerifier(&cf)
	if err != nil {
		return err
	}
	w, err := client.OpenWitness(*dir, key, *keyFile)
	if err != nil {
		return err
	}
	c, err := cf.dial(false)
	if err != nil {
		return err
	}
	defer c.Close()
	report := func(cp translog.Checkpoint) {
		fmt.Printf("%s  cosigned the checkpoint of %d entries as %s\n", time.Now().UTC().Format(time.RFC3339), cp.Size, w.Name())
	}
	if *once {
		cp, err := w.Step(ctx, c)
		if err != nil {
			return witnessError(err)
		}
		if cp == nil {
			fmt.Println("nothing new to cosign")
			return nil
		}
		report(*cp)
		return nil
	}
	return witnessError(w.Run(ctx, c, *interval, report))
}

// errSplitView makes the process exit with status 4.
var errSplitView = errors.New("split view")

func witnessError(err error) error {
	if errors.Is(err, client.ErrSplitView) {
		fmt.Fprintln(os.Stderr, "concord witness:", err)
		return errSplitView
	}
	return err
}
