// Package statementid gives each partner its own space of statement ids. A signed statement's
// id (notice_id, endorsement_id, objection_id, withdrawal_id, report_id) is a ULID chosen by its
// signer; characters 11 to 16 of it, 30 of its 80 random bits, must be the signer's tag, which
// is derived from the partner id alone. Two partners' ids therefore never collide, and the hub
// refuses an id that carries another partner's tag from its form alone: a partner cannot learn
// that a statement it may not see exists by trying to reuse its id.
//
// In any language: take a new ULID (26 characters of Crockford base32) and replace characters
// 11 to 16 (0-based offsets 10 to 15) with the tag. WhoAmI returns the caller's tag; it is the
// first 30 bits of SHA-256("concord statement id tag\n" + partner id) in Crockford base32.
package statementid

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"concord/internal/ulid"
)

// The tag's place in a 26-character ULID: just after the 48-bit timestamp (characters 0 to 9).
const (
	tagStart = 10
	tagLen   = 6
)

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Tag is partnerID's 6-character tag.
func Tag(partnerID string) string {
	sum := sha256.Sum256([]byte("concord statement id tag\n" + partnerID))
	bits := binary.BigEndian.Uint32(sum[:4]) >> 2 // the first 30 bits
	var out [tagLen]byte
	for i := tagLen - 1; i >= 0; i-- {
		out[i] = alphabet[bits&31]
		bits >>= 5
	}
	return string(out[:])
}

// New returns a new statement id for a statement signed by partnerID.
func New(partnerID string) string { return NewAt(partnerID, time.Now()) }

// NewAt returns a new statement id for a statement signed by partnerID, for time t.
func NewAt(partnerID string, t time.Time) string {
	id := ulid.New(t)
	return id[:tagStart] + Tag(partnerID) + id[tagStart+tagLen:]
}

// Check refuses id unless it carries signer's tag. field names the id in the message
// ("notice_id"). The answer depends on id and signer only, never on what the hub holds.
func Check(field, id, signer string) error {
	want := Tag(signer)
	if len(id) != 26 {
		return fmt.Errorf("%s %q: want a 26-character ULID carrying your tag %s at characters 11 to 16", field, id, want)
	}
	if got := id[tagStart : tagStart+tagLen]; got != want {
		return fmt.Errorf("%s %s carries the tag %s at characters 11 to 16, not %s, the tag of %s: "+
			"each partner's statement ids carry its own tag (WhoAmI returns it; Concord's clients add it)",
			field, id, got, want, signer)
	}
	return nil
}
