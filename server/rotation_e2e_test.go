package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/internal/registryfile"
	"concord/server/servertest"
)

// replaceFile writes data to path atomically, as an operator's deployment tool would.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRotatingTheCAWhileClientsCall rotates a node to a new CA the way an operator would, with
// no restart: first the partners' CA bundle gains the new CA (partners with certificates of
// either CA are accepted), then the node serves a server certificate of the new CA. Clients
// calling all along see no failed call, and new connections get the new certificate.
func TestRotatingTheCAWhileClientsCall(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	newDir := t.TempDir()
	if _, err := pki.Init(pki.Options{Dir: newDir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: registryfile.ExamplePartnerIDs()}); err != nil {
		t.Fatal(err)
	}
	rotated := pki.Layout{Dir: newDir}
	oldCA, newCA := readFile(t, n.PKI.CACert()), readFile(t, rotated.CACert())
	bundle := append(append([]byte{}, oldCA...), newCA...)

	// Callers on connections opened before the rotation, calling until the end.
	stop := make(chan struct{})
	progress := make(chan struct{}, 1024) // a token per call answered, for waitCalls
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for _, p := range []string{"fr-pharos", "videoshare", "observatory"} {
		c := n.Client(t, p)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Registry.WhoAmI(ctx, &concordv1.WhoAmIRequest{}); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				calls.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		})
	}
	// waitCalls returns once the callers have had more calls answered since it was called.
	waitCalls := func(more int) {
		t.Helper()
		for len(progress) > 0 { // forget calls answered before now
			<-progress
		}
		deadline := time.NewTimer(time.Minute)
		defer deadline.Stop()
		for range more {
			select {
			case <-progress:
			case <-deadline.C:
				t.Fatal("the callers stalled")
			}
		}
	}
	// dial opens a new connection with a partner's certificate and key, trusting caFile.
	dial := func(partnerCert, partnerKey, caFile string) (*client.Client, error) {
		return client.Dial(client.Config{Addrs: []string{n.GRPCAddr()}, TLS: mtls.Files{CA: caFile, Cert: partnerCert, Key: partnerKey}, Retries: -1})
	}
	whoAmI := func(c *client.Client) error {
		_, err := c.Registry.WhoAmI(ctx, &concordv1.WhoAmIRequest{})
		return err
	}
	waitCalls(50)

	// A partner certificate of the new CA is refused until the bundle holds it.
	newPartner, err := dial(rotated.PartnerCert("de-bka"), rotated.PartnerKey("de-bka"), n.PKI.CACert())
	if err != nil {
		t.Fatal(err)
	}
	defer newPartner.Close()
	if err := whoAmI(newPartner); err == nil {
		t.Fatal("a partner certificate of a CA the node does not trust yet was accepted")
	}

	// Step 1: the CA bundle gains the new CA.
	replaceFile(t, n.PKI.CACert(), bundle)
	if changed, err := n.ReloadTLS(); err != nil || !changed {
		t.Fatalf("reload of the bundle: changed %v, %v", changed, err)
	}
	again, err := dial(rotated.PartnerCert("de-bka"), rotated.PartnerKey("de-bka"), n.PKI.CACert())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := whoAmI(again); err != nil {
		t.Fatalf("a partner certificate of the new CA, after the bundle was reloaded: %v", err)
	}
	waitCalls(50)

	// Step 2: the node serves a certificate of the new CA.
	replaceFile(t, n.PKI.ServerKey(), readFile(t, rotated.ServerKey()))
	replaceFile(t, n.PKI.ServerCert(), readFile(t, rotated.ServerCert()))
	if changed, err := n.ReloadTLS(); err != nil || !changed {
		t.Fatalf("reload of the server certificate: changed %v, %v", changed, err)
	}
	if !bytes.Equal(n.ServerCertificate().Raw, pemCert(t, rotated.ServerCert()).Raw) {
		t.Fatal("the node does not report the new server certificate")
	}
	// A new connection, trusting the bundle, is served the new certificate.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	partner, err := tls.LoadX509KeyPair(n.PKI.PartnerCert("fr-pharos"), n.PKI.PartnerKey("fr-pharos"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", n.GRPCAddr(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{partner}, NextProtos: []string{"h2"}, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	served := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if !bytes.Equal(served.Raw, pemCert(t, rotated.ServerCert()).Raw) {
		t.Fatalf("a new connection was served %s, issued by %s: want the new certificate", served.Subject, served.Issuer)
	}
	// A reload of unchanged files changes nothing; a broken file keeps the old ones in use.
	if changed, err := n.ReloadTLS(); err != nil || changed {
		t.Fatalf("reload of unchanged files: changed %v, %v", changed, err)
	}
	replaceFile(t, n.PKI.ServerKey(), []byte("not a key"))
	if _, err := n.ReloadTLS(); err == nil {
		t.Fatal("a broken key was accepted")
	}
	fresh := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(fresh, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	after, err := dial(n.PKI.PartnerCert("fr-pharos"), n.PKI.PartnerKey("fr-pharos"), fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if err := whoAmI(after); err != nil {
		t.Fatalf("after a broken reload, the node still serves the certificate in use: %v", err)
	}
	waitCalls(50)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d calls failed during the rotation; first: %v", failed.Load(), calls.Load(), firstErr.Load())
	}
	t.Logf("%d calls during the rotation, none failed", calls.Load())
}

func pemCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(readFile(t, path))
	if block == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
