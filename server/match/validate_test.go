package match

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestValidateRequestAgreesWithProtovalidate generates requests, valid and broken in every way
// the .proto constrains, and checks that ValidateRequest and protovalidate agree on each.
func TestValidateRequestAgreesWithProtovalidate(t *testing.T) {
	t.Parallel()
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	lengths := []int{0, 1, 15, 16, 17, 31, 32, 33, 48, 64, 96, 65536, 65537}
	kinds := []concordv1.HashKind{0, 1, 2, 3, 4, 5, 6, 99}
	valid, invalid := 0, 0
	// Each part is right most of the time, so that both verdicts come often.
	fits := map[concordv1.HashKind][]int{1: {32}, 2: {16}, 3: {32}, 4: {32, 64, 96}, 5: {32}}
	for range 5000 {
		req := &concordv1.MatchRequest{MaxPdqDistance: int32(r.IntN(32))}
		if r.IntN(20) == 0 {
			req.MaxPdqDistance = int32(r.IntN(40) - 4)
		}
		if r.IntN(20) == 0 {
			req.RequestId = strings.Repeat("é", 120+r.IntN(16))
		}
		if r.IntN(10) == 0 {
			stalenesses := []time.Duration{0, time.Nanosecond, time.Second, time.Hour, time.Hour + time.Nanosecond, 2 * time.Hour, -time.Nanosecond, -time.Second}
			req.MaxStaleness = durationpb.New(stalenesses[r.IntN(len(stalenesses))])
		}
		for range r.IntN(4) {
			kind := concordv1.HashKind(1 + r.IntN(5))
			if r.IntN(15) == 0 {
				kind = kinds[r.IntN(len(kinds))]
			}
			size := 32
			if ok := fits[kind]; ok != nil {
				size = ok[r.IntN(len(ok))]
			}
			if r.IntN(8) == 0 {
				size = lengths[r.IntN(len(lengths))]
			}
			quality := int32(r.IntN(101))
			if r.IntN(15) == 0 {
				quality = int32(r.IntN(110) - 5)
			}
			req.Hashes = append(req.Hashes, &concordv1.Hash{Kind: kind, Value: make([]byte, size), Quality: quality})
		}
		if r.IntN(50) == 0 {
			req.Hashes = make([]*concordv1.Hash, 10001)
			for i := range req.Hashes {
				req.Hashes[i] = &concordv1.Hash{Kind: 1, Value: make([]byte, 32)}
			}
		}
		got, want := ValidateRequest(req), v.Validate(req)
		if (got == nil) != (want == nil) {
			t.Fatalf("request %v:\nValidateRequest: %v\nprotovalidate:   %v", req, got, want)
		}
		if got == nil {
			valid++
		} else {
			invalid++
		}
	}
	if valid < 100 || invalid < 100 {
		t.Fatalf("%d valid and %d invalid requests: the generator covers too little", valid, invalid)
	}
}
