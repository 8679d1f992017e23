// Package client is Concord's Go SDK: it dials a node's gRPC port with mutual TLS, retries only
// what is safe to retry, and signs statements with the partner's signing key.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/internal/rpcmethod"
	"concord/internal/statementid"
	"concord/translog"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/timeout"
	formats "github.com/transparency-dev/formats/note"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Config says where a node is and who the partner is.
type Config struct {
	// Addr is the node's gRPC port, host:port. For a cluster, give several nodes, separated by
	// commas, or use Addrs: the client fails over between them.
	Addr string
	// Addrs are the gRPC ports of a cluster's nodes, tried in turn: a call that a node answers
	// Unavailable (down, cut off, no leader), or does not answer in time, goes to the next one
	// when it is sent again.
	Addrs []string
	// TLS names the CA that issued the node's certificate, and the partner's client certificate
	// and key.
	TLS mtls.Files
	// SigningKeyFile is the partner's Ed25519 statement-signing key (PKCS#8 PEM). Optional for
	// read-only use.
	SigningKeyFile string
	// LogKeyFile is the hub's transparency-log verifier key (log.pub). The write helpers need it:
	// they verify every receipt before reporting success, and refuse to write without it.
	LogKeyFile string
	// Witnesses are the verifier keys ("name+hash+key") of the log witnesses this client trusts,
	// and WitnessQuorum how many of them must have cosigned a checkpoint for WitnessedCheckpoint
	// (and a mirror) to accept it.
	Witnesses     []string
	WitnessQuorum int
	// Timeout bounds each call that has no earlier deadline (default 30 s), re-sends included.
	Timeout time.Duration
	// Retries bounds how often a call is sent again after it got no answer (Unavailable, or
	// no answer in time), each time on the next node of Addrs: reads 3 times by default; writes,
	// by default, until their outcome is known or the context ends (see OutcomeUnknownError).
	// Set, it bounds both; -1: never.
	Retries int
	// AttemptTimeout bounds each attempt of a write (default 15 s, three times the nodes' own
	// bound on their waits; -1: none): a node that holds a write longer is given up for the next
	// one, and the same request sent there.
	AttemptTimeout time.Duration
	// Logger receives one line per failed call, and one per call sent again (default: none).
	Logger *slog.Logger
	// TracerProvider, if set, traces each call sent (one client span per attempt, a child of
	// the span in the call's context) and sends its W3C trace context to the node, so that
	// the node's spans for the call, the forwarding of a write to the raft leader and its apply
	// join the caller's trace.
	TracerProvider trace.TracerProvider
}

// Client is a connection to a Concord node, or to the nodes of a cluster.
type Client struct {
	nodes    *failover
	signer   *dsse.Signer
	Registry concordv1.RegistryServiceClient
	Notices  concordv1.NoticeServiceClient
	Log      concordv1.LogServiceClient
	Actions  concordv1.ActionServiceClient
	Matches  concordv1.MatchServiceClient
	Cluster  concordv1.ClusterServiceClient

	meMu sync.Mutex
	me   *concordv1.Partner // cached WhoAmI

	logKey    note.Verifier
	witnesses []note.Verifier
	quorum    int
	cpMu      sync.Mutex
	lastCP    *translog.Checkpoint // the largest checkpoint verified so far
}

