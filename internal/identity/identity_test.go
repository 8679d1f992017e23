package identity_test

import (
	"crypto/x509"
	"strings"
	"testing"

	"concord/internal/identity"
	"concord/internal/identity/identitytest"
)

// uri is a certificate whose only SAN is the URI s, written byte for byte.
func uri(t *testing.T, s string) *x509.Certificate {
	return identitytest.Certificate(t, identitytest.URI(s))
}

func TestCanonicalIdentitiesAreAccepted(t *testing.T) {
	t.Parallel()
	const td = identity.DefaultTrustDomain
	tests := []struct {
		name string
		cert *x509.Certificate
		want identity.Identity
	}{
		{"partner", uri(t, "spiffe://concord.example/partner/hub-ops"), identity.Identity{Kind: identity.KindPartner, ID: "hub-ops"}},
		{"node", uri(t, "spiffe://concord.example/node/node-1"), identity.Identity{Kind: identity.KindNode, ID: "node-1"}},
		{"partner id of 63 characters", uri(t, "spiffe://concord.example/partner/"+strings.Repeat("a", 63)), identity.Identity{Kind: identity.KindPartner, ID: strings.Repeat("a", 63)}},
		// Only URI SANs count: SPIFFE lets an identity document carry other SAN types beside its one URI.
		{"partner beside a DNS SAN", identitytest.Certificate(t, identitytest.DNS("pharos.example"), identitytest.URI("spiffe://concord.example/partner/fr-pharos")),
			identity.Identity{Kind: identity.KindPartner, ID: "fr-pharos"}},
		{"PartnerURI as crypto/x509 writes it", certFromTemplate(t, identity.PartnerURI(td, "de-bka").String()), identity.Identity{Kind: identity.KindPartner, ID: "de-bka"}},
		{"NodeURI as crypto/x509 writes it", certFromTemplate(t, identity.NodeURI(td, "node-2").String()), identity.Identity{Kind: identity.KindNode, ID: "node-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := identity.FromCertificate(tt.cert, td)
			if err != nil || got != tt.want {
				t.Fatalf("FromCertificate = %+v, %v; want %+v", got, err, tt.want)
			}
			partner, perr := identity.PartnerID(tt.cert, td)
			node, nerr := identity.NodeID(tt.cert, td)
			if tt.want.Kind == identity.KindPartner && (perr != nil || partner != tt.want.ID || nerr == nil) {
				t.Fatalf("PartnerID = %q, %v; NodeID = %q, %v; want the partner %q and no node", partner, perr, node, nerr, tt.want.ID)
			}
			if tt.want.Kind == identity.KindNode && (nerr != nil || node != tt.want.ID || perr == nil) {
				t.Fatalf("NodeID = %q, %v; PartnerID = %q, %v; want the node %q and no partner", node, nerr, partner, perr, tt.want.ID)
			}
		})
	}
}

// certFromTemplate is a certificate whose URI SAN crypto/x509 encodes from the parsed URL, as
// the development PKI issues them.
func certFromTemplate(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	cert := identitytest.Certificate(t, identitytest.URI(s))
	if len(cert.URIs) != 1 || cert.URIs[0].String() != s {
		t.Fatalf("the certificate's URIs = %v, want %s", cert.URIs, s)
	}
	return cert
}

func TestNonCanonicalIdentitiesAreRefused(t *testing.T) {
	t.Parallel()
	for _, kind := range []struct {
		kind identity.Kind
		id   string
		get  func(*x509.Certificate, string) (string, error)
	}{{identity.KindPartner, "hub-ops", identity.PartnerID}, {identity.KindNode, "node-1", identity.NodeID}} {
		for _, form := range identitytest.NonCanonical {
			t.Run(string(kind.kind)+"/"+form.Name, func(t *testing.T) {
				t.Parallel()
				cert := identitytest.Certificate(t, form.SANs(string(kind.kind), kind.id)...)
				if got, err := identity.FromCertificate(cert, identity.DefaultTrustDomain); err == nil || !strings.Contains(err.Error(), form.Refusal) {
					t.Fatalf("FromCertificate = %+v, %v; want an error containing %q", got, err, form.Refusal)
				}
				if got, err := kind.get(cert, identity.DefaultTrustDomain); err == nil || !strings.Contains(err.Error(), form.Refusal) {
					t.Fatalf("%sID = %q, %v; want an error containing %q", kind.kind, got, err, form.Refusal)
				}
			})
		}
	}
}

