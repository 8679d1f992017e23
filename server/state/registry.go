package state

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Partner returns the partner registered as id with its signing keys, current and past, sorted
// by key id; nil if id is not registered.
func (s *Store) Partner(ws memdb.WatchSet, id string) (*concordv1.Partner, error) {
	return partnerTxn(s.db.Txn(false), ws, id)
}

func partnerTxn(txn ReadTxn, ws memdb.WatchSet, id string) (*concordv1.Partner, error) {
	watch, raw, err := txn.FirstWatch(tablePartners, indexID, id)
	if err != nil {
		return nil, fmt.Errorf("partner %s: %w", id, err)
	}
	ws.Add(watch)
	if raw == nil {
		return nil, nil
	}
	p := proto.CloneOf(raw.(*concordv1.Partner))
	if p.SigningKeys, err = partnerKeysTxn(txn, ws, id); err != nil {
		return nil, err
	}
	return p, nil
}

// partnerKeysTxn returns copies of the partner's signing keys sorted by key id.
func partnerKeysTxn(txn ReadTxn, ws memdb.WatchSet, partnerID string) ([]*concordv1.SigningKey, error) {
	iter, err := txn.Get(tableSigningKeys, indexPartner, partnerID)
	if err != nil {
		return nil, fmt.Errorf("signing keys of partner %s: %w", partnerID, err)
	}
	ws.Add(iter.WatchCh())
	var keys []*concordv1.SigningKey
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		keys = append(keys, proto.CloneOf(raw.(*concordv1.SigningKey)))
	}
	sortKeys(keys)
	return keys, nil
}

func sortKeys(keys []*concordv1.SigningKey) {
	slices.SortFunc(keys, func(a, b *concordv1.SigningKey) int { return cmp.Compare(a.GetKeyId(), b.GetKeyId()) })
}

// PartnerRow returns the stored partner row, without its signing keys, or nil: read-only, never
// modify it. It costs no copy, for the authorization of every call.
func (s *Store) PartnerRow(id string) (*concordv1.Partner, error) {
	return partnerRowTxn(s.db.Txn(false), id)
}

// Partners returns every partner with its signing keys, sorted by id.
func (s *Store) Partners(ws memdb.WatchSet) ([]*concordv1.Partner, error) {
	txn := s.db.Txn(false)
	iter, err := txn.Get(tablePartners, indexIDPrefix, "")
	if err != nil {
		return nil, fmt.Errorf("partners: %w", err)
	}
	ws.Add(iter.WatchCh())
	var partners []*concordv1.Partner
	byID := map[string]*concordv1.Partner{}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		p := proto.CloneOf(raw.(*concordv1.Partner))
		partners = append(partners, p)
		byID[p.GetId()] = p
	}
	// One pass over the keys instead of one look-up per partner.
	keys, err := txn.Get(tableSigningKeys, indexIDPrefix, "")
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	ws.Add(keys.WatchCh())
	for raw := keys.Next(); raw != nil; raw = keys.Next() {
		k := raw.(*concordv1.SigningKey)
		if p := byID[k.GetPartnerId()]; p != nil {
			p.SigningKeys = append(p.SigningKeys, proto.CloneOf(k))
		}
	}
	slices.SortFunc(partners, func(a, b *concordv1.Partner) int { return cmp.Compare(a.GetId(), b.GetId()) })
	for _, p := range partners {
		sortKeys(p.SigningKeys)
	}
	return partners, nil
}

// SigningKey returns the signing key with id keyID, or nil if none is registered.
func (s *Store) SigningKey(keyID string) (*concordv1.SigningKey, error) {
	k, err := signingKeyTxn(s.db.Txn(false), keyID)
	if k == nil || err != nil {
		return nil, err
	}
	return proto.CloneOf(k), nil
}

// signingKeyTxn returns the stored key (read-only) or nil.
func signingKeyTxn(txn ReadTxn, keyID string) (*concordv1.SigningKey, error) {
	raw, err := txn.First(tableSigningKeys, indexID, keyID)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", keyID, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*concordv1.SigningKey), nil
}

// Jurisdiction returns the jurisdiction with ISO code code, or nil if none is registered.
func (s *Store) Jurisdiction(ws memdb.WatchSet, code string) (*concordv1.Jurisdiction, error) {
	watch, raw, err := s.db.Txn(false).FirstWatch(tableJurisdictions, indexID, code)
	if err != nil {
		return nil, fmt.Errorf("jurisdiction %s: %w", code, err)
	}
	ws.Add(watch)
	if raw == nil {
		return nil, nil
	}
	return proto.CloneOf(raw.(*concordv1.Jurisdiction)), nil
}

