package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/server/servertest"
	"concord/server/tracing"

	"connectrpc.com/connect/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// spanRecorder is one tracer provider per process of a test (each node, the client), each with
// its own in-memory exporter, as separate processes would export to one collector.
type spanRecorder struct {
	mu        sync.Mutex
	exporters map[string]*tracetest.InMemoryExporter
	// exported is closed, and replaced, each time a span is exported: the signal waiters wait on.
	exported chan struct{}
}

func newSpanRecorder() *spanRecorder {
	return &spanRecorder{exporters: map[string]*tracetest.InMemoryExporter{}, exported: make(chan struct{})}
}

// signalling exports to an in-memory exporter, then tells the recorder's waiters.
type signalling struct {
	*tracetest.InMemoryExporter
	r *spanRecorder
}

func (e signalling) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.InMemoryExporter.ExportSpans(ctx, spans)
	e.r.mu.Lock()
	close(e.r.exported)
	e.r.exported = make(chan struct{})
	e.r.mu.Unlock()
	return err
}

// await returns who's spans of trace id once done says they are complete, or when a generous
// minute has passed (the caller then reports what it found): each check follows an export.
func (r *spanRecorder) await(who string, id trace.TraceID, done func(tracetest.SpanStubs) bool) tracetest.SpanStubs {
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		next := r.exported
		r.mu.Unlock()
		spans := r.spans(who, id)
		if done(spans) {
			return spans
		}
		select {
		case <-next:
		case <-deadline.C:
			return spans
		}
	}
}

// named are the spans of spans with that name (and kind, unless kind is unspecified).
func named(spans tracetest.SpanStubs, name string, kind trace.SpanKind) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.Name == name && (kind == trace.SpanKindUnspecified || s.SpanKind == kind) {
			out = append(out, s)
		}
	}
	return out
}

// provider returns the tracer provider of the process named who, sampling every trace it starts
// (and, parent-based, every trace it is called in).
func (r *spanRecorder) provider(t testing.TB, who string) trace.TracerProvider {
	exp := tracetest.NewInMemoryExporter()
	r.mu.Lock()
	r.exporters[who] = exp
	r.mu.Unlock()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(signalling{exp, r}), sdktrace.WithSampler(tracing.Sampler(1)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.instance.id", who))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// spans are the spans who exported in trace id.
func (r *spanRecorder) spans(who string, id trace.TraceID) tracetest.SpanStubs {
	r.mu.Lock()
	exp := r.exporters[who]
	r.mu.Unlock()
	var out tracetest.SpanStubs
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}

// findSpan returns the one span of trace id with that name and kind that who exported, failing
// the test otherwise. A server's span ends after its answer is sent: it waits for its export.
func (r *spanRecorder) findSpan(t *testing.T, who string, id trace.TraceID, name string, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	spans := r.await(who, id, func(spans tracetest.SpanStubs) bool { return len(named(spans, name, kind)) > 0 })
	found := named(spans, name, kind)
	if len(found) != 1 {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name+"/"+s.SpanKind.String())
		}
		t.Fatalf("%s: %d %s spans named %q in the trace, want 1; it has %v", who, len(found), kind, name, names)
	}
	return found[0]
}

func spanAttr(s tracetest.SpanStub, key attribute.Key) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// TestTraceFollowsForwardedWrite: a notice a client submits through a follower is one trace,
// from the client's call through the follower's server span, its forwarding to the leader, the
// leader's server span and raft apply, to the state machine's apply on every node.
func TestTraceFollowsForwardedWrite(t *testing.T) {
	t.Parallel()
	rec := newSpanRecorder()
	c := servertest.StartClusterWith(t, 3, servertest.Options{}, servertest.ClusterOptions{
		Tracing: func(id string) trace.TracerProvider { return rec.provider(t, id) }})
	leaderPos := c.Leader(t, 10*time.Second)
	followerPos := others(c, leaderPos)[0]
	leader, follower := servertest.NodeID(leaderPos), servertest.NodeID(followerPos)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("gRPC port", func(t *testing.T) {
		n := c.Nodes[followerPos]
		cl, err := client.Dial(client.Config{Addr: n.GRPCAddr(), TLS: n.PartnerTLS("fr-pharos"), SigningKeyFile: n.PKI.SigningKey("fr-pharos"),
			LogKeyFile: n.PKI.LogPub(), Retries: -1, TracerProvider: rec.provider(t, "client")})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := cl.SubmitNotice(ctx, glorificationNotice("traced through a follower")); err != nil {
			t.Fatal(err)
		}
		// The client's span is the root: its trace is the one to follow.
		var call tracetest.SpanStub
		for _, s := range rec.exporters["client"].GetSpans() {
			if s.Name == "concord.v1.NoticeService/SubmitNotice" {
				call = s
			}
		}
		if !call.SpanContext.IsValid() || call.SpanKind != trace.SpanKindClient || call.Parent.IsValid() {
			t.Fatalf("the client's SubmitNotice span: %+v, want a root client span", call)
		}
		id := call.SpanContext.TraceID()
		followerCall := rec.findSpan(t, follower, id, "concord.v1.NoticeService/SubmitNotice", trace.SpanKindServer)
		if followerCall.Parent.SpanID() != call.SpanContext.SpanID() {
			t.Errorf("the follower's server span is not the client span's child")
		}
		assertForwardedAndApplied(t, rec, c, id, followerCall, leader, follower)
	})

	t.Run("HTTPS port", func(t *testing.T) {
		// A Connect client that sends its own W3C trace context in the headers.
		tp := rec.provider(t, "connect client")
		callCtx, root := tp.Tracer("test").Start(ctx, "submit over Connect")
		defer root.End()
		callCtx, info := connect.NewClientContext(callCtx)
		carrier := propagation.MapCarrier{}
		tracing.Propagator.Inject(callCtx, carrier)
		for k, v := range carrier {
			info.RequestHeader().Set(k, v)
		}
		fr := c.Nodes[followerPos].Client(t, "fr-pharos")
		env, err := fr.SignNotice(ctx, glorificationNotice("traced over Connect"))
		if err != nil {
			t.Fatal(err)
		}
		notices := concordv1connect.NewNoticeServiceClient(connectClient(t, c.Nodes[followerPos], "fr-pharos"))
		if _, err := notices.SubmitNotice(callCtx, &concordv1.SubmitNoticeRequest{Envelope: env}); err != nil {
			t.Fatal(err)
		}
		id := root.SpanContext().TraceID()
		followerCall := rec.findSpan(t, follower, id, "concord.v1.NoticeService/SubmitNotice", trace.SpanKindServer)
		if followerCall.Parent.SpanID() != root.SpanContext().SpanID() {
			t.Errorf("the follower's server span is not the caller's span's child")
		}
		for key, want := range map[attribute.Key]string{"rpc.method": "concord.v1.NoticeService/SubmitNotice", "rpc.system.name": "connectrpc", "rpc.response.status_code": "OK"} {
			if got := spanAttr(followerCall, key); got != want {
				t.Errorf("the HTTPS port's span has %s = %q, want %q (as otelgrpc writes it)", key, got, want)
			}
		}
		assertForwardedAndApplied(t, rec, c, id, followerCall, leader, follower)
	})
}

