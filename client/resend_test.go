package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/mtls"
	"concord/internal/pki"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	unavailable := status.Error(codes.Unavailable, "no raft leader")
	handshake := status.Error(codes.Unavailable, "connection error: desc = \"transport: authentication handshake failed: tls: unknown certificate authority\"")
	st := func(c codes.Code) error { return status.Error(c, c.String()) }
	for _, tc := range []struct {
		name                  string
		kind                  callKind
		err                   error
		ambiguous, callerDone bool
		retryExhausted        bool
		want                  verdict
		wantAmbiguous         bool
	}{
		{name: "write unavailable", kind: write, err: unavailable, want: resend, wantAmbiguous: true},
		{name: "write attempt timed out", kind: write, err: st(codes.DeadlineExceeded), want: resend, wantAmbiguous: true},
		{name: "write canceled by the server", kind: write, err: st(codes.Canceled), want: resend, wantAmbiguous: true},
		{name: "write rate-limited first", kind: write, err: st(codes.ResourceExhausted), want: answer},
		{name: "write rate-limited after no answer", kind: write, err: st(codes.ResourceExhausted), ambiguous: true, want: resendLater, wantAmbiguous: true},
		{name: "write invalid", kind: write, err: st(codes.InvalidArgument), want: answer},
		{name: "write invalid after no answer", kind: write, err: st(codes.InvalidArgument), ambiguous: true, want: answer},
		{name: "write id taken", kind: write, err: st(codes.AlreadyExists), ambiguous: true, want: answer},
		{name: "write refused by the rules", kind: write, err: st(codes.FailedPrecondition), ambiguous: true, want: answer},
		{name: "write notice not found", kind: write, err: st(codes.NotFound), ambiguous: true, want: answer},
		{name: "write permission denied", kind: write, err: st(codes.PermissionDenied), want: answer},
		{name: "write permission denied after no answer", kind: write, err: st(codes.PermissionDenied), ambiguous: true, want: unknown, wantAmbiguous: true},
		{name: "write unauthenticated after no answer", kind: write, err: st(codes.Unauthenticated), ambiguous: true, want: unknown, wantAmbiguous: true},
		{name: "write refused handshake", kind: write, err: handshake, want: answer},
		{name: "write refused handshake after no answer", kind: write, err: handshake, ambiguous: true, want: unknown, wantAmbiguous: true},
		{name: "write internal", kind: write, err: st(codes.Internal), want: unknown, wantAmbiguous: true},
		{name: "write unknown", kind: write, err: st(codes.Unknown), want: unknown, wantAmbiguous: true},
		{name: "write caller gave up", kind: write, err: st(codes.DeadlineExceeded), callerDone: true, want: unknown, wantAmbiguous: true},
		{name: "read unavailable", kind: read, err: unavailable, want: resend},
		{name: "read refused handshake", kind: read, err: handshake, want: answer},
		{name: "read deadline from the server", kind: read, err: st(codes.DeadlineExceeded), want: resend},
		{name: "read caller gave up", kind: read, err: st(codes.DeadlineExceeded), callerDone: true, want: answer},
		{name: "read rate-limited", kind: read, err: st(codes.ResourceExhausted), want: resendLater},
		{name: "read rate-limited, asked to wait", kind: read, err: st(codes.ResourceExhausted), retryExhausted: true, want: resendLater},
		{name: "write rate-limited", kind: write, err: st(codes.ResourceExhausted), want: answer},
		{name: "read internal", kind: read, err: st(codes.Internal), want: answer},
		{name: "not idempotent", kind: once, err: unavailable, want: answer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, amb := decide(tc.kind, tc.err, tc.ambiguous, tc.callerDone, tc.retryExhausted)
			if v != tc.want || amb != tc.wantAmbiguous {
				t.Fatalf("decide = %v, ambiguous %v; want %v, %v", v, amb, tc.want, tc.wantAmbiguous)
			}
		})
	}
}

// scriptedNotices answers SubmitNotice with its script, one entry per attempt (then success),
// and records the attempts. A nil entry with hang set blocks until the caller gives up.
type scriptedNotices struct {
	concordv1.UnimplementedNoticeServiceServer
	mu       sync.Mutex
	script   []error
	hang     bool
	attempts []time.Time
	requests []*concordv1.SubmitNoticeRequest
	// attempted, if set, receives the number of attempts so far at each attempt.
	attempted chan int
}

