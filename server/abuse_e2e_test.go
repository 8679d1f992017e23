package server_test

// The attack catalogue: what a partner with a valid certificate might try against the hub, each
// as a test against a real node's ports, so that every defence keeps holding.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"concord/client"
	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/internal/statementid"
	"concord/server/ratelimit"
	"concord/server/servertest"

	"connectrpc.com/connect/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// logSize is the size of the node's log, as its latest checkpoint states it.
func logSize(t *testing.T, c *client.Client) uint64 {
	t.Helper()
	resp, err := c.Log.GetCheckpoint(context.Background(), &concordv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetCheckpoint().GetSize()
}

// statementCase is one kind of signed statement: how a partner signs one (ids filled in by the
// client unless preset) and sends it.
type statementCase struct {
	kind   string
	signer string
	// sign signs a new statement of this kind, with id unless id is empty.
	sign func(t *testing.T, id string) (*concordv1.Envelope, proto.Message)
	// send sends an envelope of this kind as its signer.
	send func(env *concordv1.Envelope) error
	// payloadType is the envelope's payload type, for re-signing.
	payloadType string
}

// statementCases builds one case per statement kind on node n, about notice subject (issued by
// fr-pharos, public). Its signers (gb-ctiru, socialnet, hub-ops) are outside the sharing group
// of TestStatementIDsRevealNothing's hidden notices.
func statementCases(t *testing.T, n *servertest.Node, subject string) []statementCase {
	ctx := context.Background()
	gb, platform, admin := n.Client(t, "gb-ctiru"), n.Client(t, "socialnet"), n.Client(t, "hub-ops")
	must := func(env *concordv1.Envelope, err error) *concordv1.Envelope {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	return []statementCase{
		{kind: "notice", signer: "gb-ctiru", payloadType: dsse.PayloadTypeNotice,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				nt := glorificationNotice()
				nt.LegalBasis, nt.NoticeId = "gb.ta2006.s1", id
				return must(gb.SignNotice(ctx, nt)), nt
			},
			send: func(env *concordv1.Envelope) error {
				_, err := gb.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
				return err
			}},
		{kind: "endorsement", signer: "gb-ctiru", payloadType: dsse.PayloadTypeEndorsement,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				e := &concordv1.Endorsement{EndorsementId: id, NoticeId: subject, LegalBasis: "gb.ta2006.s1"}
				return must(gb.SignEndorsement(ctx, e)), e
			},
			send: func(env *concordv1.Envelope) error {
				_, err := gb.Notices.EndorseNotice(ctx, &concordv1.EndorseNoticeRequest{Envelope: env})
				return err
			}},
		{kind: "objection", signer: "gb-ctiru", payloadType: dsse.PayloadTypeObjection,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				o := &concordv1.Objection{ObjectionId: id, NoticeId: subject, Reason: "protected speech"}
				return must(gb.SignObjection(ctx, o)), o
			},
			send: func(env *concordv1.Envelope) error {
				_, err := gb.Notices.ObjectToNotice(ctx, &concordv1.ObjectToNoticeRequest{Envelope: env})
				return err
			}},
		{kind: "withdrawal", signer: "gb-ctiru", payloadType: dsse.PayloadTypeWithdrawal,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				w := &concordv1.Withdrawal{WithdrawalId: id, NoticeId: subject, Reason: "annulled on appeal"}
				return must(gb.SignWithdrawal(ctx, w)), w
			},
			send: func(env *concordv1.Envelope) error {
				_, err := gb.Notices.WithdrawNotice(ctx, &concordv1.WithdrawNoticeRequest{Envelope: env})
				return err
			}},
		{kind: "action report", signer: "socialnet", payloadType: dsse.PayloadTypeActionReport,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				r := &concordv1.ActionReport{ReportId: id, NoticeId: subject, Jurisdictions: []string{"FR"},
					Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, OccurredAt: timestamppb.Now()}
				return must(platform.SignActionReport(ctx, r)), r
			},
			send: func(env *concordv1.Envelope) error {
				_, err := platform.Actions.ReportAction(ctx, &concordv1.ReportActionRequest{Envelope: env})
				return err
			}},
		{kind: "registry change", signer: "hub-ops", payloadType: dsse.PayloadTypeRegistryChange,
			sign: func(t *testing.T, id string) (*concordv1.Envelope, proto.Message) {
				change := &concordv1.RegistryChange{ChangeId: id, Author: "hub-ops", Change: &concordv1.RegistryChange_RevokeSigningKey{
					RevokeSigningKey: &concordv1.RevokeSigningKey{PartnerId: "us-doj", KeyId: "no-such-key", Reason: "test"}}}
				return must(admin.SignRegistryChange(change)), change
			},
			send: func(env *concordv1.Envelope) error {
				_, err := admin.Registry.UpdateRegistry(ctx, &concordv1.UpdateRegistryRequest{Envelope: env})
				return err
			}},
	}
}

