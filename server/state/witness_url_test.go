package state

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// TestWitnessURL: a partner's witness_url is an http(s) submission prefix given with its
// witness key; anything else is refused with a message that says why. (The registry service
// refuses such a change before proposing it: TestRegistryRefusesABadWitnessURL.)
func TestWitnessURL(t *testing.T) {
	t.Parallel()
	_, v, err := note.GenerateKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := formats.VKeyToCosignatureV1(v)
	if err != nil {
		t.Fatal(err)
	}
	witness := func(key, url string) *concordv1.Partner {
		return &concordv1.Partner{Id: "witness-one", DisplayName: "A witness", Roles: []concordv1.Role{concordv1.Role_ROLE_AUDITOR},
			WitnessKey: key, WitnessUrl: url}
	}
	for _, tc := range []struct{ key, url, want string }{
		{"", "https://witness.example/w1", "needs witness_key"},
		{vkey, "ftp://witness.example/w1", "not the witness's submission prefix"},
		{vkey, "https://witness.example/w1?x=1", "not the witness's submission prefix"},
		{vkey, "https:///nohost", "not the witness's submission prefix"},
		{vkey, "https://user@witness.example/", "not the witness's submission prefix"},
	} {
		if err := CheckWitnessURL(witness(tc.key, tc.url)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("witness_url %q with key %q: %v, want an error saying %q", tc.url, tc.key, err, tc.want)
		}
	}
	for _, url := range []string{"", "http://127.0.0.1:7380", "https://witness.example/w1/"} {
		if err := CheckWitnessURL(witness(vkey, url)); err != nil {
			t.Errorf("witness_url %q refused: %v", url, err)
		}
	}
	// The state machine stores what the service let through.
	s := testStore(t)
	mustApply(t, s, 10, upsert(witness(vkey, "http://127.0.0.1:7380")), time.Now())
	p, err := s.Partner(nil, "witness-one")
	if err != nil || p.GetWitnessUrl() != "http://127.0.0.1:7380" || p.GetWitnessKey() != vkey {
		t.Fatalf("the witness as stored: %v, %v", p, err)
	}
}
