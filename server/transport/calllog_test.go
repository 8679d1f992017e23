package transport

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"concord/server/authz"

	"google.golang.org/grpc/codes"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRefusalsAreSummedUp: a flood of refusals from one partner writes one line at once and one
// line with the count when the interval ends, not a line each.
func TestRefusalsAreSummedUp(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	l := newCallLog(slog.New(slog.NewTextHandler(&out, nil)), 20*time.Millisecond)
	ctx := authz.WithCaller(context.Background(), &authz.Caller{PartnerID: "flooder"})
	other := authz.WithCaller(context.Background(), &authz.Caller{PartnerID: "bystander"})
	for range 1000 {
		l.finished(ctx, "grpc", "/concord.v1.MatchService/Match", nil, codes.ResourceExhausted, "over its limit", time.Millisecond)
	}
	l.finished(other, "grpc", "/concord.v1.MatchService/Match", nil, codes.PermissionDenied, "requires role OPERATOR", time.Millisecond)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "more=999") {
		if time.Now().After(deadline) {
			t.Fatalf("no summary line:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines (the flooder's first refusal, the bystander's, the flooder's count), got %d:\n%s", len(lines), out.String())
	}
	for _, want := range []string{"partner=flooder", "partner=bystander", "more=999"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no line names %s:\n%s", want, out.String())
		}
	}
}
