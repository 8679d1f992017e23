package dsse

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	concordv1 "concord/gen/concord/v1"
)

// The example from the DSSE specification (protocol.md, "Test case").
func TestPAESpecExample(t *testing.T) {
	got := PAE("http://example.com/HelloWorld", []byte("hello world"))
	want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
	if string(got) != want {
		t.Fatalf("PAE = %q, want %q", got, want)
	}
	if got := PAE("", nil); string(got) != "DSSEv1 0  0 " {
		t.Fatalf("PAE of empty = %q", got)
	}
}

func TestPayloadType(t *testing.T) {
	if PayloadTypeRegistryChange != "application/vnd.concord.registry-change.v1+protobuf" {
		t.Fatalf("PayloadTypeRegistryChange = %q", PayloadTypeRegistryChange)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("PayloadType accepted a malformed kind")
		}
	}()
	PayloadType("Bad Kind")
}

type keyring map[string]*concordv1.SigningKey

func (k keyring) lookup(id string) (*concordv1.SigningKey, error) { return k[id], nil }

func newKey(t testing.TB, seed byte) (ed25519.PrivateKey, *concordv1.SigningKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	return priv, &concordv1.SigningKey{KeyId: KeyID(pub), PartnerId: "hub-ops", PublicKey: pub}
}

func TestSignOpenRoundTrip(t *testing.T) {
	priv, key := newKey(t, 1)
	ring := keyring{key.KeyId: key}
	change := &concordv1.RegistryChange{ChangeId: "01JAAAAAAAAAAAAAAAAAAAAAAA", Author: "hub-ops"}
	env, err := SignMessage(PayloadTypeRegistryChange, change, NewSigner(priv))
	if err != nil {
		t.Fatal(err)
	}
	if env.Signatures[0].Keyid != key.KeyId {
		t.Fatalf("keyid = %s, want %s", env.Signatures[0].Keyid, key.KeyId)
	}
	var got concordv1.RegistryChange
	signer, err := Open(env, PayloadTypeRegistryChange, ring.lookup, time.Now(), &got)
	if err != nil {
		t.Fatal(err)
	}
	if signer.KeyId != key.KeyId || !proto.Equal(&got, change) {
		t.Fatalf("Open = %v, %v", signer, &got)
	}
	again, err := SignMessage(PayloadTypeRegistryChange, change, NewSigner(priv))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Digest(env), Digest(again)) {
		t.Fatal("signing the same statement twice gave different envelopes")
	}
}

func TestVerifyRefusals(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	priv, key := newKey(t, 1)
	otherPriv, _ := newKey(t, 2)
	ring := keyring{key.KeyId: key}
	signed := func(t *testing.T, s ...Signer) *concordv1.Envelope {
		env, err := Sign(PayloadTypeRegistryChange, []byte("statement"), s...)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	withKey := func(edit func(k *concordv1.SigningKey)) keyring {
		k := proto.CloneOf(key)
		edit(k)
		return keyring{k.KeyId: k}
	}
	tests := []struct {
		name string
		env  func(t *testing.T) *concordv1.Envelope
		ring keyring
		want error
		text string
	}{
		{"payload type", func(t *testing.T) *concordv1.Envelope {
			e := signed(t, NewSigner(priv))
			e.PayloadType = PayloadType("notice")
			return e
		}, ring, ErrPayloadType, "wrong payload type"},
		{"no signature", func(t *testing.T) *concordv1.Envelope {
			e := signed(t, NewSigner(priv))
			e.Signatures = nil
			return e
		}, ring, ErrNoSignature, "no signature"},
		{"unregistered key", func(t *testing.T) *concordv1.Envelope { return signed(t, NewSigner(otherPriv)) }, ring, ErrUnknownKey, "unknown"},
		{"key id of another key", func(t *testing.T) *concordv1.Envelope {
			e := signed(t, NewSigner(otherPriv))
			e.Signatures[0].Keyid = key.KeyId
			return e
		}, ring, ErrBadSignature, "signature"},
		{"tampered payload", func(t *testing.T) *concordv1.Envelope {
			e := signed(t, NewSigner(priv))
			e.Payload[0] ^= 1
			return e
		}, ring, ErrBadSignature, "payload"},
		{"tampered payload type", func(t *testing.T) *concordv1.Envelope {
			e := signed(t, NewSigner(priv))
			e.PayloadType = PayloadType("registry-changes")
			return e
		}, ring, ErrPayloadType, ""},
		{"short signature", func(t *testing.T) *concordv1.Envelope {
			e := signed(t, NewSigner(priv))
			e.Signatures[0].Sig = e.Signatures[0].Sig[:63]
			return e
		}, ring, ErrBadSignature, ""},
		{"a second, bad signature", func(t *testing.T) *concordv1.Envelope {
			e := signed(t, NewSigner(priv))
			e.Signatures = append(e.Signatures, &concordv1.Signature{Keyid: key.KeyId, Sig: e.Signatures[0].Sig})
			return e
		}, ring, ErrBadSignature, "repeats"},
		{"not yet valid", func(t *testing.T) *concordv1.Envelope { return signed(t, NewSigner(priv)) },
			withKey(func(k *concordv1.SigningKey) { k.NotBefore = timestamppb.New(now.Add(time.Minute)) }), ErrKeyNotYetValid, "valid from 2026-11-24T12:01:00Z"},
		{"expired", func(t *testing.T) *concordv1.Envelope { return signed(t, NewSigner(priv)) },
			withKey(func(k *concordv1.SigningKey) { k.NotAfter = timestamppb.New(now.Add(-time.Second)) }), ErrKeyExpired, "expired at 2026-11-24T11:59:59Z"},
		{"revoked", func(t *testing.T) *concordv1.Envelope { return signed(t, NewSigner(priv)) },
			withKey(func(k *concordv1.SigningKey) {
				k.RevokedAt = timestamppb.New(now.Add(-time.Hour))
				k.RevocationReason = "laptop stolen"
			}), ErrKeyRevoked, "laptop stolen"},
		{"registered public key does not match its id", func(t *testing.T) *concordv1.Envelope { return signed(t, NewSigner(priv)) },
			withKey(func(k *concordv1.SigningKey) { k.PublicKey = otherPriv.Public().(ed25519.PublicKey) }), ErrUnknownKey, "does not have this id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msg concordv1.RegistryChange
			_, err := Open(tt.env(t), PayloadTypeRegistryChange, tt.ring.lookup, now, &msg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Open error %q does not say %q", err, tt.text)
			}
		})
	}
}

