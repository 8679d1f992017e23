package ratelimit

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"

	"google.golang.org/grpc/codes"
)

var (
	platform  = Caller{ID: "videoshare", Roles: []concordv1.Role{concordv1.Role_ROLE_OPERATOR}}
	authority = Caller{ID: "fr-pharos", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY}}
)

func newLimiter(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRequestsArePerPartner(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Default: Limits{Requests: 0.001, RequestBurst: 2}})
	for i := range 2 {
		if err := l.Charge(authority, 1, CostCall); err != nil {
			t.Fatalf("request %d within burst refused: %v", i, err)
		}
	}
	if err := l.Charge(authority, 1, CostCall); fault.CodeOf(err) != codes.ResourceExhausted {
		t.Fatalf("third request: got %v, want ResourceExhausted", err)
	}
	if err := l.Charge(platform, 1, CostCall); err != nil {
		t.Fatalf("another partner is limited by fr-pharos's bucket: %v", err)
	}
}

// TestWorkIsCharged: a partner's work budget, not its number of calls, bounds large batches,
// and a refusal says when to retry.
func TestWorkIsCharged(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Default: Limits{Work: 10_000, WorkBurst: 20_000}})
	batch := &concordv1.MatchRequest{}
	for range 100 {
		batch.Hashes = append(batch.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ})
	}
	cost := CostCall + Cost(batch) // 10 020 units
	if err := l.Charge(platform, 1, cost); err != nil {
		t.Fatal(err)
	}
	var f *fault.Error
	if err := l.Charge(platform, 1, cost); !errors.As(err, &f) || f.Code != codes.ResourceExhausted {
		t.Fatalf("second batch: got %v, want ResourceExhausted", err)
	}
	if f.RetryAfter <= 0 || f.RetryAfter > 2*time.Second {
		t.Fatalf("retry after %v, want within the second the bucket takes to refill", f.RetryAfter)
	}
	// A single exact lookup still passes: the bucket holds ~9 980 units.
	if err := l.Charge(platform, 1, CostCall+CostExact); err != nil {
		t.Fatalf("a small request after the refusal: %v", err)
	}
	// More than the burst can never pass: the caller must split it.
	if err := l.Charge(platform, 1, 30_000); fault.CodeOf(err) != codes.InvalidArgument {
		t.Fatalf("a request over the burst: got %v, want InvalidArgument", err)
	}
}

func TestCostWeighsTheWork(t *testing.T) {
	t.Parallel()
	exact := &concordv1.MatchRequest{Hashes: []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: make([]byte, 32)}}}
	pdq := &concordv1.MatchRequest{Hashes: []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: make([]byte, 32)}}}
	video := &concordv1.MatchRequest{Hashes: []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_PDQ_VIDEO, Value: make([]byte, 32*30)}}}
	if Cost(exact) != CostExact || Cost(pdq) != CostPDQ || Cost(video) != 30*CostPDQ {
		t.Fatalf("costs: exact %d, pdq %d, video of 30 frames %d", Cost(exact), Cost(pdq), Cost(video))
	}
	if Cost(&concordv1.MatchStreamRequest{Batch: pdq}) != CostPDQ {
		t.Fatal("a stream's batch is not charged as a batch")
	}
	// Dihedral matching is eight PDQ searches; it changes nothing for other kinds.
	dihedral := &concordv1.MatchRequest{Hashes: append(slices.Clone(pdq.Hashes), exact.Hashes[0], video.Hashes[0]), PdqDihedral: true}
	if got, want := Cost(dihedral), int64(8*CostPDQ+CostExact+30*CostPDQ); got != want {
		t.Fatalf("a dihedral batch of a PDQ, an exact and a 30-frame video hash costs %d, want %d", got, want)
	}
	big := &concordv1.Notice{Context: string(make([]byte, 64<<10))}
	if Cost(big) < 64*CostPerKiB {
		t.Fatalf("a 64 KiB notice costs %d", Cost(big))
	}
}

func TestLimitsByRoleAndPartner(t *testing.T) {
	t.Parallel()
	cfg := Config{
		Default:  Limits{Work: 100},
		Roles:    map[string]Limits{"OPERATOR": {Work: 1000, Streams: map[string]int{"MatchStream": 2}}, "AUDITOR": {Work: 5000}},
		Partners: map[string]Limits{"videoshare": {WorkBurst: 7}},
	}
	if err := cfg.Check(); err == nil {
		t.Fatal("a work burst below one call's cost passed the check")
	}
	cfg.Partners["videoshare"] = Limits{WorkBurst: 70_000}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Limits("fr-pharos", authority.Roles); got.Work != 100 || got.Requests != Defaults.Requests || got.Streams["MatchStream"] != Defaults.Streams["MatchStream"] {
		t.Fatalf("authority: %+v", got)
	}
	got := cfg.Limits("videoshare", platform.Roles)
	if got.Work != 1000 || got.WorkBurst != 70_000 || got.Streams["MatchStream"] != 2 || got.Streams["WatchNotices"] != Defaults.Streams["WatchNotices"] {
		t.Fatalf("videoshare: %+v", got)
	}
	both := cfg.Limits("x", []concordv1.Role{concordv1.Role_ROLE_OPERATOR, concordv1.Role_ROLE_AUDITOR})
	if both.Work != 5000 || both.Streams["MatchStream"] != Defaults.Streams["MatchStream"] {
		t.Fatalf("two roles: the most generous of each field, got %+v", both)
	}
	for _, bad := range []Config{
		{Roles: map[string]Limits{"KING": {}}},
		{Default: Limits{Streams: map[string]int{"Match": 1}}},
	} {
		if bad.Check() == nil {
			t.Errorf("%+v passed the check", bad)
		}
	}
}

