// Package statetest gives the services' tests what a node holds without starting one: a state
// store bootstrapped with the example registry of `concord dev`, the signing keys of its partners,
// a raft stand-in that commits nothing, and real statements of every kind. The fuzz targets of
// the write RPCs start from these statements.
package statetest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/pki"
	"concord/internal/registryfile"
	"concord/server/authz"
	"concord/server/fault"
	"concord/server/state"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// At is the fixture's clock: the registry is bootstrapped an hour before, and the services are
// given At as their now.
var At = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// NoticeID is the notice Node.SubmitNotice stores, which the other statements concern. Characters
// 11 to 16 of each statement id here are its author's statement id tag, derived from the partner
// id (XY5S42 for fr-pharos, 73ZAZ8 de-bka, 3TSFHZ be-fedpol, JM1VVX videoshare, QNF6QK hub-ops).
const NoticeID = "01KB9Q0000XY5S42000000NTC1"

// Node is a bootstrapped state store and the partners' signing and witness keys.
type Node struct {
	Store     *state.Store
	signers   map[string]dsse.Signer
	witnesses map[string]note.Signer
	index     uint64 // the last raft index used
}

// New returns a store bootstrapped with the example registry (read with a dev PKI made in a
// temporary directory), each partner with one signing key of the fixture's.
func New(tb testing.TB) *Node {
	tb.Helper()
	dir := tb.TempDir()
	if _, err := pki.Init(pki.Options{Dir: dir, PartnerIDs: registryfile.ExamplePartnerIDs()}); err != nil {
		tb.Fatalf("dev PKI: %v", err)
	}
	reg, err := registryfile.Parse(registryfile.Example(), dir)
	if err != nil {
		tb.Fatalf("example registry: %v", err)
	}
	// The dev PKI's keys are random; the fixture's signing and witness keys are derived from the
	// partner ids, so that every process signs alike and an input a fuzzer saves replays anywhere.
	keys := map[string]ed25519.PrivateKey{}
	witnesses := map[string]note.Signer{}
	for _, p := range reg.Partners {
		seed := sha256.Sum256([]byte("concord statetest signing key " + p.GetId()))
		keys[p.GetId()] = ed25519.NewKeyFromSeed(seed[:])
		for _, k := range p.GetSigningKeys() {
			k.PublicKey = keys[p.GetId()].Public().(ed25519.PublicKey)
		}
		if p.GetWitnessKey() != "" {
			name, _, _ := strings.Cut(p.GetWitnessKey(), "+")
			signer, vkey := noteKey(tb, name, "witness key "+p.GetId(), true)
			witnesses[p.GetId()], p.WitnessKey = signer, vkey
		}
	}
	st, err := state.New()
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.BootstrapRegistry(1, &statev1.BootstrapRegistry{Partners: reg.Partners, Jurisdictions: reg.Jurisdictions,
		SigningKeys: reg.SigningKeys, At: timestamppb.New(At.Add(-time.Hour))}); err != nil {
		tb.Fatalf("bootstrap: %v", err)
	}
	n := &Node{Store: st, signers: map[string]dsse.Signer{}, witnesses: witnesses, index: 1}
	for id, key := range keys {
		n.signers[id] = dsse.NewSigner(key)
	}
	return n
}

// Now is the services' clock.
func (n *Node) Now() time.Time { return At }

// State returns the store, as the services read it.
func (n *Node) State() *state.Store { return n.Store }

// Signer is a partner's signing key.
func (n *Node) Signer(partner string) dsse.Signer { return n.signers[partner] }

// Witness is the cosigning key of a partner that runs a witness (its registered witness_key).
func (n *Node) Witness(partner string) note.Signer { return n.witnesses[partner] }

// LogKey is a log key, the same in every process.
func LogKey(tb testing.TB) (note.Signer, note.Verifier) {
	signer, vkey := noteKey(tb, pki.LogOrigin(identity.DefaultTrustDomain), "log key", false)
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return signer, v
}

// LogVerifierKey is LogKey's verifier key, as a witness is configured with it.
func LogVerifierKey(tb testing.TB) string {
	_, vkey := noteKey(tb, pki.LogOrigin(identity.DefaultTrustDomain), "log key", false)
	return vkey
}

