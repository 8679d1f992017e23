package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/internal/pki"
	"concord/server/servertest"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// TestFailedCallsAreLoggedWithThePartner: a call refused for its caller's role (before its body is
// read) and one the handler refused are each logged, on both ports, with the partner that made
// it, the method and the code, in the log and in the audit stream.
func TestFailedCallsAreLoggedWithThePartner(t *testing.T) {
	t.Parallel()
	var logs, audit logBuffer
	n := servertest.Start(t, servertest.Options{Logger: logs.logger(), Audit: slog.New(slog.NewJSONHandler(&audit, nil))})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := n.Client(t, "fr-pharos").SignNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	grpcNotices := n.Client(t, "videoshare").Notices
	connectNotices := concordv1connect.NewNoticeServiceClient(connectClient(t, n, "videoshare"))
	unknown := &concordv1.GetNoticeRequest{NoticeId: client.NewID("fr-pharos")}
	for _, tc := range []struct {
		name, protocol, method string
		code                   codes.Code
		call                   func() error
	}{
		{"role/grpc", "grpc", "SubmitNotice", codes.PermissionDenied, func() error {
			_, err := grpcNotices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
			return err
		}},
		{"role/connect", "connect", "SubmitNotice", codes.PermissionDenied, func() error {
			_, err := connectNotices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
			return err
		}},
		{"handler/grpc", "grpc", "GetNotice", codes.NotFound, func() error { _, err := grpcNotices.GetNotice(ctx, unknown); return err }},
		{"handler/connect", "connect", "GetNotice", codes.NotFound, func() error { _, err := connectNotices.GetNotice(ctx, unknown); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := codeOf(tc.call()); got != tc.code {
				t.Fatalf("got %v, want %v", got, tc.code)
			}
			method := "/concord.v1.NoticeService/" + tc.method
			logLine(t, &logs, "refused call", "protocol="+tc.protocol, "method="+method, "partner=videoshare", "code="+tc.code.String())
			found := false
			for line := range strings.SplitSeq(audit.String(), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) != nil {
					continue
				}
				found = found || (m["msg"] == "refused call" && m["protocol"] == tc.protocol && m["method"] == method &&
					m["partner"] == "videoshare" && m["code"] == tc.code.String())
			}
			if !found {
				t.Errorf("the audit stream has no line of the refusal:\n%s", audit.String())
			}
		})
	}
}

// secrets are servertest.Secrets, with signatures and a scan of a whole text.
type secrets struct{ servertest.Secrets }

func (s secrets) addEnvelope(what string, env *concordv1.Envelope) {
	for _, sig := range env.GetSignatures() {
		s.Add(what+" signature", sig.GetSig())
	}
}

// scan fails the test for every secret text holds.
func (s secrets) scan(t *testing.T, where, text string) {
	t.Helper()
	if strings.TrimSpace(text) == "" {
		t.Errorf("%s: empty: nothing was scanned", where)
	}
	for _, f := range s.Find(text) {
		t.Errorf("%s shows %s", where, f)
	}
}

