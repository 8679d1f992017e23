package ulid

import (
	"regexp"
	"testing"
	"time"
)

func TestEncodeKnownValues(t *testing.T) {
	t.Parallel()
	var zero, max [16]byte
	for i := range max {
		max[i] = 0xff
	}
	if got := encode(zero); got != "00000000000000000000000000" {
		t.Errorf("zero: %s", got)
	}
	if got := encode(max); got != "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" {
		t.Errorf("max: %s", got)
	}
	// The spec's example ULID 01ARZ3NDEK… carries the timestamp 1469922850259 ms.
	id := New(time.UnixMilli(1469922850259))
	if id[:10] != "01ARZ3NDEK" {
		t.Errorf("timestamp prefix: %s, want 01ARZ3NDEK", id[:10])
	}
}

func TestIDsMatchTheAPIPatternAndSortByTime(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
	a := New(time.Unix(1700000000, 0))
	b := New(time.Unix(1700000001, 0))
	for _, id := range []string{a, b, Make()} {
		if !re.MatchString(id) {
			t.Errorf("%q does not match the API's ULID pattern", id)
		}
	}
	if !(a < b) {
		t.Errorf("%s sorts after %s", a, b)
	}
	if Make() == Make() {
		t.Error("two ULIDs in a row are equal")
	}
}
