// Package identitytest builds certificates for tests of identity checks. Their subjectAltName
// extension is written byte for byte, so a test can present URI SANs that crypto/x509 cannot
// encode from a url.URL (an upper-case scheme, %-escapes, an empty query or fragment): the forms a
// careless or hostile CA request could carry.
package identitytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// SAN is one GeneralName of a subjectAltName extension.
type SAN struct {
	tag   cbasn1.Tag
	value string
}

// URI is a uniformResourceIdentifier SAN holding s exactly.
func URI(s string) SAN { return SAN{cbasn1.Tag(6).ContextSpecific(), s} }

// DNS is a dNSName SAN holding s exactly.
func DNS(s string) SAN { return SAN{cbasn1.Tag(2).ContextSpecific(), s} }

// Extension is a subjectAltName extension holding sans in order.
func Extension(t testing.TB, sans ...SAN) pkix.Extension {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, s := range sans {
			b.AddASN1(s.tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(s.value)) })
		}
	})
	der, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: der}
}

// template is a leaf for client and server authentication carrying sans (no SAN extension at
// all when sans is empty).
func template(t testing.TB, sans []SAN) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "identity test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	if len(sans) > 0 {
		tmpl.ExtraExtensions = []pkix.Extension{Extension(t, sans...)}
	}
	return tmpl
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// Certificate is a self-signed leaf carrying sans, parsed as a TLS peer's certificate is.
func Certificate(t testing.TB, sans ...SAN) *x509.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, sans)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse a certificate with SANs %v: %v", sans, err)
	}
	return cert
}

// Issue is a leaf carrying sans, with its key, signed by the CA whose PEM certificate and
// PKCS#8 PEM key are in the files caCert and caKey (a development PKI's ca.pem and ca.key).
func Issue(t testing.TB, caCert, caKey string, sans ...SAN) tls.Certificate {
	t.Helper()
	ca, err := tls.LoadX509KeyPair(caCert, caKey)
	if err != nil {
		t.Fatalf("load the CA: %v", err)
	}
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, template(t, sans), ca.Leaf, key.Public(), ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		t.Fatalf("parse a certificate with SANs %v: %v", sans, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Form is a set of URI SANs that must name nobody. In URIs, KIND and ID stand for a kind's path
// segment and an id of that kind, UPPERKIND for the kind in upper case, PCT for the id with its
// first three characters %-escaped.
type Form struct {
	Name string
	URIs []string
	// Refusal is part of the message that refuses the form.
	Refusal string
}

// SANs spells the form for an id of kind, after a DNS SAN, which must not count either way.
func (f Form) SANs(kind, id string) []SAN {
	var pct strings.Builder
	for _, c := range []byte(id[:3]) {
		fmt.Fprintf(&pct, "%%%02x", c)
	}
	r := strings.NewReplacer("UPPERKIND", strings.ToUpper(kind), "KIND", kind, "PCT", pct.String()+id[3:], "ID", id)
	sans := []SAN{DNS("concord.example")}
	for _, u := range f.URIs {
		sans = append(sans, URI(r.Replace(u)))
	}
	return sans
}

// NonCanonical are the forms of a partner or node URI that crypto/x509 or a lax parser would
// read as the identity, and the other ways to break the one-canonical-URI rule.
var NonCanonical = []Form{
	{"percent-encoded id", []string{"spiffe://concord.example/KIND/PCT"}, "percent-encoded"},
	{"empty query", []string{"spiffe://concord.example/KIND/ID?"}, "query or a fragment"},
	{"empty fragment", []string{"spiffe://concord.example/KIND/ID#"}, "query or a fragment"},
	{"query", []string{"spiffe://concord.example/KIND/ID?x=1"}, "query or a fragment"},
	{"upper-case scheme", []string{"SPIFFE://concord.example/KIND/ID"}, "scheme in upper case"},
	{"mixed-case scheme", []string{"Spiffe://concord.example/KIND/ID"}, "scheme in upper case"},
	{"an https URI SAN after the spiffe one", []string{"spiffe://concord.example/KIND/ID", "https://concord.example/"}, "2 URI SANs"},
	{"an https URI SAN before the spiffe one", []string{"https://concord.example/", "spiffe://concord.example/KIND/ID"}, "2 URI SANs"},
	{"two spiffe URI SANs", []string{"spiffe://concord.example/KIND/ID", "spiffe://concord.example/KIND/ab"}, "2 URI SANs"},
	{"the same spiffe URI SAN twice", []string{"spiffe://concord.example/KIND/ID", "spiffe://concord.example/KIND/ID"}, "2 URI SANs"},
	{"other trust domain", []string{"spiffe://evil.example/KIND/ID"}, `trust domain "evil.example"`},
	{"trust domain with a suffix", []string{"spiffe://concord.example.evil/KIND/ID"}, `trust domain "concord.example.evil"`},
	{"upper-case trust domain", []string{"spiffe://Concord.Example/KIND/ID"}, "trust domain in upper case"},
	{"trailing slash", []string{"spiffe://concord.example/KIND/ID/"}, "ends with a slash"},
	{"nested path", []string{"spiffe://concord.example/KIND/ID/x"}, "2 path segments"},
	{"dot-dot segment", []string{"spiffe://concord.example/KIND/../KIND/ID"}, "dot segment"},
	{"dot segment", []string{"spiffe://concord.example/KIND/./ID"}, "dot segment"},
	{"empty segment first", []string{"spiffe://concord.example//KIND/ID"}, "does not name"},
	{"user info", []string{"spiffe://ID@concord.example/KIND/ID"}, "user info"},
	{"port", []string{"spiffe://concord.example:8443/KIND/ID"}, "port"},
	{"empty id", []string{"spiffe://concord.example/KIND/"}, `id ""`},
	{"upper-case id", []string{"spiffe://concord.example/KIND/UPPER"}, `id "UPPER"`},
	{"upper-case kind", []string{"spiffe://concord.example/UPPERKIND/ID"}, "does not name"},
	{"other path", []string{"spiffe://concord.example/workload/ID"}, "does not name"},
	{"no path", []string{"spiffe://concord.example"}, "does not name"},
	{"opaque URI", []string{"spiffe:concord.example/KIND/ID"}, "not a SPIFFE ID"},
	{"https URI alone", []string{"https://concord.example/KIND/ID"}, "not a SPIFFE ID"},
	{"a DNS SAN only", nil, "no URI SAN"},
}
