package state

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testPublicKey returns a deterministic Ed25519 public key named by seed.
func testPublicKey(seed string) ed25519.PublicKey {
	s := make([]byte, ed25519.SeedSize)
	copy(s, seed)
	return ed25519.NewKeyFromSeed(s).Public().(ed25519.PublicKey)
}

func testKey(partner, seed string) *concordv1.SigningKey {
	pub := testPublicKey(seed)
	return &concordv1.SigningKey{KeyId: dsse.KeyID(pub), PartnerId: partner, PublicKey: pub}
}

func testJurisdiction(code string, recognises ...string) *concordv1.Jurisdiction {
	lower := strings.ToLower(code)
	j := &concordv1.Jurisdiction{
		Code: code,
		Name: "Jurisdiction " + code,
		Provisions: []*concordv1.LegalProvision{{
			Id: lower + ".law.1", Citation: "Law 1", Categories: []concordv1.Category{concordv1.Category_CATEGORY_INCITEMENT},
		}},
		Policy: &concordv1.JurisdictionPolicy{},
	}
	for _, from := range recognises {
		j.Policy.MutualRecognition = append(j.Policy.MutualRecognition, &concordv1.MutualRecognition{FromJurisdiction: from})
	}
	return j
}

// testBootstrap is a small registry: FR and DE, an administrator hub-ops with key "admin", an
// authority fr-pharos with key "pharos" and a platform videoshare without keys.
func testBootstrap() *statev1.BootstrapRegistry {
	return &statev1.BootstrapRegistry{
		Jurisdictions: []*concordv1.Jurisdiction{testJurisdiction("FR"), testJurisdiction("DE", "FR")},
		Partners: []*concordv1.Partner{
			{Id: "hub-ops", DisplayName: "Hub operations", Roles: []concordv1.Role{concordv1.Role_ROLE_ADMIN}},
			{Id: "fr-pharos", DisplayName: "PHAROS", Jurisdiction: "FR", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY}},
			{Id: "videoshare", DisplayName: "VideoShare", Roles: []concordv1.Role{concordv1.Role_ROLE_OPERATOR}},
		},
		SigningKeys: []*concordv1.SigningKey{testKey("hub-ops", "admin"), testKey("fr-pharos", "pharos")},
		At:          timestamppb.New(t0),
	}
}

// testStore returns a store bootstrapped from testBootstrap at raft index 1.
func testStore(t *testing.T) *Store {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.BootstrapRegistry(1, testBootstrap()); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return s
}

var changeSeq atomic.Int64

// testChange returns a registry change by hub-ops with a fresh id.
func testChange(c *concordv1.RegistryChange) *concordv1.RegistryChange {
	c.ChangeId = fmt.Sprintf("01J%023d", changeSeq.Add(1))
	if c.Author == "" {
		c.Author = "hub-ops"
	}
	return c
}

// testCommand wraps change in an envelope "signed" by signer at at. The state store trusts the
// service to have verified the signature, so the signature bytes are arbitrary.
func testCommand(t *testing.T, change *concordv1.RegistryChange, signer string, at time.Time) *statev1.ApplyRegistryChange {
	t.Helper()
	payload, err := proto.Marshal(change)
	if err != nil {
		t.Fatal(err)
	}
	return &statev1.ApplyRegistryChange{
		Envelope: &concordv1.Envelope{
			Payload:     payload,
			PayloadType: "application/vnd.concord.registry-change.v1+protobuf",
			Signatures:  []*concordv1.Signature{{Keyid: signer, Sig: bytes.Repeat([]byte{7}, 64)}},
		},
		SignerKeyId: signer,
		At:          timestamppb.New(at),
	}
}

var (
	adminKeyID  = dsse.KeyID(testPublicKey("admin"))
	pharosKeyID = dsse.KeyID(testPublicKey("pharos"))
)

// snapshotBytes persists s, to compare whole states byte for byte.
func snapshotBytes(t *testing.T, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Snapshot().Persist(&buf); err != nil {
		t.Fatalf("persist: %v", err)
	}
	return buf.Bytes()
}

func mustApply(t *testing.T, s *Store, idx uint64, change *concordv1.RegistryChange, at time.Time) *statev1.AppliedChange {
	t.Helper()
	a, err := s.ApplyRegistryChange(idx, change, testCommand(t, change, adminKeyID, at))
	if err != nil {
		t.Fatalf("apply %v: %v", change, err)
	}
	return a
}

