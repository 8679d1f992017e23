package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"concord/client"
	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/internal/mtls"
	"concord/server"
	"concord/server/servertest"
	"concord/translog"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connectproto"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// A receipt is verified from the write's own answer: with a rate limit that admits exactly the
// calls the writes make, every write verifies (a check that asked the hub anything would be
// refused). The refusal that follows says when to come back, on both ports.
func TestReceiptsNeedNoSecondCall(t *testing.T) {
	t.Parallel()
	const writes = 5
	n := servertest.Start(t, servertest.Options{RateLimit: 0.001, RateBurst: 1 + writes}) // WhoAmI, then the writes
	c := n.Client(t, "fr-pharos")
	ctx := context.Background()
	for i := range writes {
		if _, err := c.SubmitNotice(ctx, glorificationNotice()); err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
	}
	if cp, ok := c.VerifiedCheckpoint(); !ok || cp.Size < writes {
		t.Fatalf("verified checkpoint %v, %v; want one holding the writes", cp, ok)
	}

	_, err := c.SubmitNotice(ctx, glorificationNotice())
	if _, unknown := errors.AsType[*client.OutcomeUnknownError](err); codeOf(err) != codes.ResourceExhausted || unknown {
		t.Fatalf("write over the limit: %v, want ResourceExhausted, which commits nothing", err)
	}
	var hint *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hint = ri
		}
	}
	if hint.GetRetryDelay().AsDuration() <= 0 {
		t.Fatalf("refusal on the gRPC port carries no RetryInfo: %v", status.Convert(err).Details())
	}
	_, err = concordv1connect.NewRegistryServiceClient(connectClient(t, n, "fr-pharos")).WhoAmI(ctx, &concordv1.WhoAmIRequest{})
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok || ce.Code() != connect.CodeResourceExhausted || len(ce.Details()) != 1 {
		t.Fatalf("refusal on the HTTPS port: %v, want ResourceExhausted with one detail", err)
	}
	if d, err := connectproto.UnmarshalErrorDetail(ce.Details()[0]); err != nil || d.(*errdetails.RetryInfo).GetRetryDelay().AsDuration() <= 0 {
		t.Fatalf("HTTPS refusal detail %v, %v; want a RetryInfo", d, err)
	}
}

// The hub's consistency proof in a receipt is the client's to check: one changed, or starting
// from another size, is refused.
func TestReceiptConsistencyProofFromTheHub(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	c := n.Client(t, "fr-pharos")
	ctx := context.Background()
	for range 3 {
		if _, err := c.SubmitNotice(ctx, glorificationNotice()); err != nil {
			t.Fatal(err)
		}
	}
	from, _ := c.VerifiedCheckpoint()
	env, err := c.SignNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env, ConsistencyFrom: uint64(from.Size)})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetReceipt()
	if r.GetConsistencyFrom() != uint64(from.Size) || len(r.GetConsistencyProof()) == 0 || r.GetCheckpoint().GetSize() <= uint64(from.Size) {
		t.Fatalf("receipt proves consistency from %d with %d hashes up to %d; want from %d, with a proof",
			r.GetConsistencyFrom(), len(r.GetConsistencyProof()), r.GetCheckpoint().GetSize(), from.Size)
	}
	for name, tamper := range map[string]func(r *concordv1.Receipt){
		"a proof hash changed": func(r *concordv1.Receipt) { r.ConsistencyProof[0][3] ^= 0x80 },
		"a proof hash dropped": func(r *concordv1.Receipt) { r.ConsistencyProof = r.ConsistencyProof[:len(r.ConsistencyProof)-1] },
		"a proof hash added":   func(r *concordv1.Receipt) { r.ConsistencyProof = append(r.ConsistencyProof, r.ConsistencyProof[0]) },
	} {
		bad := proto.CloneOf(r)
		tamper(bad)
		if err := c.VerifyReceipt(ctx, bad, env); !errors.Is(err, translog.ErrProof) {
			t.Errorf("%s: VerifyReceipt = %v, want ErrProof", name, err)
		}
	}
	if err := c.VerifyReceipt(ctx, r, env); err != nil {
		t.Fatalf("the hub's own receipt: %v", err)
	}
	if cp, _ := c.VerifiedCheckpoint(); cp.Size != int64(r.GetCheckpoint().GetSize()) {
		t.Fatalf("verified checkpoint of %d entries, want the receipt's %d", cp.Size, r.GetCheckpoint().GetSize())
	}
}

