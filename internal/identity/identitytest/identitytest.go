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
	"encoding/pem"
	"math/big"
	"os"
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

// WritePEM writes cert and its key as PEM files at certPath and keyPath.
func WritePEM(t testing.TB, cert tls.Certificate, certPath, keyPath string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}
