// Package pki creates and reads Concord's development PKI: a CA, a server certificate, and for
// each partner an mTLS client certificate and an Ed25519 statement-signing key. It uses crypto/x509
// only. Keys are written 0600, atomically, and never overwritten: running Init again only adds
// what is missing (and renews certificates about to expire, keeping their keys).
//
// This PKI is for development and tests. In production each partner creates its own keys and the
// hub's CA signs their certificate requests; Concord reads the resulting files the same way.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"concord/internal/identity"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Layout names the files of a PKI directory.
type Layout struct{ Dir string }

// CACert is the CA certificate, which servers and clients trust.
func (l Layout) CACert() string { return filepath.Join(l.Dir, "ca.pem") }

// CAKey is the CA's private key.
func (l Layout) CAKey() string { return filepath.Join(l.Dir, "ca.key") }

// ServerCert is the server's certificate.
func (l Layout) ServerCert() string { return filepath.Join(l.Dir, "server.pem") }

// ServerKey is the server's private key.
func (l Layout) ServerKey() string { return filepath.Join(l.Dir, "server.key") }

// PartnerDir holds one partner's files.
func (l Layout) PartnerDir(id string) string { return filepath.Join(l.Dir, "partners", id) }

// PartnerCert is a partner's mTLS client certificate.
func (l Layout) PartnerCert(id string) string { return filepath.Join(l.PartnerDir(id), "client.pem") }

// PartnerKey is a partner's mTLS private key.
func (l Layout) PartnerKey(id string) string { return filepath.Join(l.PartnerDir(id), "client.key") }

// SigningKey is a partner's Ed25519 statement-signing private key.
func (l Layout) SigningKey(id string) string { return filepath.Join(l.PartnerDir(id), "signing.key") }

// SigningPub is a partner's Ed25519 statement-signing public key, as the registry lists it.
func (l Layout) SigningPub(id string) string { return filepath.Join(l.PartnerDir(id), "signing.pub") }

// NodeDir holds one cluster node's files.
func (l Layout) NodeDir(id string) string { return filepath.Join(l.Dir, "nodes", id) }

// NodeCert is a cluster node's certificate (server and client authentication, URI SAN
// spiffe://<trust-domain>/node/<id>): raft and the cluster's internal service run over mutual TLS
// with it.
func (l Layout) NodeCert(id string) string { return filepath.Join(l.NodeDir(id), "node.pem") }

// NodeKey is a cluster node's private key.
func (l Layout) NodeKey(id string) string { return filepath.Join(l.NodeDir(id), "node.key") }

// WitnessKey is the partner's witness key, a note signer key: with it the partner cosigns the
// log's checkpoints (concord witness).
func (l Layout) WitnessKey(id string) string { return filepath.Join(l.PartnerDir(id), "witness.key") }

// WitnessPub is the witness key's verifier key, as the registry's witness_key holds it.
func (l Layout) WitnessPub(id string) string { return filepath.Join(l.PartnerDir(id), "witness.pub") }

// WitnessName is the name of a partner's witness key: "<id>.witness.<trust-domain>".
func WitnessName(trustDomain, id string) string { return id + ".witness." + trustDomain }

// LogKey is the hub's transparency-log signing key, a note signer key ("PRIVATE+KEY+...").
func (l Layout) LogKey() string { return filepath.Join(l.Dir, "log.key") }

// LogPub is the log's verifier key ("<origin>+<hash>+<key>"), which clients and auditors trust.
func (l Layout) LogPub() string { return filepath.Join(l.Dir, "log.pub") }

// LogOrigin is the name of a log (and of its key) in a trust domain: "<trust-domain>/log".
func LogOrigin(trustDomain string) string { return trustDomain + "/log" }