// crypto/x509 shows these URIs in cert.URIs as if they were canonical: the reason the identity is
// read from the raw extension.
func TestURISANsAreReadAsWritten(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"SPIFFE://concord.example/partner/hub-ops",
		"spiffe://concord.example/partner/hub-ops#",
		"spiffe://concord.example/partner/%68%75%62-ops",
	} {
		cert := uri(t, raw)
		got, err := identity.URISANs(cert)
		if err != nil || len(got) != 1 || got[0] != raw {
			t.Errorf("URISANs = %q, %v; want [%q]", got, err, raw)
		}
		if u := cert.URIs[0]; u.Scheme != "spiffe" || u.Path != "/partner/hub-ops" {
			t.Errorf("crypto/x509 parsed %q as scheme %q, path %q", raw, u.Scheme, u.Path)
		}
	}
	if got, err := identity.URISANs(identitytest.Certificate(t)); err != nil || len(got) != 0 {
		t.Errorf("URISANs of a certificate without SANs = %q, %v", got, err)
	}
	if _, err := identity.URISANs(nil); err == nil {
		t.Error("URISANs(nil) succeeded")
	}
}

func TestAConfiguredTrustDomainMustBeCanonical(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"concord.example", "example", "a-b_c.d9", strings.Repeat("a", 255)} {
		if err := identity.ValidTrustDomain(ok); err != nil {
			t.Errorf("ValidTrustDomain(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Concord.example", "concord.example:443", "a/b", "a@b", "é.example", strings.Repeat("a", 256)} {
		if identity.ValidTrustDomain(bad) == nil {
			t.Errorf("ValidTrustDomain(%q) = nil, want an error", bad)
		}
	}
	// A certificate cannot match a trust domain that is not canonical, even byte for byte.
	if id, err := identity.PartnerID(uri(t, "spiffe://Concord.example/partner/hub-ops"), "Concord.example"); err == nil {
		t.Fatalf("PartnerID in trust domain Concord.example = %q", id)
	}
}

func TestErrorsSayWhatTheCertificateHasAndWhatIsWanted(t *testing.T) {
	t.Parallel()
	_, err := identity.PartnerID(uri(t, "SPIFFE://concord.example/partner/hub-ops"), identity.DefaultTrustDomain)
	want := `the certificate's URI SAN "SPIFFE://concord.example/partner/hub-ops" writes the scheme in upper case; want spiffe://concord.example/partner/<id>`
	if err == nil || err.Error() != want {
		t.Errorf("PartnerID: %v\nwant %s", err, want)
	}
	_, err = identity.FromCertificate(identitytest.Certificate(t, identitytest.URI("https://pharos.example"), identitytest.URI("spiffe://concord.example/partner/fr-pharos")), identity.DefaultTrustDomain)
	want = `the certificate has 2 URI SANs ("https://pharos.example", "spiffe://concord.example/partner/fr-pharos"); want exactly one, spiffe://concord.example/partner/<id> or spiffe://concord.example/node/<id>`
	if err == nil || err.Error() != want {
		t.Errorf("FromCertificate: %v\nwant %s", err, want)
	}
	_, err = identity.NodeID(uri(t, "spiffe://concord.example/partner/fr-pharos"), identity.DefaultTrustDomain)
	want = `the certificate's URI SAN "spiffe://concord.example/partner/fr-pharos" does not name a cluster node; want spiffe://concord.example/node/<id>`
	if err == nil || err.Error() != want {
		t.Errorf("NodeID: %v\nwant %s", err, want)
	}
}

func TestValidPartnerID(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"ab", "fr-pharos", "a1", strings.Repeat("a", 63)} {
		if err := identity.ValidPartnerID(ok); err != nil {
			t.Errorf("ValidPartnerID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "-ab", "ab-", "a_b", "Ab", strings.Repeat("a", 64), "a/b"} {
		if identity.ValidPartnerID(bad) == nil {
			t.Errorf("ValidPartnerID(%q) = nil, want an error", bad)
		}
		if identity.ValidNodeID(bad) == nil {
			t.Errorf("ValidNodeID(%q) = nil, want an error", bad)
		}
	}
}

// FromCertificate runs on every call of both API ports.
func BenchmarkFromCertificate(b *testing.B) {
	cert := identitytest.Certificate(b, identitytest.URI("spiffe://concord.example/partner/fr-pharos"))
	for b.Loop() {
		if _, err := identity.FromCertificate(cert, identity.DefaultTrustDomain); err != nil {
			b.Fatal(err)
		}
	}
}
