package pki

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"

	formats "github.com/transparency-dev/formats/note"
)

// checkCosignatureKey checks that vkey is a C2SP tlog-cosignature verifier key: type 0x04 and
// the key hash SHA-256(name || 0x0A || 0x04 || key)[:4].
func checkCosignatureKey(t *testing.T, vkey string) {
	t.Helper()
	name, rest, _ := strings.Cut(vkey, "+")
	hash, key64, _ := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) != 33 || key[0] != 0x04 {
		t.Fatalf("witness key %q: not of type 0x04", vkey)
	}
	sum := sha256.Sum256(append([]byte(name+"\n"), key...))
	if want := fmt.Sprintf("%08x", binary.BigEndian.Uint32(sum[:4])); hash != want {
		t.Fatalf("witness key %q: hash %s, want %s", vkey, hash, want)
	}
}

// TestWitnessKeysInCosignatureForm: the dev PKI writes witness verifier keys as C2SP
// tlog-cosignature keys (type 0x04), which match the signer's cosignatures; one an older
// Concord wrote in the plain Ed25519 note form is rewritten, the signer key kept.
func TestWitnessKeysInCosignatureForm(t *testing.T) {
	dir := t.TempDir()
	mustInit(t, Options{Dir: dir, PartnerIDs: []string{"observatory"}})
	l := Layout{Dir: dir}
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	vkey, skey := read(l.WitnessPub("observatory")), read(l.WitnessKey("observatory"))
	checkCosignatureKey(t, vkey)
	signer, err := formats.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := formats.NewVerifierForCosignatureV1(vkey)
	if err != nil || verifier.KeyHash() != signer.KeyHash() || verifier.Name() != signer.Name() {
		t.Fatalf("the verifier key %s does not name the signer's key (%v)", vkey, err)
	}
	// The log key stays a plain Ed25519 note key (checkpoints are signed notes).
	logKey := strings.SplitN(read(l.LogPub()), "+", 3) // the base64 key may hold '+' too
	if raw, err := base64.StdEncoding.DecodeString(logKey[len(logKey)-1]); len(logKey) != 3 || err != nil || raw[0] != 0x01 {
		t.Fatalf("the log key %s is not an Ed25519 note key", read(l.LogPub()))
	}
	// A PKI written before: the 0x01 form of the same key.
	old, err := logVerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.WitnessPub("observatory"), []byte(old+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustInit(t, Options{Dir: dir, PartnerIDs: []string{"observatory"}})
	if got := read(l.WitnessPub("observatory")); got != vkey || read(l.WitnessKey("observatory")) != skey {
		t.Fatalf("after Init over an old PKI: witness.pub %s (want %s), signer key changed: %v", got, vkey, read(l.WitnessKey("observatory")) != skey)
	}
}