// Jurisdictions returns every jurisdiction sorted by code.
func (s *Store) Jurisdictions(ws memdb.WatchSet) ([]*concordv1.Jurisdiction, error) {
	iter, err := s.db.Txn(false).Get(tableJurisdictions, indexIDPrefix, "")
	if err != nil {
		return nil, fmt.Errorf("jurisdictions: %w", err)
	}
	ws.Add(iter.WatchCh())
	var js []*concordv1.Jurisdiction
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		js = append(js, proto.CloneOf(raw.(*concordv1.Jurisdiction)))
	}
	slices.SortFunc(js, func(a, b *concordv1.Jurisdiction) int { return cmp.Compare(a.GetCode(), b.GetCode()) })
	return js, nil
}

// AppliedChange returns the record of the registry change changeID, or nil if it was never
// applied.
func (s *Store) AppliedChange(changeID string) (*statev1.AppliedChange, error) {
	a, err := appliedChangeTxn(s.db.Txn(false), changeID)
	if a == nil || err != nil {
		return nil, err
	}
	return proto.CloneOf(a), nil
}

func appliedChangeTxn(txn ReadTxn, changeID string) (*statev1.AppliedChange, error) {
	raw, err := txn.First(tableRegistryChanges, indexID, changeID)
	if err != nil {
		return nil, fmt.Errorf("registry change %s: %w", changeID, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*statev1.AppliedChange), nil
}

// RegistryIndex returns the raft index of the last write to the registry, 0 before bootstrap.
func (s *Store) RegistryIndex() uint64 {
	idx, err := maxIndexTxn(s.db.Txn(false), registryTables...)
	if err != nil {
		// Only a schema bug makes an index look-up fail; the tests cover the schema.
		panic(err)
	}
	return idx
}

// Bootstrapped reports whether the registry has been loaded. Every registry change needs a
// registered administrator, so the registry is written first by BootstrapRegistry.
func (s *Store) Bootstrapped() bool { return s.RegistryIndex() > 0 }

// BootstrapRegistry loads the initial registry at raft index idx. It refuses a registry that is
// already loaded, one whose records do not refer to each other consistently, and one in which no
// administrator could sign a registry change at cmd.at.
func (s *Store) BootstrapRegistry(idx uint64, cmd *statev1.BootstrapRegistry) error {
	txn := s.db.Txn(true)
	defer txn.Abort()
	if err := bootstrapRegistryTxn(txn, idx, cmd); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

func bootstrapRegistryTxn(txn WriteTxn, idx uint64, cmd *statev1.BootstrapRegistry) error {
	done, err := maxIndexTxn(txn, registryTables...)
	if err != nil {
		return err
	}
	if done > 0 {
		return fault.Precondition("the registry is already bootstrapped (at raft index %d): change it with signed registry changes", done)
	}
	at, atTS, err := acceptedTimeTxn(txn, cmd.GetAt())
	if err != nil {
		return err
	}
	codes := map[string]bool{}
	for _, j := range cmd.GetJurisdictions() {
		if codes[j.GetCode()] {
			return fault.Invalid("bootstrap registry: jurisdiction %s is listed twice", j.GetCode())
		}
		codes[j.GetCode()] = true
	}
	registered := func(code string) (bool, error) { return codes[code], nil }
	for _, j := range cmd.GetJurisdictions() {
		if err := checkJurisdiction(j, registered); err != nil {
			return fmt.Errorf("bootstrap registry: %w", err)
		}
		if err := txn.Insert(tableJurisdictions, proto.CloneOf(j)); err != nil {
			return fmt.Errorf("insert jurisdiction %s: %w", j.GetCode(), err)
		}
	}

	partners := map[string]bool{}
	keys := slices.Clone(cmd.GetSigningKeys())
	for _, p := range cmd.GetPartners() {
		if p.GetId() == "" {
			return fault.Invalid("bootstrap registry: a partner has no id")
		}
		if partners[p.GetId()] {
			return fault.Invalid("bootstrap registry: partner %s is listed twice", p.GetId())
		}
		partners[p.GetId()] = true
		if err := checkWitnessKey(p.GetWitnessKey()); err != nil {
			return fault.Invalid("bootstrap registry: partner %s: witness_key: %v", p.GetId(), err)
		}
		if err := CheckWitnessURL(p); err != nil {
			return fault.Invalid("bootstrap registry: partner %s: witness_url: %v", p.GetId(), err)
		}
		if j := p.GetJurisdiction(); j != "" && !codes[j] {
			return fault.Precondition("bootstrap registry: partner %s names jurisdiction %s, which the registry does not define", p.GetId(), j)
		}
		// Keys may be listed inside their partner or on their own; they are stored on their own.
		for _, k := range p.GetSigningKeys() {
			if k.GetPartnerId() != "" && k.GetPartnerId() != p.GetId() {
				return fault.Invalid("bootstrap registry: key %s is listed under partner %s but names partner %s", k.GetKeyId(), p.GetId(), k.GetPartnerId())
			}
			k = proto.CloneOf(k)
			k.PartnerId = p.GetId()
			keys = append(keys, k)
		}
		row := proto.CloneOf(p)
		row.SigningKeys = nil
		if err := txn.Insert(tablePartners, row); err != nil {
			return fmt.Errorf("insert partner %s: %w", p.GetId(), err)
		}
	}

	seen := map[string]bool{}
	for _, k := range keys {
		if !partners[k.GetPartnerId()] {
			return fault.Precondition("bootstrap registry: key %s belongs to partner %q, which the registry does not define", k.GetKeyId(), k.GetPartnerId())
		}
		if len(k.GetPublicKey()) != ed25519PublicKeySize {
			return fault.Invalid("bootstrap registry: key of partner %s: public_key is %d bytes, want a %d-byte Ed25519 key", k.GetPartnerId(), len(k.GetPublicKey()), ed25519PublicKeySize)
		}
		id := dsse.KeyID(k.GetPublicKey())
		if k.GetKeyId() != "" && k.GetKeyId() != id {
			return fault.Invalid("bootstrap registry: key of partner %s has key_id %s but its public key's id is %s: leave key_id empty or fix it", k.GetPartnerId(), k.GetKeyId(), id)
		}
		if seen[id] {
			return fault.Invalid("bootstrap registry: key %s is listed twice", id)
		}
		seen[id] = true
		if err := checkValidity(k.GetNotBefore(), k.GetNotAfter()); err != nil {
			return fmt.Errorf("bootstrap registry: key %s: %w", id, err)
		}
		row := proto.CloneOf(k)
		row.KeyId = id
		if err := txn.Insert(tableSigningKeys, row); err != nil {
			return fmt.Errorf("insert signing key %s: %w", id, err)
		}
	}

	// Checked on the loaded rows: a registry no administrator can sign for can never be fixed.
	if ok, err := adminCanSignTxn(txn, at, nil, ""); err != nil {
		return err
	} else if !ok {
		return fault.Precondition("bootstrap registry: no ROLE_ADMIN partner has a signing key valid at %s, so the registry could never be changed: give an administrator a key", at.UTC().Format(time.RFC3339))
	}
	for _, t := range []string{tablePartners, tableSigningKeys, tableJurisdictions} {
		if err := bumpIndexTxn(txn, t, idx); err != nil {
			return err
		}
	}
	// The first log entry: the registry as loaded, so that a mirror rebuilds it from the log.
	_, _, err = appendLogTxn(txn, idx, atTS, &concordv1.LogEntry{Body: &concordv1.LogEntry_Bootstrap{Bootstrap: &concordv1.BootstrapRegistryEntry{
		Partners: cmd.GetPartners(), Jurisdictions: cmd.GetJurisdictions(), SigningKeys: cmd.GetSigningKeys(),
	}}}, "")
	return err
}

// ApplyRegistryChange applies change, the parsed payload of cmd's envelope whose signature the
// service has verified, at raft index idx. It checks the change again (CheckRegistryChange) as of
// the leader-stamped cmd.at, so a key revoked after the service's check cannot slip through.
// Re-applying an identical change returns the original record and changes nothing.
func (s *Store) ApplyRegistryChange(idx uint64, change *concordv1.RegistryChange, cmd *statev1.ApplyRegistryChange) (*statev1.AppliedChange, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	applied, err := registryChangeTxn(txn, idx, change, cmd)
	if err != nil {
		return nil, err
	}
	txn.Commit()
	return applied, nil
}

func registryChangeTxn(txn WriteTxn, idx uint64, change *concordv1.RegistryChange, cmd *statev1.ApplyRegistryChange) (*statev1.AppliedChange, error) {
	at, atTS, err := acceptedTimeTxn(txn, cmd.GetAt())
	if err != nil {
		return nil, err
	}
	digest := dsse.Digest(cmd.GetEnvelope())
	orig, err := checkRegistryChangeTxn(txn, change, cmd.GetSignerKeyId(), at, digest)
	if err != nil || orig != nil {
		return orig, err
	}
	if err := checkCosignersTxn(txn, cmd.GetEnvelope(), at); err != nil {
		return nil, err
	}

	switch c := change.GetChange().(type) {
	case *concordv1.RegistryChange_UpsertPartner:
		err = upsertPartnerTxn(txn, idx, c.UpsertPartner)
	case *concordv1.RegistryChange_AddSigningKey:
		err = addSigningKeyTxn(txn, idx, c.AddSigningKey)
	case *concordv1.RegistryChange_RevokeSigningKey:
		err = revokeSigningKeyTxn(txn, idx, c.RevokeSigningKey, atTS)
	case *concordv1.RegistryChange_SetJurisdiction:
		err = setJurisdictionTxn(txn, idx, c.SetJurisdiction)
	default:
		// checkRegistryChangeTxn refuses every other case.
		err = fmt.Errorf("registry change %s: unhandled change %T", change.GetChangeId(), c)
	}
	if err != nil {
		return nil, err
	}

	logIdx, _, err := appendLogTxn(txn, idx, atTS, statementEntry(cmd.GetEnvelope(), cmd.GetSignerKeyId()), "")
	if err != nil {
		return nil, err
	}
	applied := &statev1.AppliedChange{
		ChangeId:       change.GetChangeId(),
		EnvelopeDigest: digest,
		Index:          idx,
		At:             atTS,
		LogIndex:       logIdx,
	}
	if err := txn.Insert(tableRegistryChanges, applied); err != nil {
		return nil, fmt.Errorf("record registry change %s: %w", change.GetChangeId(), err)
	}
	if err := bumpIndexTxn(txn, tableRegistryChanges, idx); err != nil {
		return nil, err
	}
	return proto.CloneOf(applied), nil
}

func upsertPartnerTxn(txn WriteTxn, idx uint64, p *concordv1.Partner) error {
	row := proto.CloneOf(p)
	row.SigningKeys = nil
	existing, err := txn.First(tablePartners, indexID, row.GetId())
	if err != nil {
		return fmt.Errorf("partner %s: %w", row.GetId(), err)
	}
	if existing != nil && proto.Equal(existing.(*concordv1.Partner), row) {
		return nil
	}
	if err := txn.Insert(tablePartners, row); err != nil {
		return fmt.Errorf("upsert partner %s: %w", row.GetId(), err)
	}
	return bumpIndexTxn(txn, tablePartners, idx)
}

func addSigningKeyTxn(txn WriteTxn, idx uint64, add *concordv1.AddSigningKey) error {
	k := &concordv1.SigningKey{
		KeyId:     dsse.KeyID(add.GetPublicKey()),
		PartnerId: add.GetPartnerId(),
		PublicKey: slices.Clone(add.GetPublicKey()),
		NotBefore: proto.CloneOf(add.GetNotBefore()),
		NotAfter:  proto.CloneOf(add.GetNotAfter()),
	}
	if err := txn.Insert(tableSigningKeys, k); err != nil {
		return fmt.Errorf("add signing key %s: %w", k.GetKeyId(), err)
	}
	return bumpIndexTxn(txn, tableSigningKeys, idx)
}

func revokeSigningKeyTxn(txn WriteTxn, idx uint64, rev *concordv1.RevokeSigningKey, at *timestamppb.Timestamp) error {
	stored, err := signingKeyTxn(txn, rev.GetKeyId())
	if err != nil {
		return err
	}
	// Never mutate the stored object: readers of older snapshots still hold it.
	k := proto.CloneOf(stored)
	k.RevokedAt = proto.CloneOf(at)
	k.RevocationReason = rev.GetReason()
	if err := txn.Insert(tableSigningKeys, k); err != nil {
		return fmt.Errorf("revoke signing key %s: %w", k.GetKeyId(), err)
	}
	return bumpIndexTxn(txn, tableSigningKeys, idx)
}

func setJurisdictionTxn(txn WriteTxn, idx uint64, j *concordv1.Jurisdiction) error {
	existing, err := txn.First(tableJurisdictions, indexID, j.GetCode())
	if err != nil {
		return fmt.Errorf("jurisdiction %s: %w", j.GetCode(), err)
	}
	if existing != nil && proto.Equal(existing.(*concordv1.Jurisdiction), j) {
		return nil
	}
	if err := txn.Insert(tableJurisdictions, proto.CloneOf(j)); err != nil {
		return fmt.Errorf("set jurisdiction %s: %w", j.GetCode(), err)
	}
	return bumpIndexTxn(txn, tableJurisdictions, idx)
}

// commandTime returns the leader-stamped time of a command; the FSM never reads the clock.
func commandTime(ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, fault.Invalid("the command has no time stamp: the leader must stamp it before appending it")
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, fault.Invalid("the command's time stamp is invalid: %v", err)
	}
	return ts.AsTime(), nil
}

const ed25519PublicKeySize = 32
