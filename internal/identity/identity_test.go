package identity_test

import (
	"crypto/x509"
	"fmt"
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

// nonCanonical are URI SAN sets that must name nobody. KIND and ID stand for a kind's path
// segment and an id of that kind; PCT is that id with its first three characters %-escaped.
var nonCanonical = []struct {
	name    string
	uris    []string
	wantErr string
}{
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

func TestNonCanonicalIdentitiesAreRefused(t *testing.T) {
	t.Parallel()
	for _, kind := range []struct {
		kind identity.Kind
		id   string
		get  func(*x509.Certificate, string) (string, error)
	}{{identity.KindPartner, "hub-ops", identity.PartnerID}, {identity.KindNode, "node-1", identity.NodeID}} {
		for _, tt := range nonCanonical {
			t.Run(string(kind.kind)+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				sans := []identitytest.SAN{identitytest.DNS("concord.example")}
				for _, u := range spell(tt.uris, string(kind.kind), kind.id) {
					sans = append(sans, identitytest.URI(u))
				}
				cert := identitytest.Certificate(t, sans...)
				if got, err := identity.FromCertificate(cert, identity.DefaultTrustDomain); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromCertificate = %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				if got, err := kind.get(cert, identity.DefaultTrustDomain); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("%sID = %q, %v; want an error containing %q", kind.kind, got, err, tt.wantErr)
				}
			})
		}
	}
}

// spell fills the placeholders of nonCanonical's URIs for an id of kind.
func spell(uris []string, kind, id string) []string {
	var pct string
	for _, c := range []byte(id[:3]) {
		pct += fmt.Sprintf("%%%02x", c)
	}
	r := strings.NewReplacer("UPPERKIND", strings.ToUpper(kind), "KIND", kind, "PCT", pct+id[3:], "ID", id)
	out := make([]string, len(uris))
	for i, u := range uris {
		out[i] = r.Replace(u)
	}
	return out
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
