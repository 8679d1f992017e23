package match

import (
	"fmt"
	"time"
	"unicode/utf8"

	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"
)

// maxStaleness is the largest MatchRequest.max_staleness the .proto allows.
const maxStaleness = time.Hour

// ValidateRequest checks a MatchRequest against the constraints its .proto declares
// (protovalidate), in plain Go: Match is the hot path, where the general evaluator cost more
// than the matching itself. TestValidateRequestAgreesWithProtovalidate keeps the two in step.
func ValidateRequest(req *concordv1.MatchRequest) error {
	n := len(req.GetHashes())
	if n < 1 || n > 10000 {
		return fault.Invalid("hashes: a batch holds 1 to 10000 hashes, this one %d", n)
	}
	if d := req.GetMaxPdqDistance(); d < 0 || d > 31 {
		return fault.Invalid("max_pdq_distance: must be 0 to 31, not %d", d)
	}
	if utf8.RuneCountInString(req.GetRequestId()) > 128 {
		return fault.Invalid("request_id: at most 128 characters")
	}
	if s := req.GetMaxStaleness(); s != nil {
		if err := s.CheckValid(); err != nil {
			return fault.Invalid("max_staleness: %v", err)
		}
		if d := s.AsDuration(); d < 0 || d > maxStaleness {
			return fault.Invalid("max_staleness: must be 0 to 1h, not %v", d)
		}
	}
	for i, h := range req.GetHashes() {
		if err := validateHash(h); err != nil {
			return fault.Invalid("hashes[%d].%v", i, err)
		}
	}
	return nil
}

func validateHash(h *concordv1.Hash) error {
	k, v := h.GetKind(), h.GetValue()
	if _, ok := concordv1.HashKind_name[int32(k)]; !ok || k == concordv1.HashKind_HASH_KIND_UNSPECIFIED {
		return fmt.Errorf("kind: %d is not a hash kind", k)
	}
	if len(v) < 16 || len(v) > 65536 {
		return fmt.Errorf("value: %d bytes, want 16 to 65536", len(v))
	}
	if q := h.GetQuality(); q < 0 || q > 100 {
		return fmt.Errorf("quality: %d, want 0 to 100", q)
	}
	switch k {
	case concordv1.HashKind_HASH_KIND_SHA256, concordv1.HashKind_HASH_KIND_URL_SHA256:
		if len(v) != 32 {
			return fmt.Errorf("value: a SHA256 or URL_SHA256 hash value is exactly 32 bytes")
		}
	case concordv1.HashKind_HASH_KIND_MD5:
		if len(v) != 16 {
			return fmt.Errorf("value: an MD5 hash value is exactly 16 bytes")
		}
	case concordv1.HashKind_HASH_KIND_PDQ:
		if len(v) != 32 {
			return fmt.Errorf("value: a PDQ hash value is exactly 32 bytes")
		}
	case concordv1.HashKind_HASH_KIND_PDQ_VIDEO:
		if len(v)%32 != 0 {
			return fmt.Errorf("value: a PDQ_VIDEO hash value is a non-empty list of 32-byte frame hashes")
		}
	}
	return nil
}
