package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	nodev1 "concord/gen/concord/node/v1"
	"concord/internal/atomicfile"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MembersFile, in a node's data directory, lists the cluster's members as the node last saw
// them: where to find the others when the node must be repaired from them and its own raft
// state is what is damaged. It is a hint only: the nodes it names prove who they are with their
// node certificates.
const MembersFile = "members.json"

// KnownMember is a member as MembersFile records it.
type KnownMember struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raft_address"`
}

// ReadMembers returns the members recorded in dataDir (none if there is no readable record).
func ReadMembers(dataDir string) []KnownMember {
	b, err := os.ReadFile(filepath.Join(dataDir, MembersFile))
	if err != nil {
		return nil
	}
	var ms []KnownMember
	if json.Unmarshal(b, &ms) != nil {
		return nil
	}
	return ms
}

// RecordMembers keeps the current configuration's members in MembersFile.
func (n *Node) RecordMembers() {
	if servers, err := n.raft.Configuration(); err == nil {
		n.recordMembers(servers)
	}
}

// recordMembers keeps the configuration's members in MembersFile when they changed.
func (n *Node) recordMembers(servers []raft.Server) {
	if n.dataDir == "" || n.Standalone() {
		return
	}
	n.recordMu.Lock()
	defer n.recordMu.Unlock()
	ms := make([]KnownMember, 0, len(servers))
	for _, s := range servers {
		ms = append(ms, KnownMember{ID: string(s.ID), RaftAddress: string(s.Address)})
	}
	if slices.Equal(ms, n.recorded) {
		return
	}
	b, err := json.MarshalIndent(ms, "", "  ")
	if err != nil {
		return
	}
	if err := atomicfile.WriteFile(filepath.Join(n.dataDir, MembersFile), append(b, '\n')); err != nil {
		n.logger.Warn("cannot record the cluster's members", "err", err)
		return
	}
	n.recorded = ms
}

// Rejoin asks the cluster to take this node back after it set its raft state aside: through the
// raft port of each member it knows (but itself), then through the gRPC ports of join, until one
// forwards the request to the leader, which removes the node's old membership and adds it again.
// Call it before this node's raft starts: until its old membership is removed it must not vote
// with an empty log. port is this node's raft port.
func Rejoin(ctx context.Context, port *Port, id string, known []KnownMember, join []string, logger *slog.Logger) error {
	var raftAddrs []string
	for _, m := range known {
		if m.ID != id && m.RaftAddress != "" {
			raftAddrs = append(raftAddrs, m.RaftAddress)
		}
	}
	if len(raftAddrs) == 0 && len(join) == 0 {
		return errors.New("cluster: no member to be repaired from: this node recorded none, and has no --join address; give it --join with a member's gRPC address")
	}
	ps := newPeers(port, nil)
	defer ps.close()
	req := &nodev1.JoinRequest{NodeId: id, RaftAddress: port.Addr(), Rejoin: true}
	var last error
	for round := 0; ; round++ {
		for _, addr := range raftAddrs {
			c, err := ps.client(addr)
			if err == nil {
				actx, cancel := context.WithTimeout(ctx, joinAttemptTimeout)
				_, err = c.Join(actx, req)
				cancel()
			}
			if err == nil {
				logger.Info("the cluster took this node back", "through", addr, "node", id)
				return nil
			}
			if code := status.Code(err); code == codes.PermissionDenied || code == codes.InvalidArgument {
				return fmt.Errorf("rejoin through %s: %s", addr, status.Convert(err).Message())
			}
			last = fmt.Errorf("through %s: %w", addr, err)
		}
		for _, addr := range join {
			err := joinOnce(ctx, addr, port.node.PublicConfig(), req)
			if err == nil {
				logger.Info("the cluster took this node back", "through", addr, "node", id)
				return nil
			}
			last = fmt.Errorf("through %s: %w", addr, err)
		}
		if round == 0 || round%10 == 0 {
			logger.Warn("waiting for the cluster to take this node back", "err", last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rejoin the cluster: %w (last attempt %v)", ctx.Err(), last)
		case <-time.After(joinRetry):
		}
	}
}
