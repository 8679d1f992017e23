// Package ratelimit limits each partner's request rate, so one partner's runaway script cannot
// starve the others.
package ratelimit

import (
	"sync"
	"time"

	"concord/server/fault"

	"golang.org/x/time/rate"
)

// Limiter holds one token bucket per partner.
type Limiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// New allows each partner perSecond requests per second on average, and burst at once.
// perSecond <= 0 disables limiting.
func New(perSecond float64, burst int) *Limiter {
	if burst < 1 {
		burst = 1
	}
	return &Limiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*rate.Limiter{}}
}

// Allow takes a token from partnerID's bucket, or returns a ResourceExhausted fault that says
// when the bucket will hold a token again (a RetryInfo hint for well-behaved clients).
// Buckets exist only for partners whose certificate the CA issued, so the map stays small.
func (l *Limiter) Allow(partnerID string) error {
	if l == nil || l.limit <= 0 {
		return nil
	}
	l.mu.Lock()
	b, ok := l.buckets[partnerID]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[partnerID] = b
	}
	l.mu.Unlock()
	if !b.Allow() {
		wait := time.Duration((1 - b.Tokens()) / float64(l.limit) * float64(time.Second))
		return fault.ExhaustedFor(max(wait, time.Millisecond), "partner %q is over its rate limit of %g requests/s (burst %d): slow down and retry", partnerID, float64(l.limit), l.burst)
	}
	return nil
}