func upsert(p *concordv1.Partner) *concordv1.RegistryChange {
	return testChange(&concordv1.RegistryChange{Change: &concordv1.RegistryChange_UpsertPartner{UpsertPartner: p}})
}

func addKey(partner, seed string, notBefore, notAfter *timestamppb.Timestamp) *concordv1.RegistryChange {
	return testChange(&concordv1.RegistryChange{Change: &concordv1.RegistryChange_AddSigningKey{AddSigningKey: &concordv1.AddSigningKey{
		PartnerId: partner, PublicKey: testPublicKey(seed), NotBefore: notBefore, NotAfter: notAfter,
	}}})
}

func revoke(partner, keyID string) *concordv1.RegistryChange {
	return testChange(&concordv1.RegistryChange{Change: &concordv1.RegistryChange_RevokeSigningKey{RevokeSigningKey: &concordv1.RevokeSigningKey{
		PartnerId: partner, KeyId: keyID, Reason: "key compromised",
	}}})
}

func setJurisdiction(j *concordv1.Jurisdiction) *concordv1.RegistryChange {
	return testChange(&concordv1.RegistryChange{Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: j}})
}

func TestBootstrapRegistry(t *testing.T) {
	t.Parallel()
	s := testStore(t)
	if !s.Bootstrapped() || s.RegistryIndex() != 1 {
		t.Fatalf("Bootstrapped %v, RegistryIndex %d; want true, 1", s.Bootstrapped(), s.RegistryIndex())
	}
	ps, err := s.Partners(nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.GetId())
	}
	if got := strings.Join(ids, ","); got != "fr-pharos,hub-ops,videoshare" {
		t.Fatalf("Partners = %s, want sorted by id", got)
	}
	p, err := s.Partner(nil, "hub-ops")
	if err != nil || len(p.GetSigningKeys()) != 1 || p.GetSigningKeys()[0].GetKeyId() != adminKeyID {
		t.Fatalf("Partner(hub-ops) = %v, %v; want it with its key %s", p, err, adminKeyID)
	}
	if p, err := s.Partner(nil, "nobody"); p != nil || err != nil {
		t.Fatalf("Partner(nobody) = %v, %v; want nil, nil", p, err)
	}
	if k, err := s.SigningKey(pharosKeyID); err != nil || k.GetPartnerId() != "fr-pharos" {
		t.Fatalf("SigningKey(pharos) = %v, %v", k, err)
	}
	if k, err := s.SigningKey("feed"); k != nil || err != nil {
		t.Fatalf("SigningKey(unknown) = %v, %v; want nil, nil", k, err)
	}
	js, err := s.Jurisdictions(nil)
	if err != nil || len(js) != 2 || js[0].GetCode() != "DE" || js[1].GetCode() != "FR" {
		t.Fatalf("Jurisdictions = %v, %v; want DE, FR", js, err)
	}
	if j, err := s.Jurisdiction(nil, "FR"); err != nil || !proto.Equal(j, testJurisdiction("FR")) {
		t.Fatalf("Jurisdiction(FR) = %v, %v", j, err)
	}
	if j, err := s.Jurisdiction(nil, "US"); j != nil || err != nil {
		t.Fatalf("Jurisdiction(US) = %v, %v; want nil, nil", j, err)
	}
	err = s.BootstrapRegistry(2, testBootstrap())
	if fault.CodeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "already bootstrapped") {
		t.Fatalf("second bootstrap: %v, want FailedPrecondition", err)
	}
}

func TestBootstrapRegistryInlineKeys(t *testing.T) {
	t.Parallel()
	cmd := testBootstrap()
	k := cmd.SigningKeys[0]
	cmd.SigningKeys = cmd.SigningKeys[1:]
	k.PartnerId, k.KeyId = "", ""
	cmd.Partners[0].SigningKeys = []*concordv1.SigningKey{k}
	s, _ := New()
	if err := s.BootstrapRegistry(1, cmd); err != nil {
		t.Fatal(err)
	}
	key, err := s.SigningKey(adminKeyID)
	if err != nil || key.GetPartnerId() != "hub-ops" {
		t.Fatalf("inline key = %v, %v; want stored for hub-ops under its derived id", key, err)
	}
}

func TestBootstrapRegistryRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		edit   func(*statev1.BootstrapRegistry)
		code   codes.Code
		substr string
	}{
		{"no time stamp", func(c *statev1.BootstrapRegistry) { c.At = nil }, codes.InvalidArgument, "time stamp"},
		{"duplicate jurisdiction", func(c *statev1.BootstrapRegistry) {
			c.Jurisdictions = append(c.Jurisdictions, testJurisdiction("FR"))
		}, codes.InvalidArgument, "FR is listed twice"},
		{"recognises an undefined jurisdiction", func(c *statev1.BootstrapRegistry) {
			c.Jurisdictions[1] = testJurisdiction("DE", "US")
		}, codes.FailedPrecondition, "US is not registered"},
		{"duplicate partner", func(c *statev1.BootstrapRegistry) {
			c.Partners = append(c.Partners, proto.CloneOf(c.Partners[1]))
		}, codes.InvalidArgument, "fr-pharos is listed twice"},
		{"partner in an undefined jurisdiction", func(c *statev1.BootstrapRegistry) {
			c.Partners[1].Jurisdiction = "US"
		}, codes.FailedPrecondition, "jurisdiction US"},
		{"key of an undefined partner", func(c *statev1.BootstrapRegistry) {
			c.SigningKeys = append(c.SigningKeys, testKey("nobody", "x"))
		}, codes.FailedPrecondition, `partner "nobody"`},
		{"key id not derived from the key", func(c *statev1.BootstrapRegistry) {
			c.SigningKeys[1].KeyId = adminKeyID
		}, codes.InvalidArgument, "public key's id"},
		{"short public key", func(c *statev1.BootstrapRegistry) {
			c.SigningKeys[1].PublicKey = []byte{1, 2, 3}
		}, codes.InvalidArgument, "32-byte"},
		{"duplicate key", func(c *statev1.BootstrapRegistry) {
			c.SigningKeys = append(c.SigningKeys, testKey("hub-ops", "admin"))
		}, codes.InvalidArgument, "listed twice"},
		{"no administrator", func(c *statev1.BootstrapRegistry) {
			c.Partners[0].Roles = []concordv1.Role{concordv1.Role_ROLE_AUDITOR}
		}, codes.FailedPrecondition, "no ROLE_ADMIN partner"},
		{"administrator key expired", func(c *statev1.BootstrapRegistry) {
			c.SigningKeys[0].NotAfter = timestamppb.New(t0.Add(-time.Hour))
		}, codes.FailedPrecondition, "no ROLE_ADMIN partner"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := New()
			empty := snapshotBytes(t, s)
			cmd := testBootstrap()
			tc.edit(cmd)
			err := s.BootstrapRegistry(1, cmd)
			if fault.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("got %v, want %v saying %q", err, tc.code, tc.substr)
			}
			if !bytes.Equal(snapshotBytes(t, s), empty) || s.Bootstrapped() {
				t.Fatal("a refused bootstrap changed the store")
			}
		})
	}
}

func TestApplyRegistryChanges(t *testing.T) {
	t.Parallel()
	s := testStore(t)
	at := t0.Add(time.Minute)

	// A new partner.
	a := mustApply(t, s, 5, upsert(&concordv1.Partner{Id: "de-bka", DisplayName: "BKA", Jurisdiction: "DE", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY}}), at)
	if a.GetIndex() != 5 || !a.GetAt().AsTime().Equal(at) || s.RegistryIndex() != 5 {
		t.Fatalf("applied %v, registry index %d; want index 5 at %v", a, s.RegistryIndex(), at)
	}
	if p, _ := s.Partner(nil, "de-bka"); p.GetDisplayName() != "BKA" {
		t.Fatalf("de-bka = %v", p)
	}
	if got, _ := s.AppliedChange(a.GetChangeId()); !proto.Equal(got, a) {
		t.Fatalf("AppliedChange = %v, want %v", got, a)
	}

	// A key for it, then its revocation, stamped with the change's time and reason.
	mustApply(t, s, 6, addKey("de-bka", "bka", timestamppb.New(t0), timestamppb.New(t0.Add(24*time.Hour))), at)
	bkaKeyID := dsse.KeyID(testPublicKey("bka"))
	if k, _ := s.SigningKey(bkaKeyID); k.GetPartnerId() != "de-bka" || k.GetRevokedAt() != nil {
		t.Fatalf("added key = %v", k)
	}
	revokedAt := at.Add(time.Second)
	mustApply(t, s, 7, revoke("de-bka", bkaKeyID), revokedAt)
	if k, _ := s.SigningKey(bkaKeyID); !k.GetRevokedAt().AsTime().Equal(revokedAt) || k.GetRevocationReason() != "key compromised" {
		t.Fatalf("revoked key = %v, want revoked at %v", k, revokedAt)
	}

	// A new jurisdiction, then an update of one in use by a partner.
	mustApply(t, s, 8, setJurisdiction(testJurisdiction("BE", "FR", "DE")), at)
	fr := testJurisdiction("FR", "BE")
	fr.Name = "France"
	mustApply(t, s, 9, setJurisdiction(fr), at)
	if j, _ := s.Jurisdiction(nil, "FR"); !proto.Equal(j, fr) {
		t.Fatalf("FR = %v, want %v", j, fr)
	}

	// A change that changes nothing is recorded but leaves the partners table's index alone.
	p, _ := s.Partner(nil, "de-bka")
	p.SigningKeys = nil
	mustApply(t, s, 10, upsert(p), at)
	txn := s.db.Txn(false)
	if idx, _ := tableIndexTxn(txn, tablePartners); idx != 5 {
		t.Fatalf("partners index %d after a no-op upsert, want 5", idx)
	}
	if idx, _ := tableIndexTxn(txn, tableRegistryChanges); idx != 10 || s.RegistryIndex() != 10 {
		t.Fatalf("registry_changes index %d, registry index %d; want 10", idx, s.RegistryIndex())
	}
}

