package state

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"

	formats "github.com/transparency-dev/formats/note"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// CheckRegistryChange runs the rules of ApplyRegistryChange on the current state without writing,
// so the service can refuse a change before a raft round trip. change is the verified payload,
// signerKeyID the key whose signature the service verified, at the time the leader will stamp
// and envelopeDigest dsse.Digest of the envelope. It returns the original record, and no error,
// when the change was already applied from an identical envelope. The FSM checks again at apply
// time: passing here does not reserve anything.
func (s *Store) CheckRegistryChange(change *concordv1.RegistryChange, signerKeyID string, at time.Time, envelopeDigest []byte) (*statev1.AppliedChange, error) {
	orig, err := checkRegistryChangeTxn(s.db.Txn(false), change, signerKeyID, at, envelopeDigest)
	if orig != nil {
		orig = proto.CloneOf(orig)
	}
	return orig, err
}

// checkRegistryChangeTxn holds the rules shared by CheckRegistryChange and the FSM's write path.
// A non-nil record (read-only) means an identical re-send.
func checkRegistryChangeTxn(txn ReadTxn, change *concordv1.RegistryChange, signerKeyID string, at time.Time, envelopeDigest []byte) (*statev1.AppliedChange, error) {
	id := change.GetChangeId()
	if id == "" {
		return nil, fault.Invalid("change_id is empty: give every registry change a new ULID")
	}
	// Idempotency first, so that a re-send gets the original answer even if the rules would now
	// refuse it (its key revoked since, say).
	orig, err := appliedChangeTxn(txn, id)
	if err != nil {
		return nil, err
	}
	if orig != nil {
		if !bytes.Equal(orig.GetEnvelopeDigest(), envelopeDigest) {
			return nil, fault.Exists("registry change %s was already applied with different content: give a new change a new change_id", id)
		}
		return orig, nil
	}

	if err := checkSignerTxn(txn, change.GetAuthor(), signerKeyID, at); err != nil {
		return nil, err
	}

	switch c := change.GetChange().(type) {
	case *concordv1.RegistryChange_UpsertPartner:
		err = checkUpsertPartnerTxn(txn, c.UpsertPartner, at)
	case *concordv1.RegistryChange_AddSigningKey:
		err = checkAddSigningKeyTxn(txn, c.AddSigningKey)
	case *concordv1.RegistryChange_RevokeSigningKey:
		err = checkRevokeSigningKeyTxn(txn, c.RevokeSigningKey, at)
	case *concordv1.RegistryChange_SetJurisdiction:
		err = checkSetJurisdictionTxn(txn, c.SetJurisdiction)
	default:
		err = fault.Invalid("registry change %s changes nothing: set one of upsert_partner, add_signing_key, revoke_signing_key or set_jurisdiction", id)
	}
	if err != nil {
		return nil, fmt.Errorf("registry change %s: %w", id, err)
	}
	return nil, nil
}

// checkSignerTxn checks that author is an administrator and that signerKeyID is one of its keys,
// usable at at. The service checked the key when it verified the signature; checking again at
// apply time closes the race with a revocation committed in between.
func checkSignerTxn(txn ReadTxn, author, signerKeyID string, at time.Time) error {
	_, err := checkSignerRoleTxn(txn, author, signerKeyID, at, concordv1.Role_ROLE_ADMIN, "only administrators change the registry")
	return err
}

func checkUpsertPartnerTxn(txn ReadTxn, p *concordv1.Partner, at time.Time) error {
	if p.GetId() == "" {
		return fault.Invalid("upsert_partner.id is empty")
	}
	if err := checkWitnessKey(p.GetWitnessKey()); err != nil {
		return fault.Invalid("upsert_partner.witness_key: %v", err)
	}
	if len(p.GetSigningKeys()) > 0 {
		return fault.Invalid("upsert_partner.signing_keys must be empty: keys are added with add_signing_key")
	}
	if code := p.GetJurisdiction(); code != "" {
		j, err := txn.First(tableJurisdictions, indexID, code)
		if err != nil {
			return fmt.Errorf("jurisdiction %s: %w", code, err)
		}
		if j == nil {
			return fault.Precondition("upsert_partner.jurisdiction %s is not registered: add it with set_jurisdiction first", code)
		}
	}
	return lockOutGuardTxn(txn, at, p, "")
}

