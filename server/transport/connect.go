package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"concord/gen/concord/v1/concordv1connect"
	"concord/internal/identity"
	"concord/server/fault"
	"concord/server/tracing"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"connectrpc.com/connect/v2/connectproto"
	"connectrpc.com/grpcreflect/v2"
	"connectrpc.com/validate"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// PeerChainFunc finds the caller's verified certificate chain for the HTTPS port. The default
// reads the TLS connection state; in-process tests, which have no TLS, plug their own in.
type PeerChainFunc func(ctx context.Context) []*x509.Certificate

// ConnectPeerChain is the default PeerChainFunc: the TLS peer certificates of the HTTP request.
func ConnectPeerChain(ctx context.Context) []*x509.Certificate {
	info, ok := connecthttp.ServerInfoForContext(ctx)
	if !ok || info.TLS() == nil {
		return nil
	}
	return info.TLS().PeerCertificates
}

// NewConnect returns the connect-go server of the HTTPS port, with every service, health and
// reflection registered. Its interceptors surround the whole call, so identity, roles and rate
// limit are checked before the request is decoded; then protovalidate runs on the decoded request.
func NewConnect(o Options, s Services, chain PeerChainFunc) (*connect.Server, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if chain == nil {
		chain = ConnectPeerChain
	}
	c := &connectInterceptor{o: o, chain: chain, log: newCallLog(o.Logger, o.Audit, o.RefusalInterval, o.Policy.TrustDomain())}
	// Metrics first: they see every call and the code it ended with, refusals included; tracing,
	// when on, outside them, so that the span covers the whole call.
	interceptors := []connect.ServerInterceptor{o.Metrics.ConnectInterceptor, c.intercept, validate.NewServerInterceptor()}
	if o.TracerProvider != nil {
		interceptors = append([]connect.ServerInterceptor{connectTracing{tracer: tracing.Tracer(o.TracerProvider)}.intercept}, interceptors...)
	}
	srv := connect.NewServer(interceptors...)
	concordv1connect.RegisterRegistryServiceHandler(srv, s.Registry)
	concordv1connect.RegisterNoticeServiceHandler(srv, s.NoticeConnect)
	concordv1connect.RegisterLogServiceHandler(srv, s.LogConnect)
	concordv1connect.RegisterActionServiceHandler(srv, s.Action)
	concordv1connect.RegisterMatchServiceHandler(srv, s.MatchConnect)
	if s.ClusterConnect != nil {
		concordv1connect.RegisterClusterServiceHandler(srv, s.ClusterConnect)
	}
	registerHealth(srv, o)
	grpcreflect.Register(srv)
	return srv, nil
}

// LogTilesPrefix is where the HTTPS port serves the transparency log's C2SP tlog-tiles read
// paths: /log/checkpoint, /log/tile/...
const LogTilesPrefix = "/log"

// NewHTTPHandler mounts srv for Connect, gRPC-Web and gRPC, with request size limits, and, unless
// logTiles is nil, the log's tiles under LogTilesPrefix (plain GET requests, authorized as
// LogService.GetEntries, whose data they are). o is what NewConnect was given.
func NewHTTPHandler(srv *connect.Server, o Options, logTiles http.Handler) http.Handler {
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	mux := http.NewServeMux()
	connecthttp.Mount(mux, srv, connecthttp.WithReadMaxBytes(o.MaxMessageBytes),
		connecthttp.WithCodecs(connectproto.NewBinaryCodec(), newJSONCodec()))
	if logTiles != nil {
		mux.Handle(LogTilesPrefix+"/", authorizeHTTP(o, concordv1connect.LogServiceGetEntriesProcedure,
			http.StripPrefix(LogTilesPrefix, logTiles)))
	}
	return mux
}

