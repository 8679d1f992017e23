// Package server runs a Concord node: the raft log and state, the core services, and the two
// mTLS ports (gRPC and HTTPS) that serve them.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/internal/registryfile"
	"concord/matchindex"
	"concord/server/action"
	"concord/server/authz"
	"concord/server/cluster"
	"concord/server/datadir"
	"concord/server/fsm"
	"concord/server/integrity"
	"concord/server/match"
	"concord/server/metrics"
	"concord/server/notice"
	"concord/server/raftnode"
	"concord/server/ratelimit"
	"concord/server/registry"
	"concord/server/tracing"
	"concord/server/transparency"
	"concord/server/transport"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
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
	// DefaultMetricsInterval is the shortest interval between two computations of the notice
	// and obligation figures a scrape reads (see Config.MetricsInterval).
	DefaultMetricsInterval = 30 * time.Second
)

// Config configures a node.
type Config struct {
	// DataDir holds the raft log and snapshots. Required.
	DataDir string
	// GRPCAddr and HTTPAddr are the listen addresses of the two ports ("host:0" picks a port).
	GRPCAddr, HTTPAddr string
	// TLS names the CA that issues partner certificates, and the server's certificate and key.
	TLS mtls.Files
	// TLSReloadInterval is how often the node looks for changed TLS files and reloads them
	// (default 10 s; see ReloadTLS).
	TLSReloadInterval time.Duration
	// TrustDomain of partner certificate URIs (default identity.DefaultTrustDomain).
	TrustDomain string
	// Registry is loaded on the node's first start; afterwards it is ignored.
	Registry *registryfile.Registry
	// RateLimit is each partner's request rate (per second) and RateBurst its burst, unless
	// Limits says otherwise; a negative RateLimit disables every limit.
	RateLimit float64
	RateBurst int
	// Limits are the partners' limits: requests, work and open streams, by default, role and
	// partner (see ratelimit.Config; zero values take the built-in defaults).
	Limits ratelimit.Config
	// MaxMessageBytes bounds a request (default 4 MiB).
	MaxMessageBytes int
	Logger          *slog.Logger
	// Now is the leader's clock, which stamps commands (default time.Now).
	Now func() time.Time
	// ReadyTimeout bounds the wait for the node to elect itself and replay its log (default
	// 60 s), or, in a cluster, to join it and catch up with its leader (default 10 min: the
	// other members of a cluster that restarts whole may come up minutes later).
	ReadyTimeout time.Duration
	// LogKeyFile is the transparency log's note signer key (see pki.Layout.LogKey). Required.
	LogKeyFile string
	// FeedMaxLag is how many events a notice watcher may fall behind before it is told to
	// resume (default notice.DefaultMaxLag).
	FeedMaxLag uint64
	// Audit, if set, receives the audit stream: every accepted write and every refused call, on
	// both ports (refusals summed up per caller, method and code as in the log).
	Audit *slog.Logger
	// TracerProvider, if set, traces every call on both ports, the calls between nodes, each
	// raft apply and the state machine's apply of sampled entries (see tracing.Start). nil:
	// tracing off.
	TracerProvider trace.TracerProvider

	// MetricsAddr, if set, serves Prometheus metrics on a listener of their own (path /metrics):
	// plain HTTP on a loopback address, HTTPS with the node's certificate elsewhere (a scraper
	// then presents a certificate from the CA). Empty: no metrics are recorded at all.
	MetricsAddr string
	// MetricsTLS serves the metrics over HTTPS on a loopback address too.
	MetricsTLS bool
	// MetricsInterval bounds how often a scrape computes the notice and obligation figures again
	// (default DefaultMetricsInterval; they are computed again only when the state changed or a
	// deadline passed).
	MetricsInterval time.Duration

	// Cluster makes the node one of several (see ClusterConfig). Its zero value runs the node
	// alone, as a single voter with an in-memory raft transport.
	Cluster ClusterConfig
}

