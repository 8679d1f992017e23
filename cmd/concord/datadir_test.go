package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"concord/internal/identity"
	"concord/internal/pki"
	"concord/internal/registryfile"
)

// TestSecondProcessOnADataDirectoryExits: a second `concord serve` on a data directory in use
// exits non-zero within 5 s, naming the directory and the process that holds it.
func TestSecondProcessOnADataDirectoryExits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certs := testPKI(t, dir)
	first := startServe(t, dir)

	dataDir := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, concordBinary, "serve", "--data-dir", dataDir,
		"--ca", certs.CACert(), "--cert", certs.ServerCert(), "--key", certs.ServerKey(), "--log-key", certs.LogKey(),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("second process: %v (stderr %q), want a non-zero exit", err, stderr.String())
	}
	if took > 5*time.Second {
		t.Fatalf("the second process took %v to give up, want under 5 s", took)
	}
	msg := stderr.String()
	if !strings.Contains(msg, dataDir) || !strings.Contains(msg, "process "+strconv.Itoa(first.cmd.Process.Pid)) {
		t.Fatalf("stderr %q names neither the directory %s nor the holder, process %d", msg, dataDir, first.cmd.Process.Pid)
	}
	t.Logf("second process exited with %d after %v: %s", exit.ExitCode(), took.Round(time.Millisecond), strings.TrimSpace(msg))
}

// TestSIGTERMEndsANodeWaitingForItsCluster: a node that waits to join a cluster nobody runs
// (it would wait ten minutes) ends within the shutdown bound of a SIGTERM.
func TestSIGTERMEndsANodeWaitingForItsCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certs := pki.Layout{Dir: filepath.Join(dir, "certs")}
	if _, err := pki.Init(pki.Options{Dir: certs.Dir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: registryfile.ExamplePartnerIDs(), NodeIDs: []string{"node-2"}}); err != nil {
		t.Fatal(err)
	}
	// A closed port: the member to join through is not there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(concordBinary, "serve", "--data-dir", filepath.Join(dir, "data"),
		"--ca", certs.CACert(), "--cert", certs.ServerCert(), "--key", certs.ServerKey(), "--log-key", certs.LogKey(),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json",
		"--node-id", "node-2", "--raft-addr", "127.0.0.1:0", "--node-cert", certs.NodeCert("node-2"), "--node-key", certs.NodeKey("node-2"),
		"--join", nobody)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waiting := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			var line struct{ Msg string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && strings.Contains(line.Msg, "cannot join the cluster yet") && !signalled {
				signalled = true
				close(waiting)
			}
		}
	}()
	select {
	case <-waiting:
	case <-time.After(60 * time.Second):
		t.Fatal("the node never reported that it waits to join")
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Logf("ended %v after SIGTERM: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(shutdownBound + 10*time.Second):
		t.Fatalf("still running %v after SIGTERM", shutdownBound+10*time.Second)
	}
}
