package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
	"concord/server/authz"
	"concord/server/servertest"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"connectrpc.com/connect/v2/connectproto"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// rolePartners holds one example partner per role.
var rolePartners = map[concordv1.Role]string{
	concordv1.Role_ROLE_AUTHORITY: "fr-pharos",
	concordv1.Role_ROLE_OPERATOR:  "videoshare",
	concordv1.Role_ROLE_AUDITOR:   "observatory",
	concordv1.Role_ROLE_ADMIN:     "hub-ops",
}

func TestHandshakeRefusesMissingOrForeignCertificate(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	n := servertest.Start(t, servertest.Options{Logger: logs.logger()})

	foreignDir := t.TempDir()
	if _, err := pki.Init(pki.Options{Dir: foreignDir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: []string{"hub-ops"}}); err != nil {
		t.Fatal(err)
	}
	foreign := pki.Layout{Dir: foreignDir}
	noCert := tlsConfigWithoutCert(t, n)
	foreignCert, err := tls.LoadX509KeyPair(foreign.PartnerCert("hub-ops"), foreign.PartnerKey("hub-ops"))
	if err != nil {
		t.Fatal(err)
	}
	otherCA := noCert.Clone()
	otherCA.Certificates = []tls.Certificate{foreignCert}

	cases := []struct {
		name string
		conf *tls.Config
		// alert is the TLS alert the server sends, as crypto/tls reports it to the client.
		alert string
	}{
		{"no certificate", noCert, "tls: certificate required"},
		{"certificate from another CA", otherCA, "tls: unknown certificate authority"},
	}
	for _, tc := range cases {
		// With TLS 1.3 the client sends its certificate last and learns of the refusal on its first
		// read: the server's alert is the proof that the handshake, not a handler, refused it.
		for port, addr := range map[string]string{"grpc": n.GRPCAddr(), "https": n.HTTPAddr()} {
			t.Run(tc.name+"/tls alert on the "+port+" port", func(t *testing.T) {
				conf := tc.conf.Clone()
				conf.NextProtos = []string{"h2"}
				conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
				if err == nil {
					defer conn.Close()
					conn.SetDeadline(time.Now().Add(5 * time.Second))
					_, err = conn.Read(make([]byte, 1))
				}
				if err == nil || !strings.Contains(err.Error(), tc.alert) {
					t.Fatalf("got %v, want the server's alert %q", err, tc.alert)
				}
			})
		}
		t.Run(tc.name+"/grpc-go client", func(t *testing.T) {
			conn, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(tc.conf)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = concordv1.NewRegistryServiceClient(conn).WhoAmI(ctx, &concordv1.WhoAmIRequest{})
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("got %v, want Unavailable: the connection is refused", err)
			}
		})
		t.Run(tc.name+"/connect-go client", func(t *testing.T) {
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc.conf, ForceAttemptHTTP2: true}, Timeout: 5 * time.Second}
			c := concordv1connect.NewRegistryServiceClient(connect.NewClient(connecthttp.NewTransport(hc, "https://"+n.HTTPAddr())))
			_, err := c.WhoAmI(context.Background(), &concordv1.WhoAmIRequest{})
			// The transport reports the closed connection as unavailable or, when the alert
			// arrives while the request is written, canceled; never a status from the server.
			if code := connect.CodeOf(err); err == nil || (code != connect.CodeUnavailable && code != connect.CodeCanceled) {
				t.Fatalf("got %v, want the connection refused (unavailable or canceled)", err)
			}
		})
	}
	// Neither reached a handler: no call was logged as finished.
	if strings.Contains(logs.String(), "finished call") {
		t.Fatalf("a refused connection reached the interceptors:\n%s", logs.String())
	}
}

