package ratelimit

import (
	"testing"

	"concord/server/fault"

	"google.golang.org/grpc/codes"
)

func TestLimiterIsPerPartner(t *testing.T) {
	t.Parallel()
	l := New(0.001, 2) // effectively no refill during the test
	for i := range 2 {
		if err := l.Allow("fr-pharos"); err != nil {
			t.Fatalf("request %d within burst refused: %v", i, err)
		}
	}
	err := l.Allow("fr-pharos")
	if fault.CodeOf(err) != codes.ResourceExhausted {
		t.Fatalf("third request: got %v, want ResourceExhausted", err)
	}
	if err := l.Allow("de-bka"); err != nil {
		t.Fatalf("another partner is limited by fr-pharos's bucket: %v", err)
	}
}

func TestDisabledLimiterAllowsAll(t *testing.T) {
	t.Parallel()
	for _, l := range []*Limiter{nil, New(0, 1)} {
		for range 100 {
			if err := l.Allow("videoshare"); err != nil {
				t.Fatal(err)
			}
		}
	}
}
