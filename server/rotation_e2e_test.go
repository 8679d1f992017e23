package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	"concord/server"
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

// TestRotatingNodeCertificatesWhileTheClusterWrites moves a three-node cluster's node
// certificates to a new CA with no restart while an authority writes: the bundle gains the new
// CA, each node's certificate is replaced and reloaded, then the old CA leaves the bundle. After
// each step the followers are cut off and let back, so that every link between the nodes is
// made again; a follower catches up only if the nodes present, and accept, the certificates
// current then. No write fails, and every node ends with the same log.
func TestRotatingNodeCertificatesWhileTheClusterWrites(t *testing.T) {
	t.Parallel()
	c := servertest.StartCluster(t, 3, servertest.Options{})
	ids := []string{servertest.NodeID(0), servertest.NodeID(1), servertest.NodeID(2)}
	rotated := pki.Layout{Dir: t.TempDir()}
	if _, err := pki.Init(pki.Options{Dir: rotated.Dir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: []string{"de-bka"}, NodeIDs: ids}); err != nil {
		t.Fatal(err)
	}
	oldCA, newCA := readFile(t, c.PKI.CACert()), readFile(t, rotated.CACert())

	// An authority writes all along: first with a certificate of the old CA, then of the new.
	var written, failed atomic.Int64
	var firstErr atomic.Value
	progress := make(chan struct{}, 1)
	writer := func(cl *client.Client, basis string, stop <-chan struct{}) func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := &concordv1.Notice{LegalBasis: basis, Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
					Hashes: []*concordv1.Hash{sha256Hash(fmt.Sprintf("%s rotation %d", basis, i))}}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				_, err := cl.SubmitNotice(ctx, n)
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				written.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}()
		return func() { <-done }
	}
	waitWrites := func(more int64) {
		t.Helper()
		want := written.Load() + more
		deadline := time.NewTimer(2 * time.Minute)
		defer deadline.Stop()
		for written.Load() < want {
			select {
			case <-progress:
			case <-deadline.C:
				t.Fatalf("the writer stalled at %d writes", written.Load())
			}
		}
	}
	leader := c.Leader(t, 30*time.Second)
	// relink cuts each follower off and lets it back, then waits until it has applied what the
	// leader committed after that: it reconnected with the certificates in use now.
	relink := func(step string) {
		t.Helper()
		for _, f := range others(c, leader) {
			c.Nodes[f].Faults.Cut()
			c.Nodes[f].Faults.Heal()
			waitWrites(5)
			target := c.Nodes[leader].Applied()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			err := server.WaitApplied(ctx, c.Nodes[f].Server, target)
			cancel()
			if err != nil {
				t.Fatalf("%s: %s did not catch up after it was cut off (applied %d, leader %d): %v", step, ids[f], c.Nodes[f].Applied(), target, err)
			}
		}
	}
	reloadAll := func(step string) {
		t.Helper()
		for i, n := range c.Nodes {
			if changed, err := n.ReloadTLS(); err != nil || !changed {
				t.Fatalf("%s: reload on %s: changed %v, %v", step, ids[i], changed, err)
			}
		}
	}

	stopOld := make(chan struct{})
	waitOld := writer(c.Client(t, "fr-pharos"), "fr.cp.421-2-5", stopOld)
	waitWrites(5)

	// Step 1: the bundle gains the new CA.
	replaceFile(t, c.PKI.CACert(), append(append([]byte{}, oldCA...), newCA...))
	reloadAll("the bundle gains the new CA")
	relink("the bundle gains the new CA")

	// Step 2: every node's certificate is replaced by one of the new CA.
	oldNodeCert, oldNodeKey := filepath.Join(t.TempDir(), "old-node.pem"), filepath.Join(t.TempDir(), "old-node.key")
	replaceFile(t, oldNodeCert, readFile(t, c.PKI.NodeCert(ids[0])))
	replaceFile(t, oldNodeKey, readFile(t, c.PKI.NodeKey(ids[0])))
	for i, id := range ids {
		replaceFile(t, c.PKI.NodeKey(id), readFile(t, rotated.NodeKey(id)))
		replaceFile(t, c.PKI.NodeCert(id), readFile(t, rotated.NodeCert(id)))
		if changed, err := c.Nodes[i].ReloadTLS(); err != nil || !changed {
			t.Fatalf("reload of %s's node certificate: changed %v, %v", id, changed, err)
		}
		if !bytes.Equal(c.Nodes[i].NodeCertificate().Raw, pemCert(t, rotated.NodeCert(id)).Raw) {
			t.Fatalf("%s does not report its new node certificate", id)
		}
	}
	relink("the nodes' certificates are replaced")

	// Step 3: the partners move too (the bundle serves both ports), and the old CA leaves it.
	newWriter, err := client.Dial(client.Config{Addr: c.GRPCAddrs(), Retries: 10, Timeout: 20 * time.Second,
		TLS:            mtls.Files{CA: c.PKI.CACert(), Cert: rotated.PartnerCert("de-bka"), Key: rotated.PartnerKey("de-bka")},
		SigningKeyFile: c.PKI.SigningKey("de-bka"), LogKeyFile: c.PKI.LogPub()})
	if err != nil {
		t.Fatal(err)
	}
	defer newWriter.Close()
	stopNew := make(chan struct{})
	waitNew := writer(newWriter, "de.stgb.140", stopNew)
	close(stopOld)
	waitOld()
	replaceFile(t, c.PKI.CACert(), newCA)
	reloadAll("the old CA leaves the bundle")
	relink("the old CA left the bundle")

	// A node certificate of the old CA is refused on every raft port now.
	stale, err := mtls.NodeConfig(mtls.Files{CA: rotated.CACert(), Cert: oldNodeCert, Key: oldNodeKey}, identity.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range c.Nodes {
		conf := stale.Client.Clone()
		conf.NextProtos = []string{"concord-raft/1"}
		conn, err := tls.Dial("tcp", n.RaftAddr(), conf)
		if err == nil {
			// TLS 1.3: the server's verdict on the client certificate comes after the handshake.
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("%s's raft port took a node certificate of the CA dropped from the bundle: %v", ids[i], err)
		}
	}
	close(stopNew)
	waitNew()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d writes failed during the rotation; first: %v", failed.Load(), written.Load(), firstErr.Load())
	}
	t.Logf("%d writes during the rotation, none failed", written.Load())
}
