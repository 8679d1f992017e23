package transparency

import (
	"context"
	"errors"
	"slices"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/server/fault"
	"concord/server/signed"
	"concord/server/state"
	"concord/translog"

	"google.golang.org/grpc"
)

// Entries sent per GetEntries message, and bytes: whichever limit comes first.
const (
	maxLeavesPerMessage = 256
	maxBytesPerMessage  = 2 << 20
)

// Service implements LogService's unary methods for both transports; GRPC and Connect add the
// streaming one for each.
type Service struct {
	state func() *state.Store
	tree  func() *translog.Tree
	pub   *Publisher

	// Stopping, closed when the node shuts down, ends every following stream (set before
	// serving).
	Stopping <-chan struct{}
}

// NewService returns the log service over the state's entries, the tree derived from them and
// the checkpoint publisher.
func NewService(st func() *state.Store, tree func() *translog.Tree, pub *Publisher) *Service {
	return &Service{state: st, tree: tree, pub: pub}
}

// GetCheckpoint returns the latest signed checkpoint of the whole log with its cosignatures, or
// the newest carrying at least min_cosignatures.
func (s *Service) GetCheckpoint(ctx context.Context, req *concordv1.GetCheckpointRequest) (*concordv1.GetCheckpointResponse, error) {
	if min := req.GetMinCosignatures(); min > 0 {
		cp, err := s.pub.cosigned(int(min))
		if err != nil {
			return nil, err
		}
		return &concordv1.GetCheckpointResponse{Checkpoint: cp.Proto()}, nil
	}
	cp, err := s.pub.Latest(ctx, 0)
	if err != nil {
		return nil, err
	}
	return &concordv1.GetCheckpointResponse{Checkpoint: s.pub.withCosignatures(cp).Proto()}, nil
}

// sizeAndCheckpoint resolves a requested tree size: 0 means the latest signed checkpoint's,
// which is then returned with it.
func (s *Service) sizeAndCheckpoint(ctx context.Context, size uint64) (int64, *concordv1.Checkpoint, error) {
	if size == 0 {
		cp, err := s.pub.Latest(ctx, 0)
		if err != nil {
			return 0, nil, err
		}
		return cp.Checkpoint.Size, cp.Proto(), nil
	}
	if have := s.tree().Size(); int64(size) > have {
		return 0, nil, fault.Invalid("tree_size %d is beyond the log, which has %d entries", size, have)
	}
	// The checkpoint of that size, if it is the latest; otherwise the caller holds one already.
	cp, err := s.pub.Latest(ctx, int64(size))
	if err != nil {
		return 0, nil, err
	}
	if cp.Checkpoint.Size == int64(size) {
		return int64(size), cp.Proto(), nil
	}
	return int64(size), nil, nil
}

// GetInclusionProof proves that an entry is in the tree.
func (s *Service) GetInclusionProof(ctx context.Context, req *concordv1.GetInclusionProofRequest) (*concordv1.GetInclusionProofResponse, error) {
	size, cp, err := s.sizeAndCheckpoint(ctx, req.GetTreeSize())
	if err != nil {
		return nil, err
	}
	if int64(req.GetIndex()) >= size {
		return nil, fault.Invalid("index %d is not in a tree of %d entries", req.GetIndex(), size)
	}
	proof, err := s.tree().InclusionProof(int64(req.GetIndex()), size)
	if err != nil {
		return nil, err
	}
	return &concordv1.GetInclusionProofResponse{Index: req.GetIndex(), TreeSize: uint64(size), Hashes: translog.HashesToBytes(proof), Checkpoint: cp}, nil
}

// GetConsistencyProof proves that one tree is a prefix of a larger one.
func (s *Service) GetConsistencyProof(ctx context.Context, req *concordv1.GetConsistencyProofRequest) (*concordv1.GetConsistencyProofResponse, error) {
	size, cp, err := s.sizeAndCheckpoint(ctx, req.GetNewSize())
	if err != nil {
		return nil, err
	}
	if int64(req.GetOldSize()) > size {
		return nil, fault.Invalid("old_size %d is larger than new_size %d", req.GetOldSize(), size)
	}
	proof, err := s.tree().ConsistencyProof(int64(req.GetOldSize()), size)
	if err != nil {
		return nil, err
	}
	return &concordv1.GetConsistencyProofResponse{OldSize: req.GetOldSize(), NewSize: uint64(size), Hashes: translog.HashesToBytes(proof), Checkpoint: cp}, nil
}

