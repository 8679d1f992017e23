// Package identity names Concord partners and cluster nodes in certificates. A certificate
// carries exactly one URI SAN, spiffe://<trust-domain>/partner/<id> or
// spiffe://<trust-domain>/node/<id>, written in that canonical form and no other; the server
// takes the caller's identity from that URI and nothing else (not the subject, not a header).
package identity

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// DefaultTrustDomain is the trust domain of development and example certificates.
const DefaultTrustDomain = "concord.example"

// Kind is what a certificate names: a partner or a cluster node. Its value is the first segment
// of the URI's path.
type Kind string

const (
	// KindPartner names a partner of the partner API.
	KindPartner Kind = "partner"
	// KindNode names a cluster node: it talks raft and calls the cluster's internal service, and
	// grants nothing in the partner API.
	KindNode Kind = "node"
)

// Identity is who a certificate names.
type Identity struct {
	Kind Kind
	ID   string
}

const spiffeScheme = "spiffe://"

// idPattern matches the proto's Partner.id rule, which node ids follow too: 2–63 characters,
// lower-case letters, digits and inner hyphens (a DNS label).
var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

func validID(k Kind, id string) error {
	if len(id) < 2 || len(id) > 63 || !idPattern.MatchString(id) {
		return fmt.Errorf("%s id %q: want 2 to 63 lower-case letters, digits and inner hyphens", k, id)
	}
	return nil
}

// ValidPartnerID reports why id cannot name a partner, or nil if it can.
func ValidPartnerID(id string) error { return validID(KindPartner, id) }

// ValidNodeID reports why id cannot name a cluster node, or nil if it can. Node ids follow the
// partner id rule (a DNS label), so they read well in URIs, logs and raft configurations.
func ValidNodeID(id string) error { return validID(KindNode, id) }

// ValidTrustDomain reports why td cannot be a trust domain, or nil if it can: 1 to 255
// lower-case letters, digits, dots, hyphens and underscores, as SPIFFE IDs require.
func ValidTrustDomain(td string) error {
	if len(td) == 0 || len(td) > 255 {
		return fmt.Errorf("trust domain %q: want 1 to 255 characters", td)
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("trust domain %q: want lower-case letters, digits, dots, hyphens and underscores only", td)
		}
	}
	return nil
}

// URI is the canonical URI SAN that names id of kind k in trustDomain.
func URI(trustDomain string, k Kind, id string) string {
	return spiffeScheme + trustDomain + "/" + string(k) + "/" + id
}

// PartnerURI is the URI SAN that names partner id in trustDomain.
func PartnerURI(trustDomain, id string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/" + string(KindPartner) + "/" + id}
}

// NodeURI is the URI SAN that names cluster node id in trustDomain. A node certificate carries it
// instead of a partner URI.
func NodeURI(trustDomain, id string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/" + string(KindNode) + "/" + id}
}

// FromCertificate returns the partner or cluster node a certificate names in trustDomain.
func FromCertificate(cert *x509.Certificate, trustDomain string) (Identity, error) {
	return parse(cert, trustDomain, KindPartner, KindNode)
}

// PartnerID returns the partner a certificate names in trustDomain.
func PartnerID(cert *x509.Certificate, trustDomain string) (string, error) {
	who, err := parse(cert, trustDomain, KindPartner)
	return who.ID, err
}

// NodeID returns the cluster node a certificate names in trustDomain.
func NodeID(cert *x509.Certificate, trustDomain string) (string, error) {
	who, err := parse(cert, trustDomain, KindNode)
	return who.ID, err
}

// parse accepts a certificate whose only URI SAN, byte for byte, is the canonical URI of a valid
// id of one of kinds in trustDomain. Everything else is refused, with the first rule it breaks.
func parse(cert *x509.Certificate, trustDomain string, kinds ...Kind) (Identity, error) {
	if err := ValidTrustDomain(trustDomain); err != nil {
		return Identity{}, err
	}
	uris, err := URISANs(cert)
	if err != nil {
		return Identity{}, err
	}
	switch len(uris) {
	case 0:
		return Identity{}, fmt.Errorf("the certificate has no URI SAN; want exactly one, %s", want(trustDomain, kinds))
	case 1:
	default:
		return Identity{}, fmt.Errorf("the certificate has %d URI SANs (%s); want exactly one, %s", len(uris), quoteAll(uris), want(trustDomain, kinds))
	}
	raw := uris[0]
	for _, k := range kinds {
		id, ok := strings.CutPrefix(raw, URI(trustDomain, k, ""))
		if ok && validID(k, id) == nil {
			return Identity{Kind: k, ID: id}, nil
		}
	}
	return Identity{}, fmt.Errorf("the certificate's URI SAN %q %s; want %s", raw, whyNot(raw, trustDomain, kinds), want(trustDomain, kinds))
}

// whyNot says which rule of the canonical form raw breaks, in the order a reader checks a URI.
func whyNot(raw, trustDomain string, kinds []Kind) string {
	rest, ok := strings.CutPrefix(raw, spiffeScheme)
	if !ok {
		if len(raw) >= len(spiffeScheme) && strings.EqualFold(raw[:len(spiffeScheme)], spiffeScheme) {
			return "writes the scheme in upper case"
		}
		return "is not a SPIFFE ID"
	}
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	switch {
	case strings.Contains(authority, "@"):
		return "carries user info"
	case strings.Contains(authority, ":"):
		return "carries a port"
	case authority != trustDomain && strings.EqualFold(authority, trustDomain):
		return "writes the trust domain in upper case"
	case authority != trustDomain:
		return fmt.Sprintf("is in trust domain %q, not %q", authority, trustDomain)
	case strings.ContainsAny(path, "?#"):
		return "has a query or a fragment"
	case strings.Contains(path, "%"):
		return "has percent-encoded characters"
	}
	segments := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for _, s := range segments {
		if s == "." || s == ".." {
			return "has a dot segment"
		}
	}
	for _, k := range kinds {
		if segments[0] != string(k) {
			continue
		}
		switch {
		case len(segments) == 3 && segments[2] == "":
			return "ends with a slash"
		case len(segments) != 2:
			return fmt.Sprintf("has %d path segments after /%s/, not one", len(segments)-1, k)
		case validID(k, segments[1]) != nil:
			return fmt.Sprintf("has %s id %q, not 2 to 63 lower-case letters, digits and inner hyphens", k, segments[1])
		}
	}
	return "does not name " + nouns(kinds)
}

func nouns(kinds []Kind) string {
	var s []string
	for _, k := range kinds {
		if k == KindNode {
			s = append(s, "a cluster node")
		} else {
			s = append(s, "a "+string(k))
		}
	}
	return strings.Join(s, " or ")
}

func want(trustDomain string, kinds []Kind) string {
	var s []string
	for _, k := range kinds {
		s = append(s, URI(trustDomain, k, "<id>"))
	}
	return strings.Join(s, " or ")
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
