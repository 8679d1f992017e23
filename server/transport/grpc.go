package transport

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	nodev1 "concord/gen/concord/node/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/rpcmethod"

	"buf.build/go/protovalidate"
	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
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
	g := &grpcInterceptors{o: o}
	recoveryOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		o.Logger.ErrorContext(ctx, "panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error: the hub logged the details")
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithFieldsFromContext(partnerField),
	}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(o.TLS)),
		grpc.MaxRecvMsgSize(o.MaxMessageBytes),
		// Reused workers keep their grown stacks: a goroutine per call would grow a fresh stack
		// through the interceptors and validation every time (≈12 % of a Match call's CPU).
		grpc.NumStreamWorkers(uint32(4*runtime.GOMAXPROCS(0))),
		grpc.ConnectionTimeout(10*time.Second),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(recoveryOpt),
			g.quietReads(logging.UnaryServerInterceptor(slogAdapter(o.Logger), logOpts...)),
			g.unaryAuth,
			// Match requests are validated by the match service itself (match.ValidateRequest,
			// the same rules in plain Go): on the hot path the general evaluator cost more
			// than the matching.
			grpcprotovalidate.UnaryServerInterceptor(validator, grpcprotovalidate.WithIgnoreMessages(
				(&concordv1.MatchRequest{}).ProtoReflect().Type())),
			g.unaryErrors,
			g.unaryConsistency,
		),
		grpc.ChainStreamInterceptor(
			recovery.StreamServerInterceptor(recoveryOpt),
			logging.StreamServerInterceptor(slogAdapter(o.Logger), logOpts...),
			g.streamAuth,
			grpcprotovalidate.StreamServerInterceptor(validator, grpcprotovalidate.WithIgnoreMessages(
				(&concordv1.MatchStreamRequest{}).ProtoReflect().Type())),
			g.streamErrors,
			g.streamConsistency,
		),
	)
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

type grpcInterceptors struct{ o Options }

// quietReads runs the logging interceptor, except for a read (NO_SIDE_EFFECTS) when debug logs
// are off: a successful read would only be logged at debug level (see slogAdapter), and building
// the log fields of every Match call costs as much as a tenth of it. A failed read is still
// logged, at warn level or above.
func (g *grpcInterceptors) quietReads(logged grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !rpcmethod.ReadOnly(info.FullMethod) || g.o.Logger.Enabled(ctx, slog.LevelDebug) {
			return logged(ctx, req, info, handler)
		}
		start := time.Now()
		resp, err := handler(ctx, req)
		if err != nil {
			code := status.Code(err)
			level := slog.LevelWarn
			switch code {
			case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
				level = slog.LevelError
			}
			g.o.Logger.Log(ctx, level, "finished call", "protocol", "grpc", "grpc.method", info.FullMethod,
				"partner", callerID(ctx), "grpc.code", code.String(), "grpc.time_ms", time.Since(start).Milliseconds())
		}
		return resp, err
	}
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

// authorize identifies the caller, checks its roles and takes a rate-limit token.
func (g *grpcInterceptors) authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	ctx, err := g.o.Policy.Authorize(ctx, fullMethod, nil, peerChain(ctx))
	if err != nil {
		return ctx, grpcError(ctx, g.o.Logger, err)
	}
	if id := callerID(ctx); id != "" { // nodes are not rate-limited: they carry partners' calls
		if err := g.o.Limiter.Allow(id); err != nil {
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
	return handler(ctx, req)
}

func (g *grpcInterceptors) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := g.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	w := middleware.WrapServerStream(ss)
	w.WrappedContext = ctx
	return handler(srv, w)
}

func (g *grpcInterceptors) unaryErrors(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, grpcError(ctx, g.o.Logger, err)
}

func (g *grpcInterceptors) streamErrors(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return grpcError(ss.Context(), g.o.Logger, handler(srv, ss))
}

// partnerField adds the caller's partner id, from its certificate, to every log line.
func partnerField(ctx context.Context) logging.Fields {
	if id := callerID(ctx); id != "" {
		return logging.Fields{"partner", id}
	}
	chain := peerChain(ctx)
	if len(chain) == 0 {
		return nil
	}
	// The URIs as the certificate writes them: crypto/x509's parsed cert.URIs may show a
	// refused, non-canonical URI in canonical form.
	uris, err := identity.URISANs(chain[0])
	if err != nil || len(uris) == 0 {
		return nil
	}
	return logging.Fields{"cert_uri", strings.Join(uris, " ")}
}

// slogAdapter logs through l. A read that succeeded (a method declared NO_SIDE_EFFECTS) is
// logged at debug level: matching and feed reads come by the thousand a second, and every write
// and every failure stays at info or above.
func slogAdapter(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		if lvl == logging.LevelInfo {
			if m, ok := grpc.Method(ctx); ok && rpcmethod.ReadOnly(m) {
				lvl = logging.LevelDebug
			}
		}
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}