func TestWhoAmIThroughEveryClient(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	const partner = "fr-pharos"
	check := func(t *testing.T, p *concordv1.Partner) {
		t.Helper()
		if p.GetId() != partner || len(p.GetRoles()) != 1 || p.GetRoles()[0] != concordv1.Role_ROLE_AUTHORITY || p.GetJurisdiction() != "FR" {
			t.Fatalf("WhoAmI = %v, want fr-pharos, AUTHORITY, FR", p)
		}
		if len(p.GetSigningKeys()) != 1 {
			t.Fatalf("WhoAmI returned %d signing keys, want 1", len(p.GetSigningKeys()))
		}
	}
	t.Run("grpc-go client", func(t *testing.T) {
		resp, err := n.Client(t, partner).Registry.WhoAmI(context.Background(), &concordv1.WhoAmIRequest{})
		if err != nil {
			t.Fatal(err)
		}
		check(t, resp.GetPartner())
		if resp.GetCertificateUri() != "spiffe://concord.example/partner/fr-pharos" {
			t.Errorf("certificate_uri = %q", resp.GetCertificateUri())
		}
	})
	for name, opts := range map[string][]connecthttp.Option{"connect-go client (Connect)": nil, "connect-go client (gRPC)": {connecthttp.WithGRPC()}, "connect-go client (gRPC-Web)": {connecthttp.WithGRPCWeb()}} {
		t.Run(name, func(t *testing.T) {
			c := concordv1connect.NewRegistryServiceClient(connectClient(t, n, partner, opts...))
			resp, err := c.WhoAmI(context.Background(), &concordv1.WhoAmIRequest{})
			if err != nil {
				t.Fatal(err)
			}
			check(t, resp.GetPartner())
		})
	}
	files := n.PartnerTLS(partner)
	for port, addr := range map[string]string{"gRPC port": n.GRPCAddr(), "HTTPS port": n.HTTPAddr()} {
		t.Run("grpcurl on the "+port, func(t *testing.T) {
			out, err := run(t, tool(t, "grpcurl"), "-cacert", files.CA, "-cert", files.Cert, "-key", files.Key,
				addr, "concord.v1.RegistryService/WhoAmI")
			if err != nil {
				t.Fatal(err)
			}
			var resp struct {
				Partner struct {
					ID string `json:"id"`
				}
			}
			if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Partner.ID != partner {
				t.Fatalf("grpcurl printed %q (%v)", out, err)
			}
		})
	}
	t.Run("curl (Connect JSON)", func(t *testing.T) {
		out, err := run(t, "curl", "-sS", "--fail-with-body", "--cacert", files.CA, "--cert", files.Cert, "--key", files.Key,
			"-H", "Content-Type: application/json", "-d", "{}", "https://"+n.HTTPAddr()+"/concord.v1.RegistryService/WhoAmI")
		if err != nil {
			t.Fatal(err)
		}
		var resp struct {
			Partner struct {
				ID    string   `json:"id"`
				Roles []string `json:"roles"`
			}
		}
		if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Partner.ID != partner || len(resp.Partner.Roles) != 1 || resp.Partner.Roles[0] != "ROLE_AUTHORITY" {
			t.Fatalf("curl printed %q (%v)", out, err)
		}
	})
}

// concordMethods are every RPC of every Concord service compiled into the binary, so a new RPC
// is covered by the role matrix without editing the test.
func concordMethods(t *testing.T) []protoreflect.MethodDescriptor {
	t.Helper()
	var methods []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("concord.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			svc := fd.Services().Get(i)
			for j := range svc.Methods().Len() {
				methods = append(methods, svc.Methods().Get(j))
			}
		}
		return true
	})
	if len(methods) < 4 {
		t.Fatalf("found %d Concord RPCs, want at least RegistryService's 4", len(methods))
	}
	return methods
}

func procedure(md protoreflect.MethodDescriptor) string {
	return "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}

// callGRPC calls md on the gRPC port with an empty request and returns the status code.
func callGRPC(ctx context.Context, conn *grpc.ClientConn, md protoreflect.MethodDescriptor) error {
	req, resp := dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output())
	if !md.IsStreamingClient() && !md.IsStreamingServer() {
		return conn.Invoke(ctx, procedure(md), req, resp)
	}
	desc := &grpc.StreamDesc{ServerStreams: md.IsStreamingServer(), ClientStreams: md.IsStreamingClient()}
	stream, err := conn.NewStream(ctx, desc, procedure(md))
	if err != nil {
		return err
	}
	if err := stream.SendMsg(req); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return stream.RecvMsg(resp)
	}
	_ = stream.CloseSend()
	return stream.RecvMsg(resp)
}