// ClusterConfig places a node in a raft cluster of Concord nodes.
type ClusterConfig struct {
	// NodeID names the node: its raft server id, which its node certificate must name (default
	// raftnode.DefaultNodeID, or the id the node certificate names).
	NodeID string
	// RaftAddr is the node's raft port, host:port, as the other nodes reach it. Empty: the node
	// runs alone.
	RaftAddr string
	// NodeCert and NodeKey are the node certificate (spiffe://<trust-domain>/node/<id>, from
	// the CA of TLS.CA) and its key. Required with RaftAddr.
	NodeCert, NodeKey string
	// Join lists the gRPC ports of cluster members. A node without state asks them to add it;
	// without Join it bootstraps a new cluster of itself.
	Join []string
	// Network carries the raft port's connections (default TCP); tests inject faults.
	Network cluster.Network
	// LeaderWait bounds how long a request waits for a reachable leader (default
	// cluster.DefaultLeaderWait).
	LeaderWait time.Duration
	// HealthInterval is how often a clustered node checks that it is current, for the health
	// service (default 1 s).
	HealthInterval time.Duration
	// LogCheckInterval is how often the node compares its transparency log with every other
	// voter's (default cluster.DefaultLogCheckInterval; negative: never).
	LogCheckInterval time.Duration
	// Raft tunes raft (tests shorten its timeouts and snapshot often); see raftnode.Config.
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	SnapshotBytes      uint64
	SnapshotAge        time.Duration
	SegmentBytes       int
	TrailingLogs       uint64
	HeartbeatTimeout   time.Duration
	LeaderLeaseTimeout time.Duration
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
	if err := identity.ValidTrustDomain(c.TrustDomain); err != nil {
		return fmt.Errorf("server: %w", err)
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
	if c.TLSReloadInterval <= 0 {
		c.TLSReloadInterval = 10 * time.Second
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 60 * time.Second
		if c.Cluster.RaftAddr != "" {
			c.ReadyTimeout = 10 * time.Minute
		}
	}
	if c.Cluster.RaftAddr != "" && (c.Cluster.NodeCert == "" || c.Cluster.NodeKey == "") {
		return errors.New("server: a raft address (--raft-addr) needs the node certificate and key (--node-cert, --node-key; 'concord certs init --nodes ID' issues them)")
	}
	if c.Cluster.RaftAddr == "" && len(c.Cluster.Join) > 0 {
		return errors.New("server: joining a cluster (--join) needs this node's raft address (--raft-addr)")
	}
	if c.MetricsInterval == 0 {
		c.MetricsInterval = DefaultMetricsInterval
	}
	if c.Cluster.HealthInterval == 0 {
		c.Cluster.HealthInterval = time.Second
	}
	if c.Cluster.LogCheckInterval == 0 {
		c.Cluster.LogCheckInterval = cluster.DefaultLogCheckInterval
	}
	return nil
}

// Server is a running node.
type Server struct {
	cfg     Config
	fsm     *fsm.FSM
	index   *match.Index
	node    *raftnode.Node
	cluster *cluster.Node
	// pusher sends the checkpoints this node signs to the witnesses with an endpoint.
	pusher  *transparency.Pusher
	port    *cluster.Port // nil for a node that runs alone
	nodeTLS *mtls.Node
	nodeRPC *grpc.Server // NodeService on the raft port
	health  *health.Server
	grpc    *grpc.Server
	http    *http.Server
	grpcLn  net.Listener
	httpLn  net.Listener
	// lock holds the data directory for this process.
	lock *datadir.Lock
	// serverTLS follows the server certificate, its key and the partners' CA bundle on disk.
	serverTLS *mtls.Reloading
	// space refuses writes while the data directory's filesystem is short of space.
	space *datadir.Space
	// repairing is why the node is being repaired from its cluster at this start ("": it is
	// not); repairRequested is set once it asked to restart for a repair.
	repairing       string
	repairRequested atomic.Bool
	// guard holds the node's integrity alarms: while one is raised the node answers nothing
	// but ClusterService and signs nothing.
	guard *integrity.Guard
	// metrics records the node's series (nil without Config.MetricsAddr); metricsLn serves them.
	metrics   *metrics.Metrics
	metricsLn *metrics.Listener
	started   time.Time

	healthMu sync.Mutex
	current  bool // the node confirmed its state is current (always, alone)

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
	// Until the node is up (its state and match index rebuilt), the collector runs more often.
	defer collectOftenWhileStarting()()
	serverTLS, err := mtls.NewReloading(cfg.TLS)
	if err != nil {
		return nil, err
	}
	tlsConf := serverTLS.Config()
	logSigner, logVerifier, err := pki.LoadLogKey(cfg.LogKeyFile)
	if err != nil {
		return nil, err
	}
	// One process per data directory: a second one exits at once, naming the first.
	lock, err := datadir.Acquire(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.Release()
		}
	}()
	s := &Server{cfg: cfg, errc: make(chan error, 2), health: health.NewServer(), stopping: make(chan struct{}),
		guard: integrity.New(cfg.Logger), lock: lock, serverTLS: serverTLS, started: time.Now()}
	if cfg.MetricsAddr != "" {
		s.metrics = metrics.New()
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := s.resetState(); err != nil {
		return nil, err
	}
	policy := authz.NewPolicy(cfg.TrustDomain, func(id string) (*concordv1.Partner, error) {
		return s.fsm.State().PartnerRow(id) // read-only: the policy only reads roles
	})
	if err := s.openRaft(ctx, policy); err != nil {
		return nil, err
	}
	go s.space.Run(s.stopping)
	defer func() {
		if err != nil {
			close(s.stopping)
			s.stopRaft()
		}
	}()
	readyCtx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancel()
	if err := s.waitReady(readyCtx); err != nil {
		return nil, err
	}
	if err := s.fsm.EndDeferral(); err != nil {
		return nil, err
	}
	if did, err := registry.Bootstrap(readyCtx, s.fsm.State(), s.cluster, cfg.Registry, cfg.Now()); err != nil {
		return nil, err
	} else if did {
		cfg.Logger.Info("registry bootstrapped", "partners", len(cfg.Registry.Partners), "jurisdictions", len(cfg.Registry.Jurisdictions))
	}

	pub, err := transparency.Open(cfg.DataDir, logSigner, logVerifier, s.fsm.Tree, s.fsm.State)
	if err != nil && s.port != nil {
		// A member of a cluster holds the cluster's log now (it caught up): a checkpoint it
		// cannot read, or one that log contradicts (a fork it signed before), is set aside as
		// evidence, and the node goes on from the cluster's log.
		dst, qerr := quarantine(cfg.DataDir, checkpointFiles...)
		if qerr != nil {
			return nil, errors.Join(err, qerr)
		}
		cfg.Logger.Error("this node's last signed checkpoint is damaged or contradicts the cluster's log: set aside", "err", err, "quarantine", dst)
		pub, err = transparency.Open(cfg.DataDir, logSigner, logVerifier, s.fsm.Tree, s.fsm.State)
	}
	if err != nil {
		if torn := s.node.TornTail(); torn != nil {
			// The entries the checkpoint covers were in the write that was cleared.
			return nil, fmt.Errorf("%w; the raft log's last write was damaged: %v", err, torn)
		}
		return nil, err
	}
	pub.Integrity = s.guard
	s.pusher = transparency.NewPusher(pub, func() ([]*concordv1.Partner, error) { return s.fsm.State().Partners(nil) }, cfg.Logger)
	if s.metrics != nil {
		s.pusher.OnResult = s.metrics.WitnessPush
	}
	regSvc, err := registry.New(s.fsm.State, s.cluster, pub, cfg.Now)
	if err != nil {
		return nil, err
	}
	limits := cfg.Limits
	if limits.Default.Requests == 0 {
		limits.Default.Requests = cfg.RateLimit
	}
	if limits.Default.RequestBurst == 0 {
		limits.Default.RequestBurst = cfg.RateBurst
	}
	limits.Off = limits.Off || cfg.RateLimit < 0
	limiter, err := ratelimit.New(limits)
	if err != nil {
		return nil, err
	}
	if s.metrics != nil {
		limiter.OnRefuse = s.metrics.LimitRefused
	}
	opts := transport.Options{
		TLS:             tlsConf,
		Policy:          policy,
		Limiter:         limiter,
		Logger:          cfg.Logger,
		Health:          s.health,
		MaxMessageBytes: cfg.MaxMessageBytes,
		Consistency:     s.cluster,
		Integrity:       s.guard,
		Metrics:         s.metrics,
		TracerProvider:  cfg.TracerProvider,
		Audit:           cfg.Audit,
	}
	noticeSvc, err := notice.New(s.fsm.State, s.cluster, pub, cfg.Now)
	if err != nil {
		return nil, err
	}
	noticeSvc.MaxLag = cfg.FeedMaxLag
	noticeSvc.Stopping = s.stopping
	if noticeSvc.PageTokenKey, err = pageTokenKey(cfg.LogKeyFile); err != nil {
		return nil, err
	}
	actionSvc, err := action.New(s.fsm.State, s.cluster, pub, cfg.Now)
	if err != nil {
		return nil, err
	}
	matchSvc, err := match.New(s.fsm.State, s.index.Current, cfg.Now)
	if err != nil {
		return nil, err
	}
	matchSvc.Reads = s.cluster
	if s.metrics != nil {
		matchSvc.ObserveLookup = func(k concordv1.HashKind, took time.Duration) { s.metrics.MatchLookup(int(k), took) }
	}
	if !limits.Off {
		// Partners' match work is served in turn (limits off: benchmarks of the node itself).
		matchSvc.Fair = ratelimit.NewFair(0)
	}
	logSvc := transparency.NewService(s.fsm.State, s.fsm.Tree, pub)
	logSvc.Stopping = s.stopping
	services := transport.Services{Registry: regSvc, NoticeGRPC: noticeSvc.GRPC(), NoticeConnect: noticeSvc.Connect(), Action: actionSvc,
		MatchGRPC: matchSvc.GRPC(), MatchConnect: matchSvc.Connect(),
		LogGRPC: logSvc.GRPC(), LogConnect: logSvc.Connect()}
	admin := s.cluster.Admin(cfg.Now)
	services.ClusterGRPC, services.ClusterConnect = admin.GRPC(), admin.Connect()
	if s.port != nil {
		services.Node = s.cluster.JoinService()
	}
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
	if s.metrics != nil {
		collectors := []prometheus.Collector{metrics.NewNodeCollector(s.metricSources(pub, noticeSvc, actionSvc)),
			metrics.BuildInfo(int(fsm.NewestCommand)), metrics.CertificateExpiry("server", s.serverTLS.Certificate)}
		if s.nodeTLS != nil {
			collectors = append(collectors, metrics.CertificateExpiry("node", s.nodeTLS.Certificate))
		}
		if err := registerAll(s.metrics, collectors); err != nil {
			s.grpcLn.Close()
			s.httpLn.Close()
			return nil, fmt.Errorf("metrics: %w", err)
		}
		if s.metricsLn, err = metrics.Listen(s.metrics, cfg.MetricsAddr, tlsConf, cfg.MetricsTLS, cfg.Logger); err != nil {
			s.grpcLn.Close()
			s.httpLn.Close()
			return nil, err
		}
	}
	go func() { s.errc <- s.grpc.Serve(s.grpcLn) }()
	// ServeTLS uses s.http.TLSConfig (certificates included) and enables HTTP/2.
	go func() { s.errc <- s.http.ServeTLS(s.httpLn, "", "") }()
	s.setCurrent(true)
	go s.watchIntegrity()
	go s.watchTLSFiles()
	go func() {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-s.stopping; cancel() }()
		s.pusher.Run(ctx)
	}()
	if s.port != nil {
		go s.watchHealth()
		s.cluster.RecordMembers()
		if cfg.Cluster.LogCheckInterval > 0 {
			go s.cluster.RunLogChecks(cfg.Cluster.LogCheckInterval, s.stopping)
		}
	}
	cfg.Logger.Info("concord node ready", "grpc", s.GRPCAddr(), "https", s.HTTPAddr(), "metrics", s.MetricsAddr(), "data_dir", cfg.DataDir,
		"node", s.node.ID(), "raft", s.node.Addr())
	return s, nil
}

