package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Reloading is a server's TLS configuration that follows its files: the server certificate and
// key and the CA bundle that client certificates must chain to are read again on Reload (SIGHUP)
// and when Watch sees them change, with no restart. Connections already open keep the
// configuration they were made with; new ones get the current files. A reload that fails (a
// half-written file, a key that does not match) keeps the previous configuration.
type Reloading struct {
	files Files
	base  *tls.Config // settings that do not come from the files

	mu      sync.Mutex // serialises reloads
	sum     [32]byte   // of the files' contents, to notice a change
	current atomic.Pointer[tls.Config]
	leaf    atomic.Pointer[x509.Certificate]
}

// NewReloading loads f as ServerConfig does.
func NewReloading(f Files) (*Reloading, error) {
	base, err := ServerConfig(f)
	if err != nil {
		return nil, err
	}
	r := &Reloading{files: f, base: base}
	if _, err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Config is the tls.Config to serve with: each handshake uses the configuration current then.
func (r *Reloading) Config() *tls.Config {
	c := r.base.Clone()
	c.Certificates, c.ClientCAs = nil, nil
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return r.current.Load(), nil }
	// Before GetConfigForClient is consulted, crypto/tls wants a certificate source.
	c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return &r.current.Load().Certificates[0], nil
	}
	return c
}

// Certificate is the server certificate being served.
func (r *Reloading) Certificate() *x509.Certificate { return r.leaf.Load() }

// fileSum is a digest of the contents of f's files, to notice a change.
func fileSum(f Files) ([32]byte, error) {
	h := sha256.New()
	for _, p := range []string{f.CA, f.Cert, f.Key} {
		b, err := os.ReadFile(p)
		if err != nil {
			return [32]byte{}, err
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// Reload reads the files again and reports whether anything changed. On error the previous
// configuration stays in force.
func (r *Reloading) Reload() (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sum, err := fileSum(r.files)
	if err != nil {
		return false, fmt.Errorf("reload TLS files: %w", err)
	}
	if r.current.Load() != nil && sum == r.sum {
		return false, nil
	}
	pool, cert, err := load(r.files)
	if err != nil {
		return false, fmt.Errorf("reload TLS files (the previous ones stay in use): %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return false, fmt.Errorf("reload TLS files: server certificate %s: %w", r.files.Cert, err)
	}
	c := r.base.Clone()
	c.Certificates, c.ClientCAs = []tls.Certificate{cert}, pool
	r.current.Store(c)
	r.leaf.Store(leaf)
	r.sum = sum
	return true, nil
}

// Watch reloads the files every interval when they changed, until ctx ends, and tells report
// what happened (a changed configuration, or an error) each time something did.
func (r *Reloading) Watch(ctx context.Context, interval time.Duration, report func(changed bool, err error)) {
	watch(ctx, interval, r.Reload, report)
}

// watch calls reload every interval until ctx ends, and tells report what happened each time
// something did.
func watch(ctx context.Context, interval time.Duration, reload func() (bool, error), report func(changed bool, err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if changed, err := reload(); changed || err != nil {
				report(changed, err)
			}
		}
	}
}