// authorizeHTTP checks a plain HTTP request of the HTTPS port as the connect interceptor checks a
// call of procedure: the certificate names a partner, the registry gives it one of procedure's
// roles, the partner is within its rate limit. A checkpoint, the one resource that changes, is
// served once the node's state is current (the read barrier). next finds the caller on the
// request's context.
func authorizeHTTP(o Options, procedure string, next http.Handler) http.Handler {
	calls := newCallLog(o.Logger, o.Audit, o.RefusalInterval, o.Policy.TrustDomain())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		var chain []*x509.Certificate
		if r.TLS != nil {
			chain = r.TLS.PeerCertificates
		}
		ctx, err := o.Policy.Authorize(r.Context(), procedure, nil, chain)
		if err == nil {
			err = o.chargeUnary(ctx, nil)
		}
		if err == nil && o.Integrity != nil {
			err = o.Integrity.Serving()
		}
		if err == nil && strings.HasSuffix(r.URL.Path, "/checkpoint") {
			err = o.consistent(ctx, procedure, nil)
		}
		if err != nil {
			refuseHTTP(ctx, o.Logger, rec, err)
			// Refusals are summed up like the RPCs' (one line per caller and interval), by the
			// prefix the request was for, not its tile path.
			calls.finished(ctx, "http", r.Method+" "+LogTilesPrefix, chain, fault.CodeOf(err), err.Error(), time.Since(start), nil, nil)
			return
		}
		next.ServeHTTP(rec, r.WithContext(ctx))
		level := slog.LevelInfo
		if rec.status >= http.StatusInternalServerError {
			level = slog.LevelError
		} else if rec.status >= http.StatusBadRequest {
			level = slog.LevelWarn
		}
		partner := callerID(ctx)
		if partner == "" && len(chain) > 0 {
			// Refused before it was identified: the partner its certificate names, if any.
			partner, _ = identity.PartnerID(chain[0], o.Policy.TrustDomain())
		}
		args := []any{"protocol", "http", "method", r.Method + " " + r.URL.Path, "partner", partner, "status", rec.status, "duration", time.Since(start)}
		o.Logger.Log(ctx, level, "finished call", args...)
		if o.Audit != nil && level >= slog.LevelWarn {
			msg := "failed call"
			switch rec.status {
			case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests, http.StatusServiceUnavailable:
				msg = "refused call"
			}
			o.Audit.Log(ctx, level, msg, args...)
		}
	})
}

// refuseHTTP answers a request the policy, the rate limit or the read barrier refused, in plain
// text.
func refuseHTTP(ctx context.Context, logger *slog.Logger, w http.ResponseWriter, err error) {
	status, msg := http.StatusInternalServerError, "internal error: the hub logged the details"
	var f *fault.Error
	if errors.As(err, &f) {
		switch f.Code {
		case codes.Unauthenticated:
			status, msg = http.StatusUnauthorized, f.Msg
		case codes.PermissionDenied:
			status, msg = http.StatusForbidden, f.Msg
		case codes.ResourceExhausted:
			status, msg = http.StatusTooManyRequests, f.Msg
			// Whole seconds, rounded up: the bucket holds enough again by then.
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(f.RetryAfter.Seconds())))))
		case codes.Unavailable:
			status, msg = http.StatusServiceUnavailable, f.Msg
			w.Header().Set("Retry-After", "1")
		}
	}
	if status == http.StatusInternalServerError {
		logger.ErrorContext(ctx, "internal error", "err", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, status)
}

// statusRecorder keeps the status a handler answered with, for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// NewHTTPServer returns the HTTPS port's http.Server (HTTP/2 and HTTP/1.1 over TLS 1.3 with a
// client certificate required).
func NewHTTPServer(h http.Handler, o Options) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         o.TLS,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
}

type connectInterceptor struct {
	o     Options
	chain PeerChainFunc
	log   *callLog
}