func TestKeyValidAtItsBounds(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	priv, key := newKey(t, 3)
	key.NotBefore = timestamppb.New(now)
	key.NotAfter = timestamppb.New(now.Add(time.Hour))
	key.RevokedAt = timestamppb.New(now.Add(time.Hour))
	env, err := Sign(PayloadTypeRegistryChange, []byte("x"), NewSigner(priv))
	if err != nil {
		t.Fatal(err)
	}
	ring := keyring{key.KeyId: key}
	for _, at := range []time.Time{now, now.Add(time.Hour - time.Nanosecond)} { // revoked_at bounds it before not_after
		if _, err := Verify(env, PayloadTypeRegistryChange, ring.lookup, at); err != nil {
			t.Errorf("Verify at %s = %v", at, err)
		}
	}
}

// Verify before parse: a payload that is not a valid message is never parsed unless signed.
func TestOpenDoesNotParseUnverifiedPayload(t *testing.T) {
	priv, key := newKey(t, 4)
	ring := keyring{key.KeyId: key}
	env, err := Sign(PayloadTypeRegistryChange, []byte{0xff, 0xff, 0xff}, NewSigner(priv))
	if err != nil {
		t.Fatal(err)
	}
	var msg concordv1.RegistryChange
	if _, err := Open(env, PayloadTypeRegistryChange, ring.lookup, time.Now(), &msg); err == nil || errors.Is(err, ErrBadSignature) {
		t.Fatalf("Open of a signed but malformed payload = %v, want a parse error", err)
	}
	env.Signatures[0].Sig[0] ^= 1
	if _, err := Open(env, PayloadTypeRegistryChange, ring.lookup, time.Now(), &msg); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Open of a badly signed, malformed payload = %v, want ErrBadSignature", err)
	}
}

func TestDigestSeparatesFields(t *testing.T) {
	a := &concordv1.Envelope{PayloadType: "ab", Payload: []byte("c")}
	b := &concordv1.Envelope{PayloadType: "a", Payload: []byte("bc")}
	if bytes.Equal(Digest(a), Digest(b)) {
		t.Fatal("moving a byte between fields kept the digest")
	}
}

// TestVerifyChecked: a signature checked ahead of time is not checked again, but the key is
// still judged at the statement's time, and a changed payload or another key is not excused.
func TestVerifyChecked(t *testing.T) {
	t.Parallel()
	priv, key := newKey(t, 7)
	ring := keyring{key.GetKeyId(): key}
	env, err := Sign(PayloadTypeNotice, []byte("payload"), NewSigner(priv))
	if err != nil {
		t.Fatal(err)
	}
	checked := CheckSignatures(env, ring.lookup)
	if checked.Len() != 1 {
		t.Fatalf("CheckSignatures = %v, want the one signature", checked)
	}
	now := time.Now()
	if _, err := VerifyChecked(env, PayloadTypeNotice, ring.lookup, now, checked); err != nil {
		t.Fatalf("checked envelope: %v", err)
	}
	// The key revoked before the statement's time: refused, checked or not.
	revoked := proto.CloneOf(key)
	revoked.RevokedAt = timestamppb.New(now.Add(-time.Minute))
	if _, err := VerifyChecked(env, PayloadTypeNotice, keyring{key.GetKeyId(): revoked}.lookup, now, checked); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("revoked key: %v, want ErrKeyRevoked", err)
	}
	// A payload changed after the check: CheckSignatures finds nothing, VerifyChecked verifies.
	env.Payload = []byte("changed")
	if c := CheckSignatures(env, ring.lookup); c.Len() != 0 {
		t.Fatalf("CheckSignatures accepted a changed payload: %v", c)
	}
	if _, err := VerifyChecked(env, PayloadTypeNotice, ring.lookup, now, checked); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed payload with a stale check: %v, want ErrBadSignature", err)
	}
}