// TestStatementsWithUnknownFieldsAreRefused: a signed statement carrying a field its schema does
// not define (a 12 KB blob in field 4242, the attack found) is refused with InvalidArgument naming
// the field, whether the field is in the payload or in the envelope, and the log does not grow.
func TestStatementsWithUnknownFieldsAreRefused(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr, auditor := n.Client(t, "fr-pharos"), n.Client(t, "observatory")
	subject, err := fr.SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 12<<10)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	for _, sc := range statementCases(t, n, subject.GetNotice().GetNoticeId()) {
		t.Run(sc.kind, func(t *testing.T) {
			c := n.Client(t, sc.signer)
			_, msg := sc.sign(t, "")
			clean, err := proto.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			withBlob := protowire.AppendBytes(protowire.AppendTag(clean, 4242, protowire.BytesType), blob)
			inPayload, err := dsse.Sign(sc.payloadType, withBlob, *c.Signer())
			if err != nil {
				t.Fatal(err)
			}
			inEnvelope, err := dsse.Sign(sc.payloadType, clean, *c.Signer())
			if err != nil {
				t.Fatal(err)
			}
			inEnvelope.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 4242, protowire.BytesType), blob))
			before := logSize(t, auditor)
			for _, tc := range []struct {
				name string
				env  *concordv1.Envelope
				says string
			}{
				{"in the payload", inPayload, "envelope.payload: field number 4242"},
				{"in the envelope", inEnvelope, "envelope: field number 4242"},
			} {
				err := sc.send(tc.env)
				if codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.says) {
					t.Errorf("%s: got %v, want InvalidArgument saying %q", tc.name, err, tc.says)
				}
			}
			if after := logSize(t, auditor); after != before {
				t.Fatalf("the log grew from %d to %d entries", before, after)
			}
		})
	}
}