// resetState gives the node an empty state machine and match index, before raft starts.
func (s *Server) resetState() error {
	f, err := fsm.New(s.cfg.Logger)
	if err != nil {
		return err
	}
	f.Tracer = tracing.Tracer(s.cfg.TracerProvider)
	f.OnHalt = func(h *fsm.Halt) {
		s.guard.Raise(integrity.Alarm{Kind: integrity.Halted, Index: h.Index, Detail: fmt.Sprintf(
			"the state machine cannot apply this %v entry (%v) and applies nothing after it: run the same Concord version on every node; "+
				"if the entry is damaged on this node only, repair the node from its cluster (README: when a node's data is damaged)", h.Type, h.Err)})
	}
	if s.metrics != nil {
		f.OnApply = s.metrics.FSMApplied
	}
	s.fsm = f
	s.index = match.NewIndex(matchindex.Options{}, s.cfg.Logger)
	s.fsm.Attach(s.index)
	// The match index is built once the node has restored and replayed its state (see
	// FSM.DeferDerived), before it serves.
	s.fsm.DeferDerived()
	return nil
}

// openRaft opens the raft node: alone with the in-memory transport, or on the raft port with
// the node certificate, whose gRPC side then serves NodeService.
func (s *Server) openRaft(ctx context.Context, policy *authz.Policy) (err error) {
	cc := s.cfg.Cluster
	rc := raftnode.Config{DataDir: s.cfg.DataDir, NodeID: cc.NodeID, Logger: s.cfg.Logger,
		SnapshotThreshold: cc.SnapshotThreshold, SnapshotInterval: cc.SnapshotInterval, TrailingLogs: cc.TrailingLogs,
		SnapshotBytes: cc.SnapshotBytes, SnapshotAge: cc.SnapshotAge, SegmentBytes: cc.SegmentBytes,
		HeartbeatTimeout: cc.HeartbeatTimeout, LeaderLeaseTimeout: cc.LeaderLeaseTimeout, TracerProvider: s.cfg.TracerProvider}
	if cc.RaftAddr != "" {
		nodeTLS, err := mtls.NodeConfig(mtls.Files{CA: s.cfg.TLS.CA, Cert: cc.NodeCert, Key: cc.NodeKey}, s.cfg.TrustDomain)
		if err != nil {
			return err
		}
		if rc.NodeID == "" {
			rc.NodeID = nodeTLS.ID
		}
		if nodeTLS.ID != rc.NodeID {
			return fmt.Errorf("server: the node certificate %s names node %q, but this node is %q (--node-id): give it its own certificate", cc.NodeCert, nodeTLS.ID, rc.NodeID)
		}
		s.nodeTLS = nodeTLS
		if s.port, err = cluster.Listen(cc.Network, cc.RaftAddr, nodeTLS, s.cfg.Logger); err != nil {
			return err
		}
		rc.Stream = s.port.Raft()
		rc.Join = len(cc.Join) > 0
	}
	rc.Admit = func(n int) error { return s.space.Admit(n) }
	rc.OnCorrupt = func(err error) {
		s.guard.Raise(integrity.Alarm{Kind: integrity.Corrupt, Detail: err.Error() + "; the node repairs itself from its cluster (README: when a node's data is damaged)"})
	}
	defer func() {
		if err != nil && s.port != nil {
			s.port.Close()
		}
	}()
	if reason, ok := repairReason(s.cfg.DataDir); ok && s.port != nil {
		if err := s.beginRepair(ctx, rc.NodeID, reason); err != nil {
			return err
		}
		rc.Join = true
	}
	if s.node, err = raftnode.Open(rc, s.fsm); err != nil {
		var ce *raftnode.CorruptError
		if !errors.As(err, &ce) {
			return err
		}
		if s.port == nil {
			return fmt.Errorf("%w: this node runs alone, with nobody to repair it from: restore its data directory from a backup ('concord snapshot restore')", err)
		}
		if s.repairing != "" {
			return err
		}
		// A member of a cluster repairs itself from the others.
		if err := s.beginRepair(ctx, rc.NodeID, err.Error()); err != nil {
			return err
		}
		rc.Join, rc.Stream = true, s.port.Raft()
		if s.node, err = raftnode.Open(rc, s.fsm); err != nil {
			return err
		}
	}
	s.space = &datadir.Space{Dir: s.cfg.DataDir, SegmentBytes: s.node.SegmentBytes(), SnapshotBytes: s.node.LatestSnapshotBytes,
		HasSpare: s.node.HasSpareSegment, MakeSpare: s.node.MakeSpareSegment, Guard: s.guard, Logger: s.cfg.Logger}
	s.cluster = cluster.New(cluster.Config{Raft: s.node, FSM: s.fsm, Port: s.port, Logger: s.cfg.Logger, LeaderWait: cc.LeaderWait,
		Integrity: s.guard, DataDir: s.cfg.DataDir, TracerProvider: s.cfg.TracerProvider})
	if s.port != nil {
		if s.nodeRPC, err = transport.NewNodeGRPC(policy, s.cfg.Logger, cluster.ServerCredentials(), s.cluster.NodeService(), s.cfg.TracerProvider); err != nil {
			s.stopRaft()
			return err
		}
		go func() { _ = s.nodeRPC.Serve(s.port.GRPC()) }()
	}
	return nil
}

