// Package mtls builds the TLS configurations of Concord's servers and clients: TLS 1.3 only,
// client certificates required and verified against the partners' CA.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
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
