package mtls_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
)

// nodePKI issues node certificates for ids under a CA of its own, in a directory of its own.
func nodePKI(t *testing.T, ids ...string) pki.Layout {
	t.Helper()
	l := pki.Layout{Dir: t.TempDir()}
	if _, err := pki.Init(pki.Options{Dir: l.Dir, TrustDomain: identity.DefaultTrustDomain, NodeIDs: ids}); err != nil {
		t.Fatal(err)
	}
	return l
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, b)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path+".new", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// installNode copies node id's certificate and key from l into dir, with caFile as the bundle.
func installNode(t *testing.T, l pki.Layout, id, dir string) mtls.Files {
	t.Helper()
	f := mtls.Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "node.pem"), Key: filepath.Join(dir, "node.key")}
	copyFile(t, l.CACert(), f.CA)
	copyFile(t, l.NodeCert(id), f.Cert)
	copyFile(t, l.NodeKey(id), f.Key)
	return f
}

// handshake connects client to server over an in-memory pipe and returns the certificate each
// side was shown, or the first error.
func handshake(t *testing.T, client, server *mtls.Node) (toClient, toServer []byte, err error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc := tls.Server(b, server.ServerConfig())
	errs := make(chan error, 1)
	go func() {
		err := sc.HandshakeContext(ctx)
		if err != nil {
			b.Close()
		}
		errs <- err
	}()
	cc := tls.Client(a, client.Client.Clone())
	if err := cc.HandshakeContext(ctx); err != nil {
		a.Close()
		<-errs
		return nil, nil, err
	}
	if err := <-errs; err != nil {
		return nil, nil, err
	}
	return cc.ConnectionState().PeerCertificates[0].Raw, sc.ConnectionState().PeerCertificates[0].Raw, nil
}

func pemDER(t *testing.T, path string) []byte {
	t.Helper()
	c, err := tls.LoadX509KeyPair(path, strings.TrimSuffix(path, ".pem")+".key")
	if err != nil {
		t.Fatal(err)
	}
	return c.Certificate[0]
}

