// Package agreement holds the statement the SDKs' cross-language tests sign in every language:
// clients/python/tests/agree.py and clients/typescript/src/agree.ts build the same one, field
// for field, and the Go tests check that the envelopes are byte-identical.
package agreement

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"

	"google.golang.org/protobuf/proto"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Notice is the canonical notice: every kind of field (enums, repeated messages, bytes,
// well-known types, non-ASCII text).
func Notice() *concordv1.Notice {
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

// Check signs Notice with the Ed25519 key in keyFile, hands the envelope to the other
// language's program run (its arguments: the key file, the Go envelope's file, the file it
// writes its own envelope to; it checks the Go envelope itself), and checks that its envelope
// is the same, byte for byte, and that its signature verifies. It returns what the program
// printed.
func Check(keyFile string, dir string, run func(args ...string) ([]byte, error)) (string, error) {
	key, err := pki.LoadSigningKey(keyFile)
	if err != nil {
		return "", err
	}
	goEnv, err := dsse.SignMessage(dsse.PayloadTypeNotice, Notice(), dsse.NewSigner(key))
	if err != nil {
		return "", err
	}
	goFile, theirFile := filepath.Join(dir, "go.env"), filepath.Join(dir, "their.env")
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(goEnv)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(goFile, b, 0o600); err != nil {
		return "", err
	}
	out, err := run(keyFile, goFile, theirFile)
	if err != nil {
		return string(out), fmt.Errorf("%w\n%s", err, out)
	}
	raw, err := os.ReadFile(theirFile)
	if err != nil {
		return string(out), err
	}
	theirs := &concordv1.Envelope{}
	if err := proto.Unmarshal(raw, theirs); err != nil {
		return string(out), err
	}
	if !proto.Equal(theirs, goEnv) {
		return string(out), fmt.Errorf("the envelope differs from Go's:\n theirs %x\n go     %x", theirs.GetPayload(), goEnv.GetPayload())
	}
	pub := key.Public().(ed25519.PublicKey)
	if s := theirs.GetSignatures(); len(s) != 1 || s[0].GetKeyid() != dsse.KeyID(pub) ||
		!ed25519.Verify(pub, dsse.PAE(theirs.GetPayloadType(), theirs.GetPayload()), s[0].GetSig()) {
		return string(out), fmt.Errorf("its signature does not verify in Go")
	}
	return string(out), nil
}
