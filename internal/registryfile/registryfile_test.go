package registryfile

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"
)

func examplePKI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := pki.Init(pki.Options{Dir: dir, PartnerIDs: ExamplePartnerIDs()}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestExampleRegistry(t *testing.T) {
	dir := examplePKI(t)
	reg, err := Parse(Example(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, j := range reg.Jurisdictions {
		codes = append(codes, j.Code)
		if !j.Example {
			t.Errorf("jurisdiction %s is not marked as example data", j.Code)
		}
	}
	if strings.Join(codes, ",") != "FR,DE,BE,GB,US" {
		t.Fatalf("jurisdictions = %v", codes)
	}
	ids := ExamplePartnerIDs()
	want := []string{"fr-pharos", "de-bka", "be-fedpol", "gb-ctiru", "us-doj", "videoshare", "socialnet", "observatory", "hub-ops"}
	if !slices.Equal(ids, want) {
		t.Fatalf("ExamplePartnerIDs = %v", ids)
	}
	roles := map[concordv1.Role]int{}
	for _, p := range reg.Partners {
		for _, r := range p.Roles {
			roles[r]++
		}
		if len(p.SigningKeys) != 1 || len(p.SigningKeys[0].PublicKey) != 32 || p.SigningKeys[0].PartnerId != p.Id {
			t.Errorf("partner %s keys = %v", p.Id, p.SigningKeys)
		}
		pub, err := pki.LoadSigningPublicKey(pki.Layout{Dir: dir}.SigningPub(p.Id))
		if err != nil {
			t.Fatal(err)
		}
		if !pub.Equal(ed25519.PublicKey(p.SigningKeys[0].PublicKey)) {
			t.Errorf("partner %s: key is not the one in its signing.pub", p.Id)
		}
	}
	if roles[concordv1.Role_ROLE_AUTHORITY] != 5 || roles[concordv1.Role_ROLE_OPERATOR] != 2 || roles[concordv1.Role_ROLE_AUDITOR] != 1 || roles[concordv1.Role_ROLE_ADMIN] != 1 {
		t.Fatalf("roles = %v", roles)
	}
	fr := reg.Jurisdictions[0]
	if got := fr.Policy.DefaultRemovalDeadline.AsDuration(); got != time.Hour {
		t.Errorf("FR default removal deadline = %s", got)
	}
	if got := fr.Policy.PreservationPeriod.AsDuration(); got != 183*24*time.Hour {
		t.Errorf("FR preservation = %s", got)
	}
	if us := reg.Jurisdictions[4]; us.Policy.DefaultRemovalDeadline != nil {
		t.Errorf("US has a default removal deadline %s; want best effort", us.Policy.DefaultRemovalDeadline.AsDuration())
	}
	be := reg.Jurisdictions[2]
	if len(be.Policy.MutualRecognition) != 2 || be.Policy.MutualRecognition[0].FromJurisdiction != "FR" || len(be.Policy.MutualRecognition[0].Categories) != 0 {
		t.Errorf("BE mutual recognition = %v", be.Policy.MutualRecognition)
	}
}

func TestLoadResolvesKeyFilesBesideTheFile(t *testing.T) {
	dir := examplePKI(t)
	path := filepath.Join(dir, "registry.yaml")
	if err := os.WriteFile(path, Example(), 0o644); err != nil {
		t.Fatal(err)
	}
	reg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Partners) != 9 {
		t.Fatalf("%d partners", len(reg.Partners))
	}
}

func TestParseErrorsSayWhere(t *testing.T) {
	dir := examplePKI(t)
	pub, err := os.ReadFile(pki.Layout{Dir: dir}.SigningPub("hub-ops"))
	if err != nil {
		t.Fatal(err)
	}
	inline := "    signing_keys:\n      - public_key: |\n" + indent(string(pub), "          ")
	admin := "partners:\n  - id: hub-ops\n    display_name: Hub\n    roles: [ADMIN]\n" + inline
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "partners:\n  - id: hub-ops\n    colour: red\n", "field colour not found"},
		{"unknown role", "partners:\n  - id: hub-ops\n    display_name: Hub\n    roles: [OWNER]\n", "partners[0] (hub-ops): roles: unknown value \"OWNER\"; want one of AUTHORITY, OPERATOR, AUDITOR, ADMIN"},
		{"missing key file", "partners:\n  - id: hub-ops\n    display_name: Hub\n    roles: [ADMIN]\n    signing_keys: [{public_key_file: nowhere.pub}]\n", "signing_keys[0]: public_key_file"},
		{"no key at all", "partners:\n  - id: hub-ops\n    display_name: Hub\n    roles: [ADMIN]\n    signing_keys: [{}]\n", "give the key's public_key"},
		{"bad partner id", strings.Replace(admin, "hub-ops", "Hub_Ops", 1), "partners[0] (Hub_Ops): id:"},
		{"authority without jurisdiction", strings.Replace(admin, "[ADMIN]", "[AUTHORITY]", 1), "must name its jurisdiction"},
		{"bad duration", admin + "jurisdictions:\n  - code: FR\n    name: France\n    policy: {scrutiny_window: 3 days}\n", "jurisdictions[0] (FR): policy.scrutiny_window: \"3 days\""},
		{"bad category", admin + "jurisdictions:\n  - code: FR\n    name: France\n    provisions: [{id: fr.x, citation: X, categories: [SPAM]}]\n", "provisions[0] (fr.x): categories: unknown value \"SPAM\""},
		{"bad time", strings.Replace(admin, "    signing_keys:\n      - public_key: |", "    signing_keys:\n      - not_after: tomorrow\n        public_key: |", 1), "not_after: \"tomorrow\""},
		{"no partners", "jurisdictions: []\n", "no partners"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v; want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := Parse([]byte(admin), dir); err != nil {
		t.Fatalf("a minimal valid registry: %v", err)
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}