func TestRegistryChangeIsIdempotent(t *testing.T) {
	t.Parallel()
	s := testStore(t)
	change := setJurisdiction(testJurisdiction("BE"))
	cmd := testCommand(t, change, adminKeyID, t0)
	first, err := s.ApplyRegistryChange(2, change, cmd)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotBytes(t, s)

	// The identical envelope, re-sent later, returns the original record and changes nothing.
	again := proto.CloneOf(cmd)
	again.At = timestamppb.New(t0.Add(time.Hour))
	got, err := s.ApplyRegistryChange(3, change, again)
	if err != nil || !proto.Equal(got, first) {
		t.Fatalf("re-send = %v, %v; want the original %v", got, err, first)
	}
	if orig, err := s.CheckRegistryChange(change, adminKeyID, t0.Add(time.Hour), dsse.Digest(cmd.GetEnvelope())); err != nil || !proto.Equal(orig, first) {
		t.Fatalf("CheckRegistryChange(re-send) = %v, %v; want the original %v", orig, err, first)
	}
	if !bytes.Equal(snapshotBytes(t, s), before) {
		t.Fatal("a re-send changed the store")
	}

	// The same id with other content is refused.
	other := proto.CloneOf(change)
	other.GetSetJurisdiction().Name = "Belgium"
	_, err = s.ApplyRegistryChange(4, other, testCommand(t, other, adminKeyID, t0))
	if fault.CodeOf(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "already applied with different content") {
		t.Fatalf("same id, other content: %v; want AlreadyExists", err)
	}
	if !bytes.Equal(snapshotBytes(t, s), before) {
		t.Fatal("a refused change changed the store")
	}
}

