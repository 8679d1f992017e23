package notice

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/server/fault"
	"concord/server/signed"
	"concord/server/state"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Feed limits.
const (
	defaultHeartbeat = 15 * time.Second
	// readBatch is how many events a watcher reads from the store at a time.
	readBatch = 256
	// DefaultMaxLag is how far (in events) a stalled watcher may fall behind the feed's end
	// before it is told to resume from its cursor: a watcher whose last send waited more than
	// stallAfter for it to read is stalled; one reading a backlog at full speed is not.
	DefaultMaxLag = 100_000
	stallAfter    = time.Second
)

// watch streams notice events to the caller (see WatchNotices in notice.proto). It reads the feed
// from consistent snapshots of the store at its own pace: a slow watcher holds back nobody.
func (s *Service) watch(ctx context.Context, req *concordv1.WatchNoticesRequest, send func(*concordv1.WatchNoticesResponse) error) error {
	c, err := signed.Caller(ctx)
	if err != nil {
		return err
	}
	last, _, err := s.state().LastCursor()
	if err != nil {
		return err
	}
	after := last
	switch {
	case req.After != nil:
		after = req.GetAfter()
		if after > last {
			return fault.Invalid("after: cursor %d is beyond the feed, which ends at %d: pass the cursor of the last event you received", after, last)
		}
	case req.GetFromStart():
		after = 0
	}
	heartbeat := defaultHeartbeat
	if hs := req.GetHeartbeatSeconds(); hs > 0 {
		heartbeat = time.Duration(hs) * time.Second
	}
	timer := time.NewTimer(heartbeat)
	defer timer.Stop()
	match := watchFilter(c.PartnerID, req)
	w := s.openWatcher(c.PartnerID, after)
	defer s.closeWatcher(w)
	if req.After == nil && !req.GetFromStart() {
		// Started at the end: the caller has no cursor yet. Without one, a stream that broke
		// before the first event or heartbeat would resume at the end it then finds, and miss
		// what was committed in between.
		if err := send(&concordv1.WatchNoticesResponse{Message: &concordv1.WatchNoticesResponse_Heartbeat{
			Heartbeat: &concordv1.Heartbeat{Cursor: after, At: timestamppb.New(s.now())}}}); err != nil {
			return err
		}
	}
	stalled := false
	for {
		st := s.state()
		_, changed, err := st.LastCursor()
		if err != nil {
			return err
		}
		var batch []*concordv1.NoticeEvent
		if err := st.Events(after, func(ev *concordv1.NoticeEvent) bool {
			batch = append(batch, ev)
			return len(batch) < readBatch
		}); err != nil {
			return err
		}
		for _, ev := range batch {
			// A watcher that was stuck in its last send, and has fallen far behind meanwhile, is
			// told to resume rather than be fed a backlog it cannot keep up with.
			if stalled {
				if end, _, err := st.LastCursor(); err == nil && end > after && end-after > s.maxLag() {
					return fault.Aborted("this watcher stalled %d events behind the feed: resume with after=%d on a new stream", end-after, after)
				}
			}
			after = ev.GetCursor()
			w.after.Store(after)
			rec, err := st.NoticeRow(ev.GetNoticeId()) // read-only: Summary copies what it sends
			if err != nil {
				return err
			}
			if rec == nil || !match(rec) {
				continue
			}
			out := proto.CloneOf(ev)
			out.Notice = Summary(rec, s.now())
			sent := time.Now()
			if err := send(&concordv1.WatchNoticesResponse{Message: &concordv1.WatchNoticesResponse_Event{Event: out}}); err != nil {
				return err
			}
			stalled = time.Since(sent) > stallAfter
			resetTimer(timer, heartbeat)
		}
		if len(batch) == readBatch {
			continue // more to read before waiting
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-s.stopping():
			return fault.Unavailable("the node is shutting down: resume with after=%d on another node or later", after)
		case <-changed:
		case <-st.AbandonCh():
		case <-timer.C:
			if err := send(&concordv1.WatchNoticesResponse{Message: &concordv1.WatchNoticesResponse_Heartbeat{
				Heartbeat: &concordv1.Heartbeat{Cursor: after, At: timestamppb.New(s.now())}}}); err != nil {
				return err
			}
			timer.Reset(heartbeat)
		}
	}
}

