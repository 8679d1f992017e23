package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/servertest"

	"concord/internal/mtls"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
)

// TestWatchStartedAtTheEndGetsItsCursorAtOnce: a stream started at the feed's end (no cursor,
// not from the start) begins with a heartbeat carrying that end's cursor, long before its first
// heartbeat is due; resumed from it after a break, it gets what was committed meanwhile.
func TestWatchStartedAtTheEndGetsItsCursorAtOnce(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	fr := n.Client(t, "fr-pharos")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 2 {
		if _, err := fr.SubmitNotice(ctx, glorificationNotice()); err != nil {
			t.Fatal(err)
		}
	}
	platform := n.Client(t, "videoshare")
	streamCtx, stop := context.WithCancel(ctx)
	stream, err := platform.Notices.WatchNotices(streamCtx, &concordv1.WatchNoticesRequest{HeartbeatSeconds: 300})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	hb := first.GetHeartbeat()
	if hb == nil || hb.GetCursor() == 0 {
		t.Fatalf("first message %v, want a heartbeat with the feed's end cursor", first)
	}
	stop() // the stream breaks before any event; one is committed meanwhile
	rec, err := fr.SubmitNotice(ctx, glorificationNotice())
	if err != nil {
		t.Fatal(err)
	}
	end := hb.GetCursor()
	resumed, err := platform.Notices.WatchNotices(ctx, &concordv1.WatchNoticesRequest{After: &end, HeartbeatSeconds: 300})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := resumed.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if ev := msg.GetEvent(); ev == nil || ev.GetNoticeId() != rec.GetNotice().GetNoticeId() || ev.GetCursor() <= end {
		t.Fatalf("resumed after %d: %v, want the notice committed during the break", end, msg)
	}
}

// TestWatchResumes: a watcher disconnects mid-stream, more notices come, it reconnects with its
// cursor and misses nothing; then the same across a restart of the server.
func TestWatchResumes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := servertest.Start(t, servertest.Options{Dir: dir})
	fr := n.Client(t, "fr-pharos")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	submit := func(fr interface {
		SubmitNotice(context.Context, *concordv1.Notice) (*concordv1.NoticeRecord, error)
	}, k int) []string {
		var ids []string
		for range k {
			rec, err := fr.SubmitNotice(ctx, glorificationNotice())
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, rec.GetNotice().GetNoticeId())
		}
		return ids
	}
	streamCtx, stop := context.WithCancel(ctx)
	w := watch(t, streamCtx, n.Client(t, "videoshare"), &concordv1.WatchNoticesRequest{})
	first := submit(fr, 3)
	var cursor uint64
	for _, id := range first {
		ev := w.expect(t, concordv1.NoticeEventType_NOTICE_EVENT_TYPE_NEW, id)
		if ev.GetCursor() <= cursor {
			t.Fatalf("cursor %d after %d", ev.GetCursor(), cursor)
		}
		cursor = ev.GetCursor()
	}
	stop() // disconnect

	missed := submit(fr, 4)
	w = watch(t, ctx, n.Client(t, "videoshare"), &concordv1.WatchNoticesRequest{After: &cursor})
	for _, id := range missed {
		cursor = w.expect(t, concordv1.NoticeEventType_NOTICE_EVENT_TYPE_NEW, id).GetCursor()
	}
	select {
	case ev := <-w.events:
		t.Fatalf("an event sent twice or out of nowhere: %v", ev)
	case <-time.After(200 * time.Millisecond):
	}

	// Restart the server on the same data; events committed meanwhile are not lost.
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	if err := n.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	scancel()
	n2 := servertest.Start(t, servertest.Options{Dir: dir})
	afterRestart := submit(n2.Client(t, "fr-pharos"), 2)
	w = watch(t, ctx, n2.Client(t, "videoshare"), &concordv1.WatchNoticesRequest{After: &cursor})
	for _, id := range afterRestart {
		w.expect(t, concordv1.NoticeEventType_NOTICE_EVENT_TYPE_NEW, id)
	}
	// And from the start, every notice once, in order.
	all := watch(t, ctx, n2.Client(t, "videoshare"), &concordv1.WatchNoticesRequest{FromStart: true})
	for _, id := range append(append(first, missed...), afterRestart...) {
		all.expect(t, concordv1.NoticeEventType_NOTICE_EVENT_TYPE_NEW, id)
	}
}

// TestSlowWatcherHoldsNobodyBack: a watcher that never reads does not delay submissions or
// another watcher; once too far behind it is told to resume.
func TestSlowWatcherHoldsNobodyBack(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{FeedMaxLag: 50})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fr := n.Client(t, "fr-pharos")

	// The slow watcher opens its stream and reads nothing for a few seconds. Its connection has a fixed 64 KiB
	// window (no growth by bandwidth estimation); with the server's 64 KiB write quota, about
	// 120 events of 1 KiB fill them, and the server stops sending to it.
	conf, err := mtls.ClientConfig(n.PartnerTLS("socialnet"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(conf)),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	slow, err := concordv1.NewNoticeServiceClient(conn).WatchNotices(ctx, &concordv1.WatchNoticesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fast := watch(t, ctx, n.Client(t, "videoshare"), &concordv1.WatchNoticesRequest{})

	const notices = 400
	var wg sync.WaitGroup
	var worst time.Duration
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range notices {
			content := make([]string, 10)
			for k := range content {
				content[k] = time.Now().String() + string(rune('a'+i%26)) + string(rune(k))
			}
			start := time.Now()
			if _, err := fr.SubmitNotice(ctx, glorificationNotice(content...)); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			worst = max(worst, time.Since(start))
			mu.Unlock()
		}
	}()
	for range notices {
		fast.next(t)
	}
	wg.Wait()
	if worst > 5*time.Second {
		t.Fatalf("a submission took %v with a stalled watcher", worst)
	}
	time.Sleep(1500 * time.Millisecond) // the slow watcher's blocked send now counts as a stall
	// Now the slow one reads: it is told it fell too far behind, with the cursor to resume from.
	var code codes.Code
	got := 0
	for {
		msg, err := slow.Recv()
		if err == nil && msg.GetEvent() != nil {
			got++
		}
		if err != nil {
			t.Logf("slow watcher received %d of %d events, then %v", got, notices, err)
			code = codeOf(err)
			if code != codes.Aborted {
				t.Fatalf("slow watcher ended with %v, want ABORTED", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("after=%d", got)) {
				t.Fatalf("ABORTED does not give the cursor to resume from (%d): %v", got, err)
			}
			break
		}
	}
	// Resuming there gives the next event.
	after := uint64(got)
	resumed := watch(t, ctx, n.Client(t, "socialnet"), &concordv1.WatchNoticesRequest{After: &after})
	if ev := resumed.next(t); ev.GetCursor() != after+1 {
		t.Fatalf("resumed at cursor %d, want %d", ev.GetCursor(), after+1)
	}
}
