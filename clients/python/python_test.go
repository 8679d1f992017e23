// Package python_test runs the Python SDK's tests against a real Concord node.
package python_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// pytx is how TestPytxExchange runs python-threatexchange's `tx` command line: Debian's python3
// with pytx from shared/ (beside the repository, as CI checks it out) and this SDK on the path,
// and HOME and pytx's state directory in a temporary directory.
type pytx struct {
	t   *testing.T
	ctx context.Context
	env []string
}

func newPytx(t *testing.T, ctx context.Context, node *servertest.Node) *pytx {
	t.Helper()
	root, err := filepath.Abs("../../../shared/third_party/python-threatexchange")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "threatexchange", "__init__.py")); err != nil {
		t.Fatalf("python-threatexchange is not at %s (shared/ beside the repository): %v", root, err)
	}
	home := t.TempDir()
	p := &pytx{t: t, ctx: ctx, env: append(os.Environ(),
		"PYTHONPATH="+strings.Join([]string{".", root, filepath.Join(root, "standins")}, string(os.PathListSeparator)),
		"PYTHONDONTWRITEBYTECODE=1", "HOME="+home, "TX_STATEDIR="+filepath.Join(home, ".threatexchange"),
		"CONCORD_ADDR="+node.GRPCAddr(), "CONCORD_PKI="+node.PKI.Dir)}
	if out, err := p.command("-c", "import grpc, google.protobuf, cryptography, dacite, dateutil, requests, PIL, numpy, faiss, threatexchange").CombinedOutput(); err != nil {
		t.Fatalf("pytx needs Debian's python3-dacite, python3-dateutil, python3-requests, python3-pil, python3-numpy and python3-faiss (and the SDK's packages): run 'make python-deps'\n%s", out)
	}
	return p
}

func (p *pytx) command(args ...string) *exec.Cmd {
	cmd := exec.CommandContext(p.ctx, "/usr/bin/python3", args...)
	cmd.Env = p.env
	return cmd
}

