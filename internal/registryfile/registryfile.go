// Package registryfile reads the YAML file a Concord node bootstraps its partner registry from on
// its first start, and holds the example registry of `concord dev`. See example-registry.yaml for
// the format. Parsing is strict: an unknown key, a misspelt role or a missing key file is an error
// that names where it is.
package registryfile

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"buf.build/go/protovalidate"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"
)

// Registry is a bootstrap registry, ready to load.
type Registry struct {
	Jurisdictions []*concordv1.Jurisdiction
	// Partners carry their signing keys (public key, validity); key ids are derived on load.
	Partners []*concordv1.Partner
	// SigningKeys lists keys outside their partner entries (none when read from a file).
	SigningKeys []*concordv1.SigningKey
}

//go:embed example-registry.yaml
var example []byte

// Example is the example registry's YAML. Its key files are relative to a dev PKI directory.
func Example() []byte { return bytes.Clone(example) }

// ExamplePartnerIDs lists the partners of the example registry, in file order.
func ExamplePartnerIDs() []string {
	var f file
	if err := yaml.Unmarshal(example, &f); err != nil {
		panic("registryfile: example registry: " + err.Error())
	}
	ids := make([]string, len(f.Partners))
	for i, p := range f.Partners {
		ids[i] = p.ID
	}
	return ids
}

// Load reads a registry file; key files are relative to the file's folder.
func Load(path string) (*Registry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry file: %w", err)
	}
	reg, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("registry file %s: %w", path, err)
	}
	return reg, nil
}

type file struct {
	Jurisdictions []jurisdiction `yaml:"jurisdictions"`
	Partners      []partner      `yaml:"partners"`
}

type jurisdiction struct {
	Code       string      `yaml:"code"`
	Name       string      `yaml:"name"`
	Example    bool        `yaml:"example"`
	Provisions []provision `yaml:"provisions"`
	Policy     policy      `yaml:"policy"`
}

type provision struct {
	ID         string   `yaml:"id"`
	Citation   string   `yaml:"citation"`
	Categories []string `yaml:"categories"`
}

type policy struct {
	DefaultRemovalDeadline string        `yaml:"default_removal_deadline"`
	ScrutinyWindow         string        `yaml:"scrutiny_window"`
	PreservationPeriod     string        `yaml:"preservation_period"`
	MutualRecognition      []recognition `yaml:"mutual_recognition"`
}

type recognition struct {
	FromJurisdiction string   `yaml:"from_jurisdiction"`
	Categories       []string `yaml:"categories"`
	ObjectionWindow  string   `yaml:"objection_window"`
}

type partner struct {
	ID           string       `yaml:"id"`
	DisplayName  string       `yaml:"display_name"`
	Jurisdiction string       `yaml:"jurisdiction"`
	Roles        []string     `yaml:"roles"`
	SigningKeys  []signingKey `yaml:"signing_keys"`
	// The partner's witness verifier key ("name+hash+key"), inline or in a file.
	WitnessKey     string `yaml:"witness_key"`
	WitnessKeyFile string `yaml:"witness_key_file"`
	// Where the hub sends the witness its checkpoints (C2SP tlog-witness submission prefix).
	WitnessURL string `yaml:"witness_url"`
}

type signingKey struct {
	PublicKey     string `yaml:"public_key"`
	PublicKeyFile string `yaml:"public_key_file"`
	NotBefore     string `yaml:"not_before"`
	NotAfter      string `yaml:"not_after"`
}

// Parse reads a registry from YAML; public_key_file paths are relative to baseDir.
func Parse(data []byte, baseDir string) (*Registry, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("YAML: %w", err)
	}
	v, err := validator()
	if err != nil {
		return nil, err
	}
	reg := &Registry{}
	for i, j := range f.Jurisdictions {
		where := fmt.Sprintf("jurisdictions[%d] (%s)", i, j.Code)
		pj, err := j.proto()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := check(v, pj); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		reg.Jurisdictions = append(reg.Jurisdictions, pj)
	}
	for i, p := range f.Partners {
		where := fmt.Sprintf("partners[%d] (%s)", i, p.ID)
		pp, err := p.proto(baseDir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := check(v, pp); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		reg.Partners = append(reg.Partners, pp)
	}
	if len(reg.Partners) == 0 {
		return nil, errors.New("no partners: a registry needs at least an administrator with a signing key")
	}
	return reg, nil
}

// validator is built once: building one compiles the rules of every message it meets, which
// cost more than the rest of a parse.
var validator = sync.OnceValues(func() (protovalidate.Validator, error) { return protovalidate.New() })

func check(v protovalidate.Validator, m proto.Message) error {
	if err := v.Validate(m); err != nil {
		var verr *protovalidate.ValidationError
		if errors.As(err, &verr) {
			var msgs []string
			for _, viol := range verr.Violations {
				field := protovalidate.FieldPathString(viol.Proto.GetField())
				if field == "" {
					msgs = append(msgs, viol.Proto.GetMessage())
				} else {
					msgs = append(msgs, field+": "+viol.Proto.GetMessage())
				}
			}
			return errors.New(strings.Join(msgs, "; "))
		}
		return err
	}
	return nil
}

