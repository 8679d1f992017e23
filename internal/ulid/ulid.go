// Package ulid makes ULIDs (https://github.com/ulid/spec): 26 characters of Crockford base32,
// a 48-bit millisecond timestamp then 80 random bits, so ids sort by creation time.
package ulid

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// New returns a ULID for time t.
func New(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails on supported platforms
	return encode(b)
}

// Make returns a ULID for now.
func Make() string { return New(time.Now()) }

// encode writes the 128 bits as 26 base32 digits, the first digit holding the top 3 bits.
func encode(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
