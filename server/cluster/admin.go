package cluster

import (
	"context"
	"crypto/sha256"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/server/backup"
	"concord/server/fault"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// snapshotChunkBytes is the size of each SaveSnapshot message's chunk.
const snapshotChunkBytes = 1 << 20

// Admin implements the public ClusterService (ADMIN only, by the proto's access option) for both
// transports; GRPC and Connect give each its streaming method.
type Admin struct {
	node *Node
	now  func() time.Time
}

// Admin returns the node's ClusterService. now stamps snapshots (default time.Now).
func (n *Node) Admin(now func() time.Time) *Admin {
	if now == nil {
		now = time.Now
	}
	return &Admin{node: n, now: now}
}

// ListMembers lists the members with the status each reports. It needs no leader.
func (a *Admin) ListMembers(ctx context.Context, _ *concordv1.ListMembersRequest) (*concordv1.ListMembersResponse, error) {
	members, err := a.node.Members(ctx)
	if err != nil {
		return nil, err
	}
	_, leader := a.node.raft.Leader()
	return &concordv1.ListMembersResponse{Members: members, LeaderId: leader, NodeId: a.node.ID()}, nil
}

// AddMember adds a voter, through the leader.
func (a *Admin) AddMember(ctx context.Context, req *concordv1.AddMemberRequest) (*concordv1.AddMemberResponse, error) {
	if a.node.Standalone() {
		return nil, fault.Precondition("this node runs alone, without a raft address (--raft-addr): restart it with --node-id, --raft-addr, --node-cert and --node-key to grow it into a cluster")
	}
	if err := checkMember(req.GetNodeId(), req.GetRaftAddress()); err != nil {
		return nil, err
	}
	if err := a.node.AddVoter(ctx, req.GetNodeId(), req.GetRaftAddress()); err != nil {
		return nil, err
	}
	a.node.logger.Info("member added", "node", req.GetNodeId(), "raft_addr", req.GetRaftAddress())
	members, err := a.node.Members(ctx)
	if err != nil {
		return nil, err
	}
	return &concordv1.AddMemberResponse{Members: members}, nil
}

// RemoveMember removes a member, through the leader.
func (a *Admin) RemoveMember(ctx context.Context, req *concordv1.RemoveMemberRequest) (*concordv1.RemoveMemberResponse, error) {
	if a.node.Standalone() {
		return nil, fault.Precondition("this node runs alone, without a raft address (--raft-addr): it has no other member to remove")
	}
	if err := a.node.RemoveServer(ctx, req.GetNodeId()); err != nil {
		return nil, err
	}
	a.node.logger.Info("member removed", "node", req.GetNodeId())
	members, err := a.node.Members(ctx)
	if err != nil {
		return nil, err
	}
	return &concordv1.RemoveMemberResponse{Members: members}, nil
}

// saveSnapshot streams a snapshot holding every write acknowledged before the call.
func (a *Admin) saveSnapshot(ctx context.Context, send func(*concordv1.SaveSnapshotResponse) error) error {
	if err := a.node.Linearize(ctx); err != nil {
		return err
	}
	capture, err := a.node.fsm.Capture()
	if err != nil {
		return err
	}
	info := backup.Info(capture, a.node.ID())
	info.TakenAt = timestamppb.New(a.now())
	if err := send(&concordv1.SaveSnapshotResponse{Part: &concordv1.SaveSnapshotResponse_Info{Info: info}}); err != nil {
		return err
	}
	w := &chunker{ctx: ctx, send: send, hash: sha256.New()}
	if err := backup.WriteBody(w, info, capture.State); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	return send(&concordv1.SaveSnapshotResponse{Part: &concordv1.SaveSnapshotResponse_Sha256{Sha256: w.hash.Sum(nil)}})
}

// chunker sends what is written to it in chunks, hashing it on the way.
type chunker struct {
	ctx  context.Context
	send func(*concordv1.SaveSnapshotResponse) error
	hash interface {
		Write([]byte) (int, error)
		Sum([]byte) []byte
	}
	buf []byte
}

func (c *chunker) Write(p []byte) (int, error) {
	c.hash.Write(p)
	n := len(p)
	for len(p) > 0 {
		take := min(len(p), snapshotChunkBytes-len(c.buf))
		c.buf = append(c.buf, p[:take]...)
		p = p[take:]
		if len(c.buf) == snapshotChunkBytes {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (c *chunker) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	if err := c.ctx.Err(); err != nil {
		return err
	}
	err := c.send(&concordv1.SaveSnapshotResponse{Part: &concordv1.SaveSnapshotResponse_Chunk{Chunk: c.buf}})
	c.buf = make([]byte, 0, snapshotChunkBytes)
	return err
}

// GRPC is the service for the gRPC port.
func (a *Admin) GRPC() concordv1.ClusterServiceServer { return grpcAdmin{a: a} }

// Connect is the service for the HTTPS port.
func (a *Admin) Connect() concordv1connect.ClusterServiceHandler { return connectAdmin{a} }

type grpcAdmin struct {
	concordv1.UnimplementedClusterServiceServer
	a *Admin
}

func (g grpcAdmin) ListMembers(ctx context.Context, req *concordv1.ListMembersRequest) (*concordv1.ListMembersResponse, error) {
	return g.a.ListMembers(ctx, req)
}

func (g grpcAdmin) AddMember(ctx context.Context, req *concordv1.AddMemberRequest) (*concordv1.AddMemberResponse, error) {
	return g.a.AddMember(ctx, req)
}

func (g grpcAdmin) RemoveMember(ctx context.Context, req *concordv1.RemoveMemberRequest) (*concordv1.RemoveMemberResponse, error) {
	return g.a.RemoveMember(ctx, req)
}

func (g grpcAdmin) SaveSnapshot(_ *concordv1.SaveSnapshotRequest, stream grpc.ServerStreamingServer[concordv1.SaveSnapshotResponse]) error {
	return g.a.saveSnapshot(stream.Context(), stream.Send)
}

type connectAdmin struct{ *Admin }

func (c connectAdmin) SaveSnapshot(ctx context.Context, _ *concordv1.SaveSnapshotRequest, stream concordv1connect.ClusterServiceSaveSnapshotServerStream) error {
	return c.saveSnapshot(ctx, stream.Send)
}
