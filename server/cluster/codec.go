package cluster

import (
	"errors"
	"fmt"

	nodev1 "concord/gen/concord/node/v1"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"
	"concord/server/state"

	"google.golang.org/grpc/codes"
)

// encodeResponse carries the FSM's response to a command (see fsm.Commit) to the follower that
// forwarded it.
func encodeResponse(index uint64, resp any) (*nodev1.ApplyResponse, error) {
	out := &nodev1.ApplyResponse{Index: index}
	switch r := resp.(type) {
	case nil:
		out.Result = &nodev1.ApplyResponse_Nothing{Nothing: &nodev1.Nothing{}}
	case *statev1.AppliedChange:
		out.Result = &nodev1.ApplyResponse_AppliedChange{AppliedChange: r}
	case *concordv1.NoticeRecord:
		out.Result = &nodev1.ApplyResponse_NoticeRecord{NoticeRecord: r}
	case *state.StatementResult:
		out.Result = &nodev1.ApplyResponse_StatementResult{StatementResult: &nodev1.StatementResult{
			Record: r.Record, Index: r.Index, LogIndex: r.LogIndex}}
	case *concordv1.ActionRecord:
		out.Result = &nodev1.ApplyResponse_ActionRecord{ActionRecord: r}
	case error:
		var f *fault.Error
		if errors.As(r, &f) {
			out.Result = &nodev1.ApplyResponse_Refusal{Refusal: &nodev1.Refusal{Code: uint32(f.Code), Message: f.Msg}}
		} else {
			out.Result = &nodev1.ApplyResponse_Refusal{Refusal: &nodev1.Refusal{Code: uint32(codes.Internal), Message: r.Error()}}
		}
	default:
		return nil, fmt.Errorf("cluster: the FSM answered index %d with a %T, which cannot be forwarded", index, resp)
	}
	return out, nil
}

// decodeResponse turns a forwarded response back into the Go value the FSM returned on the
// leader, so that services cannot tell a forwarded write from a local one.
func decodeResponse(resp *nodev1.ApplyResponse) (any, error) {
	switch r := resp.GetResult().(type) {
	case *nodev1.ApplyResponse_Nothing:
		return nil, nil
	case *nodev1.ApplyResponse_AppliedChange:
		return r.AppliedChange, nil
	case *nodev1.ApplyResponse_NoticeRecord:
		return r.NoticeRecord, nil
	case *nodev1.ApplyResponse_StatementResult:
		return &state.StatementResult{Record: r.StatementResult.GetRecord(), Index: r.StatementResult.GetIndex(), LogIndex: r.StatementResult.GetLogIndex()}, nil
	case *nodev1.ApplyResponse_ActionRecord:
		return r.ActionRecord, nil
	case *nodev1.ApplyResponse_Refusal:
		code := codes.Code(r.Refusal.GetCode())
		if code == codes.Internal || code == codes.OK || code > codes.Unauthenticated {
			// A failure on the leader, not a rule: the client gets Internal, this node's log
			// the detail.
			return fmt.Errorf("the leader could not apply raft index %d: %s", resp.GetIndex(), r.Refusal.GetMessage()), nil
		}
		return &fault.Error{Code: code, Msg: r.Refusal.GetMessage()}, nil
	}
	return nil, fmt.Errorf("cluster: the leader answered raft index %d with no result", resp.GetIndex())
}
