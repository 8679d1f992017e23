package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"concord/internal/identity"
	"concord/internal/pki"
	"concord/internal/registryfile"
)

func init() {
	register(command{name: "certs", summary: "create a development PKI (certs init)", run: runCerts})
}

func runCerts(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "init" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			args = []string{"init", "--help"}
		} else {
			fmt.Fprintln(os.Stderr, "Usage: concord certs init [flags]  (run 'concord certs init --help')")
			return errUsage
		}
	}
	return runCertsInit(os.Stdout, args[1:])
}

func runCertsInit(w io.Writer, args []string) error {
	flags := newFlags("certs init", "certs init [flags]", `
Creates a development PKI in DIR (see certs/README.md for every file): a CA; a server
certificate for localhost, 127.0.0.1 and ::1 (plus --server-host names); for every partner a
client certificate naming it as spiffe://TRUST-DOMAIN/partner/<id> and an Ed25519
statement-signing key; and for every cluster node (--nodes) a node certificate naming it as
spiffe://TRUST-DOMAIN/node/<id>, with which nodes talk raft to each other. With the example partners (the default) it also writes DIR/registry.yaml,
the example registry whose key files point into DIR, for 'concord serve --registry'.

Private keys are written 0600 and never overwritten: running it again only adds what is missing
(new partners, lost certificates) and renews certificates that expire within 30 days, keeping
their keys. For development and tests only: in production each partner keeps its own keys.`, `
concord certs init
concord certs init --dir /tmp/pki --partners fr-pharos,hub-ops --server-host concord.internal
concord certs init --nodes node-1,node-2,node-3`)
	dir := flags.String("dir", ".concord/certs", "directory of the PKI")
	partners := flags.String("partners", strings.Join(registryfile.ExamplePartnerIDs(), ","), "comma-separated partner ids to issue certificates and signing keys for")
	nodes := flags.String("nodes", "node-1", "comma-separated cluster node ids to issue node certificates for")
	trustDomain := flags.String("trust-domain", identity.DefaultTrustDomain, "trust domain of partner and node URIs")
	var hosts stringList
	flags.Var(&hosts, "server-host", "extra DNS name or IP address for the server certificate (repeatable)")
	if err := parseNoArgs(flags, args); err != nil {
		return err
	}
	var ids []string
	for _, id := range strings.Split(*partners, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	var nodeIDs []string
	for _, id := range strings.Split(*nodes, ",") {
		if id = strings.TrimSpace(id); id != "" {
			nodeIDs = append(nodeIDs, id)
		}
	}
	report, err := pki.Init(pki.Options{Dir: *dir, TrustDomain: *trustDomain, PartnerIDs: ids, NodeIDs: nodeIDs, ServerHosts: hosts})
	if err != nil {
		return err
	}
	created := 0
	for _, f := range report.Files {
		state := "kept   "
		if f.Created {
			state = "created"
			created++
		}
		fmt.Fprintf(w, "%s %s\n", state, f.Path)
	}
	fmt.Fprintf(w, "%d files created in %s\n", created, *dir)
	if !containsAll(ids, registryfile.ExamplePartnerIDs()) {
		return nil // the example registry would name partners without keys
	}
	regPath := filepath.Join(*dir, "registry.yaml")
	switch _, err := os.Stat(regPath); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.WriteFile(regPath, registryfile.Example(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(w, "created %s (example registry: illustrative data, not legal advice)\n", regPath)
	case err != nil:
		return err
	default:
		fmt.Fprintf(w, "kept    %s\n", regPath)
	}
	return nil
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}
