package server_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server"
	"concord/server/fault"
	"concord/server/fsm"
	"concord/server/servertest"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestUndecodableEntryStopsTheStateMachine commits an entry that does not decode: the node
// applies nothing from there on (a valid notice committed after it included), reports
// NOT_SERVING, refuses every read and write with Unavailable naming the entry, shows the alarm
// to operators, and halts again at the same entry after a restart.
func TestUndecodableEntryStopsTheStateMachine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := servertest.Start(t, servertest.Options{Dir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fr := n.Client(t, "fr-pharos")
	before, err := fr.SubmitNotice(ctx, glorificationNotice("before the bad entry"))
	if err != nil {
		t.Fatal(err)
	}

	badIndex, resp, err := server.ApplyCommand(ctx, n.Server, []byte{byte(fsm.SubmitNoticeType), 0xff, 0xff, 0xff})
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := resp.(error); !ok || fault.CodeOf(e) != codes.Unavailable {
		t.Fatalf("the undecodable entry answered %v, want an Unavailable error", resp)
	}
	// A valid notice, committed after it, is not applied.
	env, err := fr.SignNotice(ctx, glorificationNotice("after the bad entry"))
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := fsm.Encode(fsm.SubmitNoticeType, &statev1.SubmitNotice{Envelope: env, SignerKeyId: env.GetSignatures()[0].GetKeyid(), At: timestamppb.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// (The halted node refuses to append it, as the FSM would refuse to apply it: see
	// fsm's TestApplyHaltsOnEntriesItCannotApply for an entry committed after a halt.)
	_, resp, err = server.ApplyCommand(ctx, n.Server, cmd)
	if err == nil {
		err = asError(resp)
	}
	if fault.CodeOf(err) != codes.Unavailable {
		t.Fatalf("a valid notice after the halt: %v, %v; want Unavailable", resp, err)
	}
	if n.Applied() >= badIndex {
		t.Fatalf("applied index %d, but the state machine halted at %d", n.Applied(), badIndex)
	}
	if h := server.Halted(n.Server); h == nil || h.Index != badIndex {
		t.Fatalf("halt = %v, want one at raft index %d", h, badIndex)
	}
	eventually(t, 10*time.Second, "health NOT_SERVING", func() error {
		if s := healthOf(t, n); s != healthpb.HealthCheckResponse_NOT_SERVING {
			return status.Errorf(codes.Unknown, "health %v", s)
		}
		return nil
	})
	// Reads and writes are refused, saying why.
	_, err = fr.Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: before.GetNotice().GetNoticeId()})
	wantHalted(t, err, badIndex)
	_, err = fr.SubmitNotice(ctx, glorificationNotice("refused"))
	wantHalted(t, err, badIndex)
	_, err = n.Client(t, "videoshare").Matches.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{sha256Hash("before the bad entry")}})
	wantHalted(t, err, badIndex)
	_, err = fr.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
	wantHalted(t, err, badIndex)
	// Operators see the alarm.
	members, err := n.Client(t, "hub-ops").Cluster.ListMembers(ctx, &concordv1.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	alarms := members.GetMembers()[0].GetAlarms()
	if len(alarms) != 1 || alarms[0].GetKind() != concordv1.AlarmKind_ALARM_KIND_HALTED || alarms[0].GetRaftIndex() != badIndex {
		t.Fatalf("ListMembers alarms = %v, want HALTED at %d", alarms, badIndex)
	}

	// A restart replays the log and halts at the same entry: it is never skipped.
	stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := n.Shutdown(stopCtx); err != nil {
		t.Fatal(err)
	}
	again := servertest.Start(t, servertest.Options{Dir: dir})
	if h := server.Halted(again.Server); h == nil || h.Index != badIndex {
		t.Fatalf("after a restart, halt = %v, want one at raft index %d", h, badIndex)
	}
	if s := healthOf(t, again); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after a restart, health %v, want NOT_SERVING", s)
	}
	_, err = again.Client(t, "fr-pharos").Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: before.GetNotice().GetNoticeId()})
	wantHalted(t, err, badIndex)
}

func asError(v any) error {
	err, _ := v.(error)
	return err
}

// wantHalted checks that a call was refused as Unavailable because the state machine halted at
// index.
func wantHalted(t *testing.T, err error, index uint64) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "HALTED at raft index "+itoa(index)) {
		t.Fatalf("got %v, want Unavailable naming the halt at raft index %d", err, index)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
