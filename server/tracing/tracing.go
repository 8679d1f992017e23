// Package tracing sets up OpenTelemetry tracing for a Concord node and carries a call's trace
// across the places where no gRPC metadata goes: from a raft leader's append to the state
// machine's apply on every node, inside the raft entry itself.
//
// Tracing is off unless a tracer provider is given: every hook here then costs a nil check.
// With one, the W3C trace context is the only propagation format, on both ports and between
// nodes.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/stats"
)

// ScopeName is the instrumentation scope of Concord's own spans.
const ScopeName = "concord"

// DefaultSampleRatio is the share of new traces sampled when none is configured. A call that
// arrives with a sampled parent is always traced (parent-based sampling).
const DefaultSampleRatio = 0.01

// Propagator is the one propagation format: W3C trace context.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Config says where a node exports its spans.
type Config struct {
	// Endpoint is the OTLP collector's URL (https://host:4317; http:// for plain text). Empty:
	// the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, and
	// without either, no tracing.
	Endpoint string
	// Protocol is "grpc" or "http/protobuf". Empty: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
	// OTEL_EXPORTER_OTLP_PROTOCOL, else grpc.
	Protocol string
	// SampleRatio is the share of new traces sampled, 0 to 1 (default DefaultSampleRatio;
	// negative: none).
	SampleRatio float64
	// NodeID names the node in the spans' resource (service.instance.id).
	NodeID string
}

// Enabled reports whether c, with the environment, names a collector.
func (c Config) Enabled() bool {
	return c.Endpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

// protocol is the OTLP protocol c and the environment choose.
func (c Config) protocol() string {
	for _, p := range []string{c.Protocol, os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")} {
		if p != "" {
			return p
		}
	}
	return "grpc"
}

// Sampler is the sampler of a node or client: a sampled parent is followed, and ratio of the
// traces that start here are sampled.
func Sampler(ratio float64) sdktrace.Sampler {
	if ratio == 0 {
		ratio = DefaultSampleRatio
	}
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(max(ratio, 0)))
}

// Start returns a tracer provider that exports to the collector c names, in batches, or nil
// (tracing off) if it names none. Shut it down to flush the last spans.
func Start(ctx context.Context, c Config) (*sdktrace.TracerProvider, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if c.SampleRatio > 1 {
		return nil, fmt.Errorf("tracing: a sample ratio of %v: want 0 to 1", c.SampleRatio)
	}
	var client otlptrace.Client
	switch p := c.protocol(); p {
	case "grpc":
		var opts []otlptracegrpc.Option
		if c.Endpoint != "" {
			if err := checkEndpoint(c.Endpoint); err != nil {
				return nil, err
			}
			opts = append(opts, otlptracegrpc.WithEndpointURL(c.Endpoint))
		}
		client = otlptracegrpc.NewClient(opts...)
	case "http/protobuf":
		var opts []otlptracehttp.Option
		if c.Endpoint != "" {
			if err := checkEndpoint(c.Endpoint); err != nil {
				return nil, err
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(c.Endpoint))
		}
		client = otlptracehttp.NewClient(opts...)
	default:
		return nil, fmt.Errorf("tracing: OTLP protocol %q: want grpc or http/protobuf", p)
	}
	// The exporter connects lazily: a collector that is down costs dropped spans, not a node.
	exp, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	attrs := []attribute.KeyValue{semconv.ServiceName("concord")}
	if c.NodeID != "" {
		attrs = append(attrs, semconv.ServiceInstanceID(c.NodeID))
	}
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(Sampler(c.SampleRatio)),
	), nil
}

// checkEndpoint refuses an endpoint that is not an http or https URL with a host.
func checkEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("tracing: OTLP endpoint %q: want a URL such as https://collector:4317 (http:// for plain text)", endpoint)
	}
	return nil
}

// ServerHandler is the gRPC stats handler that traces a server's calls, or nil without tp.
func ServerHandler(tp trace.TracerProvider) stats.Handler {
	if tp == nil {
		return nil
	}
	return otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(Propagator))
}

// ClientHandler is the gRPC stats handler that traces a client's calls and sends their trace
// context along, or nil without tp.
func ClientHandler(tp trace.TracerProvider) stats.Handler {
	if tp == nil {
		return nil
	}
	return otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(Propagator))
}

// Tracer is Concord's tracer from tp, or nil without tp.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(ScopeName)
}

// entryPrefix marks a raft entry's extensions that carry a trace context.
const entryPrefix = "traceparent="

// EntryExtensions returns the raft entry extensions that carry ctx's trace to the nodes that
// apply the entry: nil unless ctx's span is sampled, so that unsampled writes store nothing.
func EntryExtensions(ctx context.Context) []byte {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return nil
	}
	carrier := propagation.MapCarrier{}
	Propagator.Inject(ctx, carrier)
	tp := carrier.Get("traceparent")
	if tp == "" {
		return nil
	}
	return []byte(entryPrefix + tp)
}

// FromEntry returns ctx with the remote span context a raft entry's extensions carry, and
// whether they carried one.
func FromEntry(ctx context.Context, ext []byte) (context.Context, bool) {
	s, ok := strings.CutPrefix(string(ext), entryPrefix)
	if !ok {
		return ctx, false
	}
	ctx = Propagator.Extract(ctx, propagation.MapCarrier{"traceparent": s})
	return ctx, trace.SpanContextFromContext(ctx).IsValid()
}