// TestRegistryChangeRules runs every refusal through both the read-only check and the write
// path, and checks that a refused change leaves the store byte for byte unchanged.
func TestRegistryChangeRules(t *testing.T) {
	t.Parallel()
	at := t0.Add(time.Hour)
	hour := func(h int) *timestamppb.Timestamp { return timestamppb.New(t0.Add(time.Duration(h) * time.Hour)) }
	secondAdmin := func(t *testing.T, s *Store, notAfter *timestamppb.Timestamp) {
		mustApply(t, s, 2, upsert(&concordv1.Partner{Id: "hub-ops-2", DisplayName: "Hub 2", Roles: []concordv1.Role{concordv1.Role_ROLE_ADMIN}}), t0)
		mustApply(t, s, 3, addKey("hub-ops-2", "admin2", nil, notAfter), t0)
	}
	cases := []struct {
		name   string
		setup  func(t *testing.T, s *Store)
		change *concordv1.RegistryChange
		signer string
		code   codes.Code // OK: the change is allowed
		substr string
	}{
		{name: "no change id", change: &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: testJurisdiction("BE")}},
			code: codes.InvalidArgument, substr: "change_id"},
		{name: "no change", change: testChange(&concordv1.RegistryChange{}), code: codes.InvalidArgument, substr: "changes nothing"},
		{name: "author not registered", change: testChange(&concordv1.RegistryChange{Author: "ghost", Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: testJurisdiction("BE")}}),
			code: codes.PermissionDenied, substr: `"ghost" is not a registered partner`},
		{name: "author not an administrator", signer: pharosKeyID, change: testChange(&concordv1.RegistryChange{Author: "fr-pharos", Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: testJurisdiction("BE")}}),
			code: codes.PermissionDenied, substr: "does not hold ROLE_ADMIN"},
		{name: "signer key unknown", signer: "00ff", change: setJurisdiction(testJurisdiction("BE")), code: codes.PermissionDenied, substr: "00ff is not registered"},
		{name: "signer key of another partner", signer: pharosKeyID, change: setJurisdiction(testJurisdiction("BE")), code: codes.PermissionDenied, substr: "belongs to partner \"fr-pharos\""},
		{name: "signer key not yet valid", signer: dsse.KeyID(testPublicKey("admin2")),
			setup:  func(t *testing.T, s *Store) { mustApply(t, s, 2, addKey("hub-ops", "admin2", hour(2), nil), t0) },
			change: setJurisdiction(testJurisdiction("BE")), code: codes.PermissionDenied, substr: "not valid before"},
		{name: "signer key expired", signer: dsse.KeyID(testPublicKey("admin2")),
			setup:  func(t *testing.T, s *Store) { mustApply(t, s, 2, addKey("hub-ops", "admin2", nil, hour(0)), t0) },
			change: setJurisdiction(testJurisdiction("BE")), code: codes.PermissionDenied, substr: "expired"},
		{name: "signer key revoked at the same instant", signer: dsse.KeyID(testPublicKey("admin2")),
			setup: func(t *testing.T, s *Store) {
				mustApply(t, s, 2, addKey("hub-ops", "admin2", nil, nil), t0)
				mustApply(t, s, 3, revoke("hub-ops", dsse.KeyID(testPublicKey("admin2"))), at)
			},
			change: setJurisdiction(testJurisdiction("BE")), code: codes.PermissionDenied, substr: "was revoked at"},

		{name: "upsert partner with keys", change: upsert(&concordv1.Partner{Id: "x", Roles: []concordv1.Role{concordv1.Role_ROLE_OPERATOR}, SigningKeys: []*concordv1.SigningKey{testKey("x", "x")}}),
			code: codes.InvalidArgument, substr: "keys are added with add_signing_key"},
		{name: "upsert partner in an unknown jurisdiction", change: upsert(&concordv1.Partner{Id: "us-doj", Jurisdiction: "US", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY}}),
			code: codes.FailedPrecondition, substr: "US is not registered"},
		{name: "upsert partner", change: upsert(&concordv1.Partner{Id: "socialnet", Roles: []concordv1.Role{concordv1.Role_ROLE_OPERATOR}})},

		{name: "add key to an unknown partner", change: addKey("ghost", "g", nil, nil), code: codes.FailedPrecondition, substr: `partner "ghost" is not registered`},
		{name: "add a registered key", change: addKey("videoshare", "pharos", nil, nil), code: codes.AlreadyExists, substr: "already registered to partner \"fr-pharos\""},
		{name: "add key ending before it starts", change: addKey("videoshare", "v", hour(2), hour(1)), code: codes.InvalidArgument, substr: "not_after"},
		{name: "add key with an empty window", change: addKey("videoshare", "v", hour(1), hour(1)), code: codes.InvalidArgument, substr: "not_after"},
		{name: "add key", change: addKey("videoshare", "v", hour(1), hour(2))},

		{name: "revoke an unknown key", change: revoke("fr-pharos", "00ff"), code: codes.FailedPrecondition, substr: "no signing key 00ff"},
		{name: "revoke another partner's key", change: revoke("videoshare", pharosKeyID), code: codes.FailedPrecondition, substr: "no signing key"},
		{name: "revoke a revoked key",
			setup:  func(t *testing.T, s *Store) { mustApply(t, s, 2, revoke("fr-pharos", pharosKeyID), t0) },
			change: revoke("fr-pharos", pharosKeyID), code: codes.FailedPrecondition, substr: "already revoked"},
		{name: "revoke a key", change: revoke("fr-pharos", pharosKeyID)},

		{name: "jurisdiction provision of another country", change: setJurisdiction(func() *concordv1.Jurisdiction {
			j := testJurisdiction("BE")
			j.Provisions[0].Id = "fr.cp.1"
			return j
		}()), code: codes.InvalidArgument, substr: `must start with "be."`},
		{name: "jurisdiction provision twice", change: setJurisdiction(func() *concordv1.Jurisdiction {
			j := testJurisdiction("BE")
			j.Provisions = append(j.Provisions, j.Provisions[0])
			return j
		}()), code: codes.InvalidArgument, substr: "listed twice"},
		{name: "jurisdiction recognising itself", change: setJurisdiction(testJurisdiction("BE", "BE")), code: codes.FailedPrecondition, substr: "itself"},
		{name: "jurisdiction recognising an unknown one", change: setJurisdiction(testJurisdiction("BE", "US")), code: codes.FailedPrecondition, substr: "US is not registered"},
		{name: "jurisdiction recognising one twice", change: setJurisdiction(testJurisdiction("BE", "FR", "FR")), code: codes.InvalidArgument, substr: "FR twice"},
		{name: "jurisdiction in use updated", change: setJurisdiction(testJurisdiction("FR", "DE"))},

		{name: "lock-out: revoke the only administrator key", change: revoke("hub-ops", adminKeyID), code: codes.FailedPrecondition, substr: "no administrator able to sign"},
		{name: "lock-out: the only administrator drops ROLE_ADMIN",
			change: upsert(&concordv1.Partner{Id: "hub-ops", DisplayName: "Hub", Roles: []concordv1.Role{concordv1.Role_ROLE_AUDITOR}}),
			code:   codes.FailedPrecondition, substr: "no administrator able to sign"},
		{name: "lock-out: the other administrator's key expired",
			setup:  func(t *testing.T, s *Store) { secondAdmin(t, s, hour(0)) },
			change: revoke("hub-ops", adminKeyID), code: codes.FailedPrecondition, substr: "no administrator able to sign"},
		{name: "another administrator can still sign",
			setup:  func(t *testing.T, s *Store) { secondAdmin(t, s, nil) },
			change: revoke("hub-ops", adminKeyID)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := testStore(t)
			if tc.setup != nil {
				tc.setup(t, s)
			}
			signer := tc.signer
			if signer == "" {
				signer = adminKeyID
			}
			cmd := testCommand(t, tc.change, signer, at)
			before := snapshotBytes(t, s)

			orig, checkErr := s.CheckRegistryChange(tc.change, signer, at, dsse.Digest(cmd.GetEnvelope()))
			applied, err := s.ApplyRegistryChange(100, tc.change, cmd)
			if tc.code == codes.OK {
				if checkErr != nil || orig != nil || err != nil || applied.GetIndex() != 100 {
					t.Fatalf("check: %v, %v; apply: %v, %v; want the change applied", orig, checkErr, applied, err)
				}
				return
			}
			for name, err := range map[string]error{"CheckRegistryChange": checkErr, "ApplyRegistryChange": err} {
				if fault.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.substr) {
					t.Errorf("%s: %v; want %v saying %q", name, err, tc.code, tc.substr)
				}
			}
			if orig != nil || applied != nil {
				t.Errorf("a refused change returned a record: %v, %v", orig, applied)
			}
			if !bytes.Equal(snapshotBytes(t, s), before) {
				t.Error("a refused change changed the store")
			}
		})
	}
}

