// Package authz decides who may call what. The partner id comes from the mTLS client
// certificate; the roles allowed on each RPC come from the concord.v1.access method option in the
// .proto; the caller's roles come from the registry. Both transports call Authorize, so one piece
// of code enforces the policy everywhere.
package authz

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"sync"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/rpcmethod"
	"concord/server/fault"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Caller is the authenticated partner behind a request.
type Caller struct {
	PartnerID string
	// CertURI is the SPIFFE URI of the client certificate.
	CertURI string
	// Partner is the registry's record at the time of the call (read-only).
	Partner *concordv1.Partner
}

// HasRole reports whether the caller holds role.
func (c *Caller) HasRole(role concordv1.Role) bool {
	return c != nil && c.Partner != nil && slices.Contains(c.Partner.GetRoles(), role)
}

// Node is a cluster node calling another node's internal service, identified by its node
// certificate (spiffe://<trust-domain>/node/<id>).
type Node struct {
	ID string
}

type callerKey struct{}

type nodeKey struct{}

// WithNode returns ctx carrying n.
func WithNode(ctx context.Context, n *Node) context.Context {
	return context.WithValue(ctx, nodeKey{}, n)
}

// NodeFrom returns the authenticated node behind a request of the nodes' internal service.
func NodeFrom(ctx context.Context) (*Node, bool) {
	n, ok := ctx.Value(nodeKey{}).(*Node)
	return n, ok
}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the authenticated caller of the request.
func CallerFrom(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*Caller)
	return c, ok
}

// PartnerLookup returns a registered partner, or nil if the registry does not know it.
type PartnerLookup func(id string) (*concordv1.Partner, error)

// infrastructure services are open to every partner whose certificate the TLS layer verified:
// they reveal nothing of the registry and let operators probe a node.
var infrastructure = map[protoreflect.FullName]bool{
	"grpc.health.v1.Health":                    true,
	"grpc.reflection.v1.ServerReflection":      true,
	"grpc.reflection.v1alpha.ServerReflection": true,
}

// nodePackage is the proto package of the service nodes speak to each other (NodeService): only
// node certificates may call it, and node certificates may call nothing else but infrastructure.
const nodePackage protoreflect.FullName = "concord.node.v1"

// Policy authorizes calls.
type Policy struct {
	trustDomain string
	partners    PartnerLookup
	roles       sync.Map // full method name ("/pkg.Service/Method") → access
}

type access struct {
	open  bool // infrastructure: any verified certificate
	nodes bool // the nodes' internal service: node certificates only
	roles []concordv1.Role
	err   error
}

// NewPolicy returns a policy for certificates of trustDomain, looking partners up with partners.
func NewPolicy(trustDomain string, partners PartnerLookup) *Policy {
	return &Policy{trustDomain: trustDomain, partners: partners}
}

// TrustDomain is the trust domain of the certificates the policy accepts.
func (p *Policy) TrustDomain() string { return p.trustDomain }

// AllowedRoles returns the roles the method's concord.v1.access option allows, and whether the
// option is present at all.
func AllowedRoles(md protoreflect.MethodDescriptor) ([]concordv1.Role, bool) {
	opts := md.Options()
	if opts == nil || !proto.HasExtension(opts, concordv1.E_Access) {
		return nil, false
	}
	a, _ := proto.GetExtension(opts, concordv1.E_Access).(*concordv1.Access)
	return a.GetRoles(), true
}

// lookup resolves the access rule of a full method name, from the method's descriptor.
func (p *Policy) lookup(fullMethod string, md protoreflect.MethodDescriptor) access {
	if v, ok := p.roles.Load(fullMethod); ok {
		return v.(access)
	}
	a := resolve(fullMethod, md)
	p.roles.Store(fullMethod, a)
	return a
}

