package ratelimit

import (
	"errors"
	"testing"
	"time"

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

// A refusal says how long until the bucket holds a token again.
func TestRefusalSaysWhenToRetry(t *testing.T) {
	t.Parallel()
	l := New(10, 1) // a token every 100 ms
	if err := l.Allow("fr-pharos"); err != nil {
		t.Fatal(err)
	}
	var f *fault.Error
	if err := l.Allow("fr-pharos"); !errors.As(err, &f) || f.Code != codes.ResourceExhausted {
		t.Fatalf("second request: %v, want a ResourceExhausted fault", err)
	}
	if f.RetryAfter <= 0 || f.RetryAfter > 100*time.Millisecond {
		t.Fatalf("retry after %v, want within the 100 ms a token takes", f.RetryAfter)
	}
}
