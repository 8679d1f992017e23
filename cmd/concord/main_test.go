package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"
)

// concordBinary is built once by TestMain, for the tests that run the real process.
var concordBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "concord-bin-")
	if err != nil {
		panic(err)
	}
	concordBinary = filepath.Join(dir, "concord")
	build := exec.Command("go", "build", "-o", concordBinary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		panic("build concord: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is a `concord serve` process.
type node struct {
	cmd      *exec.Cmd
	grpcAddr string
	// logs holds the warnings and errors it logged, to find alarms and repairs in.
	logs *procLog
}

// procLog keeps what a process's JSON log said of alarms and repairs, and its latest warnings
// and errors.
type procLog struct {
	mu     sync.Mutex
	alarms []string
	recent []string
}

// alarmMessages are what a node logs when it raises an integrity alarm, suspects a fork or sets
// its raft state aside to repair itself.
var alarmMessages = []string{"integrity alarm", "disagrees with another voter", "repairing this node"}

// recentLines bounds the lines a procLog keeps for a failure report.
const recentLines = 20

func (l *procLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range alarmMessages {
		if strings.Contains(line, m) {
			l.alarms = append(l.alarms, line)
			break
		}
	}
	if len(l.recent) == recentLines {
		l.recent = l.recent[1:]
	}
	l.recent = append(l.recent, line)
}

// alarmLines are the lines that reported an alarm or a repair.
func (l *procLog) alarmLines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.alarms)
}

// tail is the latest warnings and errors.
func (l *procLog) tail() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recent)
}

// startServe runs `concord serve` on dir and waits for its ready line.
func startServe(t *testing.T, dir string, extra ...string) *node {
	t.Helper()
	return startServeWith(t, nil, dir, filepath.Join(dir, "data"), extra...)
}

// startServeWith runs `concord serve` on dataDir, behind the command prefix (nsenter, say),
// and waits for its ready line.
func startServeWith(t *testing.T, prefix []string, dir, dataDir string, extra ...string) *node {
	t.Helper()
	n, ready := launchServeWith(t, prefix, dir, dataDir, extra...)
	return waitReady(t, n, ready)
}

// waitReady waits for a launched node's ready line and records its gRPC address.
func waitReady(t *testing.T, n *node, ready <-chan string) *node {
	t.Helper()
	select {
	case n.grpcAddr = <-ready:
	case <-time.After(60 * time.Second):
		t.Fatal("concord serve did not report ready within 60 s")
	}
	return n
}

