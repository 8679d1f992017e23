package main

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/internal/registryfile"
)

// TestTLSFilesAreReloaded: `concord serve` reads its partners' CA bundle again with no restart,
// on SIGHUP (its file watch set to an hour, so only the signal can do it) and, without a
// signal, when its watch sees the file change: a partner certificate of a new CA is refused
// before and accepted after, by the same process.
func TestTLSFilesAreReloaded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		watch  string
		signal bool
	}{{"SIGHUP", "1h", true}, {"file watch", "200ms", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reloadsCABundle(t, tc.watch, tc.signal)
		})
	}
}

func reloadsCABundle(t *testing.T, watch string, hup bool) {
	dir := t.TempDir()
	certs := testPKI(t, dir)
	n := startServe(t, dir, "--tls-reload", watch)
	newDir := t.TempDir()
	if _, err := pki.Init(pki.Options{Dir: newDir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: registryfile.ExamplePartnerIDs()}); err != nil {
		t.Fatal(err)
	}
	rotated := pki.Layout{Dir: newDir}
	serverCA := filepath.Join(t.TempDir(), "server-ca.pem") // the node's server certificate stays
	oldCA, err := os.ReadFile(certs.CACert())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(serverCA, oldCA, 0o644); err != nil {
		t.Fatal(err)
	}
	// Each try on a new connection: a refused handshake must not hold the next one back.
	whoAmI := func() error {
		c, err := client.Dial(client.Config{Addrs: []string{n.grpcAddr}, Retries: -1,
			TLS: mtls.Files{CA: serverCA, Cert: rotated.PartnerCert("de-bka"), Key: rotated.PartnerKey("de-bka")}})
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = c.Registry.WhoAmI(ctx, &concordv1.WhoAmIRequest{})
		return err
	}
	if whoAmI() == nil {
		t.Fatal("a partner certificate of an untrusted CA was accepted")
	}
	newCA, err := os.ReadFile(rotated.CACert())
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(certs.CACert()), "bundle.new")
	if err := os.WriteFile(tmp, append(oldCA, newCA...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, certs.CACert()); err != nil {
		t.Fatal(err)
	}
	if hup {
		if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the new CA to be trusted", func() bool { return whoAmI() == nil })
	if err := n.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the node is gone after the reload: %v", err)
	}
}
