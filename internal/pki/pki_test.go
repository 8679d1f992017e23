package pki

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concord/internal/identity"

	"golang.org/x/mod/sumdb/note"
)

func mustInit(t *testing.T, opts Options) *Report {
	t.Helper()
	r, err := Init(opts)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return r
}

func created(r *Report) []string {
	var out []string
	for _, f := range r.Files {
		if f.Created {
			out = append(out, f.Path)
		}
	}
	return out
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := loadCert(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInitCreatesAVerifiablePKI(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir}
	r := mustInit(t, Options{Dir: dir, PartnerIDs: []string{"fr-pharos", "hub-ops"}, ServerHosts: []string{"concord.internal"}})
	want := []string{l.CAKey(), l.CACert(), l.ServerKey(), l.ServerCert(), l.LogKey(), l.LogPub()}
	for _, id := range []string{"fr-pharos", "hub-ops"} {
		want = append(want, l.PartnerKey(id), l.PartnerCert(id), l.SigningKey(id), l.SigningPub(id), l.WitnessKey(id), l.WitnessPub(id))
	}
	if got := created(r); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("created:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, key := range []string{l.CAKey(), l.ServerKey(), l.PartnerKey("fr-pharos"), l.SigningKey("fr-pharos"), l.LogKey()} {
		info, err := os.Stat(key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", key, info.Mode().Perm())
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, l.CACert()))

	server := readCert(t, l.ServerCert())
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "concord.internal"} {
		if err := server.VerifyHostname(name); err != nil {
			t.Errorf("server certificate: %v", err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("server certificate does not verify: %v", err)
	}
	if !server.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("server IPs = %v", server.IPAddresses)
	}

	client := readCert(t, l.PartnerCert("fr-pharos"))
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify: %v", err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("a client certificate verifies for server authentication")
	}
	id, err := identity.PartnerID(client, identity.DefaultTrustDomain)
	if err != nil || id != "fr-pharos" {
		t.Fatalf("client certificate names %q, %v", id, err)
	}
	if got := client.URIs[0].String(); got != "spiffe://concord.example/partner/fr-pharos" {
		t.Fatalf("URI SAN = %s", got)
	}

	priv, err := LoadSigningKey(l.SigningKey("fr-pharos"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadSigningPublicKey(l.SigningPub("fr-pharos"))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("signing.pub is not the public half of signing.key")
	}

	// The log key signs notes that log.pub verifies, under the trust domain's log origin.
	logKey, _, err := LoadLogKey(l.LogKey())
	if err != nil {
		t.Fatal(err)
	}
	logPub, err := LoadLogVerifier(l.LogPub())
	if err != nil {
		t.Fatal(err)
	}
	signed, err := note.Sign(&note.Note{Text: "concord.example/log\n1\nAAAA\n"}, logKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(signed, note.VerifierList(logPub)); err != nil || logPub.Name() != LogOrigin(identity.DefaultTrustDomain) {
		t.Fatalf("log.pub does not verify log.key's notes (%v), or is named %q", err, logPub.Name())
	}
	// A lost log.pub is derived again from log.key.
	if err := os.Remove(l.LogPub()); err != nil {
		t.Fatal(err)
	}
	mustInit(t, Options{Dir: dir, PartnerIDs: []string{"fr-pharos", "hub-ops"}})
	again, err := LoadLogVerifier(l.LogPub())
	if err != nil || again.KeyHash() != logPub.KeyHash() {
		t.Fatalf("log.pub rewritten: %v, %v", again, err)
	}
}

func TestInitNeverOverwritesAKey(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir}
	mustInit(t, Options{Dir: dir, PartnerIDs: []string{"fr-pharos"}})
	before := map[string][]byte{}
	for _, f := range []string{l.CAKey(), l.CACert(), l.ServerKey(), l.ServerCert(), l.PartnerKey("fr-pharos"), l.PartnerCert("fr-pharos"), l.SigningKey("fr-pharos")} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		before[f] = b
	}
	// Again: nothing changes.
	if got := created(mustInit(t, Options{Dir: dir, PartnerIDs: []string{"fr-pharos"}})); len(got) != 0 {
		t.Fatalf("second Init created %v", got)
	}
	// A new partner: only its files are created, signed by the same CA.
	got := created(mustInit(t, Options{Dir: dir, PartnerIDs: []string{"fr-pharos", "de-bka"}}))
	if len(got) != 6 || filepath.Dir(got[0]) != l.PartnerDir("de-bka") {
		t.Fatalf("adding de-bka created %v", got)
	}
	// A lost certificate is issued again for the same key.
	if err := os.Remove(l.PartnerCert("fr-pharos")); err != nil {
		t.Fatal(err)
	}
	if got := created(mustInit(t, Options{Dir: dir, PartnerIDs: []string{"fr-pharos"}})); len(got) != 1 || got[0] != l.PartnerCert("fr-pharos") {
		t.Fatalf("after losing client.pem Init created %v", got)
	}
	for f, b := range before {
		now, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f != l.PartnerCert("fr-pharos") && !bytes.Equal(now, b) {
			t.Errorf("%s changed", f)
		}
	}
	key, err := loadPrivateKey(l.PartnerKey("fr-pharos"))
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(readCert(t, l.PartnerCert("fr-pharos")).PublicKey, key.(interface{ Public() crypto.PublicKey }).Public()) {
		t.Fatal("the re-issued certificate is not for the partner's existing key")
	}
	leftovers, _ := filepath.Glob(filepath.Join(l.PartnerDir("fr-pharos"), ".*tmp*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestInitRenewsACertificateAboutToExpireWithItsKey(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir}
	start := time.Now()
	mustInit(t, Options{Dir: dir, PartnerIDs: []string{"hub-ops"}, Now: func() time.Time { return start }})
	keyBefore, _ := os.ReadFile(l.PartnerKey("hub-ops"))
	oldCert := readCert(t, l.PartnerCert("hub-ops"))
	later := oldCert.NotAfter.Add(-24 * time.Hour)
	got := created(mustInit(t, Options{Dir: dir, PartnerIDs: []string{"hub-ops"}, Now: func() time.Time { return later }}))
	if strings.Join(got, ",") != l.ServerCert()+","+l.PartnerCert("hub-ops") {
		t.Fatalf("renewal created %v", got)
	}
	keyAfter, _ := os.ReadFile(l.PartnerKey("hub-ops"))
	if !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("renewal changed the key")
	}
	if newCert := readCert(t, l.PartnerCert("hub-ops")); !newCert.NotAfter.After(oldCert.NotAfter) {
		t.Fatalf("renewed certificate expires %s, before %s", newCert.NotAfter, oldCert.NotAfter)
	}
}

func TestInitRefusesBadPartnerID(t *testing.T) {
	if _, err := Init(Options{Dir: t.TempDir(), PartnerIDs: []string{"../evil"}}); err == nil || !strings.Contains(err.Error(), "partner id") {
		t.Fatalf("Init with partner ../evil = %v", err)
	}
}

// A trust domain that is not canonical would issue certificates no server accepts.
func TestInitRefusesANonCanonicalTrustDomain(t *testing.T) {
	for _, td := range []string{"Concord.example", "concord.example:443", "concord.example/x"} {
		if _, err := Init(Options{Dir: t.TempDir(), TrustDomain: td, PartnerIDs: []string{"hub-ops"}}); err == nil || !strings.Contains(err.Error(), "trust domain") {
			t.Errorf("Init in trust domain %q = %v", td, err)
		}
	}
}

func TestLoadSigningKeyRefusesAReadableKey(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir}
	mustInit(t, Options{Dir: dir, PartnerIDs: []string{"hub-ops"}})
	if err := os.Chmod(l.SigningKey("hub-ops"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadSigningKey(l.SigningKey("hub-ops"))
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("LoadSigningKey of a 0644 key = %v, want a refusal saying chmod 600", err)
	}
	if _, err := LoadSigningKey(l.PartnerKey("hub-ops")); err == nil || !strings.Contains(err.Error(), "Ed25519") {
		t.Fatalf("LoadSigningKey of a TLS key = %v, want a refusal naming Ed25519", err)
	}
}

func TestSigningPublicKeyPEMRoundTrip(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalSigningPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSigningPublicKeyPEM(b)
	if err != nil || !got.Equal(pub) {
		t.Fatalf("round trip = %x, %v", got, err)
	}
	if _, err := ParseSigningPublicKeyPEM([]byte("not pem")); err == nil {
		t.Fatal("parsed garbage")
	}
}

func TestInitIssuesNodeCertificates(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir}
	mustInit(t, Options{Dir: dir, NodeIDs: []string{"node-1", "node-2"}, PartnerIDs: []string{"hub-ops"}})
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, l.CACert()))
	for _, id := range []string{"node-1", "node-2"} {
		info, err := os.Stat(l.NodeKey(id))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", l.NodeKey(id), err, info)
		}
		cert := readCert(t, l.NodeCert(id))
		// A node both accepts raft connections and opens them.
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s does not verify for usage %v: %v", id, usage, err)
			}
		}
		got, err := identity.NodeID(cert, identity.DefaultTrustDomain)
		if err != nil || got != id {
			t.Fatalf("node certificate names %q, %v; want %s", got, err, id)
		}
		if _, err := identity.PartnerID(cert, identity.DefaultTrustDomain); err == nil {
			t.Fatalf("node certificate %s names a partner", id)
		}
	}
	if _, err := Init(Options{Dir: dir, NodeIDs: []string{"Node_1"}}); err == nil || !strings.Contains(err.Error(), "node id") {
		t.Fatalf("Init with a bad node id: %v", err)
	}
}