func (s *scriptedNotices) SubmitNotice(ctx context.Context, req *concordv1.SubmitNoticeRequest) (*concordv1.SubmitNoticeResponse, error) {
	s.mu.Lock()
	n := len(s.attempts)
	s.attempts = append(s.attempts, time.Now())
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	if s.attempted != nil {
		s.attempted <- n + 1
	}
	if s.hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if n < len(s.script) {
		return nil, s.script[n]
	}
	return &concordv1.SubmitNoticeResponse{Notice: &concordv1.NoticeRecord{LogIndex: 7}}, nil
}

func (s *scriptedNotices) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attempts)
}

func serveNotices(t *testing.T, l pki.Layout, impl concordv1.NoticeServiceServer) string {
	t.Helper()
	return serveWith(t, l, func(s *grpc.Server) { concordv1.RegisterNoticeServiceServer(s, impl) })
}

// serveWith runs a gRPC server with what register adds on a loopback TLS listener with the dev
// PKI in l, and returns its address.
func serveWith(t *testing.T, l pki.Layout, register func(*grpc.Server)) string {
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
	register(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func rateLimited(after time.Duration) error {
	st, err := status.New(codes.ResourceExhausted, "partner \"fr-pharos\" is over its rate limit").
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// A write is sent again, the same request, until an answer says what became of it; the caller
// is told the outcome is unknown only when none did.
func TestWritesAreResentUntilTheirOutcomeIsKnown(t *testing.T) {
	t.Parallel()
	l := testPKI(t)
	unavailable := status.Error(codes.Unavailable, "cannot commit the write: the write may still commit")
	for _, tc := range []struct {
		name     string
		script   []error
		cfg      Config
		timeout  time.Duration
		attempts int
		// want: nil for success, a code for a plain error, or unknownOutcome.
		want           codes.Code
		unknownOutcome bool
	}{
		{name: "answered after two lost attempts", script: []error{unavailable, unavailable}, attempts: 3, want: codes.OK},
		{name: "refused by the rate limit at once", script: []error{rateLimited(time.Hour)}, attempts: 1, want: codes.ResourceExhausted},
		{name: "rate limit after a lost attempt is waited out", script: []error{unavailable, rateLimited(50 * time.Millisecond)}, attempts: 3, want: codes.OK},
		{name: "refused statement", script: []error{status.Error(codes.InvalidArgument, "notice_id")}, attempts: 1, want: codes.InvalidArgument},
		{name: "refused statement after a lost attempt", script: []error{unavailable, status.Error(codes.FailedPrecondition, "withdrawn")}, attempts: 2, want: codes.FailedPrecondition},
		{name: "permission denied after a lost attempt", script: []error{unavailable, status.Error(codes.PermissionDenied, "role")}, attempts: 2, want: codes.PermissionDenied, unknownOutcome: true},
		{name: "hub failure", script: []error{status.Error(codes.Internal, "internal error")}, attempts: 1, want: codes.Internal, unknownOutcome: true},
		{name: "retries turned off", script: []error{unavailable}, cfg: Config{Retries: -1}, attempts: 1, want: codes.Unavailable, unknownOutcome: true},
		{name: "retries bounded", script: []error{unavailable, unavailable, unavailable}, cfg: Config{Retries: 2}, attempts: 3, want: codes.Unavailable, unknownOutcome: true},
		{name: "rate limit hint beyond the deadline", script: []error{unavailable, rateLimited(time.Hour)}, timeout: 5 * time.Second, attempts: 2, want: codes.ResourceExhausted, unknownOutcome: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			impl := &scriptedNotices{script: tc.script}
			c := dial(t, l, serveNotices(t, l, impl), tc.cfg)
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			req := &concordv1.SubmitNoticeRequest{Envelope: &concordv1.Envelope{Payload: []byte("a notice")}, ConsistencyFrom: 3}
			_, err := c.Notices.SubmitNotice(ctx, req)
			if got := impl.count(); got != tc.attempts {
				t.Errorf("%d attempts, want %d", got, tc.attempts)
			}
			for i, sent := range impl.requests {
				if !proto.Equal(sent, req) {
					t.Errorf("attempt %d sent %v, want the same request %v", i, sent, req)
				}
			}
			if code := status.Code(err); code != tc.want {
				t.Fatalf("SubmitNotice = %v, want %v", err, tc.want)
			}
			unknown, isUnknown := errors.AsType[*OutcomeUnknownError](err)
			if isUnknown != tc.unknownOutcome {
				t.Fatalf("SubmitNotice = %v (%T): outcome unknown %v, want %v", err, err, isUnknown, tc.unknownOutcome)
			}
			if isUnknown && !proto.Equal(unknown.Request, req) {
				t.Fatalf("OutcomeUnknownError carries %v, want the request to re-send", unknown.Request)
			}
		})
	}
}

// A lost write goes on until the caller's context ends, then says its outcome is unknown.
func TestWriteOutcomeUnknownWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	l := testPKI(t)
	impl := &scriptedNotices{script: make([]error, 1000), attempted: make(chan int, 1000)}
	for i := range impl.script {
		impl.script[i] = status.Error(codes.Unavailable, "no raft leader")
	}
	c := dial(t, l, serveNotices(t, l, impl), Config{})
	// The caller gives up once the node has seen three attempts (a generous bound otherwise):
	// the client must have gone on re-sending until then, and say the outcome is unknown.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		defer cancel()
		for {
			select {
			case n := <-impl.attempted:
				if n >= 3 {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	_, err := c.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: &concordv1.Envelope{Payload: []byte("a notice")}})
	if _, ok := errors.AsType[*OutcomeUnknownError](err); !ok {
		t.Fatalf("SubmitNotice = %v, want *OutcomeUnknownError", err)
	}
	if impl.count() < 3 {
		t.Fatalf("%d attempts before the context ended, want several (the caller waited for 3)", impl.count())
	}
}

// A node that takes a write and never answers is given up after the attempt timeout, and the
// write goes to the next node.
func TestWriteFailsOverFromANodeThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	l := testPKI(t)
	hung, answering := &scriptedNotices{hang: true}, &scriptedNotices{}
	// The attempt timeout is what moves the write on from the hung node; it must also be long
	// enough for the answering node to answer on a loaded machine.
	c := dial(t, l, serveNotices(t, l, hung)+","+serveNotices(t, l, answering), Config{AttemptTimeout: 3 * time.Second})
	resp, err := c.Notices.SubmitNotice(context.Background(), &concordv1.SubmitNoticeRequest{Envelope: &concordv1.Envelope{Payload: []byte("a notice")}})
	if err != nil || resp.GetNotice().GetLogIndex() != 7 {
		t.Fatalf("SubmitNotice = %v, %v; want the second node's answer", resp, err)
	}
	if hung.count() != 1 || answering.count() != 1 {
		t.Fatalf("attempts: %d on the hung node, %d on the other; want 1 and 1", hung.count(), answering.count())
	}
}

// Reads wait out a rate limit, as the refusal's RetryInfo asks, within Config.Retries.
func TestReadsWaitOutRateLimits(t *testing.T) {
	t.Parallel()
	l := testPKI(t)
	ctx := context.Background()
	req := &concordv1.GetConsistencyProofRequest{OldSize: 1, NewSize: 2}

	impl := &rateLimitedLog{refusals: 2}
	c := dial(t, l, serveLog(t, l, impl), Config{})
	if _, err := c.Log.GetConsistencyProof(ctx, req); err != nil {
		t.Fatalf("GetConsistencyProof waiting out the limit = %v", err)
	}
	if got := impl.calls.Load(); got != 3 {
		t.Fatalf("%d calls, want 3 (two refused, then served)", got)
	}

	never := &rateLimitedLog{refusals: 1}
	c = dial(t, l, serveLog(t, l, never), Config{Retries: -1})
	if _, err := c.Log.GetConsistencyProof(ctx, req); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("with Retries -1: GetConsistencyProof = %v, want ResourceExhausted", err)
	}
}

// rateLimitedLog refuses its first refusals calls as the rate limit does, with a short hint.
type rateLimitedLog struct {
	concordv1.UnimplementedLogServiceServer
	refusals int32
	calls    atomic.Int32
}

func (s *rateLimitedLog) GetConsistencyProof(context.Context, *concordv1.GetConsistencyProofRequest) (*concordv1.GetConsistencyProofResponse, error) {
	if s.calls.Add(1) <= s.refusals {
		return nil, rateLimited(20 * time.Millisecond)
	}
	return &concordv1.GetConsistencyProofResponse{OldSize: 1, NewSize: 2}, nil
}

func serveLog(t *testing.T, l pki.Layout, impl concordv1.LogServiceServer) string {
	t.Helper()
	return serveWith(t, l, func(s *grpc.Server) { concordv1.RegisterLogServiceServer(s, impl) })
}
