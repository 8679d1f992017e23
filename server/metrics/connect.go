package metrics

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// connectRPC records the HTTPS port's calls in the same series go-grpc-middleware's provider
// records for the gRPC port (same names, help and labels), told apart by protocol="connect": a
// dashboard or an alert sums both ports, or splits them, with one query.
type connectRPC struct {
	started, handled, received, sent *prometheus.CounterVec
	seconds                          *prometheus.HistogramVec

	procedures sync.Map // procedure → *procedureSeries
}

// The help texts are go-grpc-middleware's: a registry accepts one name from two collectors only
// with the same help and label names.
func newConnectRPC() *connectRPC {
	constLabels := prometheus.Labels{"protocol": "connect"}
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help, ConstLabels: constLabels}, labels)
	}
	return &connectRPC{
		started:  counter("grpc_server_started_total", "Total number of RPCs started on the server.", labels),
		handled:  counter("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.", append(labels[:3:3], "grpc_code")),
		received: counter("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", labels),
		sent:     counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", labels),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "grpc_server_handling_seconds", ConstLabels: constLabels, Buckets: rpcBuckets,
			Help: "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
		}, labels),
	}
}

func (c *connectRPC) Describe(ch chan<- *prometheus.Desc) {
	c.started.Describe(ch)
	c.handled.Describe(ch)
	c.received.Describe(ch)
	c.sent.Describe(ch)
	c.seconds.Describe(ch)
}

func (c *connectRPC) Collect(ch chan<- prometheus.Metric) {
	c.started.Collect(ch)
	c.handled.Collect(ch)
	c.received.Collect(ch)
	c.sent.Collect(ch)
	c.seconds.Collect(ch)
}

// procedureSeries are one procedure's series, resolved once: the hot path does no label look-up.
type procedureSeries struct {
	started, received, sent prometheus.Counter
	seconds                 prometheus.Observer
	handled                 [connect.CodeUnauthenticated + 1]prometheus.Counter
}

// grpcType is go-grpc-middleware's name of a stream type.
func grpcType(t connect.StreamType) string {
	switch t {
	case connect.StreamTypeClient:
		return "client_stream"
	case connect.StreamTypeServer:
		return "server_stream"
	case connect.StreamTypeBidi:
		return "bidi_stream"
	}
	return "unary"
}

func (c *connectRPC) series(spec connect.Spec) *procedureSeries {
	if s, ok := c.procedures.Load(spec.Procedure); ok {
		return s.(*procedureSeries)
	}
	service, method := "unknown", "unknown"
	if p := strings.TrimPrefix(spec.Procedure, "/"); strings.Contains(p, "/") {
		i := strings.LastIndexByte(p, '/')
		service, method = p[:i], p[i+1:]
	}
	typ := grpcType(spec.StreamType)
	s := &procedureSeries{
		started:  c.started.WithLabelValues(typ, service, method),
		received: c.received.WithLabelValues(typ, service, method),
		sent:     c.sent.WithLabelValues(typ, service, method),
		seconds:  c.seconds.WithLabelValues(typ, service, method),
	}
	for code := range s.handled {
		s.handled[code] = c.handled.WithLabelValues(typ, service, method, grpcCodeName(connect.Code(code)))
	}
	actual, _ := c.procedures.LoadOrStore(spec.Procedure, s)
	return actual.(*procedureSeries)
}

// grpcCodeName is grpc-go's name of a code ("OK", "InvalidArgument"), which the gRPC port's
// series carry.
func grpcCodeName(c connect.Code) string {
	names := [...]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
		"PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented", "Internal",
		"Unavailable", "DataLoss", "Unauthenticated"}
	if int(c) < len(names) {
		return names[c]
	}
	return "Unknown"
}

// ConnectInterceptor records the HTTPS port's calls; it goes first in the server's chain, so
// that it sees every call and the code it ended with. On a nil *Metrics it passes calls through.
func (m *Metrics) ConnectInterceptor(next connect.ServerFunc) connect.ServerFunc {
	if m == nil {
		return next
	}
	c := m.connect
	return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
		s := c.series(spec)
		s.started.Inc()
		start := time.Now()
		err := next(ctx, spec, countedStream{ServerStream: stream, s: s})
		code := connect.Code(0)
		if err != nil {
			code = connect.CodeOf(err)
			if errors.Is(err, context.Canceled) {
				code = connect.CodeCanceled
			}
		}
		if int(code) < len(s.handled) {
			s.handled[code].Inc()
		}
		s.seconds.Observe(time.Since(start).Seconds())
		return err
	}
}

// countedStream counts the messages a call receives and sends.
type countedStream struct {
	connect.ServerStream
	s *procedureSeries
}

func (cs countedStream) Receive(m any) error {
	err := cs.ServerStream.Receive(m)
	if err == nil {
		cs.s.received.Inc()
	}
	return err
}

func (cs countedStream) Send(m any) error {
	err := cs.ServerStream.Send(m)
	if err == nil {
		cs.s.sent.Inc()
	}
	return err
}
