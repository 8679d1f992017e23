package tracing

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestEntryExtensionsCarrySampledTracesOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		sampler sdktrace.Sampler
		carried bool
	}{
		{"sampled", sdktrace.AlwaysSample(), true},
		{"not sampled", sdktrace.NeverSample(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(tc.sampler))
			ctx, span := tp.Tracer("test").Start(context.Background(), "write")
			defer span.End()
			ext := EntryExtensions(ctx)
			if (ext != nil) != tc.carried {
				t.Fatalf("extensions %q, want carried = %v", ext, tc.carried)
			}
			got, ok := FromEntry(context.Background(), ext)
			if ok != tc.carried {
				t.Fatalf("FromEntry found a trace: %v, want %v", ok, tc.carried)
			}
			if !tc.carried {
				return
			}
			sc := trace.SpanContextFromContext(got)
			if sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() || !sc.IsSampled() || !sc.IsRemote() {
				t.Errorf("the entry carries %v, want the sampled remote parent %v", sc, span.SpanContext())
			}
		})
	}
	if _, ok := FromEntry(context.Background(), nil); ok {
		t.Error("no extensions: a trace found")
	}
	if _, ok := FromEntry(context.Background(), []byte("traceparent=garbage")); ok {
		t.Error("a malformed traceparent: a trace found")
	}
}

func TestStart(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		t.Setenv(k, "")
	}
	ctx := context.Background()
	tp, err := Start(ctx, Config{})
	if err != nil || tp != nil {
		t.Fatalf("no endpoint: %v, %v; want tracing off", tp, err)
	}
	for _, tc := range []struct {
		cfg     Config
		wantErr string
	}{
		{Config{Endpoint: "http://127.0.0.1:4317"}, ""},
		{Config{Endpoint: "https://127.0.0.1:4318", Protocol: "http/protobuf", SampleRatio: 0.5}, ""},
		{Config{Endpoint: "127.0.0.1:4317"}, "want a URL"},
		{Config{Endpoint: "http://127.0.0.1:4317", Protocol: "thrift"}, "want grpc or http/protobuf"},
		{Config{Endpoint: "http://127.0.0.1:4317", SampleRatio: 2}, "want 0 to 1"},
	} {
		tp, err := Start(ctx, tc.cfg)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%+v: error %v, want one saying %q", tc.cfg, err, tc.wantErr)
			}
			continue
		}
		if err != nil || tp == nil {
			t.Errorf("%+v: %v, %v; want a tracer provider", tc.cfg, tp, err)
			continue
		}
		_ = tp.Shutdown(ctx)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
	tp, err = Start(ctx, Config{})
	if err != nil || tp == nil {
		t.Fatalf("endpoint from the environment: %v, %v; want a tracer provider", tp, err)
	}
	_ = tp.Shutdown(ctx)
}

func TestSampler(t *testing.T) {
	t.Parallel()
	if got := Sampler(0).Description(); !strings.Contains(got, "TraceIDRatioBased{0.01}") || !strings.HasPrefix(got, "ParentBased") {
		t.Errorf("default sampler %s, want parent-based at 1 %%", got)
	}
	if got := Sampler(-1).Description(); !strings.Contains(got, "TraceIDRatioBased{0}") {
		t.Errorf("negative ratio: %s, want no new trace sampled", got)
	}
}
