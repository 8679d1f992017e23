package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"concord/client"
	"concord/internal/pki"
	"concord/internal/tlogwitness"
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
SPLIT VIEW and exit status 4 — keep DIR as evidence.

With --listen it serves the protocol instead (C2SP tlog-witness, as public witness networks
do): hubs POST each new checkpoint with a consistency proof to http://ADDR/add-checkpoint and
get the cosignature back. The hub pushes to witnesses registered with witness_url; any log whose
verifier key is given (--log-key, --log) can use it. Put HTTPS in front of it when it leaves a
private network.`, `
concord witness --as observatory --dir /var/lib/concord-witness
concord witness --as observatory --dir w/ --witness-key partners/observatory/witness.key --once
concord witness --as observatory --dir w/ --listen 127.0.0.1:7380 --log other-log.pub`)
	var cf clientFlags
	cf.register(fs)
	dir := fs.String("dir", "", "the witness's state directory (required)")
	keyFile := fs.String("witness-key", "", "your witness signing key (default with --as: the dev PKI's witness.key)")
	interval := fs.Duration("interval", 10*time.Second, "how often to look for a new checkpoint")
	once := fs.Bool("once", false, "check and cosign once, then exit")
	listen := fs.String("listen", "", "serve C2SP tlog-witness on this address (host:port) instead of fetching checkpoints: hubs push them")
	var logs repeatFlag
	fs.Var(&logs, "log", "with --listen: the verifier key of another log to witness, or a file holding it (repeatable)")
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
	// One directory, one mode: each mode keeps its own record of what it cosigned, and a
	// witness that forgot it could cosign another history.
	if err := oneWitnessMode(*dir, *listen != ""); err != nil {
		return err
	}
	if *listen != "" {
		return serveWitness(ctx, &cf, *dir, *keyFile, *listen, logs)
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

// serveWitness serves C2SP tlog-witness on addr for the hub's log (--log-key, or the dev PKI's
// with --as) and the logs given with --log, until ctx ends.
func serveWitness(ctx context.Context, cf *clientFlags, dir, keyFile, addr string, others []string) error {
	own := cf.logKey
	if own == "" && cf.as != "" {
		own = pki.Layout{Dir: cf.pkiDir}.LogPub()
	}
	if own != "" {
		others = append([]string{own}, others...)
	}
	logKeys, err := noteKeys("log key", others)
	if err != nil {
		return err
	}
	if len(logKeys) == 0 {
		return usageErrorf("--listen needs the logs to witness: --log-key (or --as with the dev PKI), --log")
	}
	skey, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("witness key: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	w, err := tlogwitness.New(dir, strings.TrimSpace(string(skey)), logKeys, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: w, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	fmt.Printf("witness %s serving C2SP tlog-witness at http://%s (add-checkpoint)\n", w.Name(), ln.Addr())
	fmt.Printf("register it: witness_key: %s  witness_url: http://%s\n", w.VerifierKey(), ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}

// oneWitnessMode refuses a --dir that holds the other mode's state: pull mode's record is
// "witnessed", --listen's one "<origin>.checkpoint" file per log.
func oneWitnessMode(dir string, listen bool) error {
	pulled := filepath.Join(dir, "witnessed")
	served, _ := filepath.Glob(filepath.Join(dir, "*.checkpoint"))
	switch {
	case listen:
		if _, err := os.Stat(pulled); err == nil {
			return usageErrorf("--dir %s holds the record of what this witness cosigned fetching checkpoints (witnessed); --listen keeps "+
				"its own and would start from nothing, free to cosign another history: keep fetching, or serve --listen with a new witness key", dir)
		}
	case len(served) > 0:
		return usageErrorf("--dir %s holds the record of what this witness cosigned serving --listen (%s); fetching checkpoints keeps "+
			"its own and would start from nothing: keep serving --listen, or fetch with a new witness key", dir, filepath.Base(served[0]))
	}
	return nil
}