// waitReady returns once the node's state is current: alone, once it elected itself and
// replayed its log; in a cluster, once it joined (a new node with --join) and caught up with
// the leader, so that a restarted node never serves the state it had when it stopped.
func (s *Server) waitReady(ctx context.Context) error {
	if s.port == nil {
		if err := s.node.WaitReady(ctx); err != nil {
			return fmt.Errorf("wait for the node to be ready: %w", err)
		}
		return nil
	}
	if !s.node.Existing() && len(s.cfg.Cluster.Join) > 0 {
		if err := cluster.Join(ctx, s.cfg.Cluster.Join, s.nodeTLS.PublicConfig(), s.node.ID(), s.port.Addr(), s.cfg.Logger); err != nil {
			return err
		}
	}
	if err := s.cluster.WaitCaughtUp(ctx); err != nil {
		return err
	}
	if s.repairing != "" {
		if err := s.endRepair(ctx); err != nil {
			return err
		}
	}
	if err := s.node.UpdateOwnAddress(ctx); err != nil {
		return fmt.Errorf("record this node's raft address: %w", err)
	}
	return nil
}

// watchHealth keeps the health service's status in step with the node: SERVING while it can
// confirm its state is current, NOT_SERVING while it cannot (no leader, cut off).
func (s *Server) watchHealth() {
	tick := time.NewTicker(s.cfg.Cluster.HealthInterval)
	defer tick.Stop()
	current := true
	for {
		select {
		case <-s.stopping:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Cluster.HealthInterval+2*time.Second)
		err := s.cluster.Linearize(ctx)
		cancel()
		if ok := err == nil; ok != current {
			current = ok
			if ok {
				s.cfg.Logger.Info("node is current again: serving", "node", s.node.ID())
			} else {
				s.cfg.Logger.Warn("node cannot confirm its state is current: not serving", "node", s.node.ID(), "err", err)
			}
			s.setCurrent(ok)
		}
	}
}

