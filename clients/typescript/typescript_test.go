// Package typescript_test runs the TypeScript SDK, its browser bundle and its examples against
// real Concord nodes.
package typescript_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/hashing/pdq"
	"concord/internal/agreement"
	"concord/internal/identity"
	"concord/internal/pki"
	"concord/internal/registryfile"
	"concord/server/servertest"
	"concord/translog"

	"golang.org/x/mod/sumdb/note"
)

// build installs the locked npm packages if they are missing or older than the lockfile (as
// make ts-deps does), compiles the SDK and bundles it for browsers, once for all the tests.
func build(t *testing.T) {
	t.Helper()
	if err := buildOnce(); err != nil {
		t.Fatal(err)
	}
}

var buildOnce = sync.OnceValue(func() error {
	if _, err := exec.LookPath("npm"); err != nil {
		return errors.New("npm is not on PATH: the TypeScript client needs node 20 or later")
	}
	run := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "npm", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("npm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	installed, err := os.Stat("node_modules/.package-lock.json")
	lock, lerr := os.Stat("package-lock.json")
	if err != nil || lerr != nil || installed.ModTime().Before(lock.ModTime()) {
		if err := run("ci", "--no-audit", "--no-fund"); err != nil {
			return err
		}
	}
	return run("run", "build")
})

type whoami struct {
	PartnerID string   `json:"partnerId"`
	Roles     []string `json:"roles"`
	Partners  []string `json:"partners"`
}

func runWhoAmI(t *testing.T, addr, ca, cert, key string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "dist/whoami.js")
	cmd.Env = append(os.Environ(), "CONCORD_GRPC_ADDR="+addr, "CONCORD_CA="+ca, "CONCORD_CERT="+cert, "CONCORD_KEY="+key)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func TestTypeScriptClientWhoAmI(t *testing.T) {
	build(t)
	n := servertest.Start(t, servertest.Options{})

	t.Run("partner certificate", func(t *testing.T) {
		stdout, stderr, err := runWhoAmI(t, n.GRPCAddr(), n.PKI.CACert(), n.PKI.PartnerCert("fr-pharos"), n.PKI.PartnerKey("fr-pharos"))
		if err != nil {
			t.Fatalf("node dist/whoami.js: %v\n%s", err, stderr)
		}
		var got whoami
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, stdout)
		}
		if got.PartnerID != "fr-pharos" || !slices.Equal(got.Roles, []string{"ROLE_AUTHORITY"}) {
			t.Fatalf("whoami = %+v, want fr-pharos with ROLE_AUTHORITY", got)
		}
		want := registryfile.ExamplePartnerIDs()
		slices.Sort(want)
		have := slices.Sorted(slices.Values(got.Partners))
		if !slices.Equal(have, want) {
			t.Fatalf("partners = %v, want %v", have, want)
		}
	})

	t.Run("certificate from another CA", func(t *testing.T) {
		foreign := pki.Layout{Dir: t.TempDir()}
		if _, err := pki.Init(pki.Options{Dir: foreign.Dir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: []string{"fr-pharos"}}); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, err := runWhoAmI(t, n.GRPCAddr(), n.PKI.CACert(), foreign.PartnerCert("fr-pharos"), foreign.PartnerKey("fr-pharos"))
		if err == nil {
			t.Fatalf("whoami with a foreign certificate succeeded: %s", stdout)
		}
		// The server's TLS alert, as node's OpenSSL reports it: refused at the handshake.
		if !strings.Contains(stderr, "concord whoami: ") || !strings.Contains(stderr, "alert unknown ca") || strings.Contains(stdout, "fr-pharos") {
			t.Fatalf("whoami with a foreign certificate: stdout %q, stderr %q", stdout, stderr)
		}
	})

	t.Run("missing setting", func(t *testing.T) {
		_, stderr, err := runWhoAmI(t, "", n.PKI.CACert(), n.PKI.PartnerCert("fr-pharos"), n.PKI.PartnerKey("fr-pharos"))
		if err == nil || !strings.Contains(stderr, "set CONCORD_GRPC_ADDR") {
			t.Fatalf("whoami without an address: %v, stderr %q", err, stderr)
		}
	})
}