// TestStatementIDsRevealNothing: for each kind of statement, a partner outside a TLP:RED
// notice's sharing group that reuses the id of a statement it may not see gets exactly the answer
// it gets for a free id of the same form, and the log does not grow.
func TestStatementIDsRevealNothing(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	fr, de, be, videoshare := n.Client(t, "fr-pharos"), n.Client(t, "de-bka"), n.Client(t, "be-fedpol"), n.Client(t, "videoshare")

	// What gb-ctiru and socialnet may not see: two TLP:RED notices shared with de-bka, be-fedpol
	// and videoshare; an endorsement by de-bka, an objection by be-fedpol and a report by
	// videoshare of the first; the withdrawal of the second.
	red := func(content string) string {
		nt := glorificationNotice(content)
		nt.Tlp, nt.SharingGroup = concordv1.TLP_TLP_RED, []string{"de-bka", "be-fedpol", "videoshare"}
		rec, err := fr.SubmitNotice(ctx, nt)
		if err != nil {
			t.Fatal(err)
		}
		return rec.GetNotice().GetNoticeId()
	}
	hiddenNotice, withdrawn := red("red one"), red("red two")
	signed := func(env *concordv1.Envelope, err error) *concordv1.Envelope {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	committed := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	endorsement := &concordv1.Endorsement{NoticeId: hiddenNotice, LegalBasis: "de.stgb.140"}
	committed(de.Notices.EndorseNotice(ctx, &concordv1.EndorseNoticeRequest{Envelope: signed(de.SignEndorsement(ctx, endorsement))}))
	objection := &concordv1.Objection{NoticeId: hiddenNotice, Reason: "satire published by a Belgian newspaper"}
	committed(be.Notices.ObjectToNotice(ctx, &concordv1.ObjectToNoticeRequest{Envelope: signed(be.SignObjection(ctx, objection))}))
	report := &concordv1.ActionReport{NoticeId: hiddenNotice, Jurisdictions: []string{"FR"},
		Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, OccurredAt: timestamppb.Now()}
	committed(videoshare.Actions.ReportAction(ctx, &concordv1.ReportActionRequest{Envelope: signed(videoshare.SignActionReport(ctx, report))}))
	withdrawal := &concordv1.Withdrawal{NoticeId: withdrawn, Reason: "annulled on appeal"}
	committed(fr.Notices.WithdrawNotice(ctx, &concordv1.WithdrawNoticeRequest{Envelope: signed(fr.SignWithdrawal(ctx, withdrawal))}))
	public, err := fr.SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}

	hidden := map[string]struct{ id, owner string }{
		"notice":        {hiddenNotice, "fr-pharos"},
		"endorsement":   {endorsement.GetEndorsementId(), "de-bka"},
		"objection":     {objection.GetObjectionId(), "be-fedpol"},
		"withdrawal":    {withdrawal.GetWithdrawalId(), "fr-pharos"},
		"action report": {report.GetReportId(), "videoshare"},
	}
	auditor := n.Client(t, "observatory")
	for _, sc := range statementCases(t, n, public.GetNotice().GetNoticeId()) {
		h, ok := hidden[sc.kind]
		if !ok {
			continue
		}
		t.Run(sc.kind, func(t *testing.T) {
			if _, err := n.Client(t, sc.signer).Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: hiddenNotice}); codeOf(err) != codes.NotFound {
				t.Fatalf("%s is not outside the sharing group: %v", sc.signer, err)
			}
			free := statementid.New(h.owner)
			before := logSize(t, auditor)
			taken, _ := sc.sign(t, h.id)
			errTaken := sc.send(taken)
			freeEnv, _ := sc.sign(t, free)
			errFree := sc.send(freeEnv)
			if errTaken == nil || errFree == nil {
				t.Fatalf("a statement with another partner's id was accepted: taken %v, free %v", errTaken, errFree)
			}
			gotTaken := codeOf(errTaken).String() + ": " + strings.ReplaceAll(errTaken.Error(), h.id, "<id>")
			gotFree := codeOf(errFree).String() + ": " + strings.ReplaceAll(errFree.Error(), free, "<id>")
			if gotTaken != gotFree {
				t.Fatalf("the answers differ:\n taken: %s\n free:  %s", gotTaken, gotFree)
			}
			if codeOf(errTaken) != codes.InvalidArgument || !strings.Contains(errTaken.Error(), statementid.Tag(sc.signer)) {
				t.Fatalf("got %v, want InvalidArgument naming the signer's tag %s", errTaken, statementid.Tag(sc.signer))
			}
			if after := logSize(t, auditor); after != before {
				t.Fatalf("the log grew from %d to %d", before, after)
			}
			// The same statement with an id of its signer's own is accepted or refused on its
			// merits, never for its id.
			own, _ := sc.sign(t, "")
			if err := sc.send(own); err != nil && strings.Contains(err.Error(), "tag") {
				t.Fatalf("an id of the signer's own refused: %v", err)
			}
		})
	}
}

