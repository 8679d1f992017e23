package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/authz"

	"google.golang.org/grpc/codes"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRefusalsAreSummedUp: a flood of refusals from one partner writes one line at once and one
// line with the count when the interval ends, not a line each.
func TestRefusalsAreSummedUp(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	l := newCallLog(slog.New(slog.NewTextHandler(&out, nil)), nil, time.Hour, "concord.example")
	ctx := authz.WithCaller(context.Background(), &authz.Caller{PartnerID: "flooder"})
	other := authz.WithCaller(context.Background(), &authz.Caller{PartnerID: "bystander"})
	for range 1000 {
		l.finished(ctx, "grpc", "/concord.v1.MatchService/Match", nil, codes.ResourceExhausted, "over its limit", time.Millisecond, nil, nil)
	}
	l.finished(other, "grpc", "/concord.v1.MatchService/Match", nil, codes.PermissionDenied, "requires role OPERATOR", time.Millisecond, nil, nil)
	// The interval's end (an hour away, its timer scheduled by the first refusal) sums them up.
	l.mu.Lock()
	scheduled := l.pending
	l.mu.Unlock()
	if !scheduled {
		t.Fatal("no summary scheduled after a refusal")
	}
	l.summarise()
	if !strings.Contains(out.String(), "more=999") {
		t.Fatalf("no summary line:\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines (the flooder's first refusal, the bystander's, the flooder's count), got %d:\n%s", len(lines), out.String())
	}
	for _, want := range []string{"partner=flooder", "partner=bystander", "more=999"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no line names %s:\n%s", want, out.String())
		}
	}
}

// TestCallLines: a call's line names its caller, roles, code, duration and the ids its messages
// name; the audit stream has every accepted write and the refusals, not the reads.
func TestCallLines(t *testing.T) {
	t.Parallel()
	var out, audit syncBuffer
	l := newCallLog(slog.New(slog.NewJSONHandler(&out, nil)), slog.New(slog.NewJSONHandler(&audit, nil)), time.Hour, "concord.example")
	ctx := authz.WithCaller(context.Background(), &authz.Caller{PartnerID: "fr-pharos",
		Partner: &concordv1.Partner{Id: "fr-pharos", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY}}})
	const noticeID = "01JAAAAAAAFRPHAR0SAAAAAAAA"
	resp := &concordv1.SubmitNoticeResponse{
		Notice: &concordv1.NoticeRecord{Notice: &concordv1.Notice{NoticeId: noticeID},
			Envelope: &concordv1.Envelope{Signatures: []*concordv1.Signature{{Keyid: "key-in-envelope", Sig: []byte("sig")}}}},
		Receipt: &concordv1.Receipt{Index: 41, Checkpoint: &concordv1.Checkpoint{}},
	}
	l.finished(ctx, "grpc", "/concord.v1.NoticeService/SubmitNotice", nil, codes.OK, "", time.Millisecond, &concordv1.SubmitNoticeRequest{}, resp)
	l.finished(ctx, "grpc", "/concord.v1.NoticeService/GetNotice", nil, codes.OK, "", time.Millisecond, &concordv1.GetNoticeRequest{NoticeId: noticeID}, nil)
	l.finished(ctx, "connect", "/concord.v1.NoticeService/WithdrawNotice", nil, codes.FailedPrecondition, "already withdrawn", time.Millisecond, nil, nil)

	type line struct {
		Msg, Method, Partner, Roles, Code string
		IDs                               map[string]string
	}
	parse := func(s string) []line {
		var lines []line
		for raw := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(raw), &m); err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
			l := line{Msg: m["msg"].(string), Method: m["method"].(string), Partner: m["partner"].(string), Roles: m["roles"].(string), Code: m["code"].(string)}
			if ids, ok := m["ids"].(map[string]any); ok {
				l.IDs = map[string]string{}
				for k, v := range ids {
					l.IDs[k] = v.(string)
				}
			}
			if _, ok := m["duration"]; !ok {
				t.Errorf("no duration: %s", raw)
			}
			lines = append(lines, l)
		}
		return lines
	}
	write := line{Msg: "finished call", Method: "/concord.v1.NoticeService/SubmitNotice", Partner: "fr-pharos", Roles: "authority", Code: "OK",
		IDs: map[string]string{"notice_id": noticeID, "log_index": "41"}}
	// The message carries no reason here: the status message is at the end of the line.
	refused := line{Msg: "refused call", Method: "/concord.v1.NoticeService/WithdrawNotice", Partner: "fr-pharos", Roles: "authority", Code: "FailedPrecondition"}
	read := line{Msg: "finished call", Method: "/concord.v1.NoticeService/GetNotice", Partner: "fr-pharos", Roles: "authority", Code: "OK", IDs: map[string]string{"notice_id": noticeID}}
	// The default level leaves the read out of the log; the audit stream leaves it out whatever.
	if got := parse(out.String()); !reflect.DeepEqual(got, []line{write, refused}) {
		t.Errorf("log:\n%+v\nwant\n%+v", got, []line{write, refused})
	}
	write.Msg = "accepted write"
	if got := parse(audit.String()); !reflect.DeepEqual(got, []line{write, refused}) {
		t.Errorf("audit:\n%+v\nwant\n%+v", got, []line{write, refused})
	}
	var debug syncBuffer
	dl := newCallLog(slog.New(slog.NewJSONHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug})), nil, time.Hour, "concord.example")
	dl.finished(ctx, "grpc", "/concord.v1.NoticeService/GetNotice", nil, codes.OK, "", time.Millisecond, &concordv1.GetNoticeRequest{NoticeId: noticeID}, nil)
	if got := parse(debug.String()); !reflect.DeepEqual(got, []line{read}) {
		t.Errorf("a read at debug level:\n%+v\nwant\n%+v", got, []line{read})
	}
}

func TestTouchedIDsAreBounded(t *testing.T) {
	t.Parallel()
	resp := &concordv1.ListNoticesResponse{NextPageToken: "sealed-token"}
	for i := range 40 {
		resp.Notices = append(resp.Notices, &concordv1.NoticeRecord{Notice: &concordv1.Notice{NoticeId: fmt.Sprintf("notice-%02d", i)}})
	}
	ids := touchedIDs(nil, resp)
	attrs := ids.Value.Group()
	if len(attrs) != 2 || attrs[0].Key != "notice_id" || attrs[1].Key != "truncated" {
		t.Fatalf("ids %v, want notice_id and truncated", attrs)
	}
	if got := strings.Count(attrs[0].Value.String(), ","); got != maxTouchedValues-1 {
		t.Errorf("%d notice ids, want %d", got+1, maxTouchedValues)
	}
	if strings.Contains(ids.String(), "sealed-token") {
		t.Errorf("the page token is logged: %v", ids)
	}
	if ids := touchedIDs(nil, nil); ids.Key != "" {
		t.Errorf("no message: %v", ids)
	}
}