// Options say what Init creates.
type Options struct {
	Dir string
	// TrustDomain of partner URIs (default identity.DefaultTrustDomain).
	TrustDomain string
	// PartnerIDs get a client certificate and a signing key each.
	PartnerIDs []string
	// NodeIDs get a node certificate each, for raft and the cluster's internal service.
	NodeIDs []string
	// ServerHosts are added to the server certificate's names, beside localhost, 127.0.0.1 and ::1.
	// They only apply when the server certificate is created or renewed.
	ServerHosts []string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// FileStatus says whether Init created (or renewed) a file or found it in place.
type FileStatus struct {
	Path    string
	Created bool
}

// Report lists every file of the PKI, in the order Init visited them.
type Report struct{ Files []FileStatus }

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 2 * 365 * 24 * time.Hour
	// renewBefore: a certificate expiring sooner than this is renewed with its key.
	renewBefore = 30 * 24 * time.Hour
	backdate    = time.Hour
)

var defaultServerNames = []string{"localhost", "127.0.0.1", "::1"}

// Init creates in opts.Dir whatever of the PKI is missing.
func Init(opts Options) (*Report, error) {
	if opts.Dir == "" {
		return nil, errors.New("pki: no directory given")
	}
	if opts.TrustDomain == "" {
		opts.TrustDomain = identity.DefaultTrustDomain
	}
	if err := identity.ValidTrustDomain(opts.TrustDomain); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	for _, id := range opts.PartnerIDs {
		if err := identity.ValidPartnerID(id); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
	}
	for _, id := range opts.NodeIDs {
		if err := identity.ValidNodeID(id); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
	}
	l := Layout{Dir: opts.Dir}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	in := &initer{layout: l, now: opts.Now(), report: &Report{}}
	if err := in.ca(); err != nil {
		return nil, err
	}
	names := append(append([]string{}, defaultServerNames...), opts.ServerHosts...)
	server := func(tmpl *x509.Certificate) {
		tmpl.Subject = pkix.Name{CommonName: "Concord development server", Organization: []string{"Concord development"}}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, n := range names {
			if ip := net.ParseIP(n); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, n)
			}
		}
	}
	if err := in.leaf(l.ServerCert(), l.ServerKey(), server); err != nil {
		return nil, err
	}
	if err := in.noteKey(l.LogKey(), l.LogPub(), LogOrigin(opts.TrustDomain), false); err != nil {
		return nil, err
	}
	for _, id := range opts.NodeIDs {
		if err := os.MkdirAll(l.NodeDir(id), 0o700); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		node := func(tmpl *x509.Certificate) {
			tmpl.Subject = pkix.Name{CommonName: "Concord node " + id, Organization: []string{"Concord development"}}
			// Both: a node accepts raft connections and opens them.
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
			tmpl.URIs = append(tmpl.URIs, identity.NodeURI(opts.TrustDomain, id))
		}
		if err := in.leaf(l.NodeCert(id), l.NodeKey(id), node); err != nil {
			return nil, err
		}
	}
	for _, id := range opts.PartnerIDs {
		if err := os.MkdirAll(l.PartnerDir(id), 0o700); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		client := func(tmpl *x509.Certificate) {
			tmpl.Subject = pkix.Name{CommonName: id, Organization: []string{"Concord development"}}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			tmpl.URIs = append(tmpl.URIs, identity.PartnerURI(opts.TrustDomain, id))
		}
		if err := in.leaf(l.PartnerCert(id), l.PartnerKey(id), client); err != nil {
			return nil, err
		}
		if err := in.signingKey(l.SigningKey(id), l.SigningPub(id)); err != nil {
			return nil, err
		}
		if err := in.noteKey(l.WitnessKey(id), l.WitnessPub(id), WitnessName(opts.TrustDomain, id), true); err != nil {
			return nil, err
		}
	}
	return in.report, nil
}

type initer struct {
	layout Layout
	now    time.Time
	report *Report
	caCert *x509.Certificate
	caKey  crypto.Signer
}

func (in *initer) note(path string, created bool) {
	in.report.Files = append(in.report.Files, FileStatus{Path: path, Created: created})
}