func TestReadsReturnCopies(t *testing.T) {
	t.Parallel()
	s := testStore(t)
	p, _ := s.Partner(nil, "hub-ops")
	p.DisplayName = "changed"
	p.SigningKeys[0].PartnerId = "changed"
	ps, _ := s.Partners(nil)
	ps[0].Roles = nil
	j, _ := s.Jurisdiction(nil, "FR")
	j.Name = "changed"
	k, _ := s.SigningKey(adminKeyID)
	k.PublicKey[0] ^= 0xff

	fresh := testStore(t)
	if !bytes.Equal(snapshotBytes(t, s), snapshotBytes(t, fresh)) {
		t.Fatal("modifying a read result changed the store")
	}
}

func TestWatchSetFiresOnChange(t *testing.T) {
	t.Parallel()
	s := testStore(t)
	ws := memdb.NewWatchSet()
	if _, err := s.Partner(ws, "videoshare"); err != nil {
		t.Fatal(err)
	}
	wsJ := memdb.NewWatchSet()
	if _, err := s.Jurisdictions(wsJ); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, 2, addKey("videoshare", "v", nil, nil), t0)
	if timedOut := ws.Watch(time.After(5 * time.Second)); timedOut {
		t.Fatal("adding a key to the partner did not fire its watch")
	}
	if timedOut := wsJ.Watch(time.After(50 * time.Millisecond)); !timedOut {
		t.Fatal("adding a key fired the jurisdictions watch")
	}
}

func TestAbandon(t *testing.T) {
	t.Parallel()
	s, _ := New()
	s.Abandon()
	s.Abandon()
	select {
	case <-s.AbandonCh():
	default:
		t.Fatal("AbandonCh not closed after Abandon")
	}
}