// TestNodeCertificatesAreReloaded rotates two nodes to a new CA with no restart: the bundle
// gains the new CA, then each node's certificate is replaced and reloaded; each side of a new
// handshake presents the new certificate, and a certificate that does not load or names
// another node is refused while the one in use stays.
func TestNodeCertificatesAreReloaded(t *testing.T) {
	old, rotated := nodePKI(t, "node-1", "node-2"), nodePKI(t, "node-1", "node-2")
	files1 := installNode(t, old, "node-1", t.TempDir())
	files2 := installNode(t, old, "node-2", t.TempDir())
	n1, err := mtls.NodeConfig(files1, identity.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := mtls.NodeConfig(files2, identity.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	if n1.ID != "node-1" || n2.ID != "node-2" {
		t.Fatalf("ids %q, %q", n1.ID, n2.ID)
	}
	if _, _, err := handshake(t, n1, n2); err != nil {
		t.Fatalf("handshake before the rotation: %v", err)
	}
	reload := func(n *mtls.Node, want bool) {
		t.Helper()
		changed, err := n.Reload()
		if err != nil || changed != want {
			t.Fatalf("reload of %s: changed %v, %v; want changed %v", n.ID, changed, err, want)
		}
	}

	// node-2 moves to the new CA before node-1 trusts it: node-1 refuses it, both ways.
	copyFile(t, rotated.NodeCert("node-2"), files2.Cert)
	copyFile(t, rotated.NodeKey("node-2"), files2.Key)
	reload(n2, true)
	if _, _, err := handshake(t, n1, n2); err == nil {
		t.Fatal("node-1 accepted a certificate of a CA it does not trust yet")
	}

	// Both bundles gain the new CA; node-1 moves too.
	bundle := append(readAll(t, old.CACert()), readAll(t, rotated.CACert())...)
	writeFile(t, files1.CA, bundle)
	writeFile(t, files2.CA, bundle)
	reload(n1, true)
	reload(n2, true)
	copyFile(t, rotated.NodeCert("node-1"), files1.Cert)
	copyFile(t, rotated.NodeKey("node-1"), files1.Key)
	reload(n1, true)
	reload(n1, false)
	toClient, toServer, err := handshake(t, n1, n2)
	if err != nil {
		t.Fatalf("handshake after the rotation: %v", err)
	}
	if !bytes.Equal(toClient, pemDER(t, rotated.NodeCert("node-2"))) || !bytes.Equal(toServer, pemDER(t, rotated.NodeCert("node-1"))) {
		t.Fatal("a handshake after the rotation did not present the new certificates on both sides")
	}
	if !bytes.Equal(n1.Certificate().Raw, pemDER(t, rotated.NodeCert("node-1"))) {
		t.Fatal("Certificate does not report the new node certificate")
	}

	// The old CA leaves the bundles: a node still holding an old certificate is refused.
	writeFile(t, files1.CA, readAll(t, rotated.CACert()))
	reload(n1, true)
	stale, err := mtls.NodeConfig(installNode(t, old, "node-2", t.TempDir()), identity.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, stale, n1); err == nil {
		t.Fatal("a node certificate of the CA dropped from the bundle was accepted")
	}

	// Refused reloads: a broken key, and a certificate of another node.
	writeFile(t, files1.Key, []byte("not a key"))
	if _, err := n1.Reload(); err == nil {
		t.Fatal("a broken key was accepted")
	}
	copyFile(t, rotated.NodeCert("node-2"), files1.Cert)
	copyFile(t, rotated.NodeKey("node-2"), files1.Key)
	if _, err := n1.Reload(); err == nil || !strings.Contains(err.Error(), `names node "node-2", but this node is "node-1"`) {
		t.Fatalf("a certificate of another node: %v", err)
	}
	if _, _, err := handshake(t, n2, n1); err != nil {
		t.Fatalf("after refused reloads, node-1 still serves the certificate in use: %v", err)
	}
	if n1.ID != "node-1" || !bytes.Equal(n1.Certificate().Raw, pemDER(t, rotated.NodeCert("node-1"))) {
		t.Fatal("a refused reload changed the node's identity or certificate")
	}
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNodeConfigRefusesPartnerCertificates: a partner certificate of the same CA never passes
// for a node, on either side.
func TestNodeConfigRefusesPartnerCertificates(t *testing.T) {
	l := pki.Layout{Dir: t.TempDir()}
	if _, err := pki.Init(pki.Options{Dir: l.Dir, TrustDomain: identity.DefaultTrustDomain, NodeIDs: []string{"node-1"}, PartnerIDs: []string{"fr-pharos"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := mtls.NodeConfig(mtls.Files{CA: l.CACert(), Cert: l.PartnerCert("fr-pharos"), Key: l.PartnerKey("fr-pharos")}, identity.DefaultTrustDomain); err == nil {
		t.Fatal("a partner certificate was accepted as a node certificate")
	}
	n, err := mtls.NodeConfig(mtls.Files{CA: l.CACert(), Cert: l.NodeCert("node-1"), Key: l.NodeKey("node-1")}, identity.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	partner, err := tls.LoadX509KeyPair(l.PartnerCert("fr-pharos"), l.PartnerKey("fr-pharos"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	errs := make(chan error, 1)
	go func() { errs <- tls.Server(b, n.ServerConfig()).Handshake(); b.Close() }()
	_ = tls.Client(a, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{partner}, MinVersion: tls.VersionTLS13}).Handshake()
	a.Close()
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "not a cluster node") {
		t.Fatalf("the node port took a partner certificate: %v", err)
	}
}

// TestPublicConfigChecksTheHost: joining through a member's gRPC port, the node checks the
// port's certificate as partners do, host name or IP address included.
func TestPublicConfigChecksTheHost(t *testing.T) {
	l := pki.Layout{Dir: t.TempDir()}
	if _, err := pki.Init(pki.Options{Dir: l.Dir, TrustDomain: identity.DefaultTrustDomain, NodeIDs: []string{"node-1"}}); err != nil {
		t.Fatal(err)
	}
	n, err := mtls.NodeConfig(mtls.Files{CA: l.CACert(), Cert: l.NodeCert("node-1"), Key: l.NodeKey("node-1")}, identity.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	server, err := mtls.ServerConfig(mtls.Files{CA: l.CACert(), Cert: l.ServerCert(), Key: l.ServerKey()})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(host string) error {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go func() { _ = tls.Server(b, server).Handshake(); b.Close() }()
		conf := n.PublicConfig()
		conf.ServerName = host
		return tls.Client(a, conf).Handshake()
	}
	if err := dial("127.0.0.1"); err != nil {
		t.Fatalf("the server certificate for 127.0.0.1: %v", err)
	}
	if err := dial("10.9.9.9"); err == nil || !strings.Contains(err.Error(), "10.9.9.9") {
		t.Fatalf("a server certificate that does not name the address dialled was accepted: %v", err)
	}
}
