package server

import (
	"bytes"
	"concord/server/transparency"
	"context"

	"concord/server/cluster"
	"concord/server/fsm"
	"concord/server/integrity"

	"github.com/hashicorp/raft"
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

// ApplyLocally applies cmd to this node's state machine alone, as a node whose applying went
// wrong would: its state and log then differ from the other nodes'.
func ApplyLocally(s *Server, cmd []byte) any {
	return s.fsm.Apply(&raft.Log{Index: s.fsm.Applied(), Type: raft.LogCommand, Data: cmd})
}

// Alarms are the node's integrity alarms.
func Alarms(s *Server) []integrity.Alarm { return s.guard.Alarms() }

// CheckLog runs one comparison of the node's log with the other voters'.
func CheckLog(ctx context.Context, s *Server) (*cluster.LogCheck, error) {
	return s.cluster.CheckLog(ctx)
}

// WaitIndexMerges waits for the background merges of the node's match index.
func WaitIndexMerges(s *Server) { s.index.Current().WaitMerges() }

// WaitApplied waits until the node's state machine has applied index.
func WaitApplied(ctx context.Context, s *Server, index uint64) error {
	return s.fsm.WaitApplied(ctx, index)
}

// WitnessPushes is the last push's result for each witness with an endpoint, and a channel
// closed when the pusher's next round ends.
func WitnessPushes(s *Server) (map[string]transparency.PushStatus, <-chan struct{}) {
	return s.pusher.Observe()
}
