package registryfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"concord/internal/pki"
)

// FuzzParse feeds registry files to Parse. A registry it accepts passes protovalidate, and
// written back as YAML (keys inline, durations and times in Go's forms) it parses to the same
// registry: nothing the parser accepts is lost or changed on the way.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	if _, err := pki.Init(pki.Options{Dir: dir, PartnerIDs: ExamplePartnerIDs()}); err != nil {
		f.Fatal(err)
	}
	// The seeds Parse must accept, so that the fuzzer starts from registries that reach the
	// round trip.
	accepted := [][]byte{Example()}
	pub, err := os.ReadFile(pki.Layout{Dir: dir}.SigningPub("hub-ops"))
	if err != nil {
		f.Fatal(err)
	}
	witness, err := os.ReadFile(pki.Layout{Dir: dir}.WitnessPub("observatory"))
	if err != nil {
		f.Fatal(err)
	}
	inline := "    signing_keys:\n      - public_key: |\n" + indent(string(pub), "          ") +
		"        not_before: 2026-01-01T00:00:00+01:00\n        not_after: 2027-06-30T12:00:00.5Z\n"
	admin := "partners:\n  - id: hub-ops\n    display_name: Hub\n    roles: [ADMIN, role_auditor]\n" + inline +
		"    witness_key: " + strings.TrimSpace(string(witness)) + "\n"
	accepted = append(accepted, []byte(admin), []byte(admin+"jurisdictions:\n  - code: FR\n    name: France\n    provisions: [{id: fr.x, citation: X, categories: [INCITEMENT, category_threat]}]\n"+
		"    policy: {default_removal_deadline: 90m, scrutiny_window: 3d, preservation_period: 183d,\n"+
		"      mutual_recognition: [{from_jurisdiction: DE, objection_window: 72h}]}\n"))
	for i, seed := range accepted {
		if _, err := Parse(seed, dir); err != nil {
			f.Fatalf("seed %d: %v", i, err)
		}
		f.Add(seed)
	}
	f.Add([]byte("partners:\n  - id: hub-ops\n    colour: red\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		if readsOutside(data, dir) {
			t.Skip("names a key file outside the PKI")
		}
		reg, err := Parse(data, dir)
		if err != nil {
			return
		}
		v, err := validator()
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range reg.Jurisdictions {
			if err := check(v, j); err != nil {
				t.Fatalf("accepted jurisdiction %s does not validate: %v", j.GetCode(), err)
			}
		}
		for _, p := range reg.Partners {
			if err := check(v, p); err != nil {
				t.Fatalf("accepted partner %s does not validate: %v", p.GetId(), err)
			}
		}
		out, err := yaml.Marshal(fileOf(t, reg))
		if err != nil {
			t.Fatalf("write the registry back: %v", err)
		}
		again, err := Parse(out, dir)
		if err != nil {
			t.Fatalf("the registry written back does not parse: %v\n%s", err, out)
		}
		if !registriesEqual(reg, again) {
			t.Fatalf("the registry written back parses to another registry:\nfirst  %v\nsecond %v\nYAML:\n%s", reg, again, out)
		}
	})
}

// readsOutside reports whether data names a key file that does not resolve inside dir: a
// fuzzer must not read devices or the machine's files.
func readsOutside(data []byte, dir string) bool {
	var f file
	if yaml.Unmarshal(data, &f) != nil {
		return false // Parse refuses it before reading any file
	}
	outside := func(p string) bool {
		if p == "" {
			return false
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		rel, err := filepath.Rel(dir, filepath.Clean(p))
		return err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	for _, p := range f.Partners {
		if outside(p.WitnessKeyFile) {
			return true
		}
		for _, k := range p.SigningKeys {
			if outside(k.PublicKeyFile) {
				return true
			}
		}
	}
	return false
}

// fileOf writes reg in the registry file's own form.
func fileOf(t *testing.T, reg *Registry) file {
	var f file
	for _, j := range reg.Jurisdictions {
		fj := jurisdiction{Code: j.GetCode(), Name: j.GetName(), Example: j.GetExample()}
		for _, p := range j.GetProvisions() {
			fp := provision{ID: p.GetId(), Citation: p.GetCitation(), Categories: []string{}}
			for _, c := range p.GetCategories() {
				fp.Categories = append(fp.Categories, c.String())
			}
			fj.Provisions = append(fj.Provisions, fp)
		}
		pol := j.GetPolicy()
		fj.Policy = policy{
			DefaultRemovalDeadline: durationText(pol.GetDefaultRemovalDeadline()),
			ScrutinyWindow:         durationText(pol.GetScrutinyWindow()),
			PreservationPeriod:     durationText(pol.GetPreservationPeriod()),
		}
		for _, mr := range pol.GetMutualRecognition() {
			r := recognition{FromJurisdiction: mr.GetFromJurisdiction(), ObjectionWindow: durationText(mr.GetObjectionWindow()), Categories: []string{}}
			for _, c := range mr.GetCategories() {
				r.Categories = append(r.Categories, c.String())
			}
			fj.Policy.MutualRecognition = append(fj.Policy.MutualRecognition, r)
		}
		f.Jurisdictions = append(f.Jurisdictions, fj)
	}
	for _, p := range reg.Partners {
		fp := partner{ID: p.GetId(), DisplayName: p.GetDisplayName(), Jurisdiction: p.GetJurisdiction(), WitnessKey: p.GetWitnessKey(), Roles: []string{}}
		for _, r := range p.GetRoles() {
			fp.Roles = append(fp.Roles, r.String())
		}
		for _, k := range p.GetSigningKeys() {
			pemKey, err := pki.MarshalSigningPublicKeyPEM(k.GetPublicKey())
			if err != nil {
				t.Fatalf("accepted key of %s does not encode: %v", p.GetId(), err)
			}
			fp.SigningKeys = append(fp.SigningKeys, signingKey{PublicKey: string(pemKey),
				NotBefore: timeText(k.GetNotBefore()), NotAfter: timeText(k.GetNotAfter())})
		}
		f.Partners = append(f.Partners, fp)
	}
	return f
}

func durationText(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	return d.AsDuration().String()
}

func timeText(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().Format(time.RFC3339Nano)
}

func registriesEqual(a, b *Registry) bool {
	eq := func(x, y []proto.Message) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !proto.Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	msgs := func(reg *Registry) (js, ps []proto.Message) {
		for _, j := range reg.Jurisdictions {
			js = append(js, j)
		}
		for _, p := range reg.Partners {
			ps = append(ps, p)
		}
		return js, ps
	}
	aj, ap := msgs(a)
	bj, bp := msgs(b)
	return eq(aj, bj) && eq(ap, bp)
}
