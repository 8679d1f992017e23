package transport

import (
	"context"
	"crypto/x509"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	nodev1 "concord/gen/concord/node/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/tracing"

	"buf.build/go/protovalidate"
	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	grpcprotovalidate "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"
)

// NewGRPC returns the grpc-go server of the gRPC port, with every service, health and reflection
// registered. Its interceptor chain, outermost first: recovery, logging, identity and role check,
// per-partner rate limit, protovalidate, and the mapping of core errors to statuses.
func NewGRPC(o Options, s Services) (*grpc.Server, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.TLS == nil {
		return nil, fmt.Errorf("transport: the gRPC port needs a TLS configuration")
	}
	validator, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("transport: protovalidate: %w", err)
	}
	g := &grpcInterceptors{o: o, log: newCallLog(o.Logger, o.Audit, o.RefusalInterval, o.Policy.TrustDomain())}
	recoveryOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		o.Logger.ErrorContext(ctx, "panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error: the hub logged the details")
	})
	opts := []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(o.TLS)),
		grpc.MaxRecvMsgSize(o.MaxMessageBytes),
		// The caller is identified and its role checked from the call's headers, before its body
		// is read (see tap); a body that does not decode is then InvalidArgument (see codec.go).
		grpc.InTapHandle(g.tap),
		grpc.ForceServerCodecV2(newStrictCodec()),
		// Reused workers keep their grown stacks: a goroutine per call would grow a fresh stack
		// through the interceptors and validation every time (≈12 % of a Match call's CPU).
		grpc.NumStreamWorkers(uint32(4 * runtime.GOMAXPROCS(0))),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(append(g.metricsUnary(),
			recovery.UnaryServerInterceptor(recoveryOpt),
			g.unaryCall,
			g.unaryAuth,
			// Match requests are validated by the match service itself (match.ValidateRequest,
			// the same rules in plain Go): on the hot path the general evaluator cost more
			// than the matching.
			grpcprotovalidate.UnaryServerInterceptor(validator, grpcprotovalidate.WithIgnoreMessages(
				(&concordv1.MatchRequest{}).ProtoReflect().Type())),
			g.unaryErrors,
			g.unaryConsistency,
		)...),
		grpc.ChainStreamInterceptor(append(g.metricsStream(),
			recovery.StreamServerInterceptor(recoveryOpt),
			g.streamCall,
			g.streamAuth,
			grpcprotovalidate.StreamServerInterceptor(validator, grpcprotovalidate.WithIgnoreMessages(
				(&concordv1.MatchStreamRequest{}).ProtoReflect().Type())),
			g.streamErrors,
			g.streamConsistency,
		)...),
	}
	if o.TracerProvider != nil {
		// Outermost: the span covers the whole call, and the call's log line names its trace.
		t := grpcTracing{tracer: tracing.Tracer(o.TracerProvider)}
		opts = append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(t.unary), grpc.ChainStreamInterceptor(t.stream)}, opts...)
	}
	srv := grpc.NewServer(opts...)
	concordv1.RegisterRegistryServiceServer(srv, s.Registry)
	concordv1.RegisterNoticeServiceServer(srv, s.NoticeGRPC)
	concordv1.RegisterLogServiceServer(srv, s.LogGRPC)
	concordv1.RegisterActionServiceServer(srv, s.Action)
	concordv1.RegisterMatchServiceServer(srv, s.MatchGRPC)
	if s.ClusterGRPC != nil {
		concordv1.RegisterClusterServiceServer(srv, s.ClusterGRPC)
	}
	if s.Node != nil {
		nodev1.RegisterNodeServiceServer(srv, s.Node)
	}
	healthpb.RegisterHealthServer(srv, o.Health)
	reflection.Register(srv)
	return srv, nil
}

type grpcInterceptors struct {
	o   Options
	log *callLog
}

// metricsUnary and metricsStream are go-grpc-middleware's Prometheus interceptors, outermost so
// that they see every call that reaches the chain (a panic included, as the Internal it becomes).
func (g *grpcInterceptors) metricsUnary() []grpc.UnaryServerInterceptor {
	if g.o.Metrics == nil {
		return nil
	}
	return []grpc.UnaryServerInterceptor{g.o.Metrics.GRPC.UnaryServerInterceptor()}
}

func (g *grpcInterceptors) metricsStream() []grpc.StreamServerInterceptor {
	if g.o.Metrics == nil {
		return nil
	}
	return []grpc.StreamServerInterceptor{g.o.Metrics.GRPC.StreamServerInterceptor()}
}

