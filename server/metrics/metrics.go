// Package metrics exposes a Concord node's figures to Prometheus: per-RPC counts, codes and
// latencies on both ports, raft, the state machine, the transparency log, matching, feeds,
// compliance, rate limiting, disk and integrity. Every series is named concord_…; labels are
// bounded (method, code, protocol, kind, partner, jurisdiction, witness, alarm), never a notice
// id or a hash.
//
// Counters and histograms are updated on the request path through the hooks below; everything
// else is read at scrape time by a Collector (see node.go), from the node's own state.
package metrics

import (
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"
)

// Namespace prefixes every Concord series.
const Namespace = "concord"

// rpcBuckets are the latency buckets of calls (seconds): a Match call takes tens of microseconds,
// a write a few milliseconds (an fsync), a feed lives for hours.
var rpcBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// lookupBuckets are the latency buckets of one hash's lookup in the match index (seconds).
var lookupBuckets = []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1}

// applyBuckets are the latency buckets of one raft entry's application to the state (seconds).
var applyBuckets = []float64{1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// Metrics holds one node's registry and the series updated on the request path. A nil *Metrics
// records nothing: every method is safe to call on it.
type Metrics struct {
	// Registry holds every series of the node (and Go's and the process's own).
	Registry *prometheus.Registry

	// GRPC is go-grpc-middleware's provider for the gRPC port.
	GRPC    *grpcprom.ServerMetrics
	connect *connectRPC
	// tapRefused counts gRPC calls refused before any interceptor runs (unknown caller, wrong
	// role): grpc-go never hands them to the provider.
	tapRefused *prometheus.CounterVec

	fsmApply      *prometheus.HistogramVec
	matchLookup   *prometheus.HistogramVec
	lookupByKind  [maxKind + 1]prometheus.Observer
	limitRefusals *prometheus.CounterVec
	witnessPushes *prometheus.CounterVec
}

// maxKind is the largest hash kind number (concord.v1.HashKind).
const maxKind = 5

// kindNames are the label values of the hash kinds, by their API number.
var kindNames = [maxKind + 1]string{1: "SHA256", 2: "MD5", 3: "PDQ", 4: "PDQ_VIDEO", 5: "URL_SHA256"}

// KindName is the label value of hash kind k (its API number).
func KindName(k int) string {
	if k > 0 && k <= maxKind {
		return kindNames[k]
	}
	return "UNKNOWN"
}

// New returns a node's metrics, registered with a registry of their own (several nodes can run
// in one process, as tests do).
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.GRPC = grpcprom.NewServerMetrics(
		grpcprom.WithServerCounterOptions(grpcprom.WithNamespace(Namespace), grpcprom.WithConstLabels(prometheus.Labels{"protocol": "grpc"})),
		grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramNamespace(Namespace), grpcprom.WithHistogramBuckets(rpcBuckets),
			grpcprom.WithHistogramConstLabels(prometheus.Labels{"protocol": "grpc"})),
	)
	m.connect = newConnectRPC()
	m.tapRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "grpc_server_refused_before_call_total",
		Help: "gRPC-port calls refused from their headers before the call began (unknown caller, role not allowed), by code.",
	}, []string{"grpc_code"})
	m.fsmApply = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "fsm_apply_duration_seconds",
		Help:    "Time the state machine took to apply one raft entry, by command.",
		Buckets: applyBuckets,
	}, []string{"command"})
	m.matchLookup = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "match_lookup_duration_seconds",
		Help:    "Time one hash of a Match request took to look up in the match index, by hash kind.",
		Buckets: lookupBuckets,
	}, []string{"kind"})
	for k := 1; k <= maxKind; k++ {
		m.lookupByKind[k] = m.matchLookup.WithLabelValues(kindNames[k])
	}
	m.limitRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "ratelimit_refusals_total",
		Help: "Calls and stream messages refused because a partner was over its limits, by partner and limit (rate: requests or work; streams: open streams).",
	}, []string{"partner", "limit"})
	m.witnessPushes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "witness_pushes_total",
		Help: "Checkpoints this node pushed to witnesses (C2SP tlog-witness), by witness (partner id) and result: cosigned, behind, split_view (the witness saw another history: alert), refused, failed.",
	}, []string{"witness", "result"})
	m.Registry.MustRegister(m.GRPC, m.connect, m.tapRefused, m.fsmApply, m.matchLookup, m.limitRefusals, m.witnessPushes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// TapRefused counts a gRPC call refused before it began.
func (m *Metrics) TapRefused(code codes.Code) {
	if m == nil {
		return
	}
	m.tapRefused.WithLabelValues(code.String()).Inc()
}

// FSMApplied records how long the state machine took to apply an entry of command.
func (m *Metrics) FSMApplied(command string, took time.Duration) {
	if m == nil {
		return
	}
	m.fsmApply.WithLabelValues(command).Observe(took.Seconds())
}

// MatchLookup records how long one hash of kind (its API number) took to look up.
func (m *Metrics) MatchLookup(kind int, took time.Duration) {
	if m == nil || kind <= 0 || kind > maxKind {
		return
	}
	m.lookupByKind[kind].Observe(took.Seconds())
}

// LimitRefused counts a refusal of partner by one of its limits ("rate" or "streams").
func (m *Metrics) LimitRefused(partner, limit string) {
	if m == nil {
		return
	}
	m.limitRefusals.WithLabelValues(partner, limit).Inc()
}

// WitnessPush counts a push of a checkpoint to a witness, by its result.
func (m *Metrics) WitnessPush(witness, result string) {
	if m == nil {
		return
	}
	m.witnessPushes.WithLabelValues(witness, result).Inc()
}

// Register adds a collector (the node's scrape-time figures) to the registry.
func (m *Metrics) Register(c prometheus.Collector) error {
	return m.Registry.Register(c)
}
