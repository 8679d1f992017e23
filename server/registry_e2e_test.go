package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"concord/client"
	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"
	"concord/server/servertest"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// registryView is everything a partner can read of the registry.
func registryView(t *testing.T, c *client.Client) (*concordv1.ListPartnersResponse, *concordv1.ListJurisdictionsResponse) {
	t.Helper()
	ps, err := c.Registry.ListPartners(context.Background(), &concordv1.ListPartnersRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	js, err := c.Registry.ListJurisdictions(context.Background(), &concordv1.ListJurisdictionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return ps, js
}

func netherlands() *concordv1.Jurisdiction {
	return &concordv1.Jurisdiction{
		Code: "NL", Name: "Netherlands", Example: true,
		Provisions: []*concordv1.LegalProvision{{
			Id: "nl.sr.131", Citation: "Wetboek van Strafrecht, art. 131 (incitement)",
			Categories: []concordv1.Category{concordv1.Category_CATEGORY_INCITEMENT},
		}},
		Policy: &concordv1.JurisdictionPolicy{DefaultRemovalDeadline: durationpb.New(time.Hour)},
	}
}

func signedBy(t testing.TB, key ed25519.PrivateKey, change *concordv1.RegistryChange) *concordv1.Envelope {
	t.Helper()
	if change.ChangeId == "" {
		change.ChangeId = client.NewID(change.GetAuthor())
	}
	env, err := dsse.SignMessage(dsse.PayloadTypeRegistryChange, change, dsse.NewSigner(key))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestUpdateRegistry(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	n := servertest.Start(t, servertest.Options{Now: clock.Now})
	admin := n.Client(t, "hub-ops")
	adminKey, err := pki.LoadSigningKey(n.PKI.SigningKey("hub-ops"))
	if err != nil {
		t.Fatal(err)
	}
	pharosKey, err := pki.LoadSigningKey(n.PKI.SigningKey("fr-pharos"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	update := func(env *concordv1.Envelope) (*concordv1.UpdateRegistryResponse, error) {
		return admin.Registry.UpdateRegistry(ctx, &concordv1.UpdateRegistryRequest{Envelope: env})
	}
	mustUpdate := func(change *concordv1.RegistryChange) *concordv1.UpdateRegistryResponse {
		t.Helper()
		change.Author = "hub-ops"
		resp, err := update(signedBy(t, adminKey, change))
		if err != nil {
			t.Fatalf("apply %v: %v", change, err)
		}
		return resp
	}

	// A change signed by the admin's registered key is applied, and acknowledged after commit.
	env := signedBy(t, adminKey, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: netherlands()}})
	first, err := update(env)
	if err != nil {
		t.Fatalf("signed change refused: %v", err)
	}
	_, js := registryView(t, admin)
	if js.GetRegistryIndex() < first.GetRegistryIndex() || !hasJurisdiction(js, "NL") {
		t.Fatalf("applied change not visible: index %d, jurisdictions %v", js.GetRegistryIndex(), js.GetJurisdictions())
	}
	// Re-sending the identical envelope returns the original result and changes nothing.
	again, err := update(env)
	if err != nil || !proto.Equal(again, first) {
		t.Fatalf("re-send: %v, %v; want the original %v", again, err, first)
	}
	// The same change id with other content is AlreadyExists.
	var other concordv1.RegistryChange
	if err := proto.Unmarshal(env.GetPayload(), &other); err != nil {
		t.Fatal(err)
	}
	other.GetSetJurisdiction().Name = "Kingdom of the Netherlands"
	if _, err := update(signedBy(t, adminKey, &other)); codeOf(err) != codes.AlreadyExists {
		t.Fatalf("same change id, other content: got %v, want AlreadyExists", err)
	}
	mustUpdate(&concordv1.RegistryChange{Change: &concordv1.RegistryChange_UpsertPartner{UpsertPartner: &concordv1.Partner{
		Id: "nl-nctv", DisplayName: "NCTV", Jurisdiction: "NL", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY},
	}}})

	// A revoked key and an expired key, both once registered for the admin.
	revoked, expiring := newKey(t), newKey(t)
	mustUpdate(&concordv1.RegistryChange{Change: &concordv1.RegistryChange_AddSigningKey{AddSigningKey: &concordv1.AddSigningKey{
		PartnerId: "hub-ops", PublicKey: revoked.Public().(ed25519.PublicKey)}}})
	mustUpdate(&concordv1.RegistryChange{Change: &concordv1.RegistryChange_RevokeSigningKey{RevokeSigningKey: &concordv1.RevokeSigningKey{
		PartnerId: "hub-ops", KeyId: dsse.KeyID(revoked.Public().(ed25519.PublicKey)), Reason: "laptop stolen"}}})
	mustUpdate(&concordv1.RegistryChange{Change: &concordv1.RegistryChange_AddSigningKey{AddSigningKey: &concordv1.AddSigningKey{
		PartnerId: "hub-ops", PublicKey: expiring.Public().(ed25519.PublicKey),
		NotAfter: timestamppb.New(clock.Now().Add(time.Hour))}}})
	clock.Advance(2 * time.Hour)

	tampered := signedBy(t, adminKey, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: netherlands()}})
	tampered.Payload[len(tampered.Payload)-1] ^= 0x01

	refusals := []struct {
		name string
		env  *concordv1.Envelope
		code codes.Code
		says string
	}{
		{"signed by another partner's key", signedBy(t, pharosKey, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: netherlands()}}), codes.PermissionDenied, "sign with your own key"},
		{"signed by an unregistered key", signedBy(t, newKey(t), &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: netherlands()}}), codes.PermissionDenied, "unknown"},
		{"signed by a revoked key", signedBy(t, revoked, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: netherlands()}}), codes.PermissionDenied, "revoked"},
		{"signed by an expired key", signedBy(t, expiring, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: netherlands()}}), codes.PermissionDenied, "expired"},
		{"tampered payload", tampered, codes.PermissionDenied, "signature"},
	}
	before, beforeJ := registryView(t, admin)
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			_, err := update(r.env)
			if codeOf(err) != r.code || !strings.Contains(strings.ToLower(err.Error()), r.says) {
				t.Fatalf("got %v, want %v saying %q", err, r.code, r.says)
			}
			after, afterJ := registryView(t, admin)
			if !proto.Equal(before, after) || !proto.Equal(beforeJ, afterJ) {
				t.Fatalf("a refused change changed the registry")
			}
		})
	}
}

func hasJurisdiction(js *concordv1.ListJurisdictionsResponse, code string) bool {
	for _, j := range js.GetJurisdictions() {
		if j.GetCode() == code {
			return true
		}
	}
	return false
}

func TestRegistryChangesNeedAnAdminSigner(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	// An authority cannot even call UpdateRegistry, whatever it signs.
	pharos := n.Client(t, "fr-pharos")
	_, err := pharos.UpdateRegistry(context.Background(), &concordv1.RegistryChange{Author: "fr-pharos",
		Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: netherlands()}})
	if codeOf(err) != codes.PermissionDenied {
		t.Fatalf("authority's registry change: got %v, want PermissionDenied", err)
	}
	// The admin must name itself as author.
	_, err = n.Client(t, "hub-ops").UpdateRegistry(context.Background(), &concordv1.RegistryChange{Author: "fr-pharos",
		Change: &concordv1.RegistryChange_SetJurisdiction{SetJurisdiction: netherlands()}})
	if codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "author") {
		t.Fatalf("wrong author: got %v, want InvalidArgument about author", err)
	}
}