// entries sends the caller's view of entries [start, end), then, with follow, every entry as it
// is committed, until ctx ends.
func (s *Service) entries(ctx context.Context, req *concordv1.GetEntriesRequest, send func(*concordv1.GetEntriesResponse) error) error {
	c, err := signed.Caller(ctx)
	if err != nil {
		return err
	}
	next, end := req.GetStart(), req.GetEnd()
	if end != 0 && end < next {
		return fault.Invalid("end %d is before start %d", end, next)
	}
	if !req.GetFollow() {
		size := uint64(s.tree().Size())
		if end == 0 || end > size {
			if end > size {
				return fault.Invalid("end %d is beyond the log, which has %d entries: use follow to wait for them", end, size)
			}
			end = size
		}
	}
	visible := visibility(c.PartnerID)
	for {
		tree := s.tree()
		grown := tree.Grown()
		size := uint64(tree.Size())
		limit := size
		if end != 0 {
			limit = min(limit, end)
		}
		st := s.state()
		for next < limit {
			msg := &concordv1.GetEntriesResponse{}
			bytes := 0
			err := st.LogRows(next, func(row *statev1.LogRow) bool {
				if row.GetIndex() >= limit || len(msg.Leaves) == maxLeavesPerMessage || bytes >= maxBytesPerMessage {
					return false
				}
				msg.Leaves = append(msg.Leaves, visible(st, row))
				bytes += len(row.GetEntry())
				return true
			})
			if err != nil {
				return err
			}
			if len(msg.Leaves) == 0 {
				// The tree is ahead of this store: a restore replaced it; read the new one.
				break
			}
			if err := send(msg); err != nil {
				return err
			}
			next += uint64(len(msg.Leaves))
		}
		if end != 0 && next >= end {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-s.Stopping:
			return fault.Unavailable("the node is shutting down: resume with start=%d on another node or later", next)
		case <-grown:
		case <-st.AbandonCh():
		}
	}
}

// visibility returns the function that shows partner an entry, or only its leaf hash when the
// entry concerns a notice partner may not see, or is an action report of another platform on a
// notice partner did not issue (unless partner is an auditor): who reported what, when, is
// shown to the same parties as in the compliance figures.
func visibility(partner string) func(*state.Store, *statev1.LogRow) *concordv1.LogLeaf {
	return func(st *state.Store, row *statev1.LogRow) *concordv1.LogLeaf {
		hidden := func() *concordv1.LogLeaf {
			h := translog.LeafHash(row.GetEntry())
			return &concordv1.LogLeaf{Index: row.GetIndex(), LeafHash: h[:]}
		}
		if id := row.GetNoticeId(); id != "" {
			rec, err := st.NoticeRow(id)
			if err != nil || rec == nil || !state.NoticeVisibleTo(rec, partner) {
				return hidden()
			}
			if r := row.GetReporter(); r != "" && r != partner && rec.GetNotice().GetIssuer() != partner {
				p, err := st.PartnerRow(partner)
				if err != nil || p == nil || !slices.Contains(p.GetRoles(), concordv1.Role_ROLE_AUDITOR) {
					return hidden()
				}
			}
		}
		return &concordv1.LogLeaf{Index: row.GetIndex(), Entry: row.GetEntry()}
	}
}

// GRPC is the service for the gRPC port.
func (s *Service) GRPC() concordv1.LogServiceServer { return grpcLog{s: s} }

// Connect is the service for the HTTPS port.
func (s *Service) Connect() concordv1connect.LogServiceHandler { return connectLog{s} }

type grpcLog struct {
	concordv1.UnimplementedLogServiceServer
	s *Service
}

func (g grpcLog) GetCheckpoint(ctx context.Context, req *concordv1.GetCheckpointRequest) (*concordv1.GetCheckpointResponse, error) {
	return g.s.GetCheckpoint(ctx, req)
}

func (g grpcLog) AddCosignature(ctx context.Context, req *concordv1.AddCosignatureRequest) (*concordv1.AddCosignatureResponse, error) {
	return g.s.AddCosignature(ctx, req)
}

func (g grpcLog) GetInclusionProof(ctx context.Context, req *concordv1.GetInclusionProofRequest) (*concordv1.GetInclusionProofResponse, error) {
	return g.s.GetInclusionProof(ctx, req)
}

func (g grpcLog) GetConsistencyProof(ctx context.Context, req *concordv1.GetConsistencyProofRequest) (*concordv1.GetConsistencyProofResponse, error) {
	return g.s.GetConsistencyProof(ctx, req)
}

func (g grpcLog) GetEntries(req *concordv1.GetEntriesRequest, stream grpc.ServerStreamingServer[concordv1.GetEntriesResponse]) error {
	return g.s.entries(stream.Context(), req, stream.Send)
}

type connectLog struct{ *Service }

func (c connectLog) GetEntries(ctx context.Context, req *concordv1.GetEntriesRequest, stream concordv1connect.LogServiceGetEntriesServerStream) error {
	return c.entries(ctx, req, stream.Send)
}
