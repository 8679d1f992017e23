package ratelimit

import (
	concordv1 "concord/gen/concord/v1"

	"google.golang.org/protobuf/proto"
)

// Work units: roughly microseconds of one core on a hub holding millions of hashes. They price
// a request by what it asks, so that one batch of 10 000 PDQ hashes is not charged like one
// lookup. Measured at 10 M hashes: an exact lookup takes about a microsecond, a PDQ radius
// search about a hundred, a call's own handling (TLS, HTTP/2, decoding, authorization) tens.
const (
	// CostCall is the cost of a call, or of a message on a stream, whatever it carries.
	CostCall = 20
	// CostExact is an exact lookup (SHA-256, MD5, URL).
	CostExact = 1
	// CostPDQ is a PDQ radius search, and each frame of a vPDQ hash.
	CostPDQ = 100
	// CostPerKiB is each KiB of any other request (decoding, validating, storing).
	CostPerKiB = 10
)

// Cost is the work units msg asks for, beyond CostCall.
func Cost(msg any) int64 {
	switch m := msg.(type) {
	case *concordv1.MatchRequest:
		return matchCost(m)
	case *concordv1.MatchStreamRequest:
		return matchCost(m.GetBatch())
	case proto.Message:
		return int64(proto.Size(m)) / 1024 * CostPerKiB
	}
	return 0
}

func matchCost(m *concordv1.MatchRequest) int64 {
	var cost int64
	for _, h := range m.GetHashes() {
		cost += CostOfHash(h, m.GetPdqDihedral())
	}
	return cost
}

// CostOfHash is the work units of matching h; with dihedral (MatchRequest.pdq_dihedral), a PDQ
// hash is eight searches.
func CostOfHash(h *concordv1.Hash, dihedral bool) int64 {
	switch h.GetKind() {
	case concordv1.HashKind_HASH_KIND_PDQ:
		if dihedral {
			return 8 * CostPDQ
		}
		return CostPDQ
	case concordv1.HashKind_HASH_KIND_PDQ_VIDEO:
		return CostPDQ * max(1, int64(len(h.GetValue())/32))
	}
	return CostExact
}