func (c *connectInterceptor) intercept(next connect.ServerFunc) connect.ServerFunc {
	return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) (err error) {
		start := time.Now()
		var msgs *unaryMessages
		if spec.StreamType == connect.StreamTypeUnary {
			// The log names the ids a unary call's messages name.
			msgs = &unaryMessages{ServerStream: stream}
			stream = msgs
		}
		defer func() {
			if p := recover(); p != nil {
				c.o.Logger.ErrorContext(ctx, "panic in handler", "panic", p, "stack", string(debug.Stack()))
				err = connect.NewError(connect.CodeInternal, "internal error: the hub logged the details")
			}
			code, msg := codes.OK, ""
			if err != nil {
				code, msg = codes.Code(connect.CodeOf(err)), err.Error()
				var ce *connect.Error
				if errors.As(err, &ce) {
					msg = ce.Message()
				}
			}
			var req, resp any
			if msgs != nil {
				req, resp = msgs.req, msgs.resp
			}
			c.log.finished(ctx, "connect", spec.Procedure, c.chain(ctx), code, msg, time.Since(start), req, resp)
		}()
		md, _ := spec.Schema.(protoreflect.MethodDescriptor)
		ctx, err = c.o.Policy.Authorize(ctx, spec.Procedure, md, c.chain(ctx))
		if err != nil {
			return connectError(ctx, c.o.Logger, err)
		}
		if spec.StreamType != connect.StreamTypeUnary {
			release, err := c.o.openStream(ctx, spec.Procedure)
			if err != nil {
				return connectError(ctx, c.o.Logger, err)
			}
			defer release()
		}
		if spec.StreamType == connect.StreamTypeUnary || spec.StreamType&connect.StreamTypeClient != 0 {
			stream = chargedConnectStream{ServerStream: stream, ctx: ctx, o: &c.o, unary: spec.StreamType == connect.StreamTypeUnary}
		}
		if c.o.Consistency != nil && spec.StreamType == connect.StreamTypeUnary {
			ctx = c.o.Consistency.Bound(ctx)
		}
		if err := c.o.consistent(ctx, spec.Procedure, md); err != nil {
			return connectError(ctx, c.o.Logger, err)
		}
		if c.o.Integrity != nil && spec.StreamType != connect.StreamTypeUnary && guardedMethod(spec.Procedure, md) {
			stream = guardedConnectStream{ServerStream: stream, integrity: c.o.Integrity}
		}
		return connectError(ctx, c.o.Logger, next(ctx, spec, stream))
	}
}

// unaryMessages keeps the request a unary call received and the response it sent, for the log.
type unaryMessages struct {
	connect.ServerStream
	req, resp any
}

func (s *unaryMessages) Receive(msg any) error {
	err := s.ServerStream.Receive(msg)
	if err == nil {
		s.req = msg
	}
	return err
}

func (s *unaryMessages) Send(msg any) error {
	s.resp = msg
	return s.ServerStream.Send(msg)
}

// registerHealth serves grpc.health.v1.Health/Check on the connect server from the same health
// status as the gRPC port.
func registerHealth(srv *connect.Server, o Options) {
	md := healthpb.File_grpc_health_v1_health_proto.Services().ByName("Health").Methods().ByName("Check")
	srv.Register(connect.Method{
		Spec: connect.Spec{
			StreamType:       connect.StreamTypeUnary,
			IdempotencyLevel: connect.IdempotencyNoSideEffects,
			Procedure:        fmt.Sprintf("/%s/%s", md.Parent().FullName(), md.Name()),
			Schema:           md,
		},
		Handler: func(ctx context.Context, _ connect.Spec, stream connect.ServerStream) error {
			req := &healthpb.HealthCheckRequest{}
			if err := stream.Receive(req); err != nil {
				return err
			}
			resp, err := o.Health.Check(ctx, req)
			if err != nil {
				st := status.Convert(err)
				return connect.NewError(connect.Code(st.Code()), st.Message())
			}
			return stream.Send(resp)
		},
	})
}