func resolve(fullMethod string, md protoreflect.MethodDescriptor) access {
	if md == nil {
		var ok bool
		if md, ok = rpcmethod.Find(fullMethod); !ok {
			return access{err: fault.Denied("method %s is not part of Concord's API", fullMethod)}
		}
	}
	if infrastructure[md.Parent().FullName()] {
		return access{open: true}
	}
	if md.ParentFile().Package() == nodePackage {
		return access{nodes: true}
	}
	roles, ok := AllowedRoles(md)
	if !ok || len(roles) == 0 {
		// Deny by default: a method without a declared policy is a bug, not an open door.
		return access{err: fault.Denied("method %s declares no allowed roles", md.FullName())}
	}
	return access{roles: roles}
}

// Authorize checks the caller of fullMethod, identified by its verified certificate chain, and
// returns ctx carrying the Caller. md may be nil; it is then found in the global registry.
func (p *Policy) Authorize(ctx context.Context, fullMethod string, md protoreflect.MethodDescriptor, chain []*x509.Certificate) (context.Context, error) {
	if len(chain) == 0 {
		return ctx, fault.Unauthenticated("no client certificate: connect with your partner certificate (mutual TLS)")
	}
	who, err := identity.FromCertificate(chain[0], p.trustDomain)
	if err != nil {
		return ctx, fault.Unauthenticated("client certificate names neither a Concord partner nor a cluster node: %v", err)
	}
	if who.Kind == identity.KindNode {
		return p.authorizeNode(ctx, fullMethod, md, who.ID)
	}
	partnerID := who.ID
	a := p.lookup(fullMethod, md)
	if a.err != nil {
		return ctx, a.err
	}
	if a.nodes {
		return ctx, fault.Denied("%s is internal to the cluster: only its nodes call it, with a node certificate (spiffe://%s/node/<id>); partner %q may not",
			methodName(fullMethod), p.trustDomain, partnerID)
	}
	caller := &Caller{PartnerID: partnerID, CertURI: identity.PartnerURI(p.trustDomain, partnerID).String()}
	if a.open {
		return WithCaller(ctx, caller), nil
	}
	partner, err := p.partners(partnerID)
	if err != nil {
		return ctx, fmt.Errorf("look up partner %s: %w", partnerID, err)
	}
	if partner == nil {
		return ctx, fault.Denied("partner %q is not in the registry: ask the hub's operations team to register it", partnerID)
	}
	caller.Partner = partner
	for _, r := range a.roles {
		if caller.HasRole(r) {
			return WithCaller(ctx, caller), nil
		}
	}
	return ctx, fault.Denied("%s requires role %s; partner %q holds %s",
		methodName(fullMethod), roleNames(a.roles, " or "), partnerID, roleNames(partner.GetRoles(), ", "))
}

// authorizeNode lets a node certificate call the nodes' internal service and infrastructure
// (health, reflection), and nothing of the partner API.
func (p *Policy) authorizeNode(ctx context.Context, fullMethod string, md protoreflect.MethodDescriptor, nodeID string) (context.Context, error) {
	a := p.lookup(fullMethod, md)
	if a.err != nil {
		return ctx, a.err
	}
	if !a.nodes && !a.open {
		return ctx, fault.Denied("%s is part of the partner API: the certificate of cluster node %q grants no access to it; call with a partner certificate",
			methodName(fullMethod), nodeID)
	}
	return WithNode(ctx, &Node{ID: nodeID}), nil
}

func methodName(fullMethod string) string {
	if i := strings.LastIndexByte(fullMethod, '/'); i >= 0 {
		return fullMethod[i+1:]
	}
	return fullMethod
}

// RoleName is a role without its enum prefix, as people write it: ROLE_ADMIN → ADMIN.
func RoleName(r concordv1.Role) string {
	return strings.TrimPrefix(r.String(), "ROLE_")
}

func roleNames(roles []concordv1.Role, sep string) string {
	if len(roles) == 0 {
		return "no role"
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = RoleName(r)
	}
	return strings.Join(names, sep)
}
