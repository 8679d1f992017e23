// Package server runs a Concord node: the raft log and state, the core services, and the two
// mTLS ports (gRPC and HTTPS) that serve them.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/internal/registryfile"
	"concord/matchindex"
	"concord/server/action"
	"concord/server/authz"
	"concord/server/fsm"
	"concord/server/match"
	"concord/server/notice"
	"concord/server/raftnode"
	"concord/server/ratelimit"
	"concord/server/registry"
	"concord/server/transparency"
	"concord/server/transport"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Defaults of a node's configuration.
const (
	DefaultGRPCAddr  = "127.0.0.1:7443"
	DefaultHTTPAddr  = "127.0.0.1:8443"
	DefaultRateLimit = 200 // requests per second per partner
	DefaultRateBurst = 400
)

// Config configures a node.
type Config struct {
	// DataDir holds the raft log and snapshots. Required.
	DataDir string
	// GRPCAddr and HTTPAddr are the listen addresses of the two ports ("host:0" picks a port).
	GRPCAddr, HTTPAddr string
	// TLS names the CA that issues partner certificates, and the server's certificate and key.
	TLS mtls.Files
	// TrustDomain of partner certificate URIs (default identity.DefaultTrustDomain).
	TrustDomain string
	// Registry is loaded on the node's first start; afterwards it is ignored.
	Registry *registryfile.Registry
	// RateLimit is each partner's request rate (per second) and RateBurst its burst; a negative
	// RateLimit disables limiting.
	RateLimit float64
	RateBurst int
	// MaxMessageBytes bounds a request (default 4 MiB).
	MaxMessageBytes int
	Logger          *slog.Logger
	// Now is the leader's clock, which stamps commands (default time.Now).
	Now func() time.Time
	// ReadyTimeout bounds the wait for the node to elect itself and replay its log (default 60 s).
	ReadyTimeout time.Duration
	// LogKeyFile is the transparency log's note signer key (see pki.Layout.LogKey). Required.
	LogKeyFile string
	// FeedMaxLag is how many events a notice watcher may fall behind before it is told to
	// resume (default notice.DefaultMaxLag).
	FeedMaxLag uint64
}

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("server: no data directory")
	}
	if c.LogKeyFile == "" {
		return errors.New("server: no transparency log key (--log-key; 'concord certs init' creates one)")
	}
	if c.GRPCAddr == "" {
		c.GRPCAddr = DefaultGRPCAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.TrustDomain == "" {
		c.TrustDomain = identity.DefaultTrustDomain
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst == 0 {
		c.RateBurst = DefaultRateBurst
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 60 * time.Second
	}
	return nil
}

// Server is a running node.
type Server struct {
	cfg    Config
	fsm    *fsm.FSM
	index  *match.Index
	node   *raftnode.Node
	health *health.Server
	grpc   *grpc.Server
	http   *http.Server
	grpcLn net.Listener
	httpLn net.Listener

	errc     chan error
	stopping chan struct{} // closed at shutdown: long-lived streams end
	stopOnce sync.Once
	stopErr  error
}

// Start opens the node's state, waits until it has caught up, bootstraps the registry on first
// start, and serves both ports. It returns once the node is ready for requests.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	tlsConf, err := mtls.ServerConfig(cfg.TLS)
	if err != nil {
		return nil, err
	}
	logSigner, logVerifier, err := pki.LoadLogKey(cfg.LogKeyFile)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, errc: make(chan error, 2), health: health.NewServer(), stopping: make(chan struct{})}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if s.fsm, err = fsm.New(cfg.Logger); err != nil {
		return nil, err
	}
	s.index = match.NewIndex(matchindex.Options{}, cfg.Logger)
	s.fsm.Attach(s.index)
	if s.node, err = raftnode.Open(raftnode.Config{DataDir: cfg.DataDir, Logger: cfg.Logger}, s.fsm); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = s.node.Shutdown()
		}
	}()
	readyCtx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancel()
	if err := s.node.WaitReady(readyCtx); err != nil {
		return nil, fmt.Errorf("wait for the node to be ready: %w", err)
	}
	if did, err := registry.Bootstrap(readyCtx, s.fsm.State(), s.node, cfg.Registry, cfg.Now()); err != nil {
		return nil, err
	} else if did {
		cfg.Logger.Info("registry bootstrapped", "partners", len(cfg.Registry.Partners), "jurisdictions", len(cfg.Registry.Jurisdictions))
	}

	pub, err := transparency.Open(cfg.DataDir, logSigner, logVerifier, s.fsm.Tree, s.fsm.State)
	if err != nil {
		return nil, err
	}
	regSvc, err := registry.New(s.fsm.State, s.node, pub, cfg.Now)
	if err != nil {
		return nil, err
	}
	policy := authz.NewPolicy(cfg.TrustDomain, func(id string) (*concordv1.Partner, error) {
		return s.fsm.State().PartnerRow(id) // read-only: the policy only reads roles
	})
	limit := cfg.RateLimit
	if limit < 0 {
		limit = 0
	}
	opts := transport.Options{
		TLS:             tlsConf,
		Policy:          policy,
		Limiter:         ratelimit.New(limit, cfg.RateBurst),
		Logger:          cfg.Logger,
		Health:          s.health,
		MaxMessageBytes: cfg.MaxMessageBytes,
	}
	noticeSvc, err := notice.New(s.fsm.State, s.node, pub, cfg.Now)
	if err != nil {
		return nil, err
	}
	noticeSvc.MaxLag = cfg.FeedMaxLag
	noticeSvc.Stopping = s.stopping
	actionSvc, err := action.New(s.fsm.State, s.node, pub, cfg.Now)
	if err != nil {
		return nil, err
	}
	matchSvc, err := match.New(s.fsm.State, s.index.Current, cfg.Now)
	if err != nil {
		return nil, err
	}
	logSvc := transparency.NewService(s.fsm.State, s.fsm.Tree, pub)
	logSvc.Stopping = s.stopping
	services := transport.Services{Registry: regSvc, NoticeGRPC: noticeSvc.GRPC(), NoticeConnect: noticeSvc.Connect(), Action: actionSvc,
		MatchGRPC: matchSvc.GRPC(), MatchConnect: matchSvc.Connect(),
		LogGRPC: logSvc.GRPC(), LogConnect: logSvc.Connect()}
	if s.grpc, err = transport.NewGRPC(opts, services); err != nil {
		return nil, err
	}
	connectSrv, err := transport.NewConnect(opts, services, nil)
	if err != nil {
		return nil, err
	}
	s.http = transport.NewHTTPServer(transport.NewHTTPHandler(connectSrv, opts, logSvc.TilesHandler(cfg.Logger)), opts)
	s.http.ErrorLog = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)

	if s.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen on the gRPC port %s: %w", cfg.GRPCAddr, err)
	}
	if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		s.grpcLn.Close()
		return nil, fmt.Errorf("listen on the HTTPS port %s: %w", cfg.HTTPAddr, err)
	}
	go func() { s.errc <- s.grpc.Serve(s.grpcLn) }()
	// ServeTLS uses s.http.TLSConfig (certificates included) and enables HTTP/2.
	go func() { s.errc <- s.http.ServeTLS(s.httpLn, "", "") }()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	cfg.Logger.Info("concord node ready", "grpc", s.GRPCAddr(), "https", s.HTTPAddr(), "data_dir", cfg.DataDir)
	return s, nil
}

// GRPCAddr is the gRPC port's address.
func (s *Server) GRPCAddr() string { return s.grpcLn.Addr().String() }

// HTTPAddr is the HTTPS port's address.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// Snapshot takes a raft snapshot of the node's state now, compacting its log.
func (s *Server) Snapshot() error { return s.node.Snapshot() }

// Done returns a channel that receives the error of a port that stopped serving on its own.
func (s *Server) Done() <-chan error { return s.errc }

// Shutdown stops accepting calls, lets calls in flight finish until ctx expires, then stops
// raft. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.health.Shutdown()
		close(s.stopping)
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		httpErr := s.http.Shutdown(ctx)
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
			<-done
		}
		if errors.Is(httpErr, context.DeadlineExceeded) || errors.Is(httpErr, context.Canceled) {
			_ = s.http.Close()
			httpErr = nil
		}
		s.stopErr = errors.Join(httpErr, s.node.Shutdown())
	})
	return s.stopErr
}
