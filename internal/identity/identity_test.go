package identity

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
)

func TestPartnerID(t *testing.T) {
	uri := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name    string
		uris    []*url.URL
		want    string
		wantErr string
	}{
		{"partner", []*url.URL{uri("spiffe://concord.example/partner/fr-pharos")}, "fr-pharos", ""},
		{"partner beside a non-spiffe URI", []*url.URL{uri("https://pharos.example"), uri("spiffe://concord.example/partner/de-bka")}, "de-bka", ""},
		{"no URI", nil, "", "no spiffe URI"},
		{"two URIs", []*url.URL{uri("spiffe://concord.example/partner/a1"), uri("spiffe://concord.example/partner/b2")}, "", "exactly one"},
		{"other trust domain", []*url.URL{uri("spiffe://evil.example/partner/fr-pharos")}, "", "trust domain"},
		{"not a partner path", []*url.URL{uri("spiffe://concord.example/workload/fr-pharos")}, "", "does not name a partner"},
		{"nested path", []*url.URL{uri("spiffe://concord.example/partner/fr-pharos/x")}, "", "lower-case"},
		{"upper case", []*url.URL{uri("spiffe://concord.example/partner/FR")}, "", "lower-case"},
		{"query", []*url.URL{uri("spiffe://concord.example/partner/fr-pharos?x=1")}, "", "extra parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PartnerID(&x509.Certificate{URIs: tt.uris}, DefaultTrustDomain)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("PartnerID = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("PartnerID = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestPartnerURIRoundTrip(t *testing.T) {
	u := PartnerURI(DefaultTrustDomain, "hub-ops")
	if u.String() != "spiffe://concord.example/partner/hub-ops" {
		t.Fatalf("PartnerURI = %s", u)
	}
	id, err := PartnerID(&x509.Certificate{URIs: []*url.URL{u}}, DefaultTrustDomain)
	if err != nil || id != "hub-ops" {
		t.Fatalf("PartnerID(PartnerURI) = %q, %v", id, err)
	}
}

func TestValidPartnerID(t *testing.T) {
	for _, ok := range []string{"ab", "fr-pharos", "a1", strings.Repeat("a", 63)} {
		if err := ValidPartnerID(ok); err != nil {
			t.Errorf("ValidPartnerID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "-ab", "ab-", "a_b", "Ab", strings.Repeat("a", 64), "a/b"} {
		if ValidPartnerID(bad) == nil {
			t.Errorf("ValidPartnerID(%q) = nil, want an error", bad)
		}
	}
}

func TestNodeID(t *testing.T) {
	uri := func(s string) []*url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return []*url.URL{u}
	}
	tests := []struct {
		name    string
		uris    []*url.URL
		want    string
		wantErr string
	}{
		{"node", uri("spiffe://concord.example/node/node-1"), "node-1", ""},
		{"a partner is not a node", uri("spiffe://concord.example/partner/fr-pharos"), "", "does not name a cluster node"},
		{"other trust domain", uri("spiffe://evil.example/node/node-1"), "", "trust domain"},
		{"nested path", uri("spiffe://concord.example/node/node-1/x"), "", "lower-case"},
		{"no URI", nil, "", "no spiffe URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NodeID(&x509.Certificate{URIs: tt.uris}, DefaultTrustDomain)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NodeID = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NodeID = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// A node certificate never names a partner.
	if _, err := PartnerID(&x509.Certificate{URIs: []*url.URL{NodeURI(DefaultTrustDomain, "node-1")}}, DefaultTrustDomain); err == nil {
		t.Fatal("PartnerID accepted a node URI")
	}
}