// callConnect calls md on the HTTPS port with an empty request.
func callConnect(ctx context.Context, t *testing.T, c *connect.Client, md protoreflect.MethodDescriptor) error {
	req, resp := dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output())
	spec := connect.Spec{Procedure: procedure(md), Schema: md}
	switch {
	case !md.IsStreamingClient() && !md.IsStreamingServer():
		spec.StreamType = connect.StreamTypeUnary
		return c.CallUnary(ctx, spec, req, resp)
	case md.IsStreamingServer() && !md.IsStreamingClient():
		spec.StreamType = connect.StreamTypeServer
		stream, err := c.CallServerStream(ctx, spec, req)
		if err != nil {
			return err
		}
		defer stream.Close()
		return stream.Receive(resp)
	case md.IsStreamingServer() && md.IsStreamingClient():
		spec.StreamType = connect.StreamTypeBidi
		stream, err := c.CallClientStream(ctx, spec)
		if err != nil {
			return err
		}
		defer stream.Close()
		if err := stream.Send(req); err != nil {
			return stream.Receive(resp)
		}
		_ = stream.CloseSend()
		return stream.Receive(resp)
	default:
		t.Fatalf("%s: add a case for client-streaming RPCs to the role matrix", md.FullName())
		return nil
	}
}

func codeOf(err error) codes.Code {
	if ce := new(connect.Error); errors.As(err, &ce) {
		return codes.Code(ce.Code())
	}
	return status.Code(err)
}

func TestEveryRPCForEveryRole(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	// A partner whose certificate the CA issued but whom the registry does not know.
	if _, err := pki.Init(pki.Options{Dir: n.PKI.Dir, TrustDomain: identity.DefaultTrustDomain, PartnerIDs: []string{"stranger"}}); err != nil {
		t.Fatal(err)
	}
	type caller struct {
		partner string
		role    concordv1.Role // ROLE_UNSPECIFIED: not registered
	}
	callers := []caller{{"stranger", concordv1.Role_ROLE_UNSPECIFIED}}
	for role, partner := range rolePartners {
		callers = append(callers, caller{partner, role})
	}
	grpcConns := map[string]*grpc.ClientConn{}
	connectClients := map[string]*connect.Client{}
	for _, c := range callers {
		conf, err := mtls.ClientConfig(n.PartnerTLS(c.partner))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		grpcConns[c.partner] = conn
		connectClients[c.partner] = connectClient(t, n, c.partner)
	}
	for _, md := range concordMethods(t) {
		allowed, ok := authz.AllowedRoles(md)
		if !ok || len(allowed) == 0 {
			t.Errorf("%s declares no concord.v1.access roles", md.FullName())
			continue
		}
		for _, c := range callers {
			want := c.role != concordv1.Role_ROLE_UNSPECIFIED && containsRole(allowed, c.role)
			for port, call := range map[string]func(context.Context) error{
				"grpc":  func(ctx context.Context) error { return callGRPC(ctx, grpcConns[c.partner], md) },
				"https": func(ctx context.Context) error { return callConnect(ctx, t, connectClients[c.partner], md) },
			} {
				t.Run(string(md.Name())+"/"+c.partner+"/"+port, func(t *testing.T) {
					t.Parallel() // a permitted stream waits for its deadline: not one after the other
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					defer cancel()
					err := call(ctx)
					got := codeOf(err)
					switch {
					case want && (got == codes.PermissionDenied || got == codes.Unauthenticated):
						t.Fatalf("%s is allowed for %s but got %v", md.Name(), c.partner, err)
					case !want && got != codes.PermissionDenied:
						t.Fatalf("%s is not allowed for %s but got %v, want PermissionDenied", md.Name(), c.partner, err)
					case !want && c.role != concordv1.Role_ROLE_UNSPECIFIED && !strings.Contains(err.Error(), "requires role"):
						t.Fatalf("PermissionDenied does not say which role is required: %v", err)
					case !want && c.role == concordv1.Role_ROLE_UNSPECIFIED && !strings.Contains(err.Error(), "not in the registry"):
						t.Fatalf("PermissionDenied does not say the partner is unknown: %v", err)
					}
				})
			}
		}
	}
}

