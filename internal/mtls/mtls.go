// Package mtls builds the TLS configurations of Concord's servers and clients: TLS 1.3 only,
// client certificates required and verified against the partners' CA.
package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"concord/internal/identity"
)

// Files names the PEM files of one side of a connection.
type Files struct {
	CA   string // CA certificate(s) the peer must chain to
	Cert string // our certificate
	Key  string // our private key
}

// LoadCAPool reads a PEM bundle of CA certificates.
func LoadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA certificates: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read CA certificates: %s holds no PEM certificate", path)
	}
	return pool, nil
}

func load(f Files) (*x509.CertPool, tls.Certificate, error) {
	pool, err := LoadCAPool(f.CA)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("load certificate %s with key %s: %w", f.Cert, f.Key, err)
	}
	return pool, cert, nil
}

// ServerConfig requires and verifies a client certificate from the CA in f.CA on every
// connection, so an unauthenticated connection never reaches a handler.
func ServerConfig(f Files) (*tls.Config, error) {
	pool, cert, err := load(f)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

// ClientConfig presents the partner's certificate and verifies the server against f.CA.
func ClientConfig(f Files) (*tls.Config, error) {
	pool, cert, err := load(f)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		NextProtos:   []string{"h2"},
	}, nil
}

// Node is a cluster node's TLS identity: the configurations of its node port and of its
// connections to other nodes, both TLS 1.3 with a node certificate required on each side. The
// certificate, its key and the CA bundle follow their files (Reload, Watch) with no restart:
// every handshake, on connections old and new, uses the ones current then.
type Node struct {
	// ID is the node id the certificate names (spiffe://<trust-domain>/node/<id>); a reload
	// never changes it.
	ID string
	// Client opens connections to other nodes (ServerConfig accepts them). It sets no
	// NextProtos: the caller says what it speaks.
	Client *tls.Config

	files       Files
	trustDomain string
	mu          sync.Mutex // serialises reloads
	sum         [32]byte   // of the files' contents, to notice a change
	current     atomic.Pointer[nodeFiles]
}

// nodeFiles is what a Node read from its files.
type nodeFiles struct {
	cert tls.Certificate
	leaf *x509.Certificate
	pool *x509.CertPool
}

// NodeConfig loads a node certificate and builds both sides of node-to-node mutual TLS. Each side
// checks that the peer's certificate chains to f.CA and names a node of trustDomain: a partner
// certificate from the same CA is refused, as is any certificate from another CA. Host names are
// not checked: a node is known by the node URI its certificate carries, not by its address.
func NodeConfig(f Files, trustDomain string) (*Node, error) {
	n := &Node{files: f, trustDomain: trustDomain}
	if _, err := n.Reload(); err != nil {
		return nil, err
	}
	ours := func() *tls.Certificate { return &n.current.Load().cert }
	// A connection may outlive a reload (gRPC reconnects with the configuration it was given):
	// the chains are verified below, with the bundle current at each handshake.
	n.Client = &tls.Config{
		MinVersion:           tls.VersionTLS13,
		InsecureSkipVerify:   true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return ours(), nil },
		VerifyConnection:     n.verifyNode,
	}
	return n, nil
}

// ServerConfig is the configuration of one connection from another node, with the certificate
// and CA bundle current now, speaking one of nextProtos.
func (n *Node) ServerConfig(nextProtos ...string) *tls.Config {
	cur := n.current.Load()
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{cur.cert},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        cur.pool,
		NextProtos:       nextProtos,
		VerifyConnection: func(cs tls.ConnectionState) error { return peerIsNode(cs, n.trustDomain) },
	}
}

// PublicConfig calls a member's gRPC port (to join the cluster) with the node certificate and
// CA bundle current now; the port's server certificate is checked as partners check it, host
// name (or IP address) included, by crypto/tls itself.
func (n *Node) PublicConfig() *tls.Config {
	cur := n.current.Load()
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cur.cert},
		RootCAs:      cur.pool,
		NextProtos:   []string{"h2"},
	}
}

// verifyNode checks, on a connection this node opened, that the peer's certificate chains to
// the current CA bundle for server use and names a node of the trust domain.
func (n *Node) verifyNode(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer presented no certificate")
	}
	opts := x509.VerifyOptions{Roots: n.current.Load().pool, Intermediates: x509.NewCertPool(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("the peer's certificate: %w", err)
	}
	return peerIsNode(cs, n.trustDomain)
}

// Certificate is the node certificate presented now.
func (n *Node) Certificate() *x509.Certificate { return n.current.Load().leaf }

// Files are the node's certificate, key and CA bundle files.
func (n *Node) Files() Files { return n.files }

// Reload reads the node certificate, its key and the CA bundle again and reports whether
// anything changed. A certificate that does not load, or names another node, is refused and the
// ones in use stay in use.
func (n *Node) Reload() (changed bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	sum, err := fileSum(n.files)
	if err != nil {
		return false, fmt.Errorf("reload node TLS files: %w", err)
	}
	if n.current.Load() != nil && sum == n.sum {
		return false, nil
	}
	pool, cert, err := load(n.files)
	if err != nil {
		return false, fmt.Errorf("node TLS files (the previous ones stay in use): %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return false, fmt.Errorf("node certificate %s: %w", n.files.Cert, err)
	}
	id, err := identity.NodeID(leaf, n.trustDomain)
	if err != nil {
		return false, fmt.Errorf("node certificate %s: %w ('concord certs init --nodes ID' issues node certificates)", n.files.Cert, err)
	}
	if n.ID != "" && id != n.ID {
		return false, fmt.Errorf("node certificate %s names node %q, but this node is %q: the previous certificate stays in use", n.files.Cert, id, n.ID)
	}
	n.ID = id
	n.current.Store(&nodeFiles{cert: cert, leaf: leaf, pool: pool})
	n.sum = sum
	return true, nil
}

// Watch reloads the files every interval when they changed, until ctx ends, and tells report
// what happened (a changed configuration, or an error) each time something did.
func (n *Node) Watch(ctx context.Context, interval time.Duration, report func(changed bool, err error)) {
	watch(ctx, interval, n.Reload, report)
}

func peerIsNode(cs tls.ConnectionState, trustDomain string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer presented no certificate")
	}
	if _, err := identity.NodeID(cs.PeerCertificates[0], trustDomain); err != nil {
		return fmt.Errorf("the peer is not a cluster node: %w", err)
	}
	return nil
}