// watcher is one open feed stream: its partner and the cursor of the last event it read.
type watcher struct {
	partner string
	after   atomic.Uint64
}

func (s *Service) openWatcher(partner string, after uint64) *watcher {
	w := &watcher{partner: partner}
	w.after.Store(after)
	s.watchersMu.Lock()
	defer s.watchersMu.Unlock()
	if s.watchers == nil {
		s.watchers = map[*watcher]struct{}{}
	}
	s.watchers[w] = struct{}{}
	return w
}

func (s *Service) closeWatcher(w *watcher) {
	s.watchersMu.Lock()
	defer s.watchersMu.Unlock()
	delete(s.watchers, w)
}

// WatcherLag is one partner's open feed streams: how many, and how many events its slowest has
// yet to read.
type WatcherLag struct {
	Open   int
	MaxLag uint64
}

// Watchers returns the feed's last cursor and, per partner, its open feed streams.
func (s *Service) Watchers() (end uint64, byPartner map[string]WatcherLag) {
	end, _, _ = s.state().LastCursor()
	byPartner = map[string]WatcherLag{}
	s.watchersMu.Lock()
	defer s.watchersMu.Unlock()
	for w := range s.watchers {
		wl := byPartner[w.partner]
		wl.Open++
		if after := w.after.Load(); end > after {
			wl.MaxLag = max(wl.MaxLag, end-after)
		}
		byPartner[w.partner] = wl
	}
	return end, byPartner
}

// stopping is closed when the node shuts down, so that streams end instead of holding the
// shutdown back.
func (s *Service) stopping() <-chan struct{} {
	if s.Stopping == nil {
		return nil
	}
	return s.Stopping
}

func (s *Service) maxLag() uint64 {
	if s.MaxLag > 0 {
		return s.MaxLag
	}
	return DefaultMaxLag
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	t.Reset(d)
}

// watchFilter returns whether partner, with req's filters, receives the events of a notice.
func watchFilter(partner string, req *concordv1.WatchNoticesRequest) func(*concordv1.NoticeRecord) bool {
	return func(rec *concordv1.NoticeRecord) bool {
		if !state.NoticeVisibleTo(rec, partner) {
			return false
		}
		if cs := req.GetCategories(); len(cs) > 0 && !slices.ContainsFunc(rec.GetNotice().GetCategories(), func(c concordv1.Category) bool { return slices.Contains(cs, c) }) {
			return false
		}
		if js := req.GetJurisdictions(); len(js) > 0 {
			covered := false
			for _, st := range rec.GetJurisdictions() {
				if slices.Contains(js, st.GetJurisdiction()) && st.GetStatus() != concordv1.AdoptionStatus_ADOPTION_STATUS_NOT_COVERED {
					covered = true
					break
				}
			}
			if !covered {
				return false
			}
		}
		return true
	}
}

// GRPC is the service for the gRPC port.
func (s *Service) GRPC() concordv1.NoticeServiceServer { return grpcNotice{s} }

// Connect is the service for the HTTPS port.
func (s *Service) Connect() concordv1connect.NoticeServiceHandler { return connectNotice{s} }

type grpcNotice struct{ *Service }

func (g grpcNotice) WatchNotices(req *concordv1.WatchNoticesRequest, stream grpc.ServerStreamingServer[concordv1.WatchNoticesResponse]) error {
	return g.watch(stream.Context(), req, stream.Send)
}

type connectNotice struct{ *Service }

func (c connectNotice) WatchNotices(ctx context.Context, req *concordv1.WatchNoticesRequest, stream concordv1connect.NoticeServiceWatchNoticesServerStream) error {
	return c.watch(ctx, req, stream.Send)
}