// tx runs `tx args...` and returns its standard output and error.
func (p *pytx) tx(args ...string) (stdout, stderr string) {
	p.t.Helper()
	cmd := p.command(append([]string{"-m", "threatexchange"}, args...)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("tx %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

// TestPytxExchange drives the Concord extension of python-threatexchange through pytx's own
// `tx` command line, as an HMA operator would set it up, against a live node: the extension
// added, a collaboration configured for videoshare in FR, two notices fetched and a
// near-duplicate of one's PDQ hash matched; a true positive (`tx label`) and a false positive
// become signed action reports; the notice withdrawn, the next fetch (incremental: one record)
// removes its hashes and the near-duplicate no longer matches, while the other notice does.
func TestPytxExchange(t *testing.T) {
	t0 := time.Now()
	n := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := newPytx(t, ctx, n)

	if out, _ := p.tx("config", "extensions", "add", "concord.pytx"); !strings.Contains(out, "concord - ConcordSignalExchangeAPI") {
		t.Fatalf("tx config extensions add concord.pytx printed:\n%s", out)
	}
	p.tx("config", "collab", "edit", "concord", "platform", "--create", "--addr", n.GRPCAddr(),
		"--pki-dir", n.PKI.Dir, "--partner", "videoshare", "--jurisdictions", "FR")

	rng := rand.New(rand.NewPCG(15, 4))
	random := func(size int) []byte {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	pdqA, pdqB, pdqB2, sha, md5 := random(32), random(32), random(32), random(32), random(16)
	fr := n.Client(t, "fr-pharos")
	submit := func(hashes ...*concordv1.Hash) string {
		t.Helper()
		rec, err := fr.SubmitNotice(ctx, &concordv1.Notice{LegalBasis: "fr.cp.421-2-5",
			Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}, Hashes: hashes})
		if err != nil {
			t.Fatal(err)
		}
		return rec.GetNotice().GetNoticeId()
	}
	a := submit(&concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: pdqA, Quality: 90},
		&concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sha},
		&concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_MD5, Value: md5})
	// Two hashes: pytx's PDQ index, saved and loaded with Debian's faiss 1.7.3, finds nothing
	// when it holds a single hash (its multi-hash maps are read back empty).
	b := submit(&concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: pdqB, Quality: 90},
		&concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: pdqB2, Quality: 90})

	_, fetchLog := p.tx("-v", "fetch")
	if !strings.Contains(fetchLog, "fetch() with 2 new records") {
		t.Fatalf("the first fetch did not fetch the two notices:\n%s", fetchLog)
	}
	fetched := func() map[string]string { // "signal type and hash" → its notices, as fetched
		out, _ := p.tx("dataset", "--print-signals")
		m := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			for i, w := range f {
				if w == "notice" && i+1 < len(f) {
					m[f[0]+" "+f[1]] += f[i+1]
				}
			}
		}
		return m
	}
	stillB := map[string]string{"pdq " + hex.EncodeToString(pdqB): b, "pdq " + hex.EncodeToString(pdqB2): b}
	want := maps.Clone(stillB)
	maps.Copy(want, map[string]string{"pdq " + hex.EncodeToString(pdqA): a,
		"video_sha256 " + hex.EncodeToString(sha): a, "video_md5 " + hex.EncodeToString(md5): a})
	if got := fetched(); !maps.Equal(got, want) {
		t.Fatalf("fetched signals %v, want %v", got, want)
	}

	near := func(h []byte) string {
		c := bytes.Clone(h)
		for _, bit := range []int{3, 40, 77, 150, 201} {
			c[bit/8] ^= 1 << (bit % 8)
		}
		return hex.EncodeToString(c)
	}
	match := func(hash string) []string {
		out, _ := p.tx("match", "--hashes", "photo", "--", hash)
		return strings.Fields(out)
	}
	if got := match(near(pdqA)); len(got) < 4 || got[0] != "pdq" || got[1] != "5" || got[2] != "(platform)" ||
		!slices.Contains(got, a) || got[len(got)-1] != hex.EncodeToString(pdqA) {
		t.Fatalf("tx match of a near-duplicate of notice %s's PDQ hash printed %q", a, got)
	}

	// Feedback: a true positive through `tx label`, a false positive and what does not map
	// through the API itself.
	p.tx("label", "--as-hash", "pdq", "platform", "photo", "--", hex.EncodeToString(pdqA))
	out, err := p.command("tests/pytx_feedback.py", hex.EncodeToString(pdqB), near(pdqB)).CombinedOutput()
	if err != nil {
		t.Fatalf("tests/pytx_feedback.py: %v\n%s", err, out)
	}
	t.Logf("tests/pytx_feedback.py:\n%s", out)
	outcomes := func(notice string) map[string]uint32 {
		c, err := fr.Actions.GetCompliance(ctx, &concordv1.GetComplianceRequest{NoticeId: notice, Platform: "videoshare"})
		if err != nil {
			t.Fatal(err)
		}
		return c.GetSummary().GetOutcomes()
	}
	if got := outcomes(a); !maps.Equal(got, map[string]uint32{"REMOVED": 1}) {
		t.Errorf("videoshare's reports on notice %s after its true positive: %v, want one REMOVED", a, got)
	}
	if got := outcomes(b); !maps.Equal(got, map[string]uint32{"NOT_ACTIONED": 1}) {
		t.Errorf("videoshare's reports on notice %s after its false positive: %v, want one NOT_ACTIONED", b, got)
	}

	if _, err := fr.WithdrawNotice(ctx, a, "Annulled on appeal", true); err != nil {
		t.Fatal(err)
	}
	if _, fetchLog = p.tx("-v", "fetch"); !strings.Contains(fetchLog, "fetch() with 1 new records") {
		t.Fatalf("the fetch after the withdrawal did not fetch one record from its checkpoint:\n%s", fetchLog)
	}
	if got := fetched(); !maps.Equal(got, stillB) {
		t.Fatalf("fetched signals after notice %s's withdrawal: %v, want %v", a, got, stillB)
	}
	if got := match(near(pdqA)); len(got) != 0 {
		t.Fatalf("tx match of a near-duplicate of withdrawn notice %s's hash printed %q", a, got)
	}
	if got := match(near(pdqB)); !slices.Contains(got, b) {
		t.Fatalf("tx match of a near-duplicate of notice %s's hash printed %q", b, got)
	}
	t.Logf("done in %v", time.Since(t0))
}