func containsRole(roles []concordv1.Role, r concordv1.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

func TestProtovalidateViolationNamesTheField(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	req := &concordv1.ListPartnersRequest{PageSize: 5000}
	_, grpcErr := n.Client(t, "observatory").Registry.ListPartners(context.Background(), req)
	_, connectErr := concordv1connect.NewRegistryServiceClient(connectClient(t, n, "observatory")).ListPartners(context.Background(), req)
	_, updateErr := n.Client(t, "hub-ops").Registry.UpdateRegistry(context.Background(), &concordv1.UpdateRegistryRequest{
		Envelope: &concordv1.Envelope{Payload: []byte{1}, PayloadType: "text/plain", Signatures: []*concordv1.Signature{{Keyid: "k", Sig: make([]byte, 64)}}},
	})
	for _, tc := range []struct {
		name  string
		err   error
		field string
	}{
		{"grpc", grpcErr, "page_size"},
		{"https", connectErr, "page_size"},
		{"nested field", updateErr, "envelope.payload_type"},
	} {
		if codeOf(tc.err) != codes.InvalidArgument || !strings.Contains(tc.err.Error(), tc.field) {
			t.Errorf("%s: got %v, want InvalidArgument naming %s", tc.name, tc.err, tc.field)
		}
	}
}

func TestHealthOnBothPorts(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	resp, err := healthpb.NewHealthClient(n.Client(t, "videoshare").Conn()).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC port health: %v, %v", resp, err)
	}
	var hresp healthpb.HealthCheckResponse
	md := healthpb.File_grpc_health_v1_health_proto.Services().ByName("Health").Methods().ByName("Check")
	err = connectClient(t, n, "videoshare", connecthttp.WithGRPC()).CallUnary(context.Background(),
		connect.Spec{StreamType: connect.StreamTypeUnary, Procedure: procedure(md), Schema: md}, &healthpb.HealthCheckRequest{}, &hresp)
	if err != nil || hresp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("HTTPS port health: %v, %v", &hresp, err)
	}
}

// One bucket per partner, shared by both ports; other partners are not slowed down.
func TestRateLimitPerPartnerOnBothPorts(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{RateLimit: 0.001, RateBurst: 2})
	ctx := context.Background()
	grpcCall := func(partner string) error {
		_, err := n.Client(t, partner).Registry.WhoAmI(ctx, &concordv1.WhoAmIRequest{})
		return err
	}
	connectCall := func(partner string) error {
		_, err := concordv1connect.NewRegistryServiceClient(connectClient(t, n, partner)).WhoAmI(ctx, &concordv1.WhoAmIRequest{})
		return err
	}
	for i, err := range []error{grpcCall("videoshare"), connectCall("videoshare")} {
		if err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
	}
	for port, call := range map[string]func(string) error{"grpc": grpcCall, "https": connectCall} {
		err := call("videoshare")
		if codeOf(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "rate limit") {
			t.Fatalf("%s port, over the burst: got %v, want ResourceExhausted saying so", port, err)
		}
		if retryAfter(err) <= 0 {
			t.Fatalf("%s port: the refusal carries no RetryInfo: %v", port, err)
		}
	}
	if err := grpcCall("socialnet"); err != nil {
		t.Fatalf("another partner was slowed down: %v", err)
	}
}

// retryAfter is the delay the RetryInfo detail of a refusal asks for, from either port's client.
func retryAfter(err error) time.Duration {
	var details []any
	if st, ok := status.FromError(err); ok {
		details = st.Details()
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		for _, d := range ce.Details() {
			if v, err := connectproto.UnmarshalErrorDetail(d); err == nil {
				details = append(details, v)
			}
		}
	}
	for _, d := range details {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}
