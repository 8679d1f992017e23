package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeMetricsAddr: `concord serve` with metrics_addr in its YAML configuration serves the
// node's Prometheus metrics there, in plain HTTP on loopback; --metrics-addr overrides it (the
// node starts while the file's address is taken, and serves on the flag's).
func TestServeMetricsAddr(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testPKI(t, dir)
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	// The config file's address stays held by the test, so no other listener of the node can
	// be given its port (a freed port could be, and answered there in HTTPS): a node that bound
	// it anyway, not overridden by the flag, would fail to start.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	fromFile, fromFlag := held.Addr().String(), free()
	config := filepath.Join(dir, "concord.yaml")
	if err := os.WriteFile(config, []byte("metrics_addr: "+fromFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startServe(t, dir, "--config", config, "--metrics-addr", fromFlag)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + fromFlag + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `concord_raft_state{state="leader"} 1`) {
		t.Fatalf("GET /metrics: %s\n%.500s", resp.Status, body)
	}
}