// setCurrent records whether the node's state is current and updates the health status: SERVING
// while it is and no integrity alarm stops it.
func (s *Server) setCurrent(current bool) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	s.current = current
	s.updateHealthLocked()
}

func (s *Server) updateHealthLocked() {
	select {
	case <-s.stopping:
		return // Shutdown has set NOT_SERVING for good
	default:
	}
	if s.current && s.guard.Serving() == nil {
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	} else {
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	}
}

// watchIntegrity follows the integrity alarms: the health status reflects them, and a leader
// that must stop serving hands leadership to another voter, so that the cluster goes on.
func (s *Server) watchIntegrity() {
	// A leader with an alarm keeps handing over leadership: a transfer can fail, and the node
	// can win a later election.
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		changed := s.guard.Changed()
		s.healthMu.Lock()
		s.updateHealthLocked()
		s.healthMu.Unlock()
		if s.guard.Serving() != nil && s.node.IsLeader() && !s.node.SingleVoter() {
			if err := s.node.LeadershipTransfer(); err != nil {
				s.cfg.Logger.Warn("cannot hand over leadership while this node's integrity is in doubt", "err", err)
			}
		}
		for _, a := range s.guard.Alarms() {
			if a.Kind == integrity.Forked || a.Kind == integrity.Corrupt {
				s.requestRepair(a)
			}
		}
		select {
		case <-s.stopping:
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// stopRaft stops NodeService, raft and the raft port.
func (s *Server) stopRaft() error {
	if s.nodeRPC != nil {
		s.nodeRPC.Stop()
	}
	if s.cluster != nil {
		s.cluster.Close()
	}
	var err error
	if s.node != nil {
		err = s.node.Shutdown()
	}
	if s.port != nil {
		s.port.Close()
	}
	return err
}

// NodeID is the node's raft server id.
func (s *Server) NodeID() string { return s.node.ID() }

// RaftAddr is the node's raft address (its node id when it runs alone).
func (s *Server) RaftAddr() string { return s.node.Addr() }

// IsLeader reports whether the node is the raft leader.
func (s *Server) IsLeader() bool { return s.node.IsLeader() }

// RaftStats are raft's statistics, for diagnostics and tests.
func (s *Server) RaftStats() map[string]string { return s.node.Stats() }

// Applied is the raft index of the last command the node's state applied.
func (s *Server) Applied() uint64 { return s.fsm.Applied() }

// GRPCAddr is the gRPC port's address.
func (s *Server) GRPCAddr() string { return s.grpcLn.Addr().String() }

// HTTPAddr is the HTTPS port's address.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// MetricsAddr is the metrics listener's address ("" without one).
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr()
}

// Snapshot takes a raft snapshot of the node's state now, compacting its log.
func (s *Server) Snapshot() error { return s.node.Snapshot() }

// Done returns a channel that receives the error of a port that stopped serving on its own.
func (s *Server) Done() <-chan error { return s.errc }

// Shutdown stops accepting calls, lets calls in flight finish until ctx expires, then stops
// raft. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.handOverLeadership()
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
		if s.metricsLn != nil {
			_ = s.metricsLn.Close()
		}
		// The witness pusher stops with s.stopping (its calls are cancelled): it signs and
		// writes nothing once the data directory is let go.
		<-s.pusher.Done()
		s.stopErr = errors.Join(httpErr, s.stopRaft(), s.lock.Release())
	})
	return s.stopErr
}

