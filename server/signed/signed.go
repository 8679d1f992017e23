// Package signed opens the signed statements that every write RPC carries: it checks the
// envelope's size, verifies its signature against the registry before parsing the payload, and
// checks that the signer is the calling partner. Each refusal is a fault that says what to fix.
package signed

import (
	"context"
	"errors"
	"time"

	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/protostrict"
	"concord/server/authz"
	"concord/server/fault"
	"concord/server/state"

	"google.golang.org/protobuf/proto"
)

// Caller returns the authenticated caller of a request.
func Caller(ctx context.Context) (*authz.Caller, error) {
	c, ok := authz.CallerFrom(ctx)
	if !ok {
		return nil, fault.Unauthenticated("no authenticated caller")
	}
	return c, nil
}

// Opened is a verified statement.
type Opened struct {
	// Key is the signer's registered key (the first signature's).
	Key *concordv1.SigningKey
	// Digest identifies the envelope exactly (dsse.Digest), for idempotent re-sends.
	Digest []byte
}

// Open verifies env as a statement of payloadType signed by caller at time at, with a key
// registered in st, and only then parses its payload into msg. maxPayload bounds the payload; name
// says what the statement is in messages ("registry change", "notice").
func Open(st *state.Store, caller *authz.Caller, env *concordv1.Envelope, payloadType string, at time.Time, maxPayload int, name string, msg proto.Message) (*Opened, error) {
	if n := len(env.GetPayload()); n > maxPayload {
		return nil, fault.Invalid("envelope.payload: a %s is at most %d bytes, this one is %d", name, maxPayload, n)
	}
	key, err := dsse.Open(env, payloadType, st.SigningKey, at, msg)
	if err != nil {
		if kr := keyRefusal(st, env, msg, err, payloadType, name); kr != nil && kr.Opened.Key.GetPartnerId() == caller.PartnerID {
			return kr.Opened, kr
		}
		return nil, signatureFault(err, payloadType, name)
	}
	if key.GetPartnerId() != caller.PartnerID {
		return nil, fault.Denied("the envelope is signed with key %s of partner %q, but you are connected as %q: sign with your own key", key.GetKeyId(), key.GetPartnerId(), caller.PartnerID)
	}
	if err := Strict(env, msg, name); err != nil {
		return nil, err
	}
	return &Opened{Key: key, Digest: dsse.Digest(env)}, nil
}

// Strict refuses a statement whose envelope or signed payload holds a field its schema does not
// define. The log keeps the envelope byte for byte and serves it to auditors forever; what
// enters it must be exactly the specified structure, so content never rides along in bytes the
// decoder would otherwise keep as unknown fields.
func Strict(env *concordv1.Envelope, payload proto.Message, name string) error {
	if u := protostrict.Unknown(env.ProtoReflect()); u != nil {
		return fault.Invalid("envelope: %v: an envelope holds only payload_type, payload and signatures (key id and signature)", u)
	}
	if u := protostrict.Unknown(payload.ProtoReflect()); u != nil {
		return fault.Invalid("envelope.payload: %v: a %s holds only the fields of its schema; remove it (a client built from a newer schema than this hub's?)", u, name)
	}
	return nil
}

// KeyRefused is Open's refusal of an envelope whose signature does verify, with a key that may
// not sign now (revoked, expired, not yet valid). The statement may still be a re-send of one
// accepted while the key could sign: the service looks for the original (same id, same
// envelope) and answers with it; otherwise it returns Err.
type KeyRefused struct {
	Err    error
	Opened *Opened
}

func (k *KeyRefused) Error() string { return k.Err.Error() }
func (k *KeyRefused) Unwrap() error { return k.Err }

// AsKeyRefused returns err as a *KeyRefused, or nil.
func AsKeyRefused(err error) *KeyRefused {
	var kr *KeyRefused
	if errors.As(err, &kr) {
		return kr
	}
	return nil
}

// keyRefusal builds a KeyRefused when err judges only the key's validity and the first
// signature verifies with that key's bytes; msg is then parsed from the payload.
func keyRefusal(st *state.Store, env *concordv1.Envelope, msg proto.Message, err error, payloadType, name string) *KeyRefused {
	if !errors.Is(err, dsse.ErrKeyRevoked) && !errors.Is(err, dsse.ErrKeyExpired) && !errors.Is(err, dsse.ErrKeyNotYetValid) {
		return nil
	}
	if env.GetPayloadType() != payloadType || len(env.GetSignatures()) == 0 {
		return nil
	}
	first := env.GetSignatures()[0].GetKeyid()
	checked := dsse.CheckSignatures(env, st.SigningKey)
	if checked.Len() != len(env.GetSignatures()) || !checked.Has(first) {
		return nil
	}
	key, kerr := st.SigningKey(first)
	if kerr != nil || key == nil || proto.Unmarshal(env.GetPayload(), msg) != nil {
		return nil
	}
	return &KeyRefused{Err: signatureFault(err, payloadType, name), Opened: &Opened{Key: key, Digest: dsse.Digest(env)}}
}

// signatureFault says why a statement's envelope was refused.
func signatureFault(err error, payloadType, name string) error {
	switch {
	case errors.Is(err, dsse.ErrPayloadType):
		return fault.Invalid("envelope.payload_type: %v: this call takes a %s (%s)", err, name, payloadType)
	case errors.Is(err, dsse.ErrNoSignature):
		return fault.Invalid("envelope.signatures: %v", err)
	case errors.Is(err, dsse.ErrUnknownKey), errors.Is(err, dsse.ErrKeyNotYetValid),
		errors.Is(err, dsse.ErrKeyExpired), errors.Is(err, dsse.ErrKeyRevoked),
		errors.Is(err, dsse.ErrBadSignature):
		return fault.Denied("envelope signature refused: %v", err)
	}
	var f *fault.Error
	if errors.As(err, &f) {
		return err
	}
	// The signature verified but the payload does not parse.
	return fault.Invalid("envelope.payload: the signed payload is not a %s: %v", name, err)
}
