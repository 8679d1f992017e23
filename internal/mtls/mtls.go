// Package mtls builds the TLS configurations of Concord's servers and clients: TLS 1.3 only,
// client certificates required and verified against the partners' CA.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

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
// connections to other nodes, both TLS 1.3 with a node certificate required on each side.
type Node struct {
	// ID is the node id the certificate names (spiffe://<trust-domain>/node/<id>).
	ID string
	// Server accepts connections from other nodes; Client opens them. Neither sets NextProtos:
	// the caller says what it speaks.
	Server, Client *tls.Config
	// Public calls a member's gRPC port (to join the cluster) with the node certificate; the
	// port's server certificate is checked as partners check it, host name included.
	Public *tls.Config
}

// NodeConfig loads a node certificate and builds both sides of node-to-node mutual TLS. Each side
// checks that the peer's certificate chains to f.CA and names a node of trustDomain: a partner
// certificate from the same CA is refused, as is any certificate from another CA. Host names are
// not checked: a node is known by the node URI its certificate carries, not by its address.
func NodeConfig(f Files, trustDomain string) (*Node, error) {
	pool, cert, err := load(f)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("node certificate %s: %w", f.Cert, err)
	}
	id, err := identity.NodeID(leaf, trustDomain)
	if err != nil {
		return nil, fmt.Errorf("node certificate %s: %w ('concord certs init --nodes ID' issues node certificates)", f.Cert, err)
	}
	server := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return peerIsNode(cs, trustDomain)
		},
	}
	client := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		// The chain is verified below, by URI rather than host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the peer presented no certificate")
			}
			opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				return fmt.Errorf("the peer's certificate: %w", err)
			}
			return peerIsNode(cs, trustDomain)
		},
	}
	public := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		NextProtos:   []string{"h2"},
	}
	return &Node{ID: id, Server: server, Client: client, Public: public}, nil
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
