package client

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/mtls"
	"concord/internal/pki"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// flaky answers Unavailable to its first failures calls of each method, then succeeds; WhoAmI
// blocks until the caller gives up when block is set.
type flaky struct {
	concordv1.UnimplementedRegistryServiceServer
	healthpb.UnimplementedHealthServer
	failures      int32
	whoami, check atomic.Int32
	block         bool
}

func (f *flaky) WhoAmI(ctx context.Context, _ *concordv1.WhoAmIRequest) (*concordv1.WhoAmIResponse, error) {
	if f.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if f.whoami.Add(1) <= f.failures {
		return nil, status.Error(codes.Unavailable, "leader election in progress")
	}
	return &concordv1.WhoAmIResponse{Partner: &concordv1.Partner{Id: "hub-ops"}}, nil
}

func (f *flaky) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if f.check.Add(1) <= f.failures {
		return nil, status.Error(codes.Unavailable, "leader election in progress")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// serve runs impl on a loopback TLS listener with the dev PKI in dir and returns its address.
func serve(t *testing.T, l pki.Layout, impl *flaky) string {
	t.Helper()
	conf, err := mtls.ServerConfig(mtls.Files{CA: l.CACert(), Cert: l.ServerCert(), Key: l.ServerKey()})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(conf)))
	concordv1.RegisterRegistryServiceServer(srv, impl)
	healthpb.RegisterHealthServer(srv, impl)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func dial(t *testing.T, l pki.Layout, addr string, cfg Config) *Client {
	t.Helper()
	cfg.Addr = addr
	cfg.TLS = mtls.Files{CA: l.CACert(), Cert: l.PartnerCert("hub-ops"), Key: l.PartnerKey("hub-ops")}
	c, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testPKI(t *testing.T) pki.Layout {
	t.Helper()
	l := pki.Layout{Dir: t.TempDir()}
	if _, err := pki.Init(pki.Options{Dir: l.Dir, PartnerIDs: []string{"hub-ops"}}); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRetriesUnavailableOnlyOnIdempotentCalls(t *testing.T) {
	l := testPKI(t)
	impl := &flaky{failures: 2}
	c := dial(t, l, serve(t, l, impl), Config{})
	ctx := context.Background()

	// WhoAmI is NO_SIDE_EFFECTS in its proto: two Unavailable answers are retried.
	resp, err := c.Registry.WhoAmI(ctx, &concordv1.WhoAmIRequest{})
	if err != nil || resp.GetPartner().GetId() != "hub-ops" {
		t.Fatalf("WhoAmI = %v, %v; want success after retries", resp, err)
	}
	if got := impl.whoami.Load(); got != 3 {
		t.Fatalf("WhoAmI reached the server %d times, want 3", got)
	}

	// Health.Check declares no idempotency level: it is not retried.
	_, err = healthpb.NewHealthClient(c.Conn()).Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Check = %v, want Unavailable (not retried)", err)
	}
	if got := impl.check.Load(); got != 1 {
		t.Fatalf("Check reached the server %d times, want 1", got)
	}
}

func TestRetriesCanBeTurnedOff(t *testing.T) {
	l := testPKI(t)
	impl := &flaky{failures: 1}
	c := dial(t, l, serve(t, l, impl), Config{Retries: -1})
	if _, err := c.Registry.WhoAmI(context.Background(), &concordv1.WhoAmIRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("WhoAmI = %v, want Unavailable", err)
	}
	if got := impl.whoami.Load(); got != 1 {
		t.Fatalf("WhoAmI reached the server %d times, want 1", got)
	}
}

func TestTimeoutBoundsACall(t *testing.T) {
	l := testPKI(t)
	c := dial(t, l, serve(t, l, &flaky{block: true}), Config{Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := c.Registry.WhoAmI(context.Background(), &concordv1.WhoAmIRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("WhoAmI = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the call took %s with a 200 ms timeout", took)
	}
}

func TestHandshakeFailureIsNotRetried(t *testing.T) {
	l := testPKI(t)
	impl := &flaky{}
	addr := serve(t, l, impl)
	other := testPKI(t) // a partner certificate from another CA
	c, err := Dial(Config{Addr: addr, Retries: 5,
		TLS: mtls.Files{CA: l.CACert(), Cert: other.PartnerCert("hub-ops"), Key: other.PartnerKey("hub-ops")}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Registry.WhoAmI(context.Background(), &concordv1.WhoAmIRequest{})
	// The refusal surfaces as a handshake failure naming the server's alert (never a bare
	// "broken pipe"), which retriable refuses to retry.
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "authentication handshake failed") ||
		!strings.Contains(err.Error(), "unknown certificate authority") || retriable(err) || impl.whoami.Load() != 0 {
		t.Fatalf("WhoAmI with a foreign certificate = %v (%d calls served)", err, impl.whoami.Load())
	}
}

func TestRetriable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.Unavailable, "leader election in progress"), true},
		{status.Error(codes.Unavailable, "connection error: desc = \"transport: authentication handshake failed: tls: unknown certificate authority\""), false},
		// A node that dies during the handshake is not a refusal: another node, or a later
		// attempt, can answer.
		{status.Error(codes.Unavailable, "connection error: desc = \"transport: authentication handshake failed: read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer\""), true},
		{status.Error(codes.Unavailable, "x509: certificate signed by unknown authority"), false},
		{status.Error(codes.Internal, "boom"), false},
		{status.Error(codes.ResourceExhausted, "rate limit"), false},
	} {
		if got := retriable(tc.err); got != tc.want {
			t.Errorf("retriable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestIdempotent(t *testing.T) {
	for method, want := range map[string]bool{
		concordv1.RegistryService_WhoAmI_FullMethodName:         true,
		concordv1.RegistryService_ListPartners_FullMethodName:   true,
		concordv1.RegistryService_UpdateRegistry_FullMethodName: true, // re-sending an envelope is safe
		healthpb.Health_Check_FullMethodName:                    false,
		"/concord.v1.RegistryService/NoSuchMethod":              false,
	} {
		if got := Idempotent(method); got != want {
			t.Errorf("Idempotent(%s) = %v, want %v", method, got, want)
		}
	}
}