// TestCrossLanguageAgreement: the same notice signed with the same key in Go and in TypeScript
// gives byte-identical envelopes, and each side verifies the other's signature.
func TestCrossLanguageAgreement(t *testing.T) {
	build(t)
	dir := t.TempDir()
	layout := pki.Layout{Dir: filepath.Join(dir, "certs")}
	if _, err := pki.Init(pki.Options{Dir: layout.Dir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: []string{"fr-pharos"}}); err != nil {
		t.Fatal(err)
	}
	out, err := agreement.Check(layout.SigningKey("fr-pharos"), dir, func(args ...string) ([]byte, error) {
		return exec.Command("node", append([]string{"dist/agree.js"}, args...)...).CombinedOutput()
	})
	if err != nil {
		t.Fatalf("TypeScript: %v", err)
	}
	t.Logf("%s", out)
}

// TestTypeScriptSDKScenario runs src/test/scenario.ts, the SDK's authority-and-platform scenario,
// against a live node: submit, endorse, object, the feed across a restart of the node (nothing
// lost or repeated), a near-duplicate and a rotated copy matched, typed errors (a certificate of
// another CA refused at once, not retried), an action report, compliance and a withdrawal,
// every receipt verified and tampered ones refused. The script prints
// "restart" when the node should restart; the test restarts it and answers "restarted".
func TestTypeScriptSDKScenario(t *testing.T) {
	build(t)
	c := servertest.StartCluster(t, 1, servertest.Options{})
	n := c.Nodes[0]
	var h pdq.Hash
	if _, err := rand.Read(h[:]); err != nil {
		t.Fatal(err)
	}
	// The picture rotated by 90° anticlockwise (the reference's rot90), re-encoded: two bits off.
	rotated := pdq.Transformed(h, pdq.Rotate90)
	rotated[3] ^= 0x11
	foreign := pki.Layout{Dir: t.TempDir()}
	if _, err := pki.Init(pki.Options{Dir: foreign.Dir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: []string{"fr-pharos"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "dist/test/scenario.js")
	cmd.Env = append(os.Environ(), "CONCORD_ADDR="+n.GRPCAddr(), "CONCORD_PKI="+c.PKI.Dir, "CONCORD_FOREIGN_PKI="+foreign.Dir,
		"CONCORD_PDQ="+h.String(), "CONCORD_PDQ_ROTATED="+rotated.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	passed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		switch line := sc.Text(); line {
		case "restart":
			t.Logf("%v: restarting the node", time.Since(t0).Round(time.Millisecond))
			c.Stop(t, 0)
			c.Restart(t, 0)
			t.Logf("%v: restarted", time.Since(t0).Round(time.Millisecond))
			if _, err := io.WriteString(stdin, "restarted\n"); err != nil {
				t.Fatal(err)
			}
		case "ok":
			passed = true
		default:
			t.Logf("%v: %s", time.Since(t0).Round(time.Millisecond), line)
		}
	}
	if err := cmd.Wait(); err != nil || !passed {
		t.Fatalf("node dist/test/scenario.js: %v\n%s", err, stderr.String())
	}
}

// TestTypeScriptWatchGivesUpASilentStream: a feed whose connection goes silent without closing
// (a node gone from the network) is given up after two heartbeats and resumed on a new
// connection, after its cursor: the notice submitted meanwhile arrives, nothing twice.
func TestTypeScriptWatchGivesUpASilentStream(t *testing.T) {
	build(t)
	n := servertest.Start(t, servertest.Options{})
	proxy := startFreezingProxy(t, n.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "dist/test/watch.js", "2")
	cmd.Env = append(os.Environ(), "CONCORD_ADDR="+proxy.Addr(), "CONCORD_PKI="+n.PKI.Dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
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
	next := func(what string) string {
		t.Helper()
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the watch ended before %s\n%s", what, stderr.String())
			}
			return line
		case <-ctx.Done():
			t.Fatalf("the watch printed nothing for %s\n%s", what, stderr.String())
		}
		return ""
	}
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
	t0 := time.Now()
	a := submit("a")
	if line := next("notice " + a); !strings.HasPrefix(line, a+" ") {
		t.Fatalf("the watch printed %q, want notice %s", line, a)
	}
	t.Logf("%v: first event; freezing %d connection(s)", time.Since(t0).Round(time.Millisecond), proxy.Freeze())
	b := submit("b")
	line := next("its resumption")
	if !strings.HasPrefix(line, "resume: the stream was silent for 3 s") {
		t.Fatalf("the watch printed %q, want it to give the silent stream up", line)
	}
	t.Logf("%v: %s", time.Since(t0).Round(time.Millisecond), line)
	if line := next("notice " + b); !strings.HasPrefix(line, b+" ") {
		t.Fatalf("the watch printed %q, want notice %s (and nothing twice)", line, b)
	}
	t.Logf("%v: second event", time.Since(t0).Round(time.Millisecond))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node dist/test/watch.js: %v\n%s", err, stderr.String())
	}
}

