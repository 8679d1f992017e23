// Package identity names Concord partners in certificates. A partner's mTLS client certificate
// carries exactly one URI SAN spiffe://<trust-domain>/partner/<id>; the server takes the caller's
// identity from that URI and nothing else (not the subject, not a header).
package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// DefaultTrustDomain is the trust domain of development and example certificates.
const DefaultTrustDomain = "concord.example"

const partnerPathPrefix = "/partner/"

// partnerIDPattern matches the proto's Partner.id rule: 2–63 characters, lower-case letters,
// digits and inner hyphens (a DNS label).
var partnerIDPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// ValidPartnerID reports why id cannot name a partner, or nil if it can.
func ValidPartnerID(id string) error {
	if len(id) < 2 || len(id) > 63 || !partnerIDPattern.MatchString(id) {
		return fmt.Errorf("partner id %q: want 2 to 63 lower-case letters, digits and inner hyphens", id)
	}
	return nil
}

// PartnerURI is the URI SAN that names partner id in trustDomain.
func PartnerURI(trustDomain, id string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: partnerPathPrefix + id}
}

// PartnerID returns the partner a certificate names in trustDomain. The certificate must carry
// exactly one spiffe URI SAN, in that trust domain, of the form /partner/<id>.
func PartnerID(cert *x509.Certificate, trustDomain string) (string, error) {
	u, err := spiffeURI(cert, trustDomain, partnerPathPrefix)
	if err != nil {
		return "", err
	}
	id, ok := strings.CutPrefix(u.Path, partnerPathPrefix)
	if !ok {
		return "", fmt.Errorf("the certificate's URI %s does not name a partner; want spiffe://%s%s<id>", u, trustDomain, partnerPathPrefix)
	}
	if err := ValidPartnerID(id); err != nil {
		return "", fmt.Errorf("the certificate's URI %s: %w", u, err)
	}
	return id, nil
}

const nodePathPrefix = "/node/"

// NodeURI is the URI SAN that names cluster node id in trustDomain. A node certificate carries it
// instead of a partner URI: it lets its holder talk raft and call the cluster's internal service,
// and grants nothing in the partner API.
func NodeURI(trustDomain, id string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: nodePathPrefix + id}
}

// ValidNodeID reports why id cannot name a cluster node, or nil if it can. Node ids follow the
// partner id rule (a DNS label), so they read well in URIs, logs and raft configurations.
func ValidNodeID(id string) error {
	if len(id) < 2 || len(id) > 63 || !partnerIDPattern.MatchString(id) {
		return fmt.Errorf("node id %q: want 2 to 63 lower-case letters, digits and inner hyphens", id)
	}
	return nil
}

// NodeID returns the cluster node a certificate names in trustDomain: exactly one spiffe URI SAN,
// in that trust domain, of the form /node/<id>.
func NodeID(cert *x509.Certificate, trustDomain string) (string, error) {
	u, err := spiffeURI(cert, trustDomain, nodePathPrefix)
	if err != nil {
		return "", err
	}
	id, ok := strings.CutPrefix(u.Path, nodePathPrefix)
	if !ok {
		return "", fmt.Errorf("the certificate's URI %s does not name a cluster node; want spiffe://%s%s<id>", u, trustDomain, nodePathPrefix)
	}
	if err := ValidNodeID(id); err != nil {
		return "", fmt.Errorf("the certificate's URI %s: %w", u, err)
	}
	return id, nil
}

// spiffeURI returns the certificate's only spiffe URI SAN, checked to be in trustDomain and free
// of extra parts; want is the path prefix named in error messages.
func spiffeURI(cert *x509.Certificate, trustDomain, want string) (*url.URL, error) {
	if cert == nil {
		return nil, errors.New("no certificate")
	}
	var spiffe []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			spiffe = append(spiffe, u)
		}
	}
	switch len(spiffe) {
	case 0:
		return nil, fmt.Errorf("the certificate has no spiffe URI SAN; want spiffe://%s%s<id>", trustDomain, want)
	case 1:
	default:
		return nil, fmt.Errorf("the certificate has %d spiffe URI SANs; want exactly one", len(spiffe))
	}
	u := spiffe[0]
	if u.Host != trustDomain {
		return nil, fmt.Errorf("the certificate's URI %s is in trust domain %q; want %q", u, u.Host, trustDomain)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return nil, fmt.Errorf("the certificate's URI %s has extra parts; want spiffe://%s%s<id>", u, trustDomain, want)
	}
	return u, nil
}