// serveArgs are the arguments of `concord serve` on the PKI in dir and dataDir.
func serveArgs(dir, dataDir string) []string {
	certs := pki.Layout{Dir: filepath.Join(dir, "certs")}
	return []string{"serve", "--data-dir", dataDir,
		"--ca", certs.CACert(), "--cert", certs.ServerCert(), "--key", certs.ServerKey(), "--log-key", certs.LogKey(),
		"--registry", filepath.Join(certs.Dir, "registry.yaml"),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json"}
}

// launchServe runs `concord serve` on dir; ready receives its gRPC address when it serves.
func launchServe(t *testing.T, dir string, extra ...string) (*node, <-chan string) {
	t.Helper()
	return launchServeWith(t, nil, dir, filepath.Join(dir, "data"), extra...)
}

// launchServeWith is launchServe on dataDir, behind the command prefix.
func launchServeWith(t *testing.T, prefix []string, dir, dataDir string, extra ...string) (*node, <-chan string) {
	t.Helper()
	return launchBinary(t, concordBinary, prefix, dir, dataDir, extra...)
}

// launchBinary is launchServeWith with a concord binary other than this tree's (an earlier
// build, say).
func launchBinary(t *testing.T, binary string, prefix []string, dir, dataDir string, extra ...string) (*node, <-chan string) {
	t.Helper()
	args := append(append(append([]string{}, prefix...), binary), serveArgs(dir, dataDir)...)
	cmd := exec.Command(args[0], append(args[1:], extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{cmd: cmd, logs: &procLog{}}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			for _, line := range n.logs.tail() {
				t.Logf("process %d: %s", cmd.Process.Pid, line)
			}
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct {
				Level string `json:"level"`
				Msg   string `json:"msg"`
				GRPC  string `json:"grpc"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			if line.Level == "WARN" || line.Level == "ERROR" {
				n.logs.add(sc.Text())
			}
			if line.Msg == "concord node ready" {
				// A node that restarts itself to repair reports ready again: never block its log.
				select {
				case ready <- line.GRPC:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	return n, ready
}

func TestKill9KeepsAcknowledgedRegistryChange(t *testing.T) {
	dir := t.TempDir()
	certs := testPKI(t, dir)
	dial := func(n *node) *client.Client { return dialAs(t, certs, n.grpcAddr, "hub-ops") }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	first := startServe(t, dir)
	ack, err := dial(first).UpdateRegistry(ctx, &concordv1.RegistryChange{Author: "hub-ops",
		Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: &concordv1.Jurisdiction{
			Code: "NL", Name: "Netherlands", Example: true,
			Provisions: []*concordv1.LegalProvision{{Id: "nl.sr.131", Citation: "Wetboek van Strafrecht, art. 131",
				Categories: []concordv1.Category{concordv1.Category_CATEGORY_INCITEMENT}}},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	// kill -9 right after the acknowledgement: no graceful shutdown, no final snapshot.
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()

	second := startServe(t, dir)
	js, err := dial(second).Registry.ListJurisdictions(ctx, &concordv1.ListJurisdictionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, j := range js.GetJurisdictions() {
		found = found || j.GetCode() == "NL"
	}
	if !found || js.GetRegistryIndex() < ack.GetRegistryIndex() {
		t.Fatalf("after kill -9 and restart: NL present %v, registry index %d (acknowledged at %d)", found, js.GetRegistryIndex(), ack.GetRegistryIndex())
	}
}

func TestEveryCommandHasHelpWithAnExample(t *testing.T) {
	for name, c := range commands {
		if c.hidden {
			continue // the shell completion's helper
		}
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(concordBinary, name, "--help").CombinedOutput()
			if err != nil {
				t.Fatalf("concord %s --help: %v\n%s", name, err, out)
			}
			if !strings.Contains(string(out), "Example:") {
				t.Fatalf("concord %s --help shows no example:\n%s", name, out)
			}
		})
	}
	out, err := exec.Command(concordBinary, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "serve") {
		t.Fatalf("concord --help: %v\n%s", err, out)
	}
}

// TestDevPrintsCallsThatWork runs `concord dev` as a newcomer would, pastes every call it prints
// into a shell, then stops it with SIGTERM and expects a clean exit.
func TestDevPrintsCallsThatWork(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".bin", "grpcurl")); err != nil {
		t.Fatalf("grpcurl not found in .bin/: run 'make tools' (the test command does): %v", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is not on PATH")
	}
	cmd := exec.Command(concordBinary, "dev", "--dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	cmd.Dir = root
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	calls := make(chan []string, 1)
	go func() {
		var found []string
		var current string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			switch {
			case current != "":
				current += " " + strings.TrimSuffix(line, `\`)
				if !strings.HasSuffix(line, `\`) {
					found, current = append(found, current), ""
				}
			case strings.HasPrefix(line, ".bin/grpcurl ") || strings.HasPrefix(line, "curl "):
				current = strings.TrimSuffix(line, `\`)
			case strings.Contains(line, "Stop with Ctrl-C"):
				calls <- found
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		close(calls)
	}()
	var printed []string
	select {
	case printed = <-calls:
	case <-time.After(90 * time.Second):
		t.Fatal("concord dev printed no ready message within 90 s")
	}
	want := []string{`"fr-pharos"`, `"hub-ops"`, `"CATEGORY_GLORIFICATION"`}
	if len(printed) != len(want) {
		t.Fatalf("concord dev printed %d calls, want %d: %q", len(printed), len(want), printed)
	}
	for i, call := range printed {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		sh := exec.CommandContext(ctx, "bash", "-c", call)
		sh.Dir = root
		out, err := sh.CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), want[i]) {
			t.Fatalf("%s\n-> %v\n%s\nwant output containing %s", call, err, out, want[i])
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("concord dev after SIGTERM: %v, want a clean exit", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("concord dev did not stop within 30 s of SIGTERM")
	}
}