func (in *initer) ca() error {
	l := in.layout
	if _, err := in.ensureKey(l.CAKey(), newECDSAKey); err != nil {
		return err
	}
	key, err := loadPrivateKey(l.CAKey())
	if err != nil {
		return err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("pki: %s does not hold a signing key", l.CAKey())
	}
	in.caKey = signer
	cert, err := loadCert(l.CACert())
	switch {
	case err == nil:
		if !publicKeysEqual(cert.PublicKey, signer.Public()) {
			return fmt.Errorf("pki: %s was not issued for the key in %s: move both aside to create a new CA", l.CACert(), l.CAKey())
		}
		in.caCert = cert
		in.note(l.CACert(), false)
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	// No CA certificate: create one (for an existing key too, which keeps issued certificates valid).
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Concord development CA", Organization: []string{"Concord development"}},
		NotBefore:             in.now.Add(-backdate),
		NotAfter:              in.now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return fmt.Errorf("pki: create CA certificate: %w", err)
	}
	if err := writeNew(l.CACert(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	if in.caCert, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	in.note(l.CACert(), true)
	return nil
}

// leaf makes sure keyPath holds a key and certPath a current certificate for it from the CA.
func (in *initer) leaf(certPath, keyPath string, edit func(*x509.Certificate)) error {
	if _, err := in.ensureKey(keyPath, newECDSAKey); err != nil {
		return err
	}
	key, err := loadPrivateKey(keyPath)
	if err != nil {
		return err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("pki: %s does not hold a signing key", keyPath)
	}
	cert, err := loadCert(certPath)
	switch {
	case err == nil:
		current := publicKeysEqual(cert.PublicKey, signer.Public()) &&
			cert.CheckSignatureFrom(in.caCert) == nil &&
			in.now.Add(renewBefore).Before(cert.NotAfter)
		if current {
			in.note(certPath, false)
			return nil
		}
		// Renew: the certificate expires soon, or belongs to another key or CA. The key stays.
		if err := os.Remove(certPath); err != nil {
			return fmt.Errorf("pki: renew %s: %w", certPath, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		NotBefore:             in.now.Add(-backdate),
		NotAfter:              in.now.Add(leafValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, in.caCert, signer.Public(), in.caKey)
	if err != nil {
		return fmt.Errorf("pki: create certificate %s: %w", certPath, err)
	}
	if err := writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	in.note(certPath, true)
	return nil
}

func (in *initer) signingKey(keyPath, pubPath string) error {
	if _, err := in.ensureKey(keyPath, func() (crypto.PrivateKey, error) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}); err != nil {
		return err
	}
	priv, err := LoadSigningKey(keyPath)
	if err != nil {
		return err
	}
	pubPEM, err := MarshalSigningPublicKeyPEM(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	existing, err := os.ReadFile(pubPath)
	switch {
	case err == nil:
		if string(existing) != string(pubPEM) {
			return fmt.Errorf("pki: %s does not hold the public key of %s: remove it and run again to rewrite it", pubPath, keyPath)
		}
		in.note(pubPath, false)
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("pki: %w", err)
	}
	if err := writeNew(pubPath, pubPEM, 0o644); err != nil {
		return err
	}
	in.note(pubPath, true)
	return nil
}

// noteKey creates a note signer key named name (the log's, a witness's) and its verifier key,
// unless they exist. A witness's verifier key (cosignature) is written in C2SP tlog-cosignature
// form, type 0x04 with its key hash, which any cosignature verifier reads; one written by an
// older Concord in the Ed25519 note form (0x01) is rewritten so.
func (in *initer) noteKey(keyPath, pubPath, name string, cosignature bool) error {
	pubOf := func(vkey string) (string, error) {
		if !cosignature {
			return vkey, nil
		}
		return formats.VKeyToCosignatureV1(vkey)
	}
	if _, err := os.Lstat(keyPath); err == nil {
		in.note(keyPath, false)
		if old, err := os.ReadFile(pubPath); err == nil && (!cosignature || !isEd25519NoteKey(strings.TrimSpace(string(old)))) {
			in.note(pubPath, false)
			return nil
		}
		b, err := readPrivate(keyPath)
		if err != nil {
			return err
		}
		vkey, err := logVerifierKey(strings.TrimSpace(string(b)))
		if err == nil {
			vkey, err = pubOf(vkey)
		}
		if err != nil {
			return fmt.Errorf("pki: %s: %w", keyPath, err)
		}
		if err := os.Remove(pubPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pki: %w", err)
		}
		if err := writeNew(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
			return err
		}
		in.note(pubPath, true)
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pki: %w", err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err == nil {
		vkey, err = pubOf(vkey)
	}
	if err != nil {
		return fmt.Errorf("pki: generate the key %s: %w", name, err)
	}
	if err := writeNew(keyPath, []byte(skey+"\n"), 0o600); err != nil {
		return err
	}
	in.note(keyPath, true)
	if err := writeNew(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
		return err
	}
	in.note(pubPath, true)
	return nil
}

// isEd25519NoteKey says whether vkey is a verifier key of type 0x01 (Ed25519 signed note).
func isEd25519NoteKey(vkey string) bool {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	return err == nil && len(raw) > 0 && raw[0] == 1
}

// logVerifierKey derives the verifier key of a note signer key ("PRIVATE+KEY+name+hash+key").
func logVerifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("not a note signer key (PRIVATE+KEY+name+hash+key)")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("not an Ed25519 note signer key")
	}
	return note.NewEd25519VerifierKey(parts[2], ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey))
}

// LoadNoteKey reads a note signer key (the log's, a witness's) and derives its verifier.
func LoadNoteKey(path string) (note.Signer, note.Verifier, error) { return LoadLogKey(path) }

// LoadLogKey reads the log's note signer key and derives its verifier. Like every private key,
// it must not be readable by group or others.
func LoadLogKey(path string) (note.Signer, note.Verifier, error) {
	b, err := readPrivate(path)
	if err != nil {
		return nil, nil, err
	}
	skey := strings.TrimSpace(string(b))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s is not a note signer key (PRIVATE+KEY+name+hash+key): %w", path, err)
	}
	vkey, err := logVerifierKey(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	return s, v, nil
}

// LoadLogVerifier reads the log's verifier key.
func LoadLogVerifier(path string) (note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("pki: %s is not a note verifier key (name+hash+key): %w", path, err)
	}
	return v, nil
}

// ensureKey creates a private key at path unless one is there; it reports whether it created it.
func (in *initer) ensureKey(path string, generate func() (crypto.PrivateKey, error)) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		in.note(path, false)
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("pki: %w", err)
	}
	key, err := generate()
	if err != nil {
		return false, fmt.Errorf("pki: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return false, fmt.Errorf("pki: encode key: %w", err)
	}
	if err := writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return false, err
	}
	in.note(path, true)
	return true, nil
}