// noteKey derives a note key named name from label: a cosignature/v1 signer (C2SP
// tlog-cosignature) for a witness, else a plain note signer. It returns the verifier key too.
func noteKey(tb testing.TB, name, label string, cosigner bool) (note.Signer, string) {
	tb.Helper()
	skey, vkey, err := note.GenerateKey(rand.NewChaCha8(sha256.Sum256([]byte("concord statetest "+label))), name)
	if err != nil {
		tb.Fatal(err)
	}
	var signer note.Signer
	if cosigner {
		signer, err = formats.NewSignerForCosignatureV1(skey)
	} else {
		signer, err = note.NewSigner(skey)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return signer, vkey
}

// Caller is the context of a call by partner, as the ports put it after the handshake.
func (n *Node) Caller(partner string) context.Context {
	p, err := n.Store.Partner(nil, partner)
	if err != nil || p == nil {
		panic(fmt.Sprintf("statetest: partner %q: %v", partner, err))
	}
	return authz.WithCaller(context.Background(), &authz.Caller{PartnerID: partner, Partner: p})
}

// Sign signs payload as partner.
func (n *Node) Sign(payloadType string, payload []byte, partner string) *concordv1.Envelope {
	env, err := dsse.Sign(payloadType, payload, n.signers[partner])
	if err != nil {
		panic(fmt.Sprintf("statetest: sign as %s: %v", partner, err))
	}
	return env
}

// SignMessage signs msg as partner.
func (n *Node) SignMessage(tb testing.TB, payloadType string, msg proto.Message, partner string) *concordv1.Envelope {
	tb.Helper()
	env, err := dsse.SignMessage(payloadType, msg, n.signers[partner])
	if err != nil {
		tb.Fatal(err)
	}
	return env
}

// SubmitNotice stores Notice() as accepted, as the FSM would after a SubmitNotice.
func (n *Node) SubmitNotice(tb testing.TB) {
	tb.Helper()
	msg := Notice()
	env := n.SignMessage(tb, dsse.PayloadTypeNotice, msg, msg.GetIssuer())
	n.index++
	if _, _, _, err := n.Store.SubmitNotice(n.index, msg, &statev1.SubmitNotice{Envelope: env,
		SignerKeyId: n.signers[msg.GetIssuer()].KeyID(), At: timestamppb.New(At.Add(-time.Minute))}); err != nil {
		tb.Fatalf("submit notice: %v", err)
	}
}

// Notice is a notice of fr-pharos under French law: INCITEMENT, which Germany covers but does not
// recognise (so de-bka may endorse it) and Belgium recognises (so be-fedpol may object).
func Notice() *concordv1.Notice {
	return &concordv1.Notice{
		NoticeId:     NoticeID,
		Issuer:       "fr-pharos",
		Jurisdiction: "FR",
		LegalBasis:   "fr.cp.421-2-5",
		Categories:   []concordv1.Category{concordv1.Category_CATEGORY_INCITEMENT},
		Hashes: []*concordv1.Hash{
			{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: repeat(0x5a, 32)},
			{Kind: concordv1.HashKind_HASH_KIND_MD5, Value: repeat(0x3c, 16)},
			{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: repeat(0xa5, 32), Quality: 92},
			{Kind: concordv1.HashKind_HASH_KIND_PDQ_VIDEO, Value: repeat(0x96, 96), Quality: 80},
			{Kind: concordv1.HashKind_HASH_KIND_URL_SHA256, Value: repeat(0x11, 32)},
		},
		RemovalDeadline: durationpb.New(30 * time.Minute),
		CreatedAt:       timestamppb.New(At.Add(-2 * time.Minute)),
	}
}

// NextNotice is another notice of fr-pharos, superseding Notice().
func NextNotice() *concordv1.Notice {
	n := Notice()
	n.NoticeId = "01KB9Q0000XY5S42000000NTC2"
	n.Supersedes = NoticeID
	n.Tlp = concordv1.TLP_TLP_CLEAR
	return n
}

// Endorsement is de-bka's endorsement of NoticeID under German law.
func Endorsement() *concordv1.Endorsement {
	return &concordv1.Endorsement{EndorsementId: "01KB9Q000073ZAZ8000000END1", NoticeId: NoticeID, Author: "de-bka",
		Jurisdiction: "DE", LegalBasis: "de.stgb.111", CreatedAt: timestamppb.New(At)}
}

// Objection is be-fedpol's objection to NoticeID in Belgium.
func Objection() *concordv1.Objection {
	return &concordv1.Objection{ObjectionId: "01KB9Q00003TSFHZ0000000BJ1", NoticeId: NoticeID, Author: "be-fedpol",
		Jurisdiction: "BE", Reason: "protected political speech under Belgian law", CreatedAt: timestamppb.New(At)}
}

// Withdrawal is fr-pharos's withdrawal of NoticeID.
func Withdrawal() *concordv1.Withdrawal {
	return &concordv1.Withdrawal{WithdrawalId: "01KB9Q0000XY5S42000000WDR1", NoticeId: NoticeID, Author: "fr-pharos",
		Reason: "issued in error", Reinstate: true, CreatedAt: timestamppb.New(At)}
}

// ActionReport is videoshare's report that it removed NoticeID's content in France.
func ActionReport() *concordv1.ActionReport {
	return &concordv1.ActionReport{ReportId: "01KB9Q0000JM1VVX000000ACT1", NoticeId: NoticeID, Reporter: "videoshare",
		Jurisdictions: []string{"FR"}, Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED,
		OccurredAt: timestamppb.New(At.Add(-time.Minute)), Items: 3}
}

// RegistryChanges are hub-ops's changes of each kind: a new partner, a key for it, a key revoked,
// a jurisdiction replaced.
func RegistryChanges(n *Node) []*concordv1.RegistryChange {
	change := func(id string, c *concordv1.RegistryChange) *concordv1.RegistryChange {
		c.ChangeId, c.Author, c.CreatedAt = id, "hub-ops", timestamppb.New(At)
		return c
	}
	return []*concordv1.RegistryChange{
		change("01KB9Q0000QNF6QK000000REG1", &concordv1.RegistryChange{Change: &concordv1.RegistryChange_UpsertPartner{
			UpsertPartner: &concordv1.Partner{Id: "nl-politie", DisplayName: "Politie (example)", Roles: []concordv1.Role{concordv1.Role_ROLE_AUDITOR}}}}),
		change("01KB9Q0000QNF6QK000000REG2", &concordv1.RegistryChange{Change: &concordv1.RegistryChange_AddSigningKey{
			AddSigningKey: &concordv1.AddSigningKey{PartnerId: "socialnet", PublicKey: repeat(0x42, 32),
				NotBefore: timestamppb.New(At), NotAfter: timestamppb.New(At.Add(365 * 24 * time.Hour))}}}),
		change("01KB9Q0000QNF6QK000000REG3", &concordv1.RegistryChange{Change: &concordv1.RegistryChange_RevokeSigningKey{
			RevokeSigningKey: &concordv1.RevokeSigningKey{PartnerId: "socialnet", KeyId: n.Signer("socialnet").KeyID(), Reason: "key lost"}}}),
		change("01KB9Q0000QNF6QK000000REG4", &concordv1.RegistryChange{Change: &concordv1.RegistryChange_SetJurisdiction{
			SetJurisdiction: &concordv1.Jurisdiction{Code: "NL", Name: "Netherlands", Example: true,
				Provisions: []*concordv1.LegalProvision{{Id: "nl.sr.131", Citation: "Sr. art. 131", Categories: []concordv1.Category{concordv1.Category_CATEGORY_INCITEMENT}}},
				Policy:     &concordv1.JurisdictionPolicy{DefaultRemovalDeadline: durationpb.New(time.Hour)}}}}),
	}
}

func repeat(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// ErrNotCommitted is what Raft answers to every command.
var ErrNotCommitted = errors.New("statetest: the command reached raft and was not committed")

// Raft stands in for a node's raft: it keeps each command it is given and commits none, so a
// test sees exactly what a service would have committed and the store never changes.
type Raft struct{ Commands [][]byte }

// Apply records cmd and refuses it with ErrNotCommitted.
func (r *Raft) Apply(_ context.Context, cmd []byte) (uint64, any, error) {
	r.Commands = append(r.Commands, cmd)
	return 0, nil, ErrNotCommitted
}

// Take returns the commands recorded since the last Take, and forgets them.
func (r *Raft) Take() [][]byte {
	cmds := r.Commands
	r.Commands = nil
	return cmds
}

// Refusal reports whether err is a refusal that tells the caller what to fix: a fault with a
// code a client acts on. Anything else (a plain error, an internal fault) is the hub's failure.
func Refusal(err error) bool {
	var f *fault.Error
	if !errors.As(err, &f) {
		return false
	}
	switch f.Code {
	case codes.InvalidArgument, codes.PermissionDenied, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition:
		return f.Msg != ""
	}
	return false
}
