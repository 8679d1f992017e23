package metrics

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect/v2"
	"google.golang.org/grpc"
)

// BenchmarkRequestPath measures, in-process and without a network, what recording costs each
// call: go-grpc-middleware's unary interceptor on the gRPC port, the connect interceptor on the
// HTTPS port (around a handler that does nothing), one lookup's latency, one apply's.
func BenchmarkRequestPath(b *testing.B) {
	m := New()
	ctx := context.Background()
	b.Run("grpc_unary", func(b *testing.B) {
		intercept := m.GRPC.UnaryServerInterceptor()
		info := &grpc.UnaryServerInfo{FullMethod: "/concord.v1.MatchService/Match"}
		handler := func(context.Context, any) (any, error) { return nil, nil }
		b.ReportAllocs()
		for b.Loop() {
			_, _ = intercept(ctx, nil, info, handler)
		}
	})
	b.Run("connect_unary", func(b *testing.B) {
		next := m.ConnectInterceptor(func(context.Context, connect.Spec, connect.ServerStream) error { return nil })
		spec := connect.Spec{Procedure: "/concord.v1.MatchService/Match", StreamType: connect.StreamTypeUnary}
		b.ReportAllocs()
		for b.Loop() {
			_ = next(ctx, spec, nil)
		}
	})
	b.Run("match_lookup", func(b *testing.B) {
		for b.Loop() {
			m.MatchLookup(1, time.Microsecond)
		}
	})
	b.Run("fsm_apply", func(b *testing.B) {
		for b.Loop() {
			m.FSMApplied("SubmitNotice", time.Millisecond)
		}
	})
}