func newECDSAKey() (crypto.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// writeNew writes data to path atomically and only if path does not exist: it writes and syncs a
// temporary file, then hard-links it into place, which fails if something is already there. A
// crash leaves either no file or the whole file, never a truncated key.
func writeNew(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("pki: %s appeared while it was being created; not overwriting it", path)
		}
		return fmt.Errorf("pki: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n.Add(n, big.NewInt(1))
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

func loadCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("pki: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("pki: %s holds no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	return cert, nil
}

// readPrivate reads a private key file, refusing one that group or others can read.
func readPrivate(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("private key %s is readable by group or others (mode %04o): run chmod 600 %s", path, info.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	return data, nil
}

// loadPrivateKey reads a PKCS#8 PEM private key, refusing a file others can read.
func loadPrivateKey(path string) (crypto.PrivateKey, error) {
	data, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("private key %s: want a PEM block of type PRIVATE KEY (PKCS#8)", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return key, nil
}

// LoadSigningKey reads a partner's Ed25519 statement-signing key (PKCS#8 PEM). It refuses a key
// file that group or others can read.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	key, err := loadPrivateKey(path)
	if err != nil {
		return nil, err
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s is a %T, want an Ed25519 key", path, key)
	}
	return priv, nil
}

// LoadSigningPublicKey reads an Ed25519 public key (PKIX PEM, type PUBLIC KEY).
func LoadSigningPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing public key: %w", err)
	}
	pub, err := ParseSigningPublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// ParseSigningPublicKeyPEM parses an Ed25519 public key in PKIX PEM form.
func ParseSigningPublicKeyPEM(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("want a PEM block of type PUBLIC KEY")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the public key is a %T, want an Ed25519 key", key)
	}
	return pub, nil
}

// MarshalSigningPublicKeyPEM encodes an Ed25519 public key in PKIX PEM form.
func MarshalSigningPublicKeyPEM(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