func (j jurisdiction) proto() (*concordv1.Jurisdiction, error) {
	out := &concordv1.Jurisdiction{Code: j.Code, Name: j.Name, Example: j.Example}
	for i, p := range j.Provisions {
		cats, err := enums[concordv1.Category](p.Categories, concordv1.Category_CATEGORY_UNSPECIFIED.Descriptor(), "CATEGORY_")
		if err != nil {
			return nil, fmt.Errorf("provisions[%d] (%s): categories: %w", i, p.ID, err)
		}
		out.Provisions = append(out.Provisions, &concordv1.LegalProvision{Id: p.ID, Citation: p.Citation, Categories: cats})
	}
	pol := &concordv1.JurisdictionPolicy{}
	var err error
	if pol.DefaultRemovalDeadline, err = duration(j.Policy.DefaultRemovalDeadline); err != nil {
		return nil, fmt.Errorf("policy.default_removal_deadline: %w", err)
	}
	if pol.ScrutinyWindow, err = duration(j.Policy.ScrutinyWindow); err != nil {
		return nil, fmt.Errorf("policy.scrutiny_window: %w", err)
	}
	if pol.PreservationPeriod, err = duration(j.Policy.PreservationPeriod); err != nil {
		return nil, fmt.Errorf("policy.preservation_period: %w", err)
	}
	for i, mr := range j.Policy.MutualRecognition {
		cats, err := enums[concordv1.Category](mr.Categories, concordv1.Category_CATEGORY_UNSPECIFIED.Descriptor(), "CATEGORY_")
		if err != nil {
			return nil, fmt.Errorf("policy.mutual_recognition[%d]: categories: %w", i, err)
		}
		window, err := duration(mr.ObjectionWindow)
		if err != nil {
			return nil, fmt.Errorf("policy.mutual_recognition[%d].objection_window: %w", i, err)
		}
		pol.MutualRecognition = append(pol.MutualRecognition, &concordv1.MutualRecognition{
			FromJurisdiction: mr.FromJurisdiction, Categories: cats, ObjectionWindow: window})
	}
	out.Policy = pol
	return out, nil
}

func (p partner) proto(baseDir string) (*concordv1.Partner, error) {
	roles, err := enums[concordv1.Role](p.Roles, concordv1.Role_ROLE_UNSPECIFIED.Descriptor(), "ROLE_")
	if err != nil {
		return nil, fmt.Errorf("roles: %w", err)
	}
	out := &concordv1.Partner{Id: p.ID, DisplayName: p.DisplayName, Jurisdiction: p.Jurisdiction, Roles: roles, WitnessKey: strings.TrimSpace(p.WitnessKey),
		WitnessUrl: strings.TrimSpace(p.WitnessURL)}
	switch {
	case p.WitnessKey != "" && p.WitnessKeyFile != "":
		return nil, errors.New("give witness_key or witness_key_file, not both")
	case p.WitnessKeyFile != "":
		path := p.WitnessKeyFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("witness_key_file: %w", err)
		}
		out.WitnessKey = strings.TrimSpace(string(data))
	}
	for i, k := range p.SigningKeys {
		key, err := k.proto(baseDir)
		if err != nil {
			return nil, fmt.Errorf("signing_keys[%d]: %w", i, err)
		}
		key.PartnerId = p.ID
		out.SigningKeys = append(out.SigningKeys, key)
	}
	return out, nil
}

func (k signingKey) proto(baseDir string) (*concordv1.SigningKey, error) {
	var pemData []byte
	switch {
	case k.PublicKey != "" && k.PublicKeyFile != "":
		return nil, errors.New("give public_key or public_key_file, not both")
	case k.PublicKey != "":
		pemData = []byte(k.PublicKey)
	case k.PublicKeyFile != "":
		path := k.PublicKeyFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("public_key_file: %w", err)
		}
		pemData = data
	default:
		return nil, errors.New("give the key's public_key (PEM) or public_key_file")
	}
	pub, err := pki.ParseSigningPublicKeyPEM(pemData)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	out := &concordv1.SigningKey{PublicKey: pub}
	if out.NotBefore, err = timestamp(k.NotBefore); err != nil {
		return nil, fmt.Errorf("not_before: %w", err)
	}
	if out.NotAfter, err = timestamp(k.NotAfter); err != nil {
		return nil, fmt.Errorf("not_after: %w", err)
	}
	return out, nil
}

// enums maps names ("AUTHORITY" or "ROLE_AUTHORITY", any case) to enum values.
func enums[E ~int32](names []string, desc protoreflect.EnumDescriptor, prefix string) ([]E, error) {
	out := make([]E, 0, len(names))
	for _, n := range names {
		full := strings.ToUpper(strings.TrimSpace(n))
		if !strings.HasPrefix(full, prefix) {
			full = prefix + full
		}
		v := desc.Values().ByName(protoreflect.Name(full))
		if v == nil || v.Number() == 0 {
			return nil, fmt.Errorf("unknown value %q; want one of %s", n, strings.Join(valueNames(desc, prefix), ", "))
		}
		out = append(out, E(v.Number()))
	}
	return out, nil
}

func valueNames(desc protoreflect.EnumDescriptor, prefix string) []string {
	var names []string
	for i := 1; i < desc.Values().Len(); i++ {
		names = append(names, strings.TrimPrefix(string(desc.Values().Get(i).Name()), prefix))
	}
	return names
}

// duration parses a Go duration or a whole number of days ("183d"); empty means unset.
func duration(s string) (*durationpb.Duration, error) {
	if s == "" {
		return nil, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%q: want a Go duration (\"72h\") or whole days (\"183d\")", s)
		}
		return durationpb.New(time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fmt.Errorf("%q: want a Go duration (\"72h\") or whole days (\"183d\")", s)
	}
	return durationpb.New(d), nil
}

func timestamp(s string) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, fmt.Errorf("%q: want an RFC 3339 time such as 2026-01-01T00:00:00Z", s)
	}
	return timestamppb.New(t), nil
}
