// Package python_test runs the Python SDK's tests against a real Concord node.
package python_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/agreement"
	"concord/internal/identity"
	"concord/internal/pki"
	"concord/server/servertest"
)

// TestPythonSDK runs clients/python/tests with Debian's python3 and its grpcio, protobuf and
// cryptography packages ('make python-deps' installs them; a missing one fails the test).
func TestPythonSDK(t *testing.T) {
	python, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		t.Fatal("/usr/bin/python3 not found: the Python SDK's tests run with Debian's python3 ('make python-deps')")
	}
	if out, err := exec.Command(python, "-c", "import grpc, google.protobuf, cryptography").CombinedOutput(); err != nil {
		t.Fatalf("the Python SDK needs python3-grpcio, python3-protobuf and python3-cryptography: run 'make python-deps'\n%s", out)
	}
	n := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-m", "unittest", "discover", "-s", "tests", "-v")
	cmd.Env = append(os.Environ(), "PYTHONPATH=.", "CONCORD_ADDR="+n.GRPCAddr(), "CONCORD_PKI="+n.PKI.Dir, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestCrossLanguageAgreement: the same notice signed with the same key in Go and in Python gives
// byte-identical envelopes (deterministic serialization, Ed25519 deterministic signatures), and
// each side verifies the other's.
func TestCrossLanguageAgreement(t *testing.T) {
	dir := t.TempDir()
	layout := pki.Layout{Dir: filepath.Join(dir, "certs")}
	if _, err := pki.Init(pki.Options{Dir: layout.Dir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: []string{"fr-pharos"}}); err != nil {
		t.Fatal(err)
	}
	out, err := agreement.Check(layout.SigningKey("fr-pharos"), dir, func(args ...string) ([]byte, error) {
		cmd := exec.Command("/usr/bin/python3", append([]string{"tests/agree.py"}, args...)...)
		cmd.Env = append(os.Environ(), "PYTHONPATH=.", "PYTHONDONTWRITEBYTECODE=1")
		return cmd.CombinedOutput()
	})
	if err != nil {
		t.Fatalf("Python: %v", err)
	}
	t.Logf("%s", out)
}

// TestPythonWatchResumesAcrossARestart: the SDK's watch, following the feed, sees a notice
// submitted before the node restarts and one submitted after, with nothing lost or repeated.
func TestPythonWatchResumesAcrossARestart(t *testing.T) {
	c := servertest.StartCluster(t, 1, servertest.Options{})
	n := c.Nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "tests/watch_resume.py", "2")
	cmd.Env = append(os.Environ(), "PYTHONPATH=.", "PYTHONDONTWRITEBYTECODE=1", "CONCORD_ADDR="+n.GRPCAddr(), "CONCORD_PKI="+n.PKI.Dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	submit := func(content string) string {
		t.Helper()
		rec, err := n.Client(t, "fr-pharos").SubmitNotice(ctx, &concordv1.Notice{LegalBasis: "fr.cp.421-2-5",
			Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
			Hashes:     []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: []byte(strings.Repeat(content, 32)[:32])}}})
		if err != nil {
			t.Fatal(err)
		}
		return rec.GetNotice().GetNoticeId()
	}
	next := func(want string) {
		t.Helper()
		select {
		case line, ok := <-lines:
			if !ok || !strings.HasPrefix(line, want+" ") {
				t.Fatalf("the watch printed %q (open %v), want notice %s\n%s", line, ok, want, stderr.String())
			}
		case <-ctx.Done():
			t.Fatalf("the watch printed nothing for notice %s\n%s", want, stderr.String())
		}
	}
	t0 := time.Now()
	next(submit("a"))
	t.Logf("first event after %v", time.Since(t0))
	c.Stop(t, 0)
	c.Restart(t, 0)
	t.Logf("restarted after %v", time.Since(t0))
	b := submit("b")
	t.Logf("submitted after %v", time.Since(t0))
	next(b)
	t.Logf("second event after %v", time.Since(t0))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tests/watch_resume.py: %v\n%s", err, stderr.String())
	}
}

// TestPythonWaitsOutRateLimits: on a node allowing 2 calls a second per partner (burst 2), a
// client's matches and writes beyond the burst are refused with a RetryInfo delay, which the
// SDK waits out before sending the same call again; a client told not to wait gets
// ResourceExhausted with the delay.
func TestPythonWaitsOutRateLimits(t *testing.T) {
	n := servertest.Start(t, servertest.Options{RateLimit: 2, RateBurst: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "tests/limits.py", "6")
	cmd.Env = append(os.Environ(), "PYTHONPATH=.", "CONCORD_ADDR="+n.GRPCAddr(), "CONCORD_PKI="+n.PKI.Dir, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tests/limits.py: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "refused: retry after") {
		t.Fatalf("tests/limits.py: no refusal reported:\n%s", out)
	}
	t.Logf("%s", out)
}

// TestReadmeExample runs the README's Python example, as written, against a live node: the
// notice it submits is the one its platform matches, at distance 3.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- example: python -->\n```python\n")
	code, _, closed := strings.Cut(block, "```\n")
	if !ok || !closed {
		t.Fatal("README.md has no python block after <!-- example: python -->")
	}
	file := filepath.Join(t.TempDir(), "example.py")
	if err := os.WriteFile(file, []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	n := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", file)
	cmd.Env = append(os.Environ(), "PYTHONPATH=.", "CONCORD_ADDR="+n.GRPCAddr(), "CONCORD_PKI="+n.PKI.Dir, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's Python example: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var id string
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "notice ") {
		t.Fatalf("the README's Python example printed:\n%s", out)
	}
	id = strings.Fields(lines[0])[1]
	if want := "matches " + id + " at distance 3"; lines[1] != want {
		t.Fatalf("the README's Python example printed %q, want %q", lines[1], want)
	}
}
