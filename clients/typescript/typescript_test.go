// Package typescript_test runs the generated TypeScript client against a real Concord node.
package typescript_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"concord/internal/agreement"
	"concord/internal/identity"
	"concord/internal/pki"
	"concord/internal/registryfile"
	"concord/server/servertest"
)

// build installs the locked npm packages if they are missing and compiles the client.
func build(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm is not on PATH: the TypeScript client needs node 20 or later")
	}
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "npm", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("npm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if _, err := os.Stat("node_modules/.package-lock.json"); err != nil {
		run("ci", "--no-audit", "--no-fund")
	}
	run("run", "build")
}

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
