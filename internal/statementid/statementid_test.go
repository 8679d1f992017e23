package statementid

import (
	"regexp"
	"strings"
	"testing"
)

var ulidPattern = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

func TestNewCarriesTheSignersTag(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"fr-pharos", "de-bka", "videoshare", "hub-ops"} {
		id := New(p)
		if !ulidPattern.MatchString(id) || id[0] > '7' {
			t.Fatalf("%s: %q is not a ULID", p, id)
		}
		if err := Check("notice_id", id, p); err != nil {
			t.Fatalf("%s: own id refused: %v", p, err)
		}
		if id[10:16] != Tag(p) {
			t.Fatalf("%s: tag %s not at characters 11 to 16 of %s", p, Tag(p), id)
		}
	}
	if New("fr-pharos") == New("fr-pharos") {
		t.Fatal("two ids alike")
	}
}

func TestCheckRefusesAnotherPartnersTag(t *testing.T) {
	t.Parallel()
	id := New("fr-pharos")
	err := Check("notice_id", id, "de-bka")
	if err == nil || !strings.Contains(err.Error(), Tag("de-bka")) || !strings.Contains(err.Error(), "notice_id") {
		t.Fatalf("got %v", err)
	}
	if Check("notice_id", "short", "de-bka") == nil {
		t.Fatal("short id accepted")
	}
}

// TestTags checks known values, worked out by hand from sha256sum's output, so that clients in
// other languages can test against them, and that the example partners' tags differ.
func TestTags(t *testing.T) {
	t.Parallel()
	// SHA-256("concord statement id tag\nfr-pharos") begins ef8b920b: its first 30 bits are
	// 11101 11110 00101 11001 00100 00010.
	for p, want := range map[string]string{"fr-pharos": "XY5S42", "de-bka": "73ZAZ8"} {
		if got := Tag(p); got != want {
			t.Errorf("Tag(%s) = %s, want %s", p, got, want)
		}
	}
	seen := map[string]string{}
	for _, p := range []string{"fr-pharos", "de-bka", "be-ccb", "us-fbi", "videoshare", "hub-ops", "observatory"} {
		if q, ok := seen[Tag(p)]; ok {
			t.Fatalf("%s and %s share a tag", p, q)
		}
		seen[Tag(p)] = p
	}
}
