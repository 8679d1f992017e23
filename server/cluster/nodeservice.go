package cluster

import (
	"context"

	nodev1 "concord/gen/concord/node/v1"
	"concord/internal/identity"
	"concord/server/authz"
	"concord/server/fault"
)

// NodeService implements the nodes' internal service. The authorization policy lets only node
// certificates call it.
type NodeService struct {
	nodev1.UnimplementedNodeServiceServer
	node *Node
}

// NodeService returns the node's internal service, served on its raft port.
func (n *Node) NodeService() *NodeService { return &NodeService{node: n} }

// JoinService is the part of NodeService a node's gRPC port serves: Join alone, for new nodes,
// which know the gRPC address of a member. Everything else stays on the raft port.
func (n *Node) JoinService() nodev1.NodeServiceServer { return joinOnly{s: n.NodeService()} }

type joinOnly struct {
	nodev1.UnimplementedNodeServiceServer
	s *NodeService
}

func (j joinOnly) Join(ctx context.Context, req *nodev1.JoinRequest) (*nodev1.JoinResponse, error) {
	return j.s.Join(ctx, req)
}

func (s *NodeService) leader() error {
	// A leader whose integrity is in doubt takes no write and vouches for no read.
	if err := s.node.integrity.Serving(); err != nil {
		return err
	}
	if s.node.raft.IsLeader() {
		return nil
	}
	if _, id := s.node.raft.Leader(); id != "" {
		return fault.Unavailable("node %s is not the raft leader (%s is): ask it", s.node.ID(), id)
	}
	return fault.Unavailable("node %s is not the raft leader and knows of none", s.node.ID())
}

// Apply commits a forwarded command on the leader.
func (s *NodeService) Apply(ctx context.Context, req *nodev1.ApplyRequest) (*nodev1.ApplyResponse, error) {
	if err := s.leader(); err != nil {
		return nil, err
	}
	index, resp, err := s.node.raft.Apply(ctx, req.GetCommand())
	if err != nil {
		return nil, err
	}
	return encodeResponse(index, resp)
}

// ReadIndex confirms leadership and returns the leader's applied index.
func (s *NodeService) ReadIndex(ctx context.Context, _ *nodev1.ReadIndexRequest) (*nodev1.ReadIndexResponse, error) {
	if err := s.leader(); err != nil {
		return nil, err
	}
	index, err := s.node.sharedLeaderReadIndex(ctx)
	if err != nil {
		return nil, err
	}
	return &nodev1.ReadIndexResponse{Index: index}, nil
}

// Join adds the calling node, which may only add itself.
func (s *NodeService) Join(ctx context.Context, req *nodev1.JoinRequest) (*nodev1.JoinResponse, error) {
	caller, ok := authz.NodeFrom(ctx)
	if !ok {
		return nil, fault.Unauthenticated("Join takes a node certificate")
	}
	if caller.ID != req.GetNodeId() {
		return nil, fault.Denied("node %q may only add itself, not %q: its node certificate names it", caller.ID, req.GetNodeId())
	}
	if err := checkMember(req.GetNodeId(), req.GetRaftAddress()); err != nil {
		return nil, err
	}
	if req.GetRejoin() || s.node.isMember(req.GetNodeId()) {
		// It no longer holds the log it voted with (only a node without state asks to join):
		// out of the configuration first.
		if err := s.node.removeIfMember(ctx, req.GetNodeId()); err != nil {
			return nil, err
		}
	}
	if err := s.node.AddVoter(ctx, req.GetNodeId(), req.GetRaftAddress()); err != nil {
		return nil, err
	}
	s.node.logger.Info("node joined the cluster", "node", req.GetNodeId(), "raft_addr", req.GetRaftAddress(), "rejoin", req.GetRejoin())
	members, err := s.node.Members(ctx)
	if err != nil {
		return nil, err
	}
	return &nodev1.JoinResponse{Members: members}, nil
}

// AddVoter changes the membership on the leader for another node.
func (s *NodeService) AddVoter(ctx context.Context, req *nodev1.AddVoterRequest) (*nodev1.AddVoterResponse, error) {
	if err := s.leader(); err != nil {
		return nil, err
	}
	if err := checkMember(req.GetNodeId(), req.GetRaftAddress()); err != nil {
		return nil, err
	}
	index, err := s.node.raft.AddVoter(ctx, req.GetNodeId(), req.GetRaftAddress())
	if err != nil {
		return nil, err
	}
	return &nodev1.AddVoterResponse{Index: index}, nil
}

// RemoveServer changes the membership on the leader for another node.
func (s *NodeService) RemoveServer(ctx context.Context, req *nodev1.RemoveServerRequest) (*nodev1.RemoveServerResponse, error) {
	if err := s.leader(); err != nil {
		return nil, err
	}
	index, err := s.node.raft.RemoveServer(ctx, req.GetNodeId())
	if err != nil {
		return nil, err
	}
	return &nodev1.RemoveServerResponse{Index: index}, nil
}

// CompareLog answers another node's comparison of their transparency logs.
func (s *NodeService) CompareLog(_ context.Context, req *nodev1.CompareLogRequest) (*nodev1.CompareLogResponse, error) {
	return s.node.compareLog(req)
}

// Status reports this node's raft state.
func (s *NodeService) Status(context.Context, *nodev1.StatusRequest) (*nodev1.StatusResponse, error) {
	return &nodev1.StatusResponse{Member: s.node.Status()}, nil
}

// checkMember refuses a node id or raft address that cannot be a member's.
func checkMember(id, addr string) error {
	if err := identity.ValidNodeID(id); err != nil {
		return fault.Invalid("node_id: %v", err)
	}
	if err := checkRaftAddress(addr); err != nil {
		return fault.Invalid("raft_address: %v", err)
	}
	return nil
}
