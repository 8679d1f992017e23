// Package dsse signs and verifies Concord's statements as DSSE envelopes (Dead Simple Signing
// Envelope, protocol v1): each signature is Ed25519 over PAE(payload_type, payload), made with a
// partner's registered signing key. Server and clients share this package, so what a client signs
// is exactly what the server and any auditor verify.
//
// Verification comes before parsing, and the payload is never re-serialized: the signed bytes
// are the statement.
package dsse

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	concordv1 "concord/gen/concord/v1"
)

// The payload types of Concord's statements, one per statement message.
var (
	// PayloadTypeRegistryChange is the payload type of a signed concordv1.RegistryChange.
	PayloadTypeRegistryChange = PayloadType("registry-change")
	// PayloadTypeNotice is the payload type of a signed concordv1.Notice.
	PayloadTypeNotice = PayloadType("notice")
	// PayloadTypeEndorsement is the payload type of a signed concordv1.Endorsement.
	PayloadTypeEndorsement = PayloadType("endorsement")
	// PayloadTypeObjection is the payload type of a signed concordv1.Objection.
	PayloadTypeObjection = PayloadType("objection")
	// PayloadTypeWithdrawal is the payload type of a signed concordv1.Withdrawal.
	PayloadTypeWithdrawal = PayloadType("withdrawal")
	// PayloadTypeActionReport is the payload type of a signed concordv1.ActionReport.
	PayloadTypeActionReport = PayloadType("action-report")
)

var kindPattern = regexp.MustCompile(`^[a-z][a-z-]*$`)

// PayloadType is the DSSE payload type of a Concord statement kind, e.g. "registry-change":
// application/vnd.concord.<kind>.v1+protobuf. It panics on a malformed kind (a programming error).
func PayloadType(kind string) string {
	if !kindPattern.MatchString(kind) {
		panic("dsse: malformed statement kind " + strconv.Quote(kind))
	}
	return "application/vnd.concord." + kind + ".v1+protobuf"
}

// PAE is DSSE's pre-authentication encoding, the bytes a signature covers:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal.
func PAE(payloadType string, payload []byte) []byte {
	t, n := strconv.Itoa(len(payloadType)), strconv.Itoa(len(payload))
	b := make([]byte, 0, len("DSSEv1")+len(t)+len(payloadType)+len(n)+len(payload)+4)
	b = append(b, "DSSEv1 "...)
	b = append(b, t...)
	b = append(b, ' ')
	b = append(b, payloadType...)
	b = append(b, ' ')
	b = append(b, n...)
	b = append(b, ' ')
	return append(b, payload...)
}

// KeyID is a signing key's id: lower-case hex of the first 16 bytes of SHA-256(public key).
// It is derived from the key, never chosen.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// Digest identifies an envelope exactly: SHA-256 over its payload type, payload and every
// signature's key id and bytes, each prefixed by its 8-byte big-endian length so that no two
// envelopes share a digest by moving bytes between fields. Re-sending the same envelope gives the
// same digest; the same statement signed again (Ed25519 is deterministic) does too.
func Digest(env *concordv1.Envelope) []byte {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(env.GetPayloadType()))
	field(env.GetPayload())
	for _, sig := range env.GetSignatures() {
		field([]byte(sig.GetKeyid()))
		field(sig.GetSig())
	}
	return h.Sum(nil)
}

// Signer signs with one Ed25519 key.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer for key.
func NewSigner(key ed25519.PrivateKey) Signer {
	s := Signer{key: key}
	if len(key) == ed25519.PrivateKeySize {
		s.id = KeyID(key.Public().(ed25519.PublicKey))
	}
	return s
}

// KeyID is the id of the signer's key, as the registry lists it.
func (s Signer) KeyID() string { return s.id }

// Public is the signer's public key.
func (s Signer) Public() ed25519.PublicKey {
	if len(s.key) != ed25519.PrivateKeySize {
		return nil
	}
	return s.key.Public().(ed25519.PublicKey)
}

