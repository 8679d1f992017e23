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
		return nil, signatureFault(err, payloadType, name)
	}
	if key.GetPartnerId() != caller.PartnerID {
		return nil, fault.Denied("the envelope is signed with key %s of partner %q, but you are connected as %q: sign with your own key", key.GetKeyId(), key.GetPartnerId(), caller.PartnerID)
	}
	return &Opened{Key: key, Digest: dsse.Digest(env)}, nil
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
