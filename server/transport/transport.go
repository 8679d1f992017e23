// Package transport serves Concord's core handlers on two ports with one policy: the gRPC port,
// served natively by grpc-go, and the HTTPS port, served by connect-go (Connect, gRPC-Web, gRPC,
// JSON for curl and browsers). Both require TLS 1.3 with a client certificate; both authorize with
// authz.Policy, rate-limit per partner and validate requests with protovalidate.
package transport

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	nodev1 "concord/gen/concord/node/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/server/authz"
	"concord/server/metrics"
	"concord/server/ratelimit"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/health"
)

// DefaultMaxMessageBytes bounds every request message on both ports (gRPC's default, 4 MiB).
const DefaultMaxMessageBytes = 4 << 20

// Options configure both transports.
type Options struct {
	TLS     *tls.Config // server side: TLS 1.3, client certificate required (see internal/mtls)
	Policy  *authz.Policy
	Limiter *ratelimit.Limiter // nil: no limit
	Logger  *slog.Logger
	Health  *health.Server // serves grpc.health.v1 on both ports
	// MaxMessageBytes bounds a request message (default DefaultMaxMessageBytes).
	MaxMessageBytes int
	// Consistency, if set, runs before each Concord RPC's handler (see Consistency).
	Consistency Consistency
	// Integrity, if set, refuses Concord RPCs while the node's integrity is in doubt.
	Integrity Integrity
	// Metrics, if set, records every call in Prometheus series (see server/metrics).
	Metrics *metrics.Metrics
	// RefusalInterval is how often refused calls are summed up in the log, one line per caller,
	// method and code (default DefaultRefusalInterval).
	RefusalInterval time.Duration
	// Audit, if set, is the audit stream: a line for every accepted write and every refused
	// call (see callLog), for an operator's SIEM.
	Audit *slog.Logger
	// TracerProvider, if set, traces every call of both ports (one server span each, a child of
	// the caller's W3C trace context).
	TracerProvider trace.TracerProvider
}

// RegistryService is the registry's core handler; its unary methods have the signature both
// grpc-go and connect-go expect.
type RegistryService interface {
	concordv1.RegistryServiceServer
	concordv1connect.RegistryServiceHandler
}

// ActionService is the action reports' core handler.
type ActionService interface {
	concordv1.ActionServiceServer
	concordv1connect.ActionServiceHandler
}

// Services are the core handlers both ports serve. A service with a streaming method has one
// handler per transport: their streaming signatures differ.
type Services struct {
	Registry      RegistryService
	NoticeGRPC    concordv1.NoticeServiceServer
	NoticeConnect concordv1connect.NoticeServiceHandler
	Action        ActionService
	MatchGRPC     concordv1.MatchServiceServer
	MatchConnect  concordv1connect.MatchServiceHandler
	LogGRPC       concordv1.LogServiceServer
	LogConnect    concordv1connect.LogServiceHandler
	// ClusterGRPC and ClusterConnect serve the public ClusterService.
	ClusterGRPC    concordv1.ClusterServiceServer
	ClusterConnect concordv1connect.ClusterServiceHandler
	// Node, if set, is the part of the nodes' internal service the gRPC port serves to nodes
	// that join (authorized for node certificates only).
	Node nodev1.NodeServiceServer
}

func (o *Options) check() error {
	switch {
	case o.Policy == nil:
		return errors.New("transport: no authorization policy")
	case o.Health == nil:
		return errors.New("transport: no health server")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return nil
}