// handOverLeadership, on a leader of a cluster that stops (an upgrade, a restart), hands its
// leadership to the most up-to-date other voter first, so that writes pause for a transfer
// (milliseconds) instead of an election timeout, and calls still arriving here are forwarded
// to the new leader while the node drains them.
func (s *Server) handOverLeadership() {
	if s.node == nil || !s.node.IsLeader() || s.node.SingleVoter() {
		return
	}
	start := time.Now()
	if err := s.node.LeadershipTransfer(); err != nil {
		s.cfg.Logger.Warn("stopping as leader without handing leadership over: the others elect a leader after their election timeout", "err", err)
		return
	}
	// The new leader's first heartbeat names it, within milliseconds.
	_, to := s.node.Leader()
	for deadline := time.Now().Add(2 * time.Second); to == "" && time.Now().Before(deadline); _, to = s.node.Leader() {
		time.Sleep(10 * time.Millisecond)
	}
	s.cfg.Logger.Info("leadership handed over before stopping", "to", to, "took", time.Since(start).Round(time.Millisecond))
}

// ReloadTLS reads the server certificate, its key and the CA bundle of partner certificates
// again, and the node certificate and its key on a cluster node (concord serve does on SIGHUP,
// and the node by itself when the files change): new handshakes use them, open connections
// keep theirs. It reports whether anything changed; a file that does not load is reported and
// the files in use stay in use.
func (s *Server) ReloadTLS() (bool, error) {
	changed, err := s.serverTLS.Reload()
	s.reportServerTLS(changed, err)
	if s.nodeTLS != nil {
		nodeChanged, nodeErr := s.nodeTLS.Reload()
		s.reportNodeTLS(nodeChanged, nodeErr)
		changed, err = changed || nodeChanged, errors.Join(err, nodeErr)
	}
	return changed, err
}