// assertForwardedAndApplied checks the rest of a forwarded write's trace id, below the
// follower's server span: the follower's call to the leader's NodeService, the leader's span of
// it, the leader's raft apply, and the apply of the entry on every node.
func assertForwardedAndApplied(t *testing.T, rec *spanRecorder, c *servertest.Cluster, id trace.TraceID, followerCall tracetest.SpanStub, leader, follower string) {
	t.Helper()
	forward := rec.findSpan(t, follower, id, "concord.node.v1.NodeService/Apply", trace.SpanKindClient)
	if !descends(rec.spans(follower, id), forward, followerCall.SpanContext.SpanID()) {
		t.Errorf("the follower's forwarding span does not descend from its server span")
	}
	leaderCall := rec.findSpan(t, leader, id, "concord.node.v1.NodeService/Apply", trace.SpanKindServer)
	if leaderCall.Parent.SpanID() != forward.SpanContext.SpanID() {
		t.Errorf("the leader's NodeService/Apply span is not the follower's forwarding span's child")
	}
	apply := rec.findSpan(t, leader, id, "raft.apply", trace.SpanKindInternal)
	if apply.Parent.SpanID() != leaderCall.SpanContext.SpanID() {
		t.Errorf("the leader's raft.apply span is not its NodeService/Apply span's child")
	}
	index := spanAttr(apply, "raft.index")
	if index == "" || index == "0" {
		t.Errorf("raft.apply carries no raft index: %v", apply.Attributes)
	}
	// Every node applies the entry; the third may still be at it when the client has its answer.
	for i := range c.Nodes {
		who := servertest.NodeID(i)
		fsmApply := named(rec.await(who, id, func(spans tracetest.SpanStubs) bool {
			return len(named(spans, "fsm.apply", trace.SpanKindUnspecified)) > 0
		}), "fsm.apply", trace.SpanKindUnspecified)
		if len(fsmApply) != 1 {
			t.Errorf("%s: %d fsm.apply spans in the trace, want 1", who, len(fsmApply))
			continue
		}
		if fsmApply[0].Parent.SpanID() != apply.SpanContext.SpanID() || spanAttr(fsmApply[0], "raft.index") != index {
			t.Errorf("%s: fsm.apply (parent %v, index %s) is not the apply of raft.apply's entry (span %v, index %s)", who,
				fsmApply[0].Parent.SpanID(), spanAttr(fsmApply[0], "raft.index"), apply.SpanContext.SpanID(), index)
		}
		if got := spanAttr(fsmApply[0], "concord.command"); got != "SubmitNotice" {
			t.Errorf("%s: fsm.apply of a %q command, want SubmitNotice", who, got)
		}
	}
	if t.Failed() {
		for _, who := range []string{follower, leader} {
			for _, s := range rec.spans(who, id) {
				t.Logf("%s: %s %s span %v parent %v", who, s.SpanKind, s.Name, s.SpanContext.SpanID(), s.Parent.SpanID())
			}
		}
	}
}

// descends reports whether s is, through spans, a descendant of the span ancestor.
func descends(spans tracetest.SpanStubs, s tracetest.SpanStub, ancestor trace.SpanID) bool {
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, x := range spans {
		byID[x.SpanContext.SpanID()] = x
	}
	for range len(spans) + 1 {
		if !s.Parent.IsValid() {
			return false
		}
		if s.Parent.SpanID() == ancestor {
			return true
		}
		var ok bool
		if s, ok = byID[s.Parent.SpanID()]; !ok {
			return false
		}
	}
	return false
}
