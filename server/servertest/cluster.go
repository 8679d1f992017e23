package servertest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"concord/client"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/server"
	"concord/server/cluster"

	"go.opentelemetry.io/otel/trace"
)

// Cluster is a cluster of test nodes on loopback, each with real TLS on its raft port (behind
// a fault injector) and its own data directory, sharing one PKI.
type Cluster struct {
	Dir   string
	PKI   pki.Layout
	Nodes []*Node

	opts Options
	mu   sync.Mutex
}

// NodeID is the id of the i-th node (0-based): node-1, node-2, ...
func NodeID(i int) string { return fmt.Sprintf("node-%d", i+1) }

// ClusterOptions change a test cluster.
type ClusterOptions struct {
	// PKI reuses a PKI directory (another cluster's: the same CA, partners and log key); empty:
	// a new one.
	PKI string
	// Seed, if set, is called with the first node's data directory before it starts (a restore
	// from a backup, say).
	Seed func(dataDir string)
	// Tracing, if set, gives each node its own tracer provider (Options.TracerProvider gives
	// them all one).
	Tracing func(nodeID string) trace.TracerProvider
}

// StartCluster starts size nodes: the first bootstraps the cluster and the registry, the others
// join it through the first one's gRPC port. Nodes stop when the test ends.
func StartCluster(t testing.TB, size int, opts Options) *Cluster {
	t.Helper()
	return StartClusterWith(t, size, opts, ClusterOptions{})
}

// StartClusterWith is StartCluster with cluster options.
func StartClusterWith(t testing.TB, size int, opts Options, co ClusterOptions) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c := &Cluster{Dir: dir, PKI: pki.Layout{Dir: filepath.Join(dir, "certs")}, opts: opts}
	if co.PKI != "" {
		c.PKI.Dir = co.PKI
	}
	ids := make([]string, size)
	for i := range ids {
		ids[i] = NodeID(i)
	}
	for i := range size {
		n := prepare(t, dir, c.PKI.Dir, filepath.Join(dir, ids[i]), opts, ids)
		if i == 0 && co.Seed != nil {
			co.Seed(n.DataDir)
		}
		n.Faults = cluster.NewFaults(nil)
		cc := opts.Cluster
		cc.NodeID = ids[i]
		cc.RaftAddr = "127.0.0.1:0"
		cc.NodeCert, cc.NodeKey = c.PKI.NodeCert(ids[i]), c.PKI.NodeKey(ids[i])
		cc.Network = n.Faults
		if i > 0 {
			cc.Join = []string{c.Nodes[0].GRPCAddr()}
		}
		n.Config.Cluster = cc
		if co.Tracing != nil {
			n.Config.TracerProvider = co.Tracing(ids[i])
		}
		c.Nodes = append(c.Nodes, n)
		c.start(t, i)
	}
	return c
}

// start starts node i on its configuration.
func (c *Cluster) start(t testing.TB, i int) {
	t.Helper()
	if err := c.startErr(t, i); err != nil {
		t.Fatal(err)
	}
}

// startErr starts node i on its configuration, or returns why it did not start.
func (c *Cluster) startErr(t testing.TB, i int) error {
	n := c.Nodes[i]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, n.Config)
	if err != nil {
		return fmt.Errorf("start %s: %w", NodeID(i), err)
	}
	c.mu.Lock()
	n.Server = srv
	c.mu.Unlock()
	// Later starts keep the ports the node has now: the others know its raft address.
	n.Config.Cluster.RaftAddr = srv.RaftAddr()
	n.Config.GRPCAddr, n.Config.HTTPAddr = srv.GRPCAddr(), srv.HTTPAddr()
	if a := srv.MetricsAddr(); a != "" {
		n.Config.MetricsAddr = a
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return nil
}

// RestartAll starts the nodes given again, at once: each waits for the others to catch up.
func (c *Cluster) RestartAll(t testing.TB, nodes ...int) {
	t.Helper()
	errs := make(chan error, len(nodes))
	for _, i := range nodes {
		go func() { errs <- c.startErr(t, i) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// Stop shuts node i down.
func (c *Cluster) Stop(t testing.TB, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Nodes[i].Shutdown(ctx); err != nil {
		t.Fatalf("stop %s: %v", NodeID(i), err)
	}
}

// Restart starts node i again on its data directory and ports.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	c.start(t, i)
}

// Leader waits until one of the running nodes other than those in except leads, and returns its
// position.
func (c *Cluster) Leader(t testing.TB, within time.Duration, except ...int) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
	nodes:
		for i, n := range c.Nodes {
			for _, e := range except {
				if e == i {
					continue nodes
				}
			}
			if n.Server != nil && n.IsLeader() {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no leader within %v", within)
	return -1
}

// GRPCAddrs are the gRPC ports of every node, comma-separated, for client.Config.Addr.
func (c *Cluster) GRPCAddrs() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Config.GRPCAddr
	}
	return strings.Join(addrs, ",")
}

// Client dials as partnerID every node of the cluster (failing over between them), with retries,
// and closes the connection when the test ends.
func (c *Cluster) Client(t testing.TB, partnerID string) *client.Client {
	t.Helper()
	cl, err := client.Dial(client.Config{
		Addr:           c.GRPCAddrs(),
		TLS:            mtls.Files{CA: c.PKI.CACert(), Cert: c.PKI.PartnerCert(partnerID), Key: c.PKI.PartnerKey(partnerID)},
		SigningKeyFile: c.PKI.SigningKey(partnerID),
		LogKeyFile:     c.PKI.LogPub(),
		Retries:        10,
		Timeout:        20 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial the cluster as %s: %v", partnerID, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}