// caSignedClientCert is a client certificate the node's CA issued, shaped by edit: the TLS
// handshake accepts it, so what it names is judged by the hub's identity rules.
func caSignedClientCert(t *testing.T, n *servertest.Node, edit func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	caPair, err := tls.LoadX509KeyPair(n.PKI.CACert(), n.PKI.CAKey())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caPair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "concord prober"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caPair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// rawCodec sends a []byte as the request body, as it is, and reads nothing back.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal([]byte, any) error   { return nil }
func (rawCodec) Name() string                  { return "proto" }

// TestMalformedBodiesAreRefusedAfterAuthentication: on both ports, a body that is not a valid
// protobuf message is answered Unauthenticated when the certificate names no partner (its body
// is never decoded) and InvalidArgument when it comes from a partner, and both refusals are
// logged with who sent them and the method.
func TestMalformedBodiesAreRefusedAfterAuthentication(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	n := servertest.Start(t, servertest.Options{Logger: logs.logger()})
	prober := caSignedClientCert(t, n, func(c *x509.Certificate) { c.DNSNames = []string{"prober.example"} })
	partner, err := tls.LoadX509KeyPair(n.PKI.PartnerCert("fr-pharos"), n.PKI.PartnerKey("fr-pharos"))
	if err != nil {
		t.Fatal(err)
	}
	// Field 1, length-delimited, announcing 127 bytes and carrying 2.
	body := []byte{0x0a, 0x7f, 0x01, 0x02}
	const method = "/concord.v1.NoticeService/SubmitNotice"
	for _, tc := range []struct {
		name   string
		cert   tls.Certificate
		code   codes.Code
		logged string
	}{
		{"no partner identity", prober, codes.Unauthenticated, `certificate="CN=concord prober"`},
		{"a partner", partner, codes.InvalidArgument, "partner=fr-pharos"},
	} {
		conf := tlsConfigWithoutCert(t, n)
		conf.Certificates = []tls.Certificate{tc.cert}
		t.Run(tc.name+"/grpc", func(t *testing.T) {
			conn, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(conf)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = conn.Invoke(ctx, method, body, new([]byte), grpc.ForceCodec(rawCodec{}))
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			line := logLine(t, &logs, "protocol=grpc", tc.logged)
			if !strings.Contains(line, "method="+method) || !strings.Contains(line, "code="+tc.code.String()) {
				t.Fatalf("the refusal is logged as %q", line)
			}
		})
		t.Run(tc.name+"/connect", func(t *testing.T) {
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}, Timeout: 30 * time.Second}
			resp, err := hc.Post("https://"+n.HTTPAddr()+method, "application/proto", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			want := map[codes.Code]int{codes.Unauthenticated: http.StatusUnauthorized, codes.InvalidArgument: http.StatusBadRequest}[tc.code]
			if resp.StatusCode != want {
				msg, _ := io.ReadAll(resp.Body)
				t.Fatalf("got HTTP %d %s, want %d", resp.StatusCode, msg, want)
			}
			line := logLine(t, &logs, "protocol=connect", tc.logged)
			if !strings.Contains(line, "method="+method) || !strings.Contains(line, "code="+tc.code.String()) {
				t.Fatalf("the refusal is logged as %q", line)
			}
		})
	}
}

// logLine returns the first line of logs holding every one of parts.
func logLine(t *testing.T, logs *logBuffer, parts ...string) string {
	t.Helper()
	for line := range strings.SplitSeq(logs.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return line
		}
	}
	t.Fatalf("no log line holds %q:\n%s", parts, logs.String())
	return ""
}

// pdqBatch is a batch of n PDQ hashes (random, good quality), for load.
func pdqBatch(n int, seed byte) *concordv1.MatchRequest {
	req := &concordv1.MatchRequest{}
	for i := range n {
		v := make([]byte, 32)
		for j := range v {
			v[j] = byte(i*31+j*7) ^ seed
		}
		req.Hashes = append(req.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: v, Quality: 90})
	}
	return req
}

