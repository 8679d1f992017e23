package transport

import (
	"context"
	"errors"
	"strings"

	"concord/server/tracing"

	"connectrpc.com/connect/v2"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
)

// connectTracing gives each call of the HTTPS port the server span otelgrpc gives a call of the
// gRPC port: the same name (package.Service/Method), kind and attributes, a child of the W3C
// trace context the request's headers carry.
type connectTracing struct {
	tracer trace.Tracer
}

var _ connect.ServerInterceptor = connectTracing{}.intercept

func (t connectTracing) intercept(next connect.ServerFunc) connect.ServerFunc {
	return func(ctx context.Context, spec connect.Spec, stream connect.ServerStream) error {
		system := semconv.RPCSystemNameConnectrpc
		if info, ok := connect.CallInfoForServerContext(ctx); ok {
			ctx = tracing.Propagator.Extract(ctx, headerCarrier{info.RequestHeader()})
			if info.Protocol == "grpc" {
				system = semconv.RPCSystemNameGRPC
			}
		}
		name := strings.TrimPrefix(spec.Procedure, "/")
		ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.RPCMethod(name), system))
		err := next(ctx, spec, stream)
		if span.IsRecording() {
			code := codes.OK
			if err != nil {
				code = codes.Code(connect.CodeOf(err))
			}
			span.SetAttributes(statusCodeAttr(code))
			if serverFault(code) {
				span.SetStatus(otelcodes.Error, connectMessage(err))
			}
		}
		span.End()
		return err
	}
}

// statusCodeAttr is rpc.response.status_code as otelgrpc writes it: the code's canonical name.
func statusCodeAttr(code codes.Code) attribute.KeyValue {
	name := "CANCELLED"
	if code != codes.Canceled {
		name = strings.ToUpper(connect.Code(code).String())
	}
	if code == codes.OK {
		name = "OK"
	}
	return semconv.RPCResponseStatusCode(name)
}

// serverFault reports whether code marks a server span as failed, as otelgrpc decides.
func serverFault(code codes.Code) bool {
	switch code {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

func connectMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// headerCarrier reads a connect request's headers for the propagator.
type headerCarrier struct{ h *connect.Header }

func (c headerCarrier) Get(key string) string { return c.h.Get(key) }
func (c headerCarrier) Set(key, value string) { c.h.Set(key, value) }
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, c.h.Len())
	for k := range c.h.All() {
		keys = append(keys, k)
	}
	return keys
}
