package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/registryfile"
	"concord/server"
	"concord/server/ratelimit"
	"concord/server/tracing"

	"go.opentelemetry.io/otel/trace"
	"go.yaml.in/yaml/v3"
)

func init() {
	register(command{name: "serve", summary: "run a Concord node", run: runServe})
}

// serveConfig is a node's configuration, from a YAML file and flags (flags win).
type serveConfig struct {
	DataDir  string `yaml:"data_dir"`
	GRPCAddr string `yaml:"grpc_addr"`
	HTTPAddr string `yaml:"http_addr"`
	// MetricsAddr serves Prometheus metrics (empty: off); MetricsTLS forces HTTPS on loopback.
	MetricsAddr string  `yaml:"metrics_addr"`
	MetricsTLS  bool    `yaml:"metrics_tls"`
	CA          string  `yaml:"ca"`
	Cert        string  `yaml:"cert"`
	Key         string  `yaml:"key"`
	LogKey      string  `yaml:"log_key"`
	TrustDomain string  `yaml:"trust_domain"`
	Registry    string  `yaml:"registry"`
	RateLimit   float64 `yaml:"rate_limit"`
	RateBurst   int     `yaml:"rate_burst"`
	// Limits: requests, work and open streams per partner, by default, role and partner.
	Limits ratelimit.Config `yaml:"limits"`
	// TLSReload: how often the node looks for changed TLS files (it also reloads on SIGHUP).
	TLSReload time.Duration `yaml:"tls_reload"`
	LogLevel  string        `yaml:"log_level"`
	LogFormat string        `yaml:"log_format"`
	// AuditLog is the file of the audit stream (JSON lines); empty: none.
	AuditLog string `yaml:"audit_log"`
	// Clustering: empty RaftAddr runs the node alone.
	NodeID   string     `yaml:"node_id"`
	RaftAddr string     `yaml:"raft_addr"`
	NodeCert string     `yaml:"node_cert"`
	NodeKey  string     `yaml:"node_key"`
	Join     stringList `yaml:"join"`
	// Tracing: spans go to an OTLP collector, if one is named here or by OTEL_EXPORTER_OTLP_*.
	OTLPEndpoint     string  `yaml:"otlp_endpoint"`
	OTLPProtocol     string  `yaml:"otlp_protocol"`
	TraceSampleRatio float64 `yaml:"trace_sample_ratio"`
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		DataDir:     ".concord/data",
		GRPCAddr:    server.DefaultGRPCAddr,
		HTTPAddr:    server.DefaultHTTPAddr,
		TrustDomain: identity.DefaultTrustDomain,
		RateLimit:   server.DefaultRateLimit,
		RateBurst:   server.DefaultRateBurst,
		TLSReload:   10 * time.Second,
		LogLevel:    "info",
		LogFormat:   "text",

		TraceSampleRatio: tracing.DefaultSampleRatio,
	}
}

// loadServeConfig reads the YAML file named by --config, if any, over the defaults.
func loadServeConfig(args []string) (serveConfig, error) {
	cfg := defaultServeConfig()
	path := ""
	for i, a := range args {
		switch {
		case a == "--config" || a == "-config":
			if i+1 < len(args) {
				path = args[i+1]
			}
		case strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "-config="):
			path = a[strings.IndexByte(a, '=')+1:]
		}
	}
	if path == "" {
		return cfg, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func (c *serveConfig) flags(fs *flag.FlagSet) {
	fs.String("config", "", "YAML file with any of the settings below (flags override it)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the raft log and snapshots")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "listen address of the gRPC port (grpc-go)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "listen address of the HTTPS port (Connect, gRPC-Web, gRPC, JSON)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "listen address of the Prometheus metrics (path /metrics; plain HTTP on loopback, HTTPS with the server certificate and a client certificate from --ca elsewhere; empty: off)")
	fs.BoolVar(&c.MetricsTLS, "metrics-tls", c.MetricsTLS, "serve the metrics over HTTPS on a loopback address too")
	fs.StringVar(&c.CA, "ca", c.CA, "PEM file of the CA that issues partner certificates")
	fs.StringVar(&c.Cert, "cert", c.Cert, "PEM file of the server certificate")
	fs.StringVar(&c.Key, "key", c.Key, "PEM file of the server key")
	fs.StringVar(&c.LogKey, "log-key", c.LogKey, "the transparency log's signing key (a note signer key file; 'concord certs init' writes log.key)")
	fs.StringVar(&c.TrustDomain, "trust-domain", c.TrustDomain, "trust domain of partner certificate URIs (spiffe://DOMAIN/partner/ID)")
	fs.StringVar(&c.Registry, "registry", c.Registry, "YAML registry loaded on the node's first start (ignored afterwards)")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "requests per second per partner (-1: no limit)")
	fs.IntVar(&c.RateBurst, "rate-burst", c.RateBurst, "burst of requests per partner")
	fs.DurationVar(&c.TLSReload, "tls-reload", c.TLSReload, "how often to look for changed TLS files (--ca, --cert, --key, --node-cert, --node-key) and reload them; SIGHUP reloads at once")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.StringVar(&c.AuditLog, "audit-log", c.AuditLog, "file that receives the audit stream, JSON lines appended: every accepted write and every refused call, for a SIEM (empty: none)")
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "this node's id in its cluster (default: the id its node certificate names, or node-1)")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "host:port of this node's raft port, as the other nodes reach it (empty: run alone)")
	fs.StringVar(&c.NodeCert, "node-cert", c.NodeCert, "PEM file of this node's certificate (spiffe://DOMAIN/node/ID; 'concord certs init --nodes ID')")
	fs.StringVar(&c.NodeKey, "node-key", c.NodeKey, "PEM file of this node's certificate key")
	fs.Var(&joinFlag{list: &c.Join}, "join", "gRPC address of a cluster member to join through, on the first start (repeatable, or comma-separated)")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", c.OTLPEndpoint, "URL of the OTLP collector that receives the node's trace spans, e.g. https://collector:4317 (http:// for plain text; empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else no tracing)")
	fs.StringVar(&c.OTLPProtocol, "otlp-protocol", c.OTLPProtocol, "grpc or http/protobuf (empty: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)")
	fs.Float64Var(&c.TraceSampleRatio, "trace-sample-ratio", c.TraceSampleRatio, "share of the traces that start at this node which are sampled, 0 to 1 (a call whose caller sampled it is always traced)")
}

