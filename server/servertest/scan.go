package servertest

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"concord/internal/pki"
)

// Secrets are what no log may show, each in every encoding a careless line could write it in:
// encoding → what it reveals.
type Secrets map[string]string

// Add adds b in hex (both cases), base64 (standard and URL; raw base64 is a prefix of padded
// base64, so one check finds both) and Go's %v of a byte slice.
func (s Secrets) Add(what string, b []byte) {
	for _, enc := range []string{hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)), base64.RawStdEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b), strings.TrimSuffix(fmt.Sprint(b[:min(len(b), 12)]), "]")} {
		s[enc] = what
	}
}

// AddPKI adds every private key of the PKI in layout: the PEM keys (their bodies), the log's
// note signer key, and the partners' Ed25519 signing keys (seed and whole key).
func (s Secrets) AddPKI(layout pki.Layout, partners []string) error {
	s["PRIVATE KEY-----"] = "a PEM private key"
	err := filepath.WalkDir(layout.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".key") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if block, _ := pem.Decode(b); block != nil {
			s.Add(path, block.Bytes)
			return nil
		}
		// A note signer key: PRIVATE+KEY+name+hash+key.
		f := strings.SplitN(strings.TrimSpace(string(b)), "+", 5)
		if len(f) != 5 || len(f[4]) < 16 {
			return fmt.Errorf("%s: neither PEM nor a note signer key", path)
		}
		s[f[4]] = path
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range partners {
		key, err := pki.LoadSigningKey(layout.SigningKey(p))
		if err != nil {
			return err
		}
		s.Add(p+"'s signing key seed", key.Seed())
		s.Add(p+"'s signing key", key)
	}
	return nil
}

// Find describes each secret text holds.
func (s Secrets) Find(text string) []string {
	var found []string
	for enc, what := range s {
		if i := strings.Index(text, enc); i >= 0 {
			found = append(found, fmt.Sprintf("%s (%q) at %q", what, enc, text[max(0, i-80):min(len(text), i+len(enc)+20)]))
		}
	}
	return found
}

// secretScan is the default log of a test node: it keeps no line, but fails the test if one
// holds a private key of the node's PKI, so that every test that runs a node also checks what
// it logs.
type secretScan struct {
	secrets Secrets

	mu    sync.Mutex
	found []string
}

// newSecretScan returns the scan of what a node using the PKI in layout logs, and registers the
// check of its findings at the end of t (after the node has stopped).
func newSecretScan(t testing.TB, layout pki.Layout, partners []string) *slog.Logger {
	t.Helper()
	s := &secretScan{secrets: Secrets{}}
	if err := s.secrets.AddPKI(layout, partners); err != nil {
		t.Fatalf("secret scan: %v", err)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, f := range s.found {
			t.Errorf("the node logged a secret: %s", f)
		}
	})
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func (s *secretScan) Write(p []byte) (int, error) {
	if found := s.secrets.Find(string(p)); len(found) > 0 {
		s.mu.Lock()
		s.found = append(s.found, found...)
		s.mu.Unlock()
	}
	return len(p), nil
}
