package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/internal/identity"
	"concord/internal/identity/identitytest"
	"concord/internal/mtls"
	"concord/server/servertest"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connecthttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
)

// TestNonCanonicalIdentitiesAreRefusedOnEveryPort presents certificates of the node's own CA,
// so TLS verification passes, whose URI SANs break the rule of one canonical URI (an escaped
// id, an empty query or fragment, an upper-case scheme, a second URI SAN of any scheme, ...),
// each spelled as a partner and as a node. The first call on either API port is Unauthenticated,
// naming the broken rule, and the raft port refuses the handshake for both of its protocols.
// The canonical certificates are the controls: the partner is served, the node is
// authenticated (and denied the partner API) and accepted on the raft port.
func TestNonCanonicalIdentitiesAreRefusedOnEveryPort(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	c := servertest.StartCluster(t, 1, servertest.Options{Logger: logs.logger()})
	n := c.Nodes[0]
	pool, err := mtls.LoadCAPool(c.PKI.CACert())
	if err != nil {
		t.Fatal(err)
	}

	type expect struct {
		api     codes.Code // the first WhoAmI call on either API port
		refusal string     // in an Unauthenticated refusal's message
		raft    bool       // the raft port accepts the certificate
	}
	type presented struct {
		name string
		sans []identitytest.SAN
		expect
	}
	const partner, node = "hub-ops", "node-2"
	td := identity.DefaultTrustDomain
	cases := []presented{
		{"canonical partner", []identitytest.SAN{identitytest.URI(identity.URI(td, identity.KindPartner, partner))}, expect{api: codes.OK}},
		{"canonical node", []identitytest.SAN{identitytest.URI(identity.URI(td, identity.KindNode, node))}, expect{api: codes.PermissionDenied, raft: true}},
	}
	for _, k := range []struct {
		kind identity.Kind
		id   string
	}{{identity.KindPartner, partner}, {identity.KindNode, node}} {
		for _, form := range identitytest.NonCanonical {
			cases = append(cases, presented{string(k.kind) + "/" + form.Name, form.SANs(string(k.kind), k.id),
				expect{api: codes.Unauthenticated, refusal: form.Refusal}})
		}
	}

	for _, tc := range cases {
		cert := identitytest.Issue(t, c.PKI.CACert(), c.PKI.CAKey(), tc.sans...)
		conf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool}
		checkAPI := func(t *testing.T, who *concordv1.WhoAmIResponse, err error) {
			t.Helper()
			switch {
			case codeOf(err) != tc.api:
				t.Fatalf("first WhoAmI: %v, want %s", err, tc.api)
			case tc.api == codes.Unauthenticated && !strings.Contains(err.Error(), tc.refusal):
				t.Fatalf("first WhoAmI: %v, want the refusal to say %q", err, tc.refusal)
			case tc.api == codes.OK && who.GetPartner().GetId() != partner:
				t.Fatalf("WhoAmI answered %v, want partner %s", who.GetPartner(), partner)
			}
		}

		t.Run(tc.name+"/grpc port", func(t *testing.T) {
			conn, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(conf)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			who, err := concordv1.NewRegistryServiceClient(conn).WhoAmI(ctx, &concordv1.WhoAmIRequest{})
			checkAPI(t, who, err)
		})

		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: conf.Clone(), ForceAttemptHTTP2: true}, Timeout: 5 * time.Second}
		t.Run(tc.name+"/https port", func(t *testing.T) {
			rc := concordv1connect.NewRegistryServiceClient(connect.NewClient(connecthttp.NewTransport(hc, "https://"+n.HTTPAddr())))
			who, err := rc.WhoAmI(context.Background(), &concordv1.WhoAmIRequest{})
			checkAPI(t, who, err)
		})
		// The log's tiles are plain GET requests of the same port, authorized apart from Connect.
		t.Run(tc.name+"/https port, log checkpoint", func(t *testing.T) {
			resp, err := hc.Get("https://" + n.HTTPAddr() + "/log/checkpoint")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			want := map[codes.Code]int{codes.OK: http.StatusOK, codes.PermissionDenied: http.StatusForbidden, codes.Unauthenticated: http.StatusUnauthorized}[tc.api]
			if resp.StatusCode != want || !strings.Contains(string(body), tc.refusal) {
				t.Fatalf("GET /log/checkpoint: %s %q, want %d saying %q", resp.Status, body, want, tc.refusal)
			}
		})
		hc.CloseIdleConnections()

		for _, proto := range []string{"concord-raft/1", "h2"} {
			t.Run(tc.name+"/raft port, "+proto, func(t *testing.T) {
				wait := refusalWait
				if tc.raft {
					wait = acceptedWait
				}
				err := dialNodePort(t, n.RaftAddr(), c.PKI.CACert(), cert, proto, wait)
				switch {
				case tc.raft && err != nil:
					t.Fatalf("canonical node certificate refused: %v", err)
				case !tc.raft && (err == nil || !strings.Contains(err.Error(), "bad certificate")):
					t.Fatalf("got %v, want the handshake refused (bad certificate)", err)
				}
			})
		}
	}

	// The log shows what a refused certificate wrote, not crypto/x509's canonical reading of it.
	for _, raw := range []string{`cert_uri=spiffe://concord.example/partner/%68%75%62-ops`, `cert_uri=SPIFFE://concord.example/partner/hub-ops`} {
		if !strings.Contains(logs.String(), raw) {
			t.Errorf("the log does not show %s", raw)
		}
	}
}
