package dsse

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	concordv1 "concord/gen/concord/v1"
)

// refusals are the errors Verify's errors wrap, one each.
var refusals = []error{ErrPayloadType, ErrNoSignature, ErrUnknownKey, ErrKeyNotYetValid, ErrKeyExpired, ErrKeyRevoked, ErrBadSignature}

// FuzzEnvelope feeds envelopes, as they arrive on the wire, to Verify. Every refusal wraps
// exactly one of the package's errors, and the replay path (CheckSignatures, then VerifyChecked)
// judges every envelope as Verify does. An envelope that verifies still verifies, with the same
// digest, after a round trip through the wire, and with any one bit of its payload type, payload,
// key ids or signatures flipped it is refused.
func FuzzEnvelope(f *testing.F) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	priv, key := newKey(f, 1)
	cosigner, cokey := newKey(f, 2)
	revokedPriv, revoked := newKey(f, 3)
	revoked.RevokedAt = timestamppb.New(now.Add(-time.Hour))
	unknown, _ := newKey(f, 4)
	ring := keyring{key.KeyId: key, cokey.KeyId: cokey, revoked.KeyId: revoked}

	created := timestamppb.New(now.Add(-time.Minute))
	statements := []struct {
		payloadType string
		msg         proto.Message
	}{
		{PayloadTypeNotice, &concordv1.Notice{NoticeId: "01KB9Q0000XY5S42000000NTC1", Issuer: "fr-pharos", Jurisdiction: "FR",
			LegalBasis: "fr.cp.421-2-5", Categories: []concordv1.Category{concordv1.Category_CATEGORY_INCITEMENT},
			Hashes: []*concordv1.Hash{
				{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: bytes.Repeat([]byte{0x5a}, 32)},
				{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: bytes.Repeat([]byte{0xa5}, 32), Quality: 92},
			}, RemovalDeadline: durationpb.New(time.Hour), CreatedAt: created}},
		{PayloadTypeEndorsement, &concordv1.Endorsement{EndorsementId: "01KB9Q000073ZAZ8000000END1", NoticeId: "01KB9Q0000XY5S42000000NTC1",
			Author: "de-bka", Jurisdiction: "DE", LegalBasis: "de.stgb.111", CreatedAt: created}},
		{PayloadTypeObjection, &concordv1.Objection{ObjectionId: "01KB9Q00003TSFHZ0000000BJ1", NoticeId: "01KB9Q0000XY5S42000000NTC1",
			Author: "be-fedpol", Jurisdiction: "BE", Reason: "protected political speech", CreatedAt: created}},
		{PayloadTypeWithdrawal, &concordv1.Withdrawal{WithdrawalId: "01KB9Q0000XY5S42000000WDR1", NoticeId: "01KB9Q0000XY5S42000000NTC1",
			Author: "fr-pharos", Reason: "issued in error", Reinstate: true, CreatedAt: created}},
		{PayloadTypeActionReport, &concordv1.ActionReport{ReportId: "01KB9Q0000JM1VVX000000ACT1", NoticeId: "01KB9Q0000XY5S42000000NTC1",
			Reporter: "videoshare", Jurisdictions: []string{"FR"}, Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, OccurredAt: created}},
		{PayloadTypeRegistryChange, &concordv1.RegistryChange{ChangeId: "01KB9Q0000QNF6QK000000REG1", Author: "hub-ops", CreatedAt: created,
			Change: &concordv1.RegistryChange_RevokeSigningKey{RevokeSigningKey: &concordv1.RevokeSigningKey{PartnerId: "socialnet", KeyId: key.KeyId, Reason: "key lost"}}}},
	}
	seed := func(env *concordv1.Envelope, err error) {
		if err != nil {
			f.Fatal(err)
		}
		wire, err := proto.Marshal(env)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire, uint32(len(wire))*2654435761)
	}
	for _, s := range statements {
		seed(SignMessage(s.payloadType, s.msg, NewSigner(priv)))
	}
	seed(SignMessage(PayloadTypeNotice, statements[0].msg, NewSigner(priv), NewSigner(cosigner)))
	seed(SignMessage(PayloadTypeNotice, statements[0].msg, NewSigner(revokedPriv)))
	seed(SignMessage(PayloadTypeNotice, statements[0].msg, NewSigner(unknown)))
	seed(&concordv1.Envelope{PayloadType: PayloadTypeNotice, Payload: []byte("x")}, nil)

	f.Fuzz(func(t *testing.T, wire []byte, flip uint32) {
		env := &concordv1.Envelope{}
		if proto.Unmarshal(wire, env) != nil {
			return
		}
		payloadType := env.GetPayloadType()
		if flip&1 == 0 {
			payloadType = PayloadTypeNotice // sometimes the type the caller expects differs
		}
		keys, err := Verify(env, payloadType, ring.lookup, now)
		checked, cerr := VerifyChecked(env, payloadType, ring.lookup, now, CheckSignatures(env, ring.lookup))
		if (err == nil) != (cerr == nil) || refusalOf(t, err) != refusalOf(t, cerr) || len(keys) != len(checked) {
			t.Fatalf("Verify says %v, the replay path %v", err, cerr)
		}
		if err != nil {
			return
		}
		sigs := env.GetSignatures()
		if len(keys) != len(sigs) {
			t.Fatalf("%d keys for %d signatures", len(keys), len(sigs))
		}
		for i, k := range keys {
			if k.GetKeyId() != sigs[i].GetKeyid() || k.GetRevokedAt() != nil {
				t.Fatalf("signature %d by %s verified with key %v", i, sigs[i].GetKeyid(), k)
			}
		}

		again, err := proto.Marshal(env)
		if err != nil {
			t.Fatalf("a verified envelope does not serialise: %v", err)
		}
		back := &concordv1.Envelope{}
		if err := proto.Unmarshal(again, back); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(back, payloadType, ring.lookup, now); err != nil {
			t.Fatalf("a verified envelope does not verify after a round trip: %v", err)
		}
		if !bytes.Equal(Digest(back), Digest(env)) {
			t.Fatal("a round trip changed the digest")
		}

		bad := flipBit(env, flip>>1)
		if _, err := Verify(bad, payloadType, ring.lookup, now); err == nil {
			t.Fatalf("an envelope with a flipped bit verifies: %v", bad)
		}
		if bytes.Equal(Digest(bad), Digest(env)) {
			t.Fatal("a flipped bit kept the digest")
		}
	})
}

