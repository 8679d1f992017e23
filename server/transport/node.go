package transport

import (
	"context"
	"errors"
	"log/slog"

	"runtime/debug"

	nodev1 "concord/gen/concord/node/v1"
	"concord/server/authz"
	"concord/server/tracing"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// NewNodeGRPC returns the grpc-go server of a node's raft port, which serves NodeService to the
// other nodes. The port has authenticated the connection (a node certificate from the cluster's
// CA); creds hand its certificates over, and the policy checks them again, per call. With tp,
// each call gets a server span, a child of the calling node's.
func NewNodeGRPC(policy *authz.Policy, logger *slog.Logger, creds credentials.TransportCredentials, svc nodev1.NodeServiceServer, tp trace.TracerProvider) (*grpc.Server, error) {
	if policy == nil {
		return nil, errors.New("transport: no authorization policy")
	}
	if logger == nil {
		logger = slog.Default()
	}
	recoveryOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error: the node logged the details")
	})
	opts := []grpc.ServerOption{
		grpc.Creds(creds),
		grpc.MaxRecvMsgSize(DefaultMaxMessageBytes),
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(recoveryOpt),
			func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
				ctx, err := policy.Authorize(ctx, info.FullMethod, nil, peerChain(ctx))
				if err != nil {
					return nil, grpcError(ctx, logger, err)
				}
				resp, err := handler(ctx, req)
				return resp, grpcError(ctx, logger, err)
			},
		),
	}
	if h := tracing.ServerHandler(tp); h != nil {
		opts = append(opts, grpc.StatsHandler(h))
	}
	srv := grpc.NewServer(opts...)
	nodev1.RegisterNodeServiceServer(srv, svc)
	return srv, nil
}