// TestLogsHoldNoSecret runs writes, reads and refusals on both ports, and the log's plain HTTP
// read, with the node's log at debug level, its audit stream, the client's log and every span
// captured, and finds in none of them a private key, a signature or a page token.
func TestLogsHoldNoSecret(t *testing.T) {
	t.Parallel()
	var logs, audit, clientLogs logBuffer
	rec := newSpanRecorder()
	n := servertest.Start(t, servertest.Options{Logger: logs.logger(), Audit: slog.New(slog.NewJSONHandler(&audit, nil)),
		TracerProvider: rec.provider(t, "node")})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	secret := secrets{servertest.Secrets{}}
	if err := secret.AddPKI(n.PKI, []string{"fr-pharos", "de-bka", "videoshare", "hub-ops"}); err != nil {
		t.Fatal(err)
	}

	dial := func(partner string) *client.Client {
		c, err := client.Dial(client.Config{Addr: n.GRPCAddr(), TLS: n.PartnerTLS(partner), SigningKeyFile: n.PKI.SigningKey(partner),
			LogKeyFile: n.PKI.LogPub(), Retries: -1, Logger: clientLogs.logger(), TracerProvider: rec.provider(t, "client "+partner)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	fr, platform, admin := dial("fr-pharos"), dial("videoshare"), dial("hub-ops")
	sign := func(n *concordv1.Notice) *concordv1.Envelope {
		env, err := fr.SignNotice(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		secret.addEnvelope("a notice's", env)
		return env
	}
	tampered := func(env *concordv1.Envelope) *concordv1.Envelope {
		bad := proto.Clone(env).(*concordv1.Envelope)
		bad.Signatures[0].Sig[0] ^= 1
		secret.addEnvelope("a tampered", bad)
		return bad
	}
	expect := func(what string, err error, code codes.Code) {
		t.Helper()
		if got := codeOf(err); got != code {
			t.Fatalf("%s: %v, want %v", what, err, code)
		}
	}
	// tokens collects the page tokens of a listing, page by page, over a port.
	tokens := func(list func(token string) (*concordv1.ListNoticesResponse, error)) {
		token := ""
		for range 3 {
			resp, err := list(token)
			expect("ListNotices", err, codes.OK)
			if token = resp.GetNextPageToken(); token == "" {
				return
			}
			secret.Secrets[token] = "a page token"
		}
	}

	// The gRPC port.
	content := "no secret in the logs"
	first := sign(glorificationNotice(content))
	_, err := fr.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: first})
	expect("submit", err, codes.OK)
	second := glorificationNotice()
	second.NoticeId = client.NewID("fr-pharos")
	secondEnv := sign(second)
	_, err = fr.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: tampered(secondEnv)})
	expect("tampered signature", err, codes.PermissionDenied)
	_, err = fr.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: secondEnv})
	expect("second submit", err, codes.OK)
	other := glorificationNotice("other content")
	other.NoticeId = second.NoticeId
	_, err = fr.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: sign(other)})
	expect("the same id with other content", err, codes.AlreadyExists)
	_, err = platform.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: secondEnv})
	expect("a platform's submit", err, codes.PermissionDenied)
	_, err = platform.Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: second.NoticeId, View: concordv1.NoticeView_NOTICE_VIEW_FULL})
	expect("get", err, codes.OK)
	tokens(func(token string) (*concordv1.ListNoticesResponse, error) {
		return platform.Notices.ListNotices(ctx, &concordv1.ListNoticesRequest{PageSize: 1, PageToken: token, View: concordv1.NoticeView_NOTICE_VIEW_FULL})
	})
	_, err = platform.Notices.ListNotices(ctx, &concordv1.ListNoticesRequest{PageToken: "bm90IGEgdG9rZW4gb2YgdGhpcyBodWI"})
	expect("a forged page token", err, codes.InvalidArgument)
	_, err = platform.Matches.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{sha256Hash(content)}})
	expect("match", err, codes.OK)
	key, err := pki.LoadSigningKey(n.PKI.SigningKey("hub-ops"))
	if err != nil {
		t.Fatal(err)
	}
	change := signedBy(t, key, &concordv1.RegistryChange{Author: "hub-ops", Change: &concordv1.RegistryChange_UpsertPartner{UpsertPartner: &concordv1.Partner{
		Id: "videoshare", DisplayName: "VideoShare (renamed)", Roles: []concordv1.Role{concordv1.Role_ROLE_OPERATOR}}}})
	secret.addEnvelope("a registry change's", change)
	_, err = admin.Registry.UpdateRegistry(ctx, &concordv1.UpdateRegistryRequest{Envelope: change})
	expect("registry change", err, codes.OK)

	// The HTTPS port.
	connectNotices := concordv1connect.NewNoticeServiceClient(connectClient(t, n, "fr-pharos"))
	third := sign(glorificationNotice())
	_, err = connectNotices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: tampered(third)})
	expect("tampered signature over Connect", err, codes.PermissionDenied)
	_, err = connectNotices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: third})
	expect("submit over Connect", err, codes.OK)
	platformConnect := concordv1connect.NewNoticeServiceClient(connectClient(t, n, "videoshare"))
	_, err = platformConnect.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: third})
	expect("a platform's submit over Connect", err, codes.PermissionDenied)
	_, err = platformConnect.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: second.NoticeId, View: concordv1.NoticeView_NOTICE_VIEW_FULL})
	expect("get over Connect", err, codes.OK)
	tokens(func(token string) (*concordv1.ListNoticesResponse, error) {
		return platformConnect.ListNotices(ctx, &concordv1.ListNoticesRequest{PageSize: 1, PageToken: token})
	})
	hc := httpClient(t, n.PartnerTLS("fr-pharos"))
	resp, err := hc.Post("https://"+n.HTTPAddr()+"/concord.v1.NoticeService/SubmitNotice", "application/proto", bytes.NewReader([]byte{0x0a, 0x7f, 0x01, 0x02}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, path := range []string{"/log/checkpoint", "/log/tile/0/000"} {
		resp, err := hc.Get("https://" + n.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= http.StatusInternalServerError {
			t.Fatalf("GET %s: HTTP %d", path, resp.StatusCode)
		}
	}

	// What was logged is what was called: the scan looks at real lines.
	logLine(t, &logs, "finished call", "protocol=connect", "method=/concord.v1.NoticeService/SubmitNotice", "partner=fr-pharos", "ids.notice_id=")
	logLine(t, &logs, "refused call", "protocol=grpc", "code=InvalidArgument", "partner=videoshare")
	logLine(t, &logs, "refused call", "protocol=connect", "code=InvalidArgument", "partner=fr-pharos")
	if !strings.Contains(audit.String(), `"msg":"accepted write"`) || !strings.Contains(audit.String(), `"msg":"refused call"`) {
		t.Fatalf("the audit stream lacks the writes or the refusals:\n%s", audit.String())
	}
	if len(secret.Secrets) < 20 {
		t.Fatalf("only %d secrets to look for", len(secret.Secrets))
	}
	// The scan finds a secret where there is one.
	for enc := range secret.Secrets {
		if len(secret.Find("a line with "+enc)) == 0 {
			t.Fatalf("the scan does not find %q planted in a line", enc)
		}
	}

	secret.scan(t, "the node's log", logs.String())
	secret.scan(t, "the audit stream", audit.String())
	secret.scan(t, "the client's log", clientLogs.String())
	secret.scan(t, "the spans", rec.dump())
}

// dump is every span every process exported, as text: names, attributes, events and statuses.
func (r *spanRecorder) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for who, exp := range r.exporters {
		for _, s := range exp.GetSpans() {
			fmt.Fprintf(&b, "%s %s %v %v %v\n", who, s.Name, s.Attributes, s.Events, s.Status)
		}
	}
	return b.String()
}