// Sign wraps payload in an envelope signed by every signer, in order; the first is the statement's
// signer, the others co-sign.
func Sign(payloadType string, payload []byte, signers ...Signer) (*concordv1.Envelope, error) {
	if len(signers) == 0 {
		return nil, ErrNoSignature
	}
	if len(payload) == 0 {
		return nil, errors.New("dsse: empty payload")
	}
	pae := PAE(payloadType, payload)
	env := &concordv1.Envelope{Payload: payload, PayloadType: payloadType}
	for _, s := range signers {
		if len(s.key) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("dsse: signing key is %d bytes, want a %d-byte Ed25519 private key", len(s.key), ed25519.PrivateKeySize)
		}
		env.Signatures = append(env.Signatures, &concordv1.Signature{Keyid: s.id, Sig: ed25519.Sign(s.key, pae)})
	}
	return env, nil
}

// SignMessage serializes msg deterministically and signs it. Sign the same message twice and you
// get the same envelope, so a retried write is recognised as the same statement.
func SignMessage(payloadType string, msg proto.Message, signers ...Signer) (*concordv1.Envelope, error) {
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("dsse: serialize statement: %w", err)
	}
	return Sign(payloadType, payload, signers...)
}

// Errors that say why an envelope was refused. Each error Verify returns wraps one of them, with
// the key id and times in its message.
var (
	ErrPayloadType    = errors.New("wrong payload type")
	ErrNoSignature    = errors.New("the envelope has no signature")
	ErrUnknownKey     = errors.New("unknown signing key")
	ErrKeyNotYetValid = errors.New("signing key not yet valid")
	ErrKeyExpired     = errors.New("signing key expired")
	ErrKeyRevoked     = errors.New("signing key revoked")
	ErrBadSignature   = errors.New("bad signature")
)

// KeyLookup returns the registered signing key with an id, or nil (and no error) if there is
// none.
type KeyLookup func(keyID string) (*concordv1.SigningKey, error)

// Verify checks that env carries payloadType and that every signature on it verifies with a
// registered key valid at time at (not before not_before, not after not_after, before revoked_at).
// It returns the keys in signature order; the first is the statement's signer. Every signature
// must verify: an envelope with one bad signature is refused whole.
func Verify(env *concordv1.Envelope, payloadType string, lookup KeyLookup, at time.Time) ([]*concordv1.SigningKey, error) {
	return VerifyChecked(env, payloadType, lookup, at, nil)
}

// Checked records which of an envelope's signatures verified with which key bytes, checked
// ahead of time by CheckSignatures, for that envelope only (its Digest).
type Checked struct {
	digest []byte
	keys   map[string][]byte // key id → the public key its signature verified with
}

// CheckSignatures verifies env's signatures with the public keys lookup knows now, without
// judging whether the keys may sign (Verify does): a replay of many envelopes checks their
// signatures in parallel, then judges each key in order, as the registry stood at each.
func CheckSignatures(env *concordv1.Envelope, lookup KeyLookup) *Checked {
	out := &Checked{digest: Digest(env), keys: map[string][]byte{}}
	pae := PAE(env.GetPayloadType(), env.GetPayload())
	for _, sig := range env.GetSignatures() {
		key, err := lookup(sig.GetKeyid())
		if err != nil || key == nil || len(key.GetPublicKey()) != ed25519.PublicKeySize || len(sig.GetSig()) != ed25519.SignatureSize {
			continue
		}
		if ed25519.Verify(key.GetPublicKey(), pae, sig.GetSig()) {
			out.keys[sig.GetKeyid()] = key.GetPublicKey()
		}
	}
	return out
}

// Has reports whether the signature of key id verified.
func (c *Checked) Has(id string) bool {
	if c == nil {
		return false
	}
	_, ok := c.keys[id]
	return ok
}

// Len is how many signatures verified.
func (c *Checked) Len() int {
	if c == nil {
		return 0
	}
	return len(c.keys)
}