func checkAddSigningKeyTxn(txn ReadTxn, add *concordv1.AddSigningKey) error {
	p, err := partnerRowTxn(txn, add.GetPartnerId())
	if err != nil {
		return err
	}
	if p == nil {
		return fault.Precondition("add_signing_key: partner %q is not registered: add it with upsert_partner first", add.GetPartnerId())
	}
	if n := len(add.GetPublicKey()); n != ed25519PublicKeySize {
		return fault.Invalid("add_signing_key.public_key is %d bytes: give the raw %d-byte Ed25519 public key", n, ed25519PublicKeySize)
	}
	id := dsse.KeyID(add.GetPublicKey())
	existing, err := signingKeyTxn(txn, id)
	if err != nil {
		return err
	}
	if existing != nil {
		return fault.Exists("add_signing_key: key %s is already registered to partner %q: a key is registered once; generate a new key", id, existing.GetPartnerId())
	}
	return checkValidity(add.GetNotBefore(), add.GetNotAfter())
}

func checkRevokeSigningKeyTxn(txn ReadTxn, rev *concordv1.RevokeSigningKey, at time.Time) error {
	k, err := signingKeyTxn(txn, rev.GetKeyId())
	if err != nil {
		return err
	}
	if k == nil || k.GetPartnerId() != rev.GetPartnerId() {
		return fault.Precondition("revoke_signing_key: partner %q has no signing key %s: see the partner's keys with ListPartners", rev.GetPartnerId(), rev.GetKeyId())
	}
	if k.GetRevokedAt() != nil {
		return fault.Precondition("revoke_signing_key: key %s was already revoked at %s", rev.GetKeyId(), formatTime(k.GetRevokedAt()))
	}
	return lockOutGuardTxn(txn, at, nil, rev.GetKeyId())
}

func lockOutGuardTxn(txn ReadTxn, at time.Time, upserted *concordv1.Partner, revokedKeyID string) error {
	ok, err := adminCanSignTxn(txn, at, upserted, revokedKeyID)
	if err != nil {
		return err
	}
	if !ok {
		return errLockOut
	}
	return nil
}

func checkSetJurisdictionTxn(txn ReadTxn, j *concordv1.Jurisdiction) error {
	return checkJurisdiction(j, func(code string) (bool, error) {
		raw, err := txn.First(tableJurisdictions, indexID, code)
		if err != nil {
			return false, fmt.Errorf("jurisdiction %s: %w", code, err)
		}
		return raw != nil, nil
	})
}

// checkJurisdiction checks a jurisdiction's internal consistency and that the jurisdictions it
// recognises are registered. There is no delete: a jurisdiction is only ever replaced, so a
// partner or another jurisdiction can never be left referring to a missing one.
func checkJurisdiction(j *concordv1.Jurisdiction, registered func(code string) (bool, error)) error {
	code := j.GetCode()
	if code == "" {
		return fault.Invalid("jurisdiction code is empty: give its ISO 3166-1 alpha-2 code")
	}
	prefix := strings.ToLower(code) + "."
	provisions := map[string]bool{}
	for _, p := range j.GetProvisions() {
		if !strings.HasPrefix(p.GetId(), prefix) {
			return fault.Invalid("jurisdiction %s: provision id %q must start with %q", code, p.GetId(), prefix)
		}
		if provisions[p.GetId()] {
			return fault.Invalid("jurisdiction %s: provision %s is listed twice", code, p.GetId())
		}
		provisions[p.GetId()] = true
	}
	from := map[string]bool{}
	for _, mr := range j.GetPolicy().GetMutualRecognition() {
		f := mr.GetFromJurisdiction()
		if f == code {
			return fault.Precondition("jurisdiction %s: mutual_recognition names %s itself: a jurisdiction recognises only other jurisdictions' notices", code, code)
		}
		if from[f] {
			return fault.Invalid("jurisdiction %s: mutual_recognition lists %s twice: merge the entries", code, f)
		}
		from[f] = true
		ok, err := registered(f)
		if err != nil {
			return err
		}
		if !ok {
			return fault.Precondition("jurisdiction %s: mutual_recognition.from_jurisdiction %s is not registered: add it with set_jurisdiction first", code, f)
		}
	}
	return nil
}