// joinFlag is --join: repeatable, each value possibly a comma-separated list. A flag given on
// the command line replaces the config file's list.
type joinFlag struct {
	list *stringList
	set  bool
}

func (j *joinFlag) String() string {
	if j.list == nil {
		return ""
	}
	return j.list.String()
}

func (j *joinFlag) Set(v string) error {
	if !j.set {
		*j.list = nil
		j.set = true
	}
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			*j.list = append(*j.list, a)
		}
	}
	return nil
}

func (c *serveConfig) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
}

// openAuditLog opens the audit stream's file for appending, readable by its owner only: the
// lines name partners and what they did. No path: no audit stream.
func openAuditLog(path string) (*slog.Logger, func(), error) {
	if path == "" {
		return nil, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("--audit-log: %w", err)
	}
	return slog.New(slog.NewJSONHandler(f, nil)), func() { f.Close() }, nil
}

func runServe(ctx context.Context, args []string) error {
	cfg, err := loadServeConfig(args)
	if err != nil {
		return err
	}
	fs := newFlags("serve", "serve [flags]", `
Runs a Concord node: the gRPC port and the HTTPS port, both mutual TLS (TLS 1.3, client
certificate required), over the raft log in --data-dir. On the first start the registry is
loaded from --registry; after that only signed UpdateRegistry calls change it.
SIGINT or SIGTERM stops the node gracefully.

Without --raft-addr the node runs alone. With --raft-addr (and --node-cert, --node-key) it is a
member of a raft cluster: raft and the nodes' internal service run on that port over mutual TLS
with node certificates. On its first start a node without --join bootstraps a new cluster; with
--join it asks a member (its gRPC port) to add it, then catches up. It reports SERVING on the
health service once it has caught up with the leader.

With --metrics-addr the node serves Prometheus metrics on a listener of its own (README:
monitoring); deploy/prometheus/ holds alert rules for them.`, `
concord serve --data-dir /var/lib/concord --ca ca.pem --cert server.pem --key server.key \
  --log-key log.key --registry registry.yaml --grpc-addr 0.0.0.0:7443 --http-addr 0.0.0.0:8443 \
  --metrics-addr 127.0.0.1:9464

concord serve --data-dir /var/lib/concord --ca ca.pem --cert server.pem --key server.key \
  --log-key log.key --grpc-addr 10.0.0.2:7443 --http-addr 10.0.0.2:8443 \
  --node-id node-2 --raft-addr 10.0.0.2:7000 --node-cert node.pem --node-key node.key --join 10.0.0.1:7443`)
	cfg.flags(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	var missing []string
	for flagName, v := range map[string]string{"--ca": cfg.CA, "--cert": cfg.Cert, "--key": cfg.Key, "--log-key": cfg.LogKey} {
		if v == "" {
			missing = append(missing, flagName)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s (or use 'concord dev' for a development node)", strings.Join(missing, ", "))
	}
	logger, err := cfg.logger()
	if err != nil {
		return err
	}
	var reg *registryfile.Registry
	if cfg.Registry != "" {
		if reg, err = registryfile.Load(cfg.Registry); err != nil {
			return err
		}
	}
	audit, closeAudit, err := openAuditLog(cfg.AuditLog)
	if err != nil {
		return err
	}
	defer closeAudit()
	ratio := cfg.TraceSampleRatio
	if ratio == 0 {
		ratio = -1 // zero asks for no new trace, not for the default
	}
	tp, err := tracing.Start(ctx, tracing.Config{Endpoint: cfg.OTLPEndpoint, Protocol: cfg.OTLPProtocol, SampleRatio: ratio, NodeID: cfg.NodeID})
	if err != nil {
		return err
	}
	var tracer trace.TracerProvider
	if tp != nil {
		tracer = tp
		defer func() {
			// The last spans are flushed, within a bound: a collector that is down holds no node.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(sctx); err != nil {
				logger.Warn("tracing: the last spans were not exported", "err", err)
			}
		}()
		logger.Info("tracing to an OTLP collector", "sample_ratio", max(ratio, 0))
	}
	return serveUntilSignal(ctx, server.Config{
		DataDir:           cfg.DataDir,
		GRPCAddr:          cfg.GRPCAddr,
		HTTPAddr:          cfg.HTTPAddr,
		MetricsAddr:       cfg.MetricsAddr,
		MetricsTLS:        cfg.MetricsTLS,
		TLS:               mtls.Files{CA: cfg.CA, Cert: cfg.Cert, Key: cfg.Key},
		LogKeyFile:        cfg.LogKey,
		TrustDomain:       cfg.TrustDomain,
		Registry:          reg,
		RateLimit:         cfg.RateLimit,
		RateBurst:         cfg.RateBurst,
		Limits:            cfg.Limits,
		TLSReloadInterval: cfg.TLSReload,
		Logger:            logger,
		Audit:             audit,
		// A nil *sdktrace.TracerProvider in the interface would not read as tracing off.
		TracerProvider: tracer,
		Cluster: server.ClusterConfig{
			NodeID:   cfg.NodeID,
			RaftAddr: cfg.RaftAddr,
			NodeCert: cfg.NodeCert,
			NodeKey:  cfg.NodeKey,
			Join:     cfg.Join,
		},
	}, nil)
}

// shutdownBound is how long a node may take to stop after SIGINT or SIGTERM, whatever it was
// doing (starting, replaying its log, waiting for its cluster): then it exits regardless. A
// second signal ends it at once. Its log is durable at every step, so nothing acknowledged is
// lost either way.
const shutdownBound = 20 * time.Second

// serveUntilSignal runs a node until ctx ends (SIGINT/SIGTERM), then shuts it down gracefully.
// A node that must repair itself from its cluster (server.ErrRepair) is restarted at once.
// ready, if set, is called each time the node serves.
func serveUntilSignal(ctx context.Context, cfg server.Config, ready func(*server.Server)) error {
	done := make(chan struct{})
	defer close(done)
	go exitAfterSignal(ctx, done, cfg.Logger)
	for {
		srv, err := server.Start(ctx, cfg)
		if err != nil {
			if ctx.Err() != nil {
				cfg.Logger.Info("stopped before it was ready", "err", err)
				return nil
			}
			return err
		}
		if ready != nil {
			ready(srv)
		}
		// SIGHUP reloads the server certificate, its key, the CA bundle and the node certificate.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		var serveErr error
	serving:
		for {
			select {
			case <-hup:
				cfg.Logger.Info("SIGHUP: reloading the TLS files")
				_, _ = srv.ReloadTLS() // it logs what happened
			case <-ctx.Done():
				cfg.Logger.Info("shutting down")
				break serving
			case serveErr = <-srv.Done():
				if errors.Is(serveErr, http.ErrServerClosed) {
					serveErr = nil
				}
				break serving
			}
		}
		signal.Stop(hup)
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err = srv.Shutdown(shutdownCtx)
		cancel()
		if errors.Is(serveErr, server.ErrRepair) && ctx.Err() == nil {
			cfg.Logger.Warn("restarting the node to repair it from its cluster")
			continue
		}
		return errors.Join(serveErr, err)
	}
}

// exitAfterSignal ends the process shutdownBound after ctx ends (a signal), or at a second
// signal, unless done closes first.
func exitAfterSignal(ctx context.Context, done <-chan struct{}, logger *slog.Logger) {
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	timer := time.NewTimer(shutdownBound)
	defer timer.Stop()
	select {
	case <-done:
	case sig := <-again:
		logger.Error("second signal: exiting now", "signal", sig.String())
		os.Exit(1)
	case <-timer.C:
		logger.Error("the node did not stop within the shutdown bound: exiting now", "bound", shutdownBound)
		os.Exit(1)
	}
}