// A follower whose leader does not answer — its node port is a black hole: connections stay
// open, nothing comes back — answers reads and writes Unavailable within the leader wait, not
// DeadlineExceeded, though the caller would have waited a minute.
func TestClusterFollowerOfAnUnresponsiveLeaderAnswersUnavailable(t *testing.T) {
	t.Parallel()
	const leaderWait = 2 * time.Second
	c := servertest.StartCluster(t, 3, servertest.Options{Cluster: server.ClusterConfig{LeaderWait: leaderWait}})
	leader := c.Leader(t, 10*time.Second)
	follower := c.Nodes[others(c, leader)[0]]
	ctx := context.Background()
	rec, err := follower.Client(t, "fr-pharos").SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	authority, platform := follower.Client(t, "fr-pharos"), follower.Client(t, "videoshare")
	env, err := authority.SignNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	follower.Faults.Stall()
	defer follower.Faults.Heal()

	for name, call := range map[string]func(context.Context) error{
		"GetNotice": func(ctx context.Context) error {
			_, err := platform.Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: rec.GetNotice().GetNoticeId()})
			return err
		},
		"SubmitNotice": func(ctx context.Context) error {
			_, err := authority.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env})
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		start := time.Now()
		err := call(ctx)
		took := time.Since(start)
		cancel()
		if codeOf(err) != codes.Unavailable {
			t.Errorf("%s on a follower whose leader does not answer: %v, want Unavailable", name, err)
		}
		// Generous: the point is the code; the bound is the leader wait plus the call itself.
		if took > leaderWait+5*time.Second {
			t.Errorf("%s took %v, with a leader wait of %v", name, took, leaderWait)
		}
	}
}

// writeOutcome is what a write returned to its caller.
type writeOutcome uint8

const (
	wrote     writeOutcome = iota // success: receipt verified
	committed                     // *client.UnverifiedReceiptError: committed, check unfinished
	unknown                       // *client.OutcomeUnknownError
	refused                       // any other error: must not be committed
)

