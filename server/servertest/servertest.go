// Package servertest starts a real Concord node for tests: a fresh dev PKI, the example registry,
// a raft data dir, and both ports on loopback with OS-chosen ports.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"concord/client"
	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/internal/registryfile"
	"concord/server"
	"concord/server/cluster"
	"concord/server/ratelimit"

	"go.opentelemetry.io/otel/trace"
)

// Node is a running test node and what a client needs to reach it.
type Node struct {
	*server.Server
	Dir     string // parent of certs/ and data/
	PKI     pki.Layout
	DataDir string
	Config  server.Config
	// Faults cuts a cluster node's raft port off from the other nodes (nil for a node alone).
	Faults *cluster.Faults
}

// Options change a test node.
type Options struct {
	// Dir reuses a directory (PKI and data) from an earlier node; empty: a new t.TempDir().
	Dir string
	// RateLimit per partner; 0: unlimited, unless Limits is set.
	RateLimit float64
	RateBurst int
	// Limits, if set, are the node's limits (work, streams, ...), with the default request rate
	// unless RateLimit says otherwise.
	Limits *ratelimit.Config

	// Now is the leader clock (default time.Now).
	Now func() time.Time
	// Logger (default: a test's node logs nothing, but fails the test if a line at info level
	// or above holds a private key of its PKI; a benchmark's discards its log).
	Logger *slog.Logger
	// FeedMaxLag (default: the server's).
	FeedMaxLag uint64
	// Metrics serves the node's metrics on a loopback port of its own (see Server.MetricsAddr),
	// computing the notice and obligation figures again at every scrape that finds them stale.
	Metrics bool
	// Cluster tunes the nodes of StartCluster (raft timeouts, snapshots); its addresses, node
	// ids and certificates are filled in.
	Cluster server.ClusterConfig
	// Audit receives the node's audit stream (default: none).
	Audit *slog.Logger
	// TracerProvider traces the node's calls (default: none).
	TracerProvider trace.TracerProvider
}

// Start starts a node and stops it when the test ends.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	n := Prepare(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, n.Config)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	n.Server = srv
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shut node down: %v", err)
		}
	})
	return n
}

// Prepare creates the PKI and configuration of a node without starting it.
func Prepare(t testing.TB, opts Options) *Node {
	t.Helper()
	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	return prepare(t, dir, filepath.Join(dir, "certs"), filepath.Join(dir, "data"), opts, nil)
}

// prepare creates the PKI in certDir (with node certificates for nodeIDs) and the
// configuration of a node on dataDir.
func prepare(t testing.TB, dir, certDir, dataDir string, opts Options, nodeIDs []string) *Node {
	t.Helper()
	if _, err := pki.Init(pki.Options{Dir: certDir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: registryfile.ExamplePartnerIDs(), NodeIDs: nodeIDs}); err != nil {
		t.Fatalf("dev PKI: %v", err)
	}
	reg, err := registryfile.Parse(registryfile.Example(), certDir)
	if err != nil {
		t.Fatalf("example registry: %v", err)
	}
	logger := opts.Logger
	if logger == nil {
		if _, bench := t.(*testing.B); bench {
			logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		} else {
			logger = newSecretScan(t, pki.Layout{Dir: certDir}, registryfile.ExamplePartnerIDs())
		}
	}
	rate := opts.RateLimit
	if rate == 0 && opts.Limits == nil {
		rate = -1
	}
	layout := pki.Layout{Dir: certDir}
	n := &Node{Dir: dir, PKI: layout, DataDir: dataDir}
	n.Config = server.Config{
		DataDir:    n.DataDir,
		GRPCAddr:   "127.0.0.1:0",
		HTTPAddr:   "127.0.0.1:0",
		TLS:        mtls.Files{CA: layout.CACert(), Cert: layout.ServerCert(), Key: layout.ServerKey()},
		Registry:   reg,
		LogKeyFile: layout.LogKey(),
		RateLimit:  rate,
		RateBurst:  opts.RateBurst,
		Logger:     logger,
		Now:        opts.Now,
		FeedMaxLag: opts.FeedMaxLag,

		TracerProvider: opts.TracerProvider,
		Audit:          opts.Audit,
	}
	if opts.Limits != nil {
		n.Config.Limits = *opts.Limits
	}
	if opts.Metrics {
		n.Config.MetricsAddr = "127.0.0.1:0"
		n.Config.MetricsInterval = time.Nanosecond
	}
	return n
}

// PartnerTLS names the CA, certificate and key a partner dials with.
func (n *Node) PartnerTLS(partnerID string) mtls.Files {
	return mtls.Files{CA: n.PKI.CACert(), Cert: n.PKI.PartnerCert(partnerID), Key: n.PKI.PartnerKey(partnerID)}
}

// Client dials the node's gRPC port as partnerID, with its signing key, and closes the
// connection when the test ends.
func (n *Node) Client(t testing.TB, partnerID string) *client.Client {
	t.Helper()
	c, err := client.Dial(client.Config{
		Addr:           n.GRPCAddr(),
		TLS:            n.PartnerTLS(partnerID),
		SigningKeyFile: n.PKI.SigningKey(partnerID),
		LogKeyFile:     n.PKI.LogPub(),
		Retries:        -1,
	})
	if err != nil {
		t.Fatalf("dial as %s: %v", partnerID, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
