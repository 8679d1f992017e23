package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	nodev1 "concord/gen/concord/node/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// joinAttemptTimeout bounds one Join call; joinRetry is the pause between rounds.
const (
	joinAttemptTimeout = 15 * time.Second
	joinRetry          = time.Second
)

// Join asks the members at addrs (their gRPC ports), one after the other, to add node id at
// raftAddr as a voter, until one does or ctx ends. It calls with the node certificate in conf.
// A refusal that retrying cannot fix (a certificate that is not accepted, a node id that is not
// its certificate's) ends it at once.
func Join(ctx context.Context, addrs []string, conf *tls.Config, id, raftAddr string, logger *slog.Logger) error {
	if len(addrs) == 0 {
		return errors.New("cluster: join: no member address")
	}
	if logger == nil {
		logger = slog.Default()
	}
	var last error
	for round := 0; ; round++ {
		for _, addr := range addrs {
			err := joinOnce(ctx, addr, conf, &nodev1.JoinRequest{NodeId: id, RaftAddress: raftAddr})
			if err == nil {
				logger.Info("joined the cluster", "through", addr, "node", id, "raft_addr", raftAddr)
				return nil
			}
			switch status.Code(err) {
			case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument, codes.FailedPrecondition:
				return fmt.Errorf("join the cluster through %s: %s", addr, status.Convert(err).Message())
			case codes.Unavailable:
				if msg := status.Convert(err).Message(); strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:") {
					return fmt.Errorf("join the cluster through %s: the TLS handshake failed (is the node certificate from the cluster's CA?): %s", addr, msg)
				}
			}
			last = fmt.Errorf("through %s: %w", addr, err)
			if round == 0 || round%10 == 0 {
				logger.Warn("cannot join the cluster yet; retrying", "through", addr, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join the cluster: %w (last attempt %v)", ctx.Err(), last)
		case <-time.After(joinRetry):
		}
	}
}

func joinOnce(ctx context.Context, addr string, conf *tls.Config, req *nodev1.JoinRequest) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf.Clone())))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, joinAttemptTimeout)
	defer cancel()
	_, err = nodev1.NewNodeServiceClient(conn).Join(ctx, req)
	return err
}
