package servertest

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"concord/internal/pki"
)

// secretScan is the default log of a test node: it keeps no line, but fails the test if one
// holds a private key of the node's PKI (a PEM block, a key file's bytes, a partner's Ed25519
// signing key in hex or base64), so that every test that runs a node also checks what it logs.
type secretScan struct {
	needles map[string]string // text → what it reveals

	mu    sync.Mutex
	found []string
}

// newSecretScan returns the scan of what a node using the PKI in layout logs, and registers the
// check of its findings at the end of t (after the node has stopped).
func newSecretScan(t testing.TB, layout pki.Layout, partners []string) *slog.Logger {
	t.Helper()
	s := &secretScan{needles: map[string]string{"PRIVATE KEY-----": "a PEM private key"}}
	add := func(what string, b []byte) {
		for _, enc := range []string{hex.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)} {
			s.needles[enc] = what
		}
	}
	err := filepath.WalkDir(layout.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".key") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if block, _ := pem.Decode(b); block != nil {
			add(path, block.Bytes)
		} else if f := strings.SplitN(strings.TrimSpace(string(b)), "+", 5); len(f) == 5 && len(f[4]) >= 16 {
			s.needles[f[4]] = path // a note signer key: PRIVATE+KEY+name+hash+key
		}
		return nil
	})
	if err != nil {
		t.Fatalf("secret scan: %v", err)
	}
	for _, p := range partners {
		if key, err := pki.LoadSigningKey(layout.SigningKey(p)); err == nil {
			add(p+"'s signing key seed", key.Seed())
		}
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
	line := string(p)
	for needle, what := range s.needles {
		if strings.Contains(line, needle) {
			s.mu.Lock()
			s.found = append(s.found, what+" in "+strings.ReplaceAll(line, needle, "<"+what+">"))
			s.mu.Unlock()
		}
	}
	return len(p), nil
}