func TestStreamsAreCapped(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Default: Limits{Streams: map[string]int{"WatchNotices": 2}}})
	r1, err := l.Open(platform, "WatchNotices")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Open(platform, "WatchNotices"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Open(platform, "WatchNotices"); fault.CodeOf(err) != codes.ResourceExhausted {
		t.Fatalf("third stream: got %v", err)
	}
	if _, err := l.Open(authority, "WatchNotices"); err != nil {
		t.Fatalf("another partner's streams: %v", err)
	}
	r1()
	r1() // releasing twice counts once
	if _, err := l.Open(platform, "WatchNotices"); err != nil {
		t.Fatalf("after closing one: %v", err)
	}
	if _, err := l.Open(platform, "WatchNotices"); err == nil {
		t.Fatal("a double release freed two streams")
	}
}

func TestWaitSlowsAStreamDown(t *testing.T) {
	t.Parallel()
	l := newLimiter(t, Config{Default: Limits{Work: 1_000_000, WorkBurst: 1000}})
	ctx := context.Background()
	if err := l.Wait(ctx, platform, 1, 1000); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := l.Wait(ctx, platform, 1, 1000); err != nil { // 1 ms of refill
		t.Fatal(err)
	}
	if time.Since(start) < 500*time.Microsecond {
		t.Fatal("the second message did not wait for the bucket")
	}
	slow := newLimiter(t, Config{Default: Limits{Work: 1, WorkBurst: 1000}})
	_ = slow.Wait(ctx, platform, 1, 1000)
	if err := slow.Wait(ctx, platform, 1, 1000); fault.CodeOf(err) != codes.ResourceExhausted {
		t.Fatalf("a wait over %v: got %v, want ResourceExhausted", MaxStreamWait, err)
	}
}

func TestOffAllowsAll(t *testing.T) {
	t.Parallel()
	for _, l := range []*Limiter{nil, newLimiter(t, Config{Off: true})} {
		for range 1000 {
			if err := l.Charge(platform, 1, 1<<40); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestFairServesPartnersInTurn: with one slot held and one partner's ten waiters queued first,
// another partner's waiter is served second, not eleventh.
func TestFairServesPartnersInTurn(t *testing.T) {
	t.Parallel()
	f := NewFair(1)
	joined := make(chan string, 16)
	f.queued = func(p string) { joined <- p }
	ctx := context.Background()
	if err := f.Acquire(ctx, "flooder"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	// enqueue starts a waiter for p and returns once it is queued: the order of arrival is what
	// the test is about.
	enqueue := func(p string) {
		wg.Go(func() {
			if err := f.Acquire(ctx, p); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, p)
			mu.Unlock()
			f.Release()
		})
		if got := <-joined; got != p {
			t.Fatalf("%s joined the queue, want %s", got, p)
		}
	}
	for range 10 {
		enqueue("flooder")
	}
	enqueue("bystander")
	f.Release()
	wg.Wait()
	if len(order) != 11 || order[1] != "bystander" {
		t.Fatalf("served in order %v: want the bystander second", order)
	}
	// A waiter whose context ends leaves the queue.
	if err := f.Acquire(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- f.Acquire(cctx, "b") }()
	<-joined
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	f.Release()
	if err := f.Acquire(ctx, "c"); err != nil || f.free != 0 || len(f.turn) != 0 {
		t.Fatalf("after a canceled waiter: err %v, free %d, turn %v", err, f.free, f.turn)
	}
}

// TestDefaultMatchBudget pins the figures README states for a platform at the defaults:
// 10 000 PDQ hashes a second sustained (a full batch always fits the burst), 1 000 000 exact
// hashes a second, and a full batch costs a call, so the request limit never binds first.
func TestDefaultMatchBudget(t *testing.T) {
	batch := func(kind concordv1.HashKind, n int) *concordv1.MatchRequest {
		req := &concordv1.MatchRequest{}
		for range n {
			req.Hashes = append(req.Hashes, &concordv1.Hash{Kind: kind, Value: make([]byte, 32)})
		}
		return req
	}
	pdq := Cost(batch(concordv1.HashKind_HASH_KIND_PDQ, 10_000)) + CostCall
	exact := Cost(batch(concordv1.HashKind_HASH_KIND_SHA256, 10_000)) + CostCall
	if perSecond := Defaults.Work / float64(pdq) * 10_000; perSecond < 9_990 || perSecond > 10_000 {
		t.Fatalf("default PDQ hashes a second: %.0f, README says 10 000", perSecond)
	}
	if pdq > Defaults.WorkBurst {
		t.Fatalf("a full PDQ batch costs %d, the burst is %d", pdq, Defaults.WorkBurst)
	}
	if perSecond := Defaults.Work / float64(exact) * 10_000; perSecond < 990_000 || perSecond > 1_000_000 {
		t.Fatalf("default exact hashes a second: %.0f, README says about 1 000 000", perSecond)
	}
	if calls := Defaults.Work / float64(exact); calls > Defaults.Requests {
		t.Fatalf("exact batches the work allows (%.0f/s) exceed the request limit (%.0f/s): the request limit would bind", calls, Defaults.Requests)
	}
}
