package server

import (
	"bytes"
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

// Fingerprint is the node's state, serialized, with its log's size and root: two nodes with
// the same fingerprint hold the same state and log.
func Fingerprint(s *Server) (state []byte, size int64, root [32]byte, err error) {
	c, err := s.fsm.Capture()
	if err != nil {
		return nil, 0, root, err
	}
	var buf bytes.Buffer
	if err := c.State.Persist(&buf); err != nil {
		return nil, 0, root, err
	}
	return buf.Bytes(), c.LogSize, c.LogRoot, nil
}
