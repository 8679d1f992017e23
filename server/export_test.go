package server

import (
	"context"

	"concord/server/fsm"
)

// ApplyCommand appends a raw command to the node's raft log, as its leader: tests commit with
// it entries that no service would build.
func ApplyCommand(ctx context.Context, s *Server, cmd []byte) (uint64, any, error) {
	return s.node.Apply(ctx, cmd)
}

// Halted is why the node's state machine stopped applying its log, or nil.
func Halted(s *Server) *fsm.Halt { return s.fsm.Halted() }