// refusalOf is the one package error err wraps (nil for nil).
func refusalOf(t *testing.T, err error) error {
	t.Helper()
	if err == nil {
		return nil
	}
	var found error
	for _, r := range refusals {
		if errors.Is(err, r) {
			if found != nil {
				t.Fatalf("%v wraps both %v and %v", err, found, r)
			}
			found = r
		}
	}
	if found == nil {
		t.Fatalf("%v wraps none of the package's errors", err)
	}
	return found
}

// flipBit returns env with one bit flipped in its payload type, payload, or one of its key ids
// or signatures, chosen by flip.
func flipBit(env *concordv1.Envelope, flip uint32) *concordv1.Envelope {
	e := proto.CloneOf(env)
	fields := [][]byte{[]byte(e.PayloadType), e.Payload}
	for _, s := range e.Signatures {
		fields = append(fields, []byte(s.Keyid), s.Sig)
	}
	total := 0
	for _, b := range fields {
		total += len(b)
	}
	if total == 0 {
		return e
	}
	pos, bit := int(flip%uint32(total)), byte(1)<<(flip/uint32(total)%8)
	for _, b := range fields {
		if pos < len(b) {
			b[pos] ^= bit
			break
		}
		pos -= len(b)
	}
	e.PayloadType = string(fields[0])
	for i, s := range e.Signatures {
		s.Keyid = string(fields[2+2*i])
	}
	return e
}