// tap identifies the caller of a new call from its certificate and checks its role for the
// method, before grpc-go reads the request's body: a caller the hub does not know, or one
// calling outside its roles, is refused without its bytes being decoded. The context it returns,
// carrying the caller, is the call's.
func (g *grpcInterceptors) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	start := time.Now()
	chain := peerChain(ctx)
	authorized, err := g.o.Policy.Authorize(ctx, info.FullMethodName, nil, chain)
	if err != nil {
		err = grpcError(ctx, g.o.Logger, err)
		st := status.Convert(err)
		g.log.finished(ctx, "grpc", info.FullMethodName, chain, st.Code(), st.Message(), time.Since(start), nil, nil)
		g.o.Metrics.TapRefused(st.Code())
		return ctx, err
	}
	return authorized, nil
}

// unaryCall answers a request whose body did not decode with InvalidArgument, runs the call
// otherwise, and logs how it ended.
func (g *grpcInterceptors) unaryCall(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	var resp any
	var err error
	if derr := decodeFailure(req); derr != nil {
		err = malformed(req, derr)
	} else {
		resp, err = handler(ctx, req)
	}
	st := status.Convert(err)
	g.log.finished(ctx, "grpc", info.FullMethod, peerChain(ctx), st.Code(), st.Message(), time.Since(start), req, resp)
	return resp, err
}

// streamCall is unaryCall for streams: each message received is checked as it arrives.
func (g *grpcInterceptors) streamCall(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, decodedStream{ss})
	st := status.Convert(err)
	g.log.finished(ss.Context(), "grpc", info.FullMethod, peerChain(ss.Context()), st.Code(), st.Message(), time.Since(start), nil, nil)
	return err
}

// malformed is the answer to a message whose body did not decode.
func malformed(m any, err error) error {
	name := "message"
	if pm, ok := m.(proto.Message); ok {
		name = string(pm.ProtoReflect().Descriptor().FullName())
	}
	return status.Errorf(codes.InvalidArgument, "the request body is not a valid %s: %v", name, err)
}

// decodedStream refuses, as InvalidArgument, a received message whose body did not decode.
type decodedStream struct{ grpc.ServerStream }

func (s decodedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if derr := decodeFailure(m); derr != nil {
		return malformed(m, derr)
	}
	return nil
}

func peerChain(ctx context.Context) []*x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	return info.State.PeerCertificates
}

// authorize returns ctx with the caller the tap identified, identifying it here if the call
// came without the tap.
func (g *grpcInterceptors) authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	if callerID(ctx) == "" && nodeID(ctx) == "" {
		var err error
		if ctx, err = g.o.Policy.Authorize(ctx, fullMethod, nil, peerChain(ctx)); err != nil {
			return ctx, grpcError(ctx, g.o.Logger, err)
		}
	}
	return ctx, nil
}

func (g *grpcInterceptors) unaryConsistency(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if g.o.Consistency != nil {
		ctx = g.o.Consistency.Bound(ctx)
	}
	if err := g.o.consistent(ctx, info.FullMethod, nil); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (g *grpcInterceptors) streamConsistency(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := g.o.consistent(ss.Context(), info.FullMethod, nil); err != nil {
		return err
	}
	if g.o.Integrity != nil && guardedMethod(info.FullMethod, nil) {
		ss = guardedServerStream{ServerStream: ss, integrity: g.o.Integrity}
	}
	return handler(srv, ss)
}

func (g *grpcInterceptors) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := g.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if err := g.o.chargeUnary(ctx, req); err != nil {
		return nil, grpcError(ctx, g.o.Logger, err)
	}
	return handler(ctx, req)
}

func (g *grpcInterceptors) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := g.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	release, err := g.o.openStream(ctx, info.FullMethod)
	if err != nil {
		return grpcError(ctx, g.o.Logger, err)
	}
	defer release()
	w := middleware.WrapServerStream(ss)
	w.WrappedContext = ctx
	if info.IsClientStream {
		return handler(srv, chargedServerStream{ServerStream: w, o: &g.o})
	}
	return handler(srv, w)
}

func (g *grpcInterceptors) unaryErrors(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, grpcError(ctx, g.o.Logger, err)
}

func (g *grpcInterceptors) streamErrors(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return grpcError(ss.Context(), g.o.Logger, handler(srv, ss))
}
