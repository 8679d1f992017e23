package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/internal/registryfile"
	"concord/server"
)

func init() {
	register(command{name: "dev", summary: "run a development node with a dev PKI and the example registry", run: runDev})
}

func runDev(ctx context.Context, args []string) error {
	fs := newFlags("dev", "dev [flags]", `
Runs a single development node in one command: creates the dev PKI under DIR/certs if it is
missing (a CA, a server certificate, and a client certificate and signing key for every partner
of the example registry), bootstraps the example registry (illustrative data, not legal advice),
keeps its state under DIR/data, and prints ready-to-paste grpcurl and curl calls.
Never use the dev PKI in production.

With --raft-addr the node is a member of a cluster, with the dev PKI's node certificate of
--node-id (created if missing): the first node bootstraps the cluster, the next ones --join it.
Give each node its own --data-dir and ports.`, `
go run ./cmd/concord dev
concord dev --dir /tmp/concord --grpc-addr 127.0.0.1:17443 --http-addr 127.0.0.1:18443
concord dev --node-id node-2 --raft-addr 127.0.0.1:7002 --join 127.0.0.1:7443 \
  --data-dir .concord/node-2 --grpc-addr 127.0.0.1:7444 --http-addr 127.0.0.1:8444`)
	dir := fs.String("dir", ".concord", "directory of the dev PKI (DIR/certs) and state (DIR/data)")
	grpcAddr := fs.String("grpc-addr", server.DefaultGRPCAddr, "listen address of the gRPC port")
	httpAddr := fs.String("http-addr", server.DefaultHTTPAddr, "listen address of the HTTPS port")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	dataDir := fs.String("data-dir", "", "directory of the node's state (default DIR/data)")
	nodeID := fs.String("node-id", "node-1", "this node's id in its cluster; the dev PKI gets its node certificate")
	raftAddr := fs.String("raft-addr", "", "host:port of this node's raft port (empty: run alone)")
	var join stringList
	fs.Var(&joinFlag{list: &join}, "join", "gRPC address of a cluster member to join through (repeatable, or comma-separated)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *dataDir == "" {
		*dataDir = filepath.Join(*dir, "data")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	certDir := filepath.Join(*dir, "certs")
	report, err := pki.Init(pki.Options{Dir: certDir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: registryfile.ExamplePartnerIDs(), NodeIDs: []string{*nodeID}})
	if err != nil {
		return fmt.Errorf("dev PKI: %w", err)
	}
	created := 0
	for _, f := range report.Files {
		if f.Created {
			created++
		}
	}
	if created > 0 {
		logger.Info("dev PKI created", "dir", certDir, "files", created)
	}
	reg, err := registryfile.Parse(registryfile.Example(), certDir)
	if err != nil {
		return fmt.Errorf("example registry: %w", err)
	}
	layout := pki.Layout{Dir: certDir}
	var cc server.ClusterConfig
	if *raftAddr != "" {
		cc = server.ClusterConfig{NodeID: *nodeID, RaftAddr: *raftAddr, NodeCert: layout.NodeCert(*nodeID), NodeKey: layout.NodeKey(*nodeID), Join: join}
	}
	return serveUntilSignal(ctx, server.Config{
		Cluster:    cc,
		DataDir:    *dataDir,
		GRPCAddr:   *grpcAddr,
		HTTPAddr:   *httpAddr,
		TLS:        mtls.Files{CA: layout.CACert(), Cert: layout.ServerCert(), Key: layout.ServerKey()},
		Registry:   reg,
		LogKeyFile: layout.LogKey(),
		Logger:     logger,
	}, func(srv *server.Server) { printDevCalls(os.Stdout, layout, srv) })
}

// printDevCalls prints calls a newcomer can paste into another terminal.
func printDevCalls(w io.Writer, l pki.Layout, srv *server.Server) {
	const partner = "fr-pharos"
	fmt.Fprintf(w, `
Concord dev node ready. Example registry loaded (illustrative data, not legal advice).
  gRPC port:  %[1]s   (grpc-go)
  HTTPS port: %[2]s   (Connect, gRPC-Web, gRPC; JSON for curl)

Who am I, as the French authority (gRPC, with grpcurl; 'make tools' puts it in .bin/):
  .bin/grpcurl -cacert %[3]s -cert %[4]s -key %[5]s \
    %[1]s concord.v1.RegistryService/WhoAmI

The partners and their signing keys (Connect JSON, with curl):
  curl -sS --cacert %[3]s --cert %[4]s --key %[5]s \
    -H 'Content-Type: application/json' -d '{}' https://%[2]s/concord.v1.RegistryService/ListPartners

The jurisdictions, as a platform:
  curl -sS --cacert %[3]s --cert %[6]s --key %[7]s \
    -H 'Content-Type: application/json' -d '{}' https://%[2]s/concord.v1.RegistryService/ListJurisdictions

Issue a removal notice as the French authority, endorse it as the German one, and see where a
platform must act (the CLI signs with each partner's signing key):
  export CONCORD_ADDR=%[1]s CONCORD_PKI=%[9]s
  go run ./cmd/concord notice submit --as fr-pharos --basis fr.cp.421-2-5 --category GLORIFICATION \
    --hash sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
  go run ./cmd/concord notice endorse NOTICE-ID --as de-bka --basis de.stgb.140
  go run ./cmd/concord notice list --as videoshare

Every partner's certificate, key and signing key is under %[8]s. Stop with Ctrl-C.
`, srv.GRPCAddr(), srv.HTTPAddr(), l.CACert(), l.PartnerCert(partner), l.PartnerKey(partner),
		l.PartnerCert("videoshare"), l.PartnerKey("videoshare"), filepath.Join(l.Dir, "partners"), l.Dir)
}
