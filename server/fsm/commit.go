package fsm

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Applier commits a command through raft and returns the FSM's response after commit.
type Applier interface {
	Apply(ctx context.Context, cmd []byte) (index uint64, response any, err error)
}

// Commit encodes msg as a command of type t, commits it through raft, and returns the FSM's
// response, which must be a T, or the error the FSM refused the command with.
func Commit[T any](ctx context.Context, raft Applier, t MessageType, msg proto.Message) (T, error) {
	var zero T
	cmd, err := Encode(t, msg)
	if err != nil {
		return zero, err
	}
	_, resp, err := raft.Apply(ctx, cmd)
	if err != nil {
		return zero, err
	}
	switch r := resp.(type) {
	case T:
		return r, nil
	case error:
		return zero, r
	default:
		return zero, fmt.Errorf("%v command: unexpected FSM response %T, want %T", t, resp, zero)
	}
}
