// Package typescript_test runs the TypeScript SDK, its browser bundle and its examples against
// real Concord nodes.
package typescript_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
