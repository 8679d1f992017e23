package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"concord/internal/mtls"
	"concord/server/servertest"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
)

// testClock is a leader clock a test can move forward.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// logBuffer collects a node's log lines, to prove what did or did not reach the handlers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// httpClient dials the HTTPS port with files' certificate (HTTP/2 over TLS 1.3).
func httpClient(t testing.TB, files mtls.Files) *http.Client {
	t.Helper()
	conf, err := mtls.ClientConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	conf.NextProtos = []string{"h2", "http/1.1"}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true},
		Timeout:   10 * time.Second,
	}
}

// connectClient is a connect-go client of the HTTPS port, speaking the Connect protocol, or
// gRPC with connecthttp.WithGRPC().
func connectClient(t testing.TB, n *servertest.Node, partnerID string, opts ...connecthttp.Option) *connect.Client {
	t.Helper()
	return connect.NewClient(connecthttp.NewTransport(httpClient(t, n.PartnerTLS(partnerID)), "https://"+n.HTTPAddr(), opts...))
}

// tlsConfigWithoutCert trusts the node but presents no client certificate.
func tlsConfigWithoutCert(t testing.TB, n *servertest.Node) *tls.Config {
	t.Helper()
	pool, err := mtls.LoadCAPool(n.PKI.CACert())
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}
}

// tool finds a command-line tool: the project's pinned .bin/ first (make tools), then PATH.
func tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := filepath.Abs(filepath.Join("..", ".bin", name)); err == nil {
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in .bin/ or PATH: run 'make tools' (the test command does)", name)
	}
	return p
}

// run runs a command with a deadline and returns its stdout; stderr goes into the error.
func run(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), &cmdError{err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.String(), nil
}

type cmdError struct {
	err    error
	stderr string
}

func (e *cmdError) Error() string { return e.err.Error() + ": " + e.stderr }