// ServerCertificate is the certificate the node serves now.
func (s *Server) ServerCertificate() *x509.Certificate { return s.serverTLS.Certificate() }

// NodeCertificate is the node certificate presented on the raft port and to other nodes now
// (nil on a node that runs alone).
func (s *Server) NodeCertificate() *x509.Certificate {
	if s.nodeTLS == nil {
		return nil
	}
	return s.nodeTLS.Certificate()
}

func (s *Server) reportServerTLS(changed bool, err error) {
	s.reportTLS("TLS files", s.cfg.TLS, s.serverTLS.Certificate, changed, err)
}

func (s *Server) reportNodeTLS(changed bool, err error) {
	s.reportTLS("node TLS files", s.nodeTLS.Files(), s.nodeTLS.Certificate, changed, err)
}

func (s *Server) reportTLS(what string, files mtls.Files, cert func() *x509.Certificate, changed bool, err error) {
	switch {
	case err != nil:
		s.cfg.Logger.Error(what+" not reloaded", "err", err)
	case changed:
		c := cert()
		s.cfg.Logger.Info(what+" reloaded", "cert", files.Cert, "ca", files.CA,
			"subject", c.Subject.String(), "issuer", c.Issuer.String(), "not_after", c.NotAfter)
	}
}

func (s *Server) watchTLSFiles() {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-s.stopping; cancel() }()
	if s.nodeTLS != nil {
		go s.nodeTLS.Watch(ctx, s.cfg.TLSReloadInterval, s.reportNodeTLS)
	}
	s.serverTLS.Watch(ctx, s.cfg.TLSReloadInterval, s.reportServerTLS)
}

// pageTokenKey derives the key that seals page tokens from the log key, which every node of a
// cluster holds: a token issued by one node works on the others.
func pageTokenKey(logKeyFile string) ([]byte, error) {
	b, err := os.ReadFile(logKeyFile)
	if err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	sum := sha256.Sum256(append([]byte("concord/page-token/v1\n"), b...))
	return sum[:], nil
}

func registerAll(m *metrics.Metrics, cs []prometheus.Collector) error {
	for _, c := range cs {
		if err := m.Register(c); err != nil {
			return err
		}
	}
	return nil
}