// VerifyChecked is Verify for an envelope some of whose signatures CheckSignatures verified:
// those are not verified again when the key is the same one (same id, same bytes).
func VerifyChecked(env *concordv1.Envelope, payloadType string, lookup KeyLookup, at time.Time, checked *Checked) ([]*concordv1.SigningKey, error) {
	if env.GetPayloadType() != payloadType {
		return nil, fmt.Errorf("%w %q", ErrPayloadType, env.GetPayloadType())
	}
	sigs := env.GetSignatures()
	if len(sigs) == 0 {
		return nil, ErrNoSignature
	}
	pae := PAE(env.GetPayloadType(), env.GetPayload())
	keys := make([]*concordv1.SigningKey, 0, len(sigs))
	seen := make(map[string]bool, len(sigs))
	// A check made for other bytes than these counts for nothing.
	var pre map[string][]byte
	if checked != nil && bytes.Equal(checked.digest, Digest(env)) {
		pre = checked.keys
	}
	for i, sig := range sigs {
		id := sig.GetKeyid()
		if seen[id] {
			return nil, fmt.Errorf("%w: signature %d repeats key %s", ErrBadSignature, i, id)
		}
		seen[id] = true
		key, err := usableKey(lookup, id, at)
		if err != nil {
			return nil, err
		}
		if pub, ok := pre[id]; ok && bytes.Equal(pub, key.GetPublicKey()) {
			keys = append(keys, key)
			continue
		}
		if len(sig.GetSig()) != ed25519.SignatureSize || !ed25519.Verify(key.GetPublicKey(), pae, sig.GetSig()) {
			return nil, fmt.Errorf("%w: signature %d does not verify with key %s over the payload as sent (was the payload changed after signing?)", ErrBadSignature, i, id)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func usableKey(lookup KeyLookup, id string, at time.Time) (*concordv1.SigningKey, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: a signature has no keyid", ErrUnknownKey)
	}
	key, err := lookup(id)
	if err != nil {
		return nil, fmt.Errorf("look up signing key %s: %w", id, err)
	}
	if key == nil {
		return nil, fmt.Errorf("%w %s: no partner has registered it", ErrUnknownKey, id)
	}
	if len(key.GetPublicKey()) != ed25519.PublicKeySize || KeyID(key.GetPublicKey()) != id {
		return nil, fmt.Errorf("%w %s: the registered public key does not have this id", ErrUnknownKey, id)
	}
	const layout = time.RFC3339
	if nb := key.GetNotBefore(); nb != nil && at.Before(nb.AsTime()) {
		return nil, fmt.Errorf("%w: key %s of %s is valid from %s", ErrKeyNotYetValid, id, key.GetPartnerId(), nb.AsTime().UTC().Format(layout))
	}
	if na := key.GetNotAfter(); na != nil && at.After(na.AsTime()) {
		return nil, fmt.Errorf("%w: key %s of %s expired at %s", ErrKeyExpired, id, key.GetPartnerId(), na.AsTime().UTC().Format(layout))
	}
	if r := key.GetRevokedAt(); r != nil && !at.Before(r.AsTime()) {
		reason := key.GetRevocationReason()
		if reason == "" {
			reason = "no reason given"
		}
		return nil, fmt.Errorf("%w: key %s of %s was revoked at %s (%s)", ErrKeyRevoked, id, key.GetPartnerId(), r.AsTime().UTC().Format(layout), reason)
	}
	return key, nil
}

// Open verifies env (see Verify) and only then parses its payload into msg. It returns the
// signer's key: that of the first signature.
func Open(env *concordv1.Envelope, payloadType string, lookup KeyLookup, at time.Time, msg proto.Message) (*concordv1.SigningKey, error) {
	keys, err := Verify(env, payloadType, lookup, at)
	if err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(env.GetPayload(), msg); err != nil {
		return nil, fmt.Errorf("parse the signed payload: %w", err)
	}
	return keys[0], nil
}
