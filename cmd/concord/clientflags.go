package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/mtls"
	"concord/internal/pki"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// clientFlags are the connection settings of every command that calls a node. Each flag falls
// back to an environment variable, so a shell can be set up once:
//
//	export CONCORD_AS=fr-pharos     # the dev PKI's files for that partner
type clientFlags struct {
	addr, ca, cert, key, signingKey string
	logKey                          string
	witnesses                       repeatFlag
	quorum                          int
	as, pkiDir                      string
	timeout                         time.Duration
	json                            bool
	receipt                         string
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", envOr("CONCORD_ADDR", "127.0.0.1:7443"), "gRPC address of a node ($CONCORD_ADDR)")
	fs.StringVar(&f.as, "as", os.Getenv("CONCORD_AS"), "partner id: take --ca, --cert, --key and --signing-key from the dev PKI in --pki ($CONCORD_AS)")
	fs.StringVar(&f.pkiDir, "pki", envOr("CONCORD_PKI", ".concord/certs"), "dev PKI directory used with --as ($CONCORD_PKI)")
	fs.StringVar(&f.ca, "ca", os.Getenv("CONCORD_CA"), "PEM file of the CA that issued the node's certificate ($CONCORD_CA)")
	fs.StringVar(&f.cert, "cert", os.Getenv("CONCORD_CERT"), "PEM file of your partner certificate ($CONCORD_CERT)")
	fs.StringVar(&f.key, "key", os.Getenv("CONCORD_KEY"), "PEM file of your certificate's key ($CONCORD_KEY)")
	fs.StringVar(&f.signingKey, "signing-key", os.Getenv("CONCORD_SIGNING_KEY"), "your Ed25519 statement-signing key, PKCS#8 PEM ($CONCORD_SIGNING_KEY)")
	fs.StringVar(&f.logKey, "log-key", os.Getenv("CONCORD_LOG_KEY"), "the hub's transparency-log verifier key (log.pub): receipts of writes are verified with it ($CONCORD_LOG_KEY)")
	fs.Var(&f.witnesses, "witness", "a trusted log witness: its verifier key, or a file holding it (repeatable)")
	fs.IntVar(&f.quorum, "quorum", 0, "how many trusted witnesses must have cosigned a checkpoint for a mirror to follow it")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "deadline of each call")
	fs.BoolVar(&f.json, "json", false, "print JSON (proto3 JSON mapping) instead of text")
}

// witnessKeys are the --witness keys, read from their files where a file was given.
func (f *clientFlags) witnessKeys() ([]string, error) { return noteKeys("--witness", f.witnesses) }

// noteKeys reads signed-note verifier keys given as "name+hash+key" or as files holding one.
func noteKeys(flag string, given []string) ([]string, error) {
	var keys []string
	for _, k := range given {
		if !strings.Contains(k, "+") {
			b, err := os.ReadFile(k)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", flag, err)
			}
			k = strings.TrimSpace(string(b))
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// registerReceipt adds --receipt to a command that writes a statement.
func (f *clientFlags) registerReceipt(fs *flag.FlagSet) {
	fs.StringVar(&f.receipt, "receipt", "", "write the receipt of the write to this file (JSON, a concord.v1.Receipt): proof that the hub logged your statement, checked offline by 'concord log verify-receipt'")
}

// keepReceipt writes r to --receipt's file, if given.
func (f *clientFlags) keepReceipt(r *concordv1.Receipt) error {
	if f.receipt == "" {
		return nil
	}
	if r == nil {
		return fmt.Errorf("--receipt %s: the hub's answer carried no receipt", f.receipt)
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.WriteFile(f.receipt, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--receipt: %w", err)
	}
	return nil
}

// dial connects to the node. needSigner says whether the command signs a statement.
func (f *clientFlags) dial(needSigner bool) (*client.Client, error) {
	if f.as != "" {
		l := pki.Layout{Dir: f.pkiDir}
		if err := knownPartner(l, f.as); err != nil {
			return nil, err
		}
		if f.ca == "" {
			f.ca = l.CACert()
		}
		if f.cert == "" {
			f.cert = l.PartnerCert(f.as)
		}
		if f.key == "" {
			f.key = l.PartnerKey(f.as)
		}
		if f.signingKey == "" {
			f.signingKey = l.SigningKey(f.as)
		}
		if f.logKey == "" {
			f.logKey = l.LogPub()
		}
	}
	var missing []string
	for name, v := range map[string]string{"--ca": f.ca, "--cert": f.cert, "--key": f.key} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if needSigner && f.signingKey == "" {
		missing = append(missing, "--signing-key")
	}
	if needSigner && f.logKey == "" {
		missing = append(missing, "--log-key")
	}
	if len(missing) > 0 {
		return nil, usageErrorf("missing %s: give them, or --as PARTNER to use the dev PKI in %s", strings.Join(missing, ", "), f.pkiDir)
	}
	for _, p := range []string{f.ca, f.cert, f.key} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w (run 'concord dev' or 'concord certs init' for a dev PKI)", err)
		}
	}
	dialedAddr = f.addr
	cfg := client.Config{Addr: f.addr, TLS: mtls.Files{CA: f.ca, Cert: f.cert, Key: f.key}, Timeout: f.timeout, LogKeyFile: f.logKey, WitnessQuorum: f.quorum}
	var err error
	if cfg.Witnesses, err = f.witnessKeys(); err != nil {
		return nil, err
	}
	if needSigner || f.signingKey != "" {
		if _, err := os.Stat(f.signingKey); err == nil || needSigner {
			cfg.SigningKeyFile = f.signingKey
		}
	}
	return client.Dial(cfg)
}

// knownPartner checks that the dev PKI in l holds partner id's files, and otherwise says which
// partners it holds, or that there is no dev PKI there.
func knownPartner(l pki.Layout, id string) error {
	if _, err := os.Stat(l.PartnerDir(id)); err == nil {
		return nil
	}
	entries, err := os.ReadDir(filepath.Dir(l.PartnerDir(id)))
	if err != nil {
		return usageErrorf("--as %s: there is no dev PKI in %s: run 'concord dev' (it writes one there), or give --pki DIR", id, l.Dir)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return usageErrorf("--as %s: unknown partner: the dev PKI in %s has %s", id, l.Dir, strings.Join(ids, ", "))
}

// dialedAddr is the node address the command called, for errors that say it was not reachable.
var dialedAddr string

// unreachable rewrites an error of a call that found no node listening into one that says where
// it looked and what to do; other errors are returned as they are.
func unreachable(err error) error {
	st, ok := status.FromError(err)
	if dialedAddr == "" || (ok && st.Code() != codes.Unavailable) {
		return err
	}
	msg := err.Error()
	for _, sign := range []string{"connection refused", "no such host", "i/o timeout", "network is unreachable", "error while dialing", "Error while dialing"} {
		if strings.Contains(msg, sign) {
			return fmt.Errorf("no Concord node answers at %s (%s): is it running? ('concord dev' starts one; --addr or $CONCORD_ADDR says where to call)", dialedAddr, sign)
		}
	}
	return err
}

// printJSON writes msg in the proto3 JSON mapping, indented.
func printJSON(w io.Writer, msg proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(msg)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// callError turns a gRPC error into a one-line message: the status code and what the node said.
func callError(what string, err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s: %s", what, st.Code(), st.Message())
	}
	return fmt.Errorf("%s: %w", what, err)
}

// readInput reads a file, or standard input for "-".
func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	b, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// protojsonMarshal is a message in the proto3 JSON mapping, on one line.
func protojsonMarshal(m proto.Message) ([]byte, error) { return protojson.Marshal(m) }