// The must-show of "integrity under faults": authorities write notices through one
// rate-limited client that fails over between three nodes, while the leader is cut off, healed,
// stalled, healed, stopped and restarted. At the end an auditor reads the whole log: every write
// reported successful or committed is there once; none that returned any other error is; a
// write whose outcome was unknown is re-sent, and what that says is what the log shows.
func TestWritesUnderFailoverAndRateLimitAreNeverReportedFailedWhenCommitted(t *testing.T) {
	t.Parallel()
	c := servertest.StartCluster(t, 3, servertest.Options{RateLimit: 8, RateBurst: 4,
		Cluster: server.ClusterConfig{LeaderWait: 2 * time.Second, HealthInterval: 200 * time.Millisecond}})
	// The client starts on the leader, so that the first fault hits writes in flight.
	leader := c.Leader(t, 10*time.Second)
	addrs := []string{c.Nodes[leader].GRPCAddr()}
	for _, i := range others(c, leader) {
		addrs = append(addrs, c.Nodes[i].GRPCAddr())
	}
	resends := &resendCounter{}
	writer, err := client.Dial(client.Config{Addrs: addrs,
		TLS:            mtls.Files{CA: c.PKI.CACert(), Cert: c.PKI.PartnerCert("fr-pharos"), Key: c.PKI.PartnerKey("fr-pharos")},
		SigningKeyFile: c.PKI.SigningKey("fr-pharos"), LogKeyFile: c.PKI.LogPub(), Logger: slog.New(resends)})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	eventually(t, time.Minute, "WhoAmI", func() error { _, err := writer.Me(context.Background()); return err })

	var (
		mu        sync.Mutex
		outcomes  = map[string]writeOutcome{}
		unknowns  []*client.OutcomeUnknownError
		successes atomic.Int64
		limited   atomic.Int64 // writes refused by the rate limit
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := glorificationNotice(fmt.Sprintf("writer %d notice %d", w, i))
				n.NoticeId = client.NewID("fr-pharos")
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := writer.SubmitNotice(ctx, n)
				cancel()
				o := refused
				var u *client.OutcomeUnknownError
				switch {
				case err == nil:
					o = wrote
				case errors.As(err, new(*client.UnverifiedReceiptError)):
					o = committed
				case errors.As(err, &u):
					o = unknown
				}
				mu.Lock()
				outcomes[n.NoticeId] = o
				if u != nil {
					unknowns = append(unknowns, u)
				}
				mu.Unlock()
				if o == refused && codeOf(err) == codes.ResourceExhausted {
					limited.Add(1)
				}
				if o == wrote || o == committed {
					successes.Add(1)
				} else {
					time.Sleep(20 * time.Millisecond) // pace a refused writer; not a synchronisation
				}
			}
		}()
	}
	progress := func(count int64, what string) {
		t.Helper()
		target := successes.Load() + count
		eventually(t, 2*time.Minute, what, func() error {
			if got := successes.Load(); got < target {
				return fmt.Errorf("%d of %d writes acknowledged", got, target)
			}
			return nil
		})
	}

	progress(10, "writes before any fault")
	cut := c.Leader(t, 10*time.Second)
	c.Nodes[cut].Faults.Cut()
	c.Leader(t, 30*time.Second, cut)
	progress(10, "writes with the leader cut off")
	c.Nodes[cut].Faults.Heal()
	progress(5, "writes once it is healed")

	stalled := c.Leader(t, 30*time.Second)
	c.Nodes[stalled].Faults.Stall()
	c.Leader(t, 30*time.Second, stalled)
	progress(10, "writes with the leader stalled")
	c.Nodes[stalled].Faults.Heal()
	progress(5, "writes once it is healed")

	stopped := c.Leader(t, 30*time.Second)
	c.Stop(t, stopped)
	c.Leader(t, 30*time.Second, stopped)
	progress(10, "writes with the leader stopped")
	c.Restart(t, stopped)
	progress(10, "writes once it is back")
	close(stop)
	wg.Wait()

	// A write whose outcome was unknown is re-sent, the same envelope: the answer is its outcome.
	ctx := context.Background()
	for _, u := range unknowns {
		env := u.Request.(*concordv1.SubmitNoticeRequest).GetEnvelope()
		var n concordv1.Notice
		if err := proto.Unmarshal(env.GetPayload(), &n); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := writer.Resend(ctx, u)
		cancel()
		switch {
		case err == nil, errors.As(err, new(*client.UnverifiedReceiptError)):
			outcomes[n.GetNoticeId()] = wrote
		case errors.As(err, new(*client.OutcomeUnknownError)):
			t.Fatalf("re-sending notice %s to a healthy cluster: %v", n.GetNoticeId(), err)
		default:
			outcomes[n.GetNoticeId()] = refused
		}
	}

	logged := loggedNotices(t, c.Client(t, "observatory"))
	counts := map[writeOutcome]int{}
	for id, o := range outcomes {
		counts[o]++
		switch got := logged[id]; {
		case got > 1:
			t.Errorf("notice %s is logged %d times", id, got)
		case o == refused && got != 0:
			t.Errorf("notice %s was reported failed but is committed", id)
		case o != refused && got != 1:
			t.Errorf("notice %s was reported committed (outcome %d) but is not in the log", id, o)
		}
	}
	for id := range logged {
		if _, ok := outcomes[id]; !ok {
			t.Errorf("notice %s is in the log but no write made it", id)
		}
	}
	t.Logf("%d writes: %d verified, %d committed with their check unfinished, %d with an outcome unknown then re-sent, %d refused (%d by the rate limit); %d attempts without an answer sent again",
		len(outcomes), counts[wrote], counts[committed], len(unknowns), counts[refused], limited.Load(), resends.n.Load())
	if limited.Load() == 0 {
		t.Error("no write was refused by the rate limit: the test did not exercise it")
	}
	if resends.n.Load() == 0 {
		t.Error("no write attempt went unanswered: the test did not exercise failover")
	}
}

// resendCounter is a log handler that counts the client's re-sends of SubmitNotice after an
// attempt that got no answer.
type resendCounter struct{ n atomic.Int64 }

func (h *resendCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *resendCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *resendCounter) WithGroup(string) slog.Handler            { return h }

func (h *resendCounter) Handle(_ context.Context, r slog.Record) error {
	var method, code string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "grpc.method":
			method = a.Value.String()
		case "grpc.code":
			code = a.Value.String()
		}
		return true
	})
	if r.Message == "sending the call again" && method == concordv1.NoticeService_SubmitNotice_FullMethodName &&
		(code == codes.Unavailable.String() || code == codes.DeadlineExceeded.String()) {
		h.n.Add(1)
	}
	return nil
}

// loggedNotices reads the whole log as cl and counts each notice id's entries.
func loggedNotices(t *testing.T, cl *client.Client) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := cl.Log.GetEntries(ctx, &concordv1.GetEntriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return counts
		}
		if err != nil {
			t.Fatalf("read the log: %v", err)
		}
		for _, leaf := range resp.GetLeaves() {
			var e concordv1.LogEntry
			if err := proto.Unmarshal(leaf.GetEntry(), &e); err != nil {
				t.Fatal(err)
			}
			if e.GetStatement().GetPayloadType() != dsse.PayloadTypeNotice {
				continue
			}
			var n concordv1.Notice
			if err := proto.Unmarshal(e.GetStatement().GetPayload(), &n); err != nil {
				t.Fatal(err)
			}
			counts[n.GetNoticeId()]++
		}
	}
}