// checkValidity checks a key's validity window.
func checkValidity(notBefore, notAfter *timestamppb.Timestamp) error {
	if notBefore != nil && notAfter != nil && !notAfter.AsTime().After(notBefore.AsTime()) {
		return fault.Invalid("not_after (%s) must be after not_before (%s)", formatTime(notAfter), formatTime(notBefore))
	}
	return nil
}

// keyUnusable says why k cannot sign at at, or "" if it can.
func keyUnusable(k *concordv1.SigningKey, at time.Time) string {
	switch {
	case k.GetNotBefore() != nil && at.Before(k.GetNotBefore().AsTime()):
		return "is not valid before " + formatTime(k.GetNotBefore())
	case k.GetNotAfter() != nil && at.After(k.GetNotAfter().AsTime()):
		return "expired at " + formatTime(k.GetNotAfter())
	case k.GetRevokedAt() != nil && !at.Before(k.GetRevokedAt().AsTime()):
		why := "was revoked at " + formatTime(k.GetRevokedAt())
		if r := k.GetRevocationReason(); r != "" {
			why += " (" + r + ")"
		}
		return why
	}
	return ""
}

// errLockOut is the lock-out guard's refusal.
var errLockOut = fault.Precondition("this change would leave no administrator able to sign registry changes: keep a ROLE_ADMIN partner with a valid signing key")

// adminCanSignTxn backs the lock-out guard: it reports whether, after a change, some partner
// holding ROLE_ADMIN still has a key usable at at; if none has, nobody could sign the change that
// repairs the registry. The change is described by upserted (a partner replacing the stored one)
// and revokedKeyID (a key revoked at at); the stored rows are not touched, so the read-only check
// and the write path share this code.
func adminCanSignTxn(txn ReadTxn, at time.Time, upserted *concordv1.Partner, revokedKeyID string) (bool, error) {
	iter, err := txn.Get(tablePartners, indexIDPrefix, "")
	if err != nil {
		return false, fmt.Errorf("partners: %w", err)
	}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		p := raw.(*concordv1.Partner)
		if upserted != nil && upserted.GetId() == p.GetId() {
			p = upserted
		}
		if !slices.Contains(p.GetRoles(), concordv1.Role_ROLE_ADMIN) {
			continue
		}
		keys, err := txn.Get(tableSigningKeys, indexPartner, p.GetId())
		if err != nil {
			return false, fmt.Errorf("signing keys of partner %s: %w", p.GetId(), err)
		}
		for raw := keys.Next(); raw != nil; raw = keys.Next() {
			k := raw.(*concordv1.SigningKey)
			if k.GetKeyId() != revokedKeyID && keyUnusable(k, at) == "" {
				return true, nil
			}
		}
	}
	return false, nil
}

// partnerRowTxn returns the stored partner row (read-only, without keys) or nil.
func partnerRowTxn(txn ReadTxn, id string) (*concordv1.Partner, error) {
	raw, err := txn.First(tablePartners, indexID, id)
	if err != nil {
		return nil, fmt.Errorf("partner %s: %w", id, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*concordv1.Partner), nil
}

func formatTime(ts *timestamppb.Timestamp) string {
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}

// CheckWitnessURL checks a partner's witness_url: an http or https URL with a host and no query
// or fragment (the hub appends /add-checkpoint), given with a witness key to check what the
// witness answers. The registry service applies it to changes before proposing them, not the
// state machine to entries: a rule new in this release must not make nodes of two releases
// apply the same entry differently during a rolling upgrade.
func CheckWitnessURL(p *concordv1.Partner) error {
	raw := p.GetWitnessUrl()
	if raw == "" {
		return nil
	}
	if p.GetWitnessKey() == "" {
		return errors.New("needs witness_key: the hub checks the cosignatures the witness answers with it")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not the witness's submission prefix: want http(s)://host[:port][/path], no query, fragment or user", raw)
	}
	return nil
}

// checkWitnessKey checks that a partner's witness key, if any, is a verifier key a C2SP
// tlog-cosignature can be checked with.
func checkWitnessKey(key string) error {
	if key == "" {
		return nil
	}
	if _, err := formats.NewVerifierForCosignatureV1(key); err != nil {
		return fmt.Errorf("not a witness verifier key (name+hash+key, Ed25519): %w", err)
	}
	return nil
}