// TestFloodIsLimitedByWork: a platform flooding MatchStream with large batches is slowed to its
// work budget (not let through at one token a stream), cannot hold more streams than its cap,
// and the node keeps answering another platform's lookups meanwhile.
func TestFloodIsLimitedByWork(t *testing.T) {
	t.Parallel()
	const (
		work       = 400_000 // units/s
		burst      = 200_000
		streams    = 3
		batches    = 6     // per stream
		batchSize  = 1_000 // PDQ hashes: 100 000 units each
		watchers   = 2
		totalUnits = streams * batches * (batchSize*ratelimit.CostPDQ + ratelimit.CostCall)
	)
	limits := &ratelimit.Config{Default: limitsOf(work, burst, map[string]int{"MatchStream": streams, "WatchNotices": watchers})}
	var logs logBuffer
	n := servertest.Start(t, servertest.Options{Limits: limits, Logger: logs.logger()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	flooder, bystander := n.Client(t, "videoshare"), n.Client(t, "socialnet")

	// Streams beyond the cap are refused, of each kind; another partner's are not.
	var open []concordv1.MatchService_MatchStreamClient
	for i := range streams + 1 {
		s, err := flooder.Matches.MatchStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A stream the node refused at once may end before the message is sent: Send then
		// says io.EOF, and Recv gives the status.
		if err := s.Send(&concordv1.MatchStreamRequest{Batch: pdqBatch(1, 0)}); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		_, err = s.Recv()
		if i < streams {
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			open = append(open, s)
		} else if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "MatchStream streams open") {
			t.Fatalf("stream %d over the cap of %d: got %v, want ResourceExhausted", i, streams, err)
		}
	}
	// A watcher from the start of the feed gets the notice below at once: its first message
	// shows the stream open before the next one is tried.
	if _, err := n.Client(t, "fr-pharos").SubmitNotice(ctx, glorificationNotice()); err != nil {
		t.Fatal(err)
	}
	for i := range watchers + 1 {
		w, err := flooder.Notices.WatchNotices(ctx, &concordv1.WatchNoticesRequest{FromStart: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.Recv()
		if i < watchers {
			if err != nil {
				t.Fatalf("watcher %d: %v", i, err)
			}
			continue // held open until the test ends
		}
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "WatchNotices streams open") {
			t.Fatalf("watcher %d over the cap of %d: got %v, want ResourceExhausted", i, watchers, err)
		}
	}
	if _, err := bystander.Notices.WatchNotices(ctx, &concordv1.WatchNoticesRequest{FromStart: true}); err != nil {
		t.Fatal(err)
	}

	// Work is charged on both ports: a batch dearer than the burst can never pass.
	tooBig := pdqBatch(burst/ratelimit.CostPDQ+1, 1)
	if _, err := flooder.Matches.Match(ctx, tooBig); codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "split it") {
		t.Fatalf("grpc port, a batch over the work burst: got %v, want InvalidArgument", err)
	}
	connectMatch := concordv1connect.NewMatchServiceClient(connectClient(t, n, "videoshare"))
	if _, err := connectMatch.Match(ctx, tooBig); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "split it") {
		t.Fatalf("https port, a batch over the work burst: got %v, want InvalidArgument", err)
	}

	// The flood: every stream sends its batches as fast as the node takes them.
	start := time.Now()
	flood := make(chan error, streams)
	for si, s := range open {
		go func() {
			for b := range batches {
				if err := s.Send(&concordv1.MatchStreamRequest{Batch: pdqBatch(batchSize, byte(si*batches+b))}); err != nil {
					flood <- err
					return
				}
				if _, err := s.Recv(); err != nil {
					flood <- err
					return
				}
			}
			flood <- s.CloseSend()
		}()
	}
	// Meanwhile the bystander's lookups, fifty a second (well within its own limits), are
	// answered, none refused.
	answered := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for done := 0; done < streams; {
		select {
		case err := <-flood:
			if err != nil {
				t.Fatalf("flood stream: %v", err)
			}
			done++
		case <-tick.C:
			if _, err := bystander.Matches.Match(ctx, pdqBatch(1, 0xaa)); err != nil {
				t.Fatalf("the bystander's lookup during the flood: %v", err)
			}
			answered++
		}
	}
	took := time.Since(start)
	// The token bucket's bound: what the flood cost beyond the burst, at the work rate. (The
	// stream opening messages above spent some of the burst already: the bound holds a fortiori.)
	floor := time.Duration(totalUnits-burst) * time.Second / work
	if took < floor {
		t.Fatalf("the flood of %d units took %v: faster than its budget of %d units/s allows (%v)", totalUnits, took, work, floor)
	}
	if answered == 0 {
		t.Fatal("the bystander got no answer during the flood")
	}
	t.Logf("flood of %d units took %v (budget floor %v); the bystander's %d lookups all answered", totalUnits, took, floor, answered)
}

func limitsOf(work float64, burst int64, streams map[string]int) ratelimit.Limits {
	return ratelimit.Limits{Work: work, WorkBurst: burst, Streams: streams}
}