// TestTypeScriptREADMEExample runs the example of README.md (the js block after the line
// "<!-- typescript_test.go runs this example -->") against a live node, as a user who saved it
// in this folder would.
func TestTypeScriptREADMEExample(t *testing.T) {
	build(t)
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "<!-- typescript_test.go runs this example -->\n```js\n")
	example, _, closed := strings.Cut(after, "\n```\n")
	if !ok || !closed {
		t.Fatal("README.md has no example marked for typescript_test.go")
	}
	// Inside the package, so that it imports the SDK by its name, as the README's does.
	file := filepath.Join("dist", "readme-example.mjs")
	if err := os.WriteFile(file, []byte(example+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", file)
	cmd.Env = append(os.Environ(), "CONCORD_ADDR="+n.GRPCAddr(), "CONCORD_PKI="+n.PKI.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's example: %v\n%s", err, out)
	}
	for _, want := range []string{"checkpoint of 2 entries verified", "at distance 1, act in BE, FR", "feed: NEW"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the README's example printed no %q:\n%s", want, out)
		}
	}
	t.Logf("%s", out)
}

// TestTypeScriptBrowserBundle loads the browser bundle (dist/concord.browser.js) in node and runs
// it against a live node's HTTPS port over the Connect protocol (src/test/browser.ts): a fetch
// that presents the partner's certificate stands in for the browser's.
func TestTypeScriptBrowserBundle(t *testing.T) {
	build(t)
	n := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "dist/test/browser.js")
	cmd.Env = append(os.Environ(), "CONCORD_HTTPS_ADDR="+n.HTTPAddr(), "CONCORD_PKI="+n.PKI.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "ok\n") {
		t.Fatalf("node dist/test/browser.js: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestTypeScriptLogVerifier checks the SDK's log verification (src/tlog.ts) against the server's
// own tree and Go's signed notes (src/test/tlog-vectors.ts): every inclusion and consistency
// proof of a tree of up to 33 entries verifies and altered ones are refused, and each
// checkpoint note is accepted or refused as Go's note.Open decides.
func TestTypeScriptLogVerifier(t *testing.T) {
	build(t)
	const origin, maxSize = "concord.test/log", 33
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	// Another key of the same name, and a witness's key of another name.
	otherKey, _, _ := note.GenerateKey(rand.Reader, origin)
	other, _ := note.NewSigner(otherKey)
	witnessKey, _, _ := note.GenerateKey(rand.Reader, "witness.test")
	witness, _ := note.NewSigner(witnessKey)

	type inclusion struct {
		Index int64    `json:"index"`
		Size  int64    `json:"size"`
		Proof [][]byte `json:"proof"`
	}
	type consistency struct {
		Old   int64    `json:"old"`
		New   int64    `json:"new"`
		Proof [][]byte `json:"proof"`
	}
	type signedNote struct {
		Why   string `json:"why"`
		Note  string `json:"note"`
		Valid bool   `json:"valid"`
		Size  int64  `json:"size"`
	}
	var v struct {
		VKey        string        `json:"vkey"`
		Entries     [][]byte      `json:"entries"`
		Roots       [][]byte      `json:"roots"`
		Inclusion   []inclusion   `json:"inclusion"`
		Consistency []consistency `json:"consistency"`
		Notes       []signedNote  `json:"notes"`
	}
	v.VKey = vkey
	tree := translog.NewTree()
	for i := range maxSize {
		entry := []byte(fmt.Sprintf("entry %d of the test log", i))
		if _, err := tree.Append(entry); err != nil {
			t.Fatal(err)
		}
		v.Entries = append(v.Entries, entry)
	}
	for n := int64(1); n <= maxSize; n++ {
		root, err := tree.Root(n)
		if err != nil {
			t.Fatal(err)
		}
		v.Roots = append(v.Roots, root[:])
		for i := range n {
			p, err := tree.InclusionProof(i, n)
			if err != nil {
				t.Fatal(err)
			}
			v.Inclusion = append(v.Inclusion, inclusion{Index: i, Size: n, Proof: translog.HashesToBytes(p)})
		}
		for m := int64(1); m <= n; m++ {
			p, err := tree.ConsistencyProof(m, n)
			if err != nil {
				t.Fatal(err)
			}
			v.Consistency = append(v.Consistency, consistency{Old: m, New: n, Proof: translog.HashesToBytes(p)})
		}
	}

	root, _ := tree.Root(maxSize)
	cp := translog.Checkpoint{Origin: origin, Size: maxSize, Root: root}
	sign := func(text string, signers ...note.Signer) string {
		b, err := note.Sign(&note.Note{Text: text}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	good := sign(cp.Text(), signer)
	alteredSig := []byte(good)
	alteredSig[len(alteredSig)-3] ^= 1 // a base64 digit of the signature
	notes := []struct{ why, note string }{
		{"signed by the log key", good},
		{"cosigned by a witness", sign(cp.Text(), signer, witness)},
		{"with an extension line", sign(cp.Text()+"extension\n", signer)},
		{"with another size", strings.Replace(good, fmt.Sprintf("\n%d\n", maxSize), fmt.Sprintf("\n%d\n", maxSize-1), 1)},
		{"with an altered signature", string(alteredSig)},
		{"signed by another key of the log's name", sign(cp.Text(), other)},
		{"signed by a witness only", sign(cp.Text(), witness)},
		{"of another log", sign(translog.Checkpoint{Origin: "other.test/log", Size: maxSize, Root: root}.Text(), signer)},
		{"with a root hash in non-canonical base64", sign(fmt.Sprintf("%s\n%d\n%s\n", origin, maxSize, nonCanonical(root[:])), signer)},
		{"with a size of leading zeros", sign(strings.Replace(cp.Text(), fmt.Sprintf("\n%d\n", maxSize), fmt.Sprintf("\n0%d\n", maxSize), 1), signer)},
		{"without signatures", cp.Text()},
		{"with a line after the signatures that is not one", good + "not a signature\n"},
		{"without its last newline", strings.TrimSuffix(good, "\n")},
		{"with a signature line that is not base64", good + "\u2014 witness.test !!!\n"},
	}
	for _, n := range notes {
		// Go's verdict: the note opens with the log key, and its text is a checkpoint of that log.
		valid := false
		if opened, err := note.Open([]byte(n.note), note.VerifierList(verifier)); err == nil {
			parsed, err := translog.ParseCheckpoint(opened.Text)
			valid = err == nil && parsed.Origin == origin
		}
		v.Notes = append(v.Notes, signedNote{Why: n.why, Note: n.note, Valid: valid, Size: maxSize})
	}
	file := filepath.Join(t.TempDir(), "vectors.json")
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("node", "dist/test/tlog-vectors.js", file).CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "ok\n") {
		t.Fatalf("node dist/test/tlog-vectors.js: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	for _, want := range []string{"signed by the log key: valid", "cosigned by a witness: valid", "with another size: refused"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the verifier's output lacks %q", want)
		}
	}
}

// nonCanonical is b in base64 with the unused low bits of its last digit set, which a lenient
// decoder reads as b.
func nonCanonical(b []byte) string {
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	enc := []byte(base64.StdEncoding.EncodeToString(b))
	last := len(strings.TrimRight(string(enc), "=")) - 1
	enc[last] = digits[strings.IndexByte(digits, enc[last])|1]
	return string(enc)
}