// Dial connects to a node, or to several nodes of a cluster. Connections are established lazily,
// on the first call.
func Dial(cfg Config) (*Client, error) {
	addrs := cfg.Addrs
	for _, a := range strings.Split(cfg.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, errors.New("client: no node address")
	}
	tlsConf, err := mtls.ClientConfig(cfg.TLS)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	policy := resender{retries: 3, writeRetries: cfg.Retries != 0, attemptTimeout: 15 * time.Second, logger: cfg.Logger}
	if cfg.Retries != 0 {
		policy.retries = cfg.Retries
	}
	if cfg.AttemptTimeout != 0 {
		policy.attemptTimeout = max(cfg.AttemptTimeout, 0)
	}
	unary := []grpc.UnaryClientInterceptor{timeout.UnaryClientInterceptor(cfg.Timeout)}
	if cfg.Logger != nil {
		unary = append(unary, logging.UnaryClientInterceptor(slogLogger(cfg.Logger),
			logging.WithLogOnEvents(logging.FinishCall),
			logging.WithLevels(func(c codes.Code) logging.Level {
				if c == codes.OK {
					return logging.LevelDebug
				}
				return logging.LevelWarn
			})))
	}
	unary = append(unary, policy.intercept)
	nodes := &failover{unary: chainUnary(unary)}
	for _, addr := range addrs {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(verdictCreds{credentials.NewTLS(tlsConf.Clone())})}
		if cfg.TracerProvider != nil {
			opts = append(opts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
				otelgrpc.WithTracerProvider(cfg.TracerProvider), otelgrpc.WithPropagators(propagation.TraceContext{}))))
		}
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			nodes.close()
			return nil, fmt.Errorf("client: %s: %w", addr, err)
		}
		nodes.conns = append(nodes.conns, conn)
	}
	c := &Client{nodes: nodes, Registry: concordv1.NewRegistryServiceClient(nodes), Notices: concordv1.NewNoticeServiceClient(nodes),
		Log: concordv1.NewLogServiceClient(nodes), Actions: concordv1.NewActionServiceClient(nodes), Matches: concordv1.NewMatchServiceClient(nodes),
		Cluster: concordv1.NewClusterServiceClient(nodes)}

	if cfg.LogKeyFile != "" {
		if c.logKey, err = pki.LoadLogVerifier(cfg.LogKeyFile); err != nil {
			nodes.close()
			return nil, err
		}
	}
	for _, w := range cfg.Witnesses {
		v, err := formats.NewVerifierForCosignatureV1(w)
		if err != nil {
			nodes.close()
			return nil, fmt.Errorf("client: witness key %q: %w", w, err)
		}
		c.witnesses = append(c.witnesses, v)
	}
	if cfg.WitnessQuorum > len(c.witnesses) {
		nodes.close()
		return nil, fmt.Errorf("client: a quorum of %d witnesses, but %d are trusted", cfg.WitnessQuorum, len(c.witnesses))
	}
	c.quorum = cfg.WitnessQuorum
	if cfg.SigningKeyFile != "" {
		key, err := pki.LoadSigningKey(cfg.SigningKeyFile)
		if err != nil {
			nodes.close()
			return nil, err
		}
		s := dsse.NewSigner(key)
		c.signer = &s
	}
	return c, nil
}

// Conn is the connection to the node calls currently go to, for services the SDK does not wrap.
// Calls made on it do not fail over; Nodes does.
func (c *Client) Conn() *grpc.ClientConn { return c.nodes.current() }

// Nodes is a connection to every node given, failing over between them as the SDK's own calls
// do, for services the SDK does not wrap.
func (c *Client) Nodes() grpc.ClientConnInterface { return c.nodes }

// Close closes the connections.
func (c *Client) Close() error { return c.nodes.close() }

// Signer is the partner's statement signer, or nil without a signing key.
func (c *Client) Signer() *dsse.Signer { return c.signer }

// NewID returns a fresh id for a statement signer signs (notice id, report id, change id): a
// ULID carrying signer's tag, which the hub requires (see WhoAmIResponse.statement_id_tag).
func NewID(signer string) string { return statementid.New(signer) }

// SignRegistryChange signs change with the partner's key, filling in change_id and created_at
// if they are empty. The author must be the calling partner.
func (c *Client) SignRegistryChange(change *concordv1.RegistryChange) (*concordv1.Envelope, error) {
	if c.signer == nil {
		return nil, errors.New("client: no signing key configured (Config.SigningKeyFile)")
	}
	if change.GetChangeId() == "" {
		change.ChangeId = NewID(change.GetAuthor())
	}
	if change.GetCreatedAt() == nil {
		change.CreatedAt = timestamppb.Now()
	}
	return dsse.SignMessage(dsse.PayloadTypeRegistryChange, change, *c.signer)
}

// UpdateRegistry signs change, submits it and verifies the receipt (see SubmitNotice for what
// its errors say).
func (c *Client) UpdateRegistry(ctx context.Context, change *concordv1.RegistryChange) (*concordv1.UpdateRegistryResponse, error) {
	if err := c.requireLogKey(); err != nil {
		return nil, err
	}
	env, err := c.SignRegistryChange(change)
	if err != nil {
		return nil, err
	}
	return commit(ctx, c, env, func(ctx context.Context, from uint64) (*concordv1.UpdateRegistryResponse, error) {
		return c.Registry.UpdateRegistry(ctx, &concordv1.UpdateRegistryRequest{Envelope: env, ConsistencyFrom: from})
	})
}

// Idempotent reports whether a full method name ("/pkg.Service/Method") is declared
// NO_SIDE_EFFECTS or IDEMPOTENT in its proto.
func Idempotent(fullMethod string) bool { return rpcmethod.Retryable(fullMethod) }

func slogLogger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}
