package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	concordv1 "concord/gen/concord/v1"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func init() {
	register(command{name: "watch", summary: "print notice events live, resuming after disconnects", run: runWatch})
}

func runWatch(ctx context.Context, args []string) error {
	fs := newFlags("watch", "watch [flags]", `
Follows the live feed of the notices you may see: new notices (and where they are recognised),
endorsements, objections, withdrawals (with the reinstate instruction) and supersessions, each
as soon as it is committed. After a disconnect or a node restart it resumes from the last event
received, so nothing is missed; the cursor of each event is printed, and --after resumes a
later run. Stop with Ctrl-C.`, `
concord watch --as videoshare --jurisdiction FR,DE
concord watch --as videoshare --after 1532 --json`)
	var cf clientFlags
	cf.register(fs)
	after := fs.Int64("after", -1, "resume after this cursor (default: only new events)")
	fromStart := fs.Bool("from-start", false, "replay the whole feed first")
	var jurisdictions, categories listFlag
	fs.Var(&jurisdictions, "jurisdiction", "only notices covered in these jurisdictions")
	fs.Var(&categories, "category", "only notices with these categories")
	heartbeat := fs.Duration("heartbeat", 15*time.Second, "interval of the hub's heartbeats")
	count := fs.Int("count", 0, "exit after this many events (default: follow until Ctrl-C)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *count < 0 {
		return usageErrorf("--count %d: want a number of events, or 0 to follow until Ctrl-C", *count)
	}
	cats, err := parseCategories(categories)
	if err != nil {
		return err
	}
	req := &concordv1.WatchNoticesRequest{Categories: cats, FromStart: *fromStart, HeartbeatSeconds: uint32(heartbeat.Seconds())}
	for _, j := range jurisdictions {
		req.Jurisdictions = append(req.Jurisdictions, strings.ToUpper(j))
	}
	if *after >= 0 {
		a := uint64(*after)
		req.After = &a
	}
	c, err := cf.dial(false)
	if err != nil {
		return err
	}
	defer c.Close()
	backoff := time.Second
	left := *count
	for {
		stream, err := c.Notices.WatchNotices(ctx, req)
		if err == nil {
			err = readFeed(stream, req, cf.json, os.Stdout, &left)
		}
		if errors.Is(err, errEnoughEvents) {
			return nil
		}
		if ctx.Err() != nil {
			return nil // Ctrl-C
		}
		st, _ := status.FromError(err)
		switch st.Code() {
		case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded, codes.Internal, codes.Unknown:
			cursor := "the start"
			if req.After != nil {
				cursor = fmt.Sprint(req.GetAfter())
			}
			fmt.Fprintf(os.Stderr, "watch interrupted (%s); resuming after %s in %v\n", st.Message(), cursor, backoff)
		default:
			return callError("watch", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// errEnoughEvents ends a watch that printed the events --count asked for.
var errEnoughEvents = errors.New("enough events")

// readFeed prints events until the stream ends, advancing req.After past every one. With *left
// above zero, it returns errEnoughEvents once it printed that many.
func readFeed(stream interface {
	Recv() (*concordv1.WatchNoticesResponse, error)
}, req *concordv1.WatchNoticesRequest, asJSON bool, w io.Writer, left *int) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return status.Error(codes.Unavailable, "the hub closed the stream")
		}
		if err != nil {
			return err
		}
		var cursor uint64
		switch m := msg.GetMessage().(type) {
		case *concordv1.WatchNoticesResponse_Event:
			cursor = m.Event.GetCursor()
			if asJSON {
				b, err := protojsonMarshal(m.Event)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "%s\n", b)
			} else {
				printEvent(w, m.Event)
			}
		case *concordv1.WatchNoticesResponse_Heartbeat:
			cursor = m.Heartbeat.GetCursor()
		}
		req.After = &cursor
		req.FromStart = false
		if _, event := msg.GetMessage().(*concordv1.WatchNoticesResponse_Event); event && *left > 0 {
			if *left--; *left == 0 {
				return errEnoughEvents
			}
		}
	}
}

func printEvent(w io.Writer, ev *concordv1.NoticeEvent) {
	var parts []string
	for _, js := range ev.GetChanges() {
		s := js.GetJurisdiction() + " " + enumName(js.GetStatus(), "ADOPTION_STATUS_")
		if js.GetActionDeadline() != nil {
			s += " by " + formatTS(js.GetActionDeadline())
		}
		parts = append(parts, s)
	}
	extra := ""
	switch ev.GetType() {
	case concordv1.NoticeEventType_NOTICE_EVENT_TYPE_WITHDRAWN:
		extra = "  reinstate: no"
		if ev.GetReinstate() {
			extra = "  REINSTATE what you removed"
		}
	case concordv1.NoticeEventType_NOTICE_EVENT_TYPE_SUPERSEDED:
		extra = "  superseded by " + ev.GetSupersededBy()
	}
	fmt.Fprintf(w, "%s  #%d  %-10s %s  by %s  %s%s\n", formatTS(ev.GetAt()), ev.GetCursor(),
		enumName(ev.GetType(), "NOTICE_EVENT_TYPE_"), ev.GetNoticeId(), ev.GetBy(), strings.Join(parts, "; "), extra)
}
