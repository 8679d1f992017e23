// Package python_test runs the Python SDK's tests against a real Concord node.
package python_test

import (
	"context"
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/pki"
	"concord/server/servertest"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestPythonSDK runs clients/python/tests with Debian's python3 and its grpcio, protobuf and
// cryptography packages ('make python-deps' installs them; a missing one fails the test).
func TestPythonSDK(t *testing.T) {
	python, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		t.Fatal("/usr/bin/python3 not found: the Python SDK's tests run with Debian's python3 ('make python-deps')")
	}
	if out, err := exec.Command(python, "-c", "import grpc, google.protobuf, cryptography").CombinedOutput(); err != nil {
		t.Fatalf("the Python SDK needs python3-grpcio, python3-protobuf and python3-cryptography: run 'make python-deps'\n%s", out)
	}
	n := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-m", "unittest", "discover", "-s", "tests", "-v")
	cmd.Env = append(os.Environ(), "PYTHONPATH=.", "CONCORD_ADDR="+n.GRPCAddr(), "CONCORD_PKI="+n.PKI.Dir, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// canonicalNotice is the notice tests/agree.py builds in Python, field for field.
func canonicalNotice() *concordv1.Notice {
	value := func(from byte) []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = from + byte(i)
		}
		return b
	}
	return &concordv1.Notice{
		NoticeId: "01JD5Z3Y5JXY5S42V2W0X9Y8Z7", Issuer: "fr-pharos", Jurisdiction: "FR", LegalBasis: "fr.cp.421-2-5",
		Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION, concordv1.Category_CATEGORY_ATTACK_FOOTAGE},
		Hashes: []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: value(0), Quality: 92},
			{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: value(32)}},
		Context: "Glorification de l'attentat — reposted with new captions ✓", Tlp: concordv1.TLP_TLP_AMBER,
		SharingGroup: []string{"DE", "videoshare"}, RemovalDeadline: durationpb.New(time.Hour), PreservationRequested: true,
		CounterNarratives: []*concordv1.CounterNarrative{{Url: "https://example.org/cn", Language: "fr", Title: "Réponse"}},
		CreatedAt:         &timestamppb.Timestamp{Seconds: 1764806400, Nanos: 123000000},
	}
}

// TestCrossLanguageAgreement: the same notice signed with the same key in Go and in Python gives
// byte-identical envelopes (deterministic serialization, Ed25519 deterministic signatures), and
// each side verifies the other's.
func TestCrossLanguageAgreement(t *testing.T) {
	dir := t.TempDir()
	layout := pki.Layout{Dir: filepath.Join(dir, "certs")}
	if _, err := pki.Init(pki.Options{Dir: layout.Dir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: []string{"fr-pharos"}}); err != nil {
		t.Fatal(err)
	}
	key, err := pki.LoadSigningKey(layout.SigningKey("fr-pharos"))
	if err != nil {
		t.Fatal(err)
	}
	goEnv, err := dsse.SignMessage(dsse.PayloadTypeNotice, canonicalNotice(), dsse.NewSigner(key))
	if err != nil {
		t.Fatal(err)
	}
	goFile, pyFile := filepath.Join(dir, "go.env"), filepath.Join(dir, "py.env")
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(goEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", "tests/agree.py", layout.SigningKey("fr-pharos"), goFile, pyFile)
	cmd.Env = append(os.Environ(), "PYTHONPATH=.", "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tests/agree.py: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(pyFile)
	if err != nil {
		t.Fatal(err)
	}
	pyEnv := &concordv1.Envelope{}
	if err := proto.Unmarshal(raw, pyEnv); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(pyEnv, goEnv) {
		t.Fatalf("Python's envelope differs from Go's:\n python %x\n go     %x", pyEnv.GetPayload(), goEnv.GetPayload())
	}
	pub := key.Public().(ed25519.PublicKey)
	if s := pyEnv.GetSignatures()[0]; s.GetKeyid() != dsse.KeyID(pub) || !ed25519.Verify(pub, dsse.PAE(pyEnv.GetPayloadType(), pyEnv.GetPayload()), s.GetSig()) {
		t.Fatal("Python's signature does not verify in Go")
	}
	t.Logf("%s", out)
}
