package match

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/hashing/pdq"
	"concord/matchindex"
	"concord/server/fault"
	"concord/server/ratelimit"
	"concord/server/signed"
	"concord/server/state"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
)

// DefaultMaxDistance is the PDQ match threshold: Meta's recommended 31 bits of 256.
const DefaultMaxDistance = 31

// MinQuality is the lowest PDQ quality a query is matched at.
const MinQuality = state.MinPDQQuality

// Service implements MatchService; GRPC and Connect give each transport its streaming method.
type Service struct {
	state     func() *state.Store
	index     func() *matchindex.Index
	now       func() time.Time
	validator protovalidate.Validator

	// Reads, if set, makes answers linearizable (set before serving).
	Reads Reads
	// Fair, if set, shares the cores among partners: a batch is matched a slice at a time, each
	// slice holding one of its slots (set before serving).
	Fair *ratelimit.Fair
	// ObserveLookup, if set, is told how long each hash took to look up, by hash kind (set
	// before serving).
	ObserveLookup func(kind concordv1.HashKind, took time.Duration)
}

// sliceCost is the work (ratelimit work units, about a millisecond) matched between turns: the
// longest another partner's lookup waits behind a batch, per core.
const sliceCost = 1000

// New returns the match service over the state and the index derived from it.
func New(st func() *state.Store, index func() *matchindex.Index, now func() time.Time) (*Service, error) {
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("match: protovalidate: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Service{state: st, index: index, now: now, validator: v}, nil
}

// Reads is the cluster's read barrier (see cluster.Node).
type Reads interface {
	// Linearize returns once the node's state holds every write acknowledged before the call.
	Linearize(ctx context.Context) error
	// Fresh reports whether the node may answer from its own state a read that tolerates
	// maxStaleness.
	Fresh(maxStaleness time.Duration) bool
}

// Match answers one batch.
func (s *Service) Match(ctx context.Context, req *concordv1.MatchRequest) (*concordv1.MatchResponse, error) {
	c, err := signed.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.barrier(ctx, req); err != nil {
		return nil, err
	}
	return s.match(ctx, c.PartnerID, req)
}

// barrier makes the node's state current for req, unless the caller tolerates the staleness of
// a node that heard from the leader lately (max_staleness).
func (s *Service) barrier(ctx context.Context, req *concordv1.MatchRequest) error {
	if s.Reads == nil {
		return nil
	}
	if ms := req.GetMaxStaleness(); ms != nil && ms.CheckValid() == nil && s.Reads.Fresh(ms.AsDuration()) {
		return nil
	}
	return s.Reads.Linearize(ctx)
}

// noticeView is what one batch needs of a notice: whether the caller may see it, and its
// match template (everything but the hit's own fields).
type noticeView struct {
	visible  bool
	template *concordv1.NoticeMatch
}

func (s *Service) match(ctx context.Context, partner string, req *concordv1.MatchRequest) (*concordv1.MatchResponse, error) {
	if err := ValidateRequest(req); err != nil {
		return nil, err
	}
	if s.Fair == nil {
		return answer(s.state(), s.index(), partner, req, s.now(), nil, s.ObserveLookup)
	}
	if err := s.Fair.Acquire(ctx, partner); err != nil {
		return nil, err
	}
	held := true
	defer func() {
		if held {
			s.Fair.Release()
		}
	}()
	return answer(s.state(), s.index(), partner, req, s.now(), func() error {
		s.Fair.Release()
		held = false
		if err := s.Fair.Acquire(ctx, partner); err != nil {
			return err
		}
		held = true
		return nil
	}, s.ObserveLookup)
}

// Answer matches a batch for partner against index and the state it derives from. The hub
// answers with it, and so does a partner's verified mirror, with the same code.
func Answer(st *state.Store, index *matchindex.Index, partner string, req *concordv1.MatchRequest, now time.Time) (*concordv1.MatchResponse, error) {
	if err := ValidateRequest(req); err != nil {
		return nil, err
	}
	return answer(st, index, partner, req, now, nil, nil)
}

// answer is Answer for a validated request; yield, if set, is called after each slice of
// sliceCost work units, to let other partners' work run; observe, if set, is told how long each
// hash's lookup took.
func answer(st *state.Store, index *matchindex.Index, partner string, req *concordv1.MatchRequest, now time.Time, yield func() error,
	observe func(concordv1.HashKind, time.Duration)) (*concordv1.MatchResponse, error) {
	// One view for the whole batch: every hash is matched against the same index.
	view := index.View()
	radius := int(req.GetMaxPdqDistance())
	if radius == 0 {
		radius = DefaultMaxDistance
	}
	notices := map[string]*noticeView{}
	lookupNotice := func(id string) (*noticeView, error) {
		if nv, ok := notices[id]; ok {
			return nv, nil
		}
		rec, err := st.NoticeRow(id)
		if err != nil {
			return nil, err
		}
		nv := &noticeView{}
		// In force and visible: the index may briefly lag the store after a withdrawal.
		if rec != nil && rec.GetState() == concordv1.NoticeState_NOTICE_STATE_ACTIVE && state.NoticeVisibleTo(rec, partner) {
			nv.visible = true
			nv.template = template(rec, now)
		}
		notices[id] = nv
		return nv, nil
	}
	resp := &concordv1.MatchResponse{RequestId: req.GetRequestId(), Index: st.NoticesIndex(), Results: make([]*concordv1.HashResult, len(req.GetHashes()))}
	spent := int64(0)
	for i, h := range req.GetHashes() {
		if yield != nil {
			if spent >= sliceCost {
				if err := yield(); err != nil {
					return nil, err
				}
				spent = 0
			}
			spent += ratelimit.CostOfHash(h, req.GetPdqDihedral())
		}
		res := &concordv1.HashResult{}
		resp.Results[i] = res
		kind := matchindex.Kind(h.GetKind())
		var hits []matchindex.Hit
		var videoHits []matchindex.VideoHit
		var err error
		var start time.Time
		if observe != nil {
			start = time.Now()
		}
		switch h.GetKind() {
		case concordv1.HashKind_HASH_KIND_SHA256, concordv1.HashKind_HASH_KIND_MD5, concordv1.HashKind_HASH_KIND_URL_SHA256:
			hits, err = view.Lookup(kind, h.GetValue())
		case concordv1.HashKind_HASH_KIND_PDQ, concordv1.HashKind_HASH_KIND_PDQ_VIDEO:
			if h.GetQuality() < MinQuality {
				res.LowQuality = true
				res.Note = fmt.Sprintf("PDQ quality %d is below %d: such a hash matches unrelated content, so it was not matched; hash a better copy", h.GetQuality(), MinQuality)
				if h.GetQuality() == 0 {
					res.Note = fmt.Sprintf("PDQ quality 0: not matched. If you did not set quality, send the quality your PDQ hasher computed with the hash "+
						"(a field left unset reads as 0); a hash of quality below %d matches unrelated content", MinQuality)
				}
				continue
			}
			switch {
			case h.GetKind() == concordv1.HashKind_HASH_KIND_PDQ && req.GetPdqDihedral():
				hits, err = view.MatchPDQDihedral(h.GetValue(), radius)
			case h.GetKind() == concordv1.HashKind_HASH_KIND_PDQ:
				hits, err = view.MatchPDQ(h.GetValue(), radius)
			default:
				videoHits, err = view.MatchVideo(h.GetValue())
			}
		default:
			return nil, fault.Invalid("hashes[%d].kind %v is not a hash kind", i, h.GetKind())
		}
		if observe != nil {
			observe(h.GetKind(), time.Since(start))
		}
		if err != nil {
			if errors.Is(err, matchindex.ErrInvalidHash) || errors.Is(err, matchindex.ErrRadius) {
				return nil, fault.Invalid("hashes[%d]: %v", i, err)
			}
			return nil, err
		}
		for _, hit := range hits {
			nv, err := lookupNotice(hit.NoticeID)
			if err != nil {
				return nil, err
			}
			if !nv.visible {
				continue
			}
			m := cloneMatch(nv.template)
			m.HashPosition, m.Kind, m.Distance = uint32(hit.Position), h.GetKind(), int32(hit.Distance)
			m.PdqTransform = pdqTransforms[hit.Transform]
			res.Matches = append(res.Matches, m)
		}
		for _, hit := range videoHits {
			nv, err := lookupNotice(hit.NoticeID)
			if err != nil {
				return nil, err
			}
			if !nv.visible {
				continue
			}
			m := cloneMatch(nv.template)
			m.HashPosition, m.Kind = uint32(hit.Position), h.GetKind()
			m.QueryMatchPercent, m.StoredMatchPercent = float32(hit.QueryPercent), float32(hit.StoredPercent)
			res.Matches = append(res.Matches, m)
		}
		sort.SliceStable(res.Matches, func(a, b int) bool {
			ma, mb := res.Matches[a], res.Matches[b]
			if ma.GetDistance() != mb.GetDistance() {
				return ma.GetDistance() < mb.GetDistance()
			}
			if ma.GetNoticeId() != mb.GetNoticeId() {
				return ma.GetNoticeId() < mb.GetNoticeId()
			}
			return ma.GetHashPosition() < mb.GetHashPosition()
		})
	}
	return resp, nil
}

// pdqTransforms names the match index's transforms (the PDQ reference's) in the API's terms,
// whose rotations are clockwise.
var pdqTransforms = [8]concordv1.PdqTransform{
	pdq.Original:   concordv1.PdqTransform_PDQ_TRANSFORM_UNSPECIFIED,
	pdq.Rotate90:   concordv1.PdqTransform_PDQ_TRANSFORM_ROTATE_270, // the reference turns anticlockwise
	pdq.Rotate180:  concordv1.PdqTransform_PDQ_TRANSFORM_ROTATE_180,
	pdq.Rotate270:  concordv1.PdqTransform_PDQ_TRANSFORM_ROTATE_90,
	pdq.FlipX:      concordv1.PdqTransform_PDQ_TRANSFORM_FLIP_VERTICAL,
	pdq.FlipY:      concordv1.PdqTransform_PDQ_TRANSFORM_FLIP_HORIZONTAL,
	pdq.FlipPlus1:  concordv1.PdqTransform_PDQ_TRANSFORM_TRANSPOSE,
	pdq.FlipMinus1: concordv1.PdqTransform_PDQ_TRANSFORM_TRANSVERSE,
}

// template is the part of a match that depends on the notice only.
func template(rec *concordv1.NoticeRecord, now time.Time) *concordv1.NoticeMatch {
	n := rec.GetNotice()
	m := &concordv1.NoticeMatch{
		NoticeId:              n.GetNoticeId(),
		Issuer:                n.GetIssuer(),
		IssuingJurisdiction:   n.GetJurisdiction(),
		Categories:            n.GetCategories(),
		Tlp:                   n.GetTlp(),
		AcceptedAt:            rec.GetAcceptedAt(),
		PreservationRequested: n.GetPreservationRequested(),
		CounterNarratives:     n.GetCounterNarratives(),
	}
	for _, js := range rec.GetJurisdictions() {
		if js.GetActionable() {
			m.Obligations = append(m.Obligations, &concordv1.Obligation{
				Jurisdiction: js.GetJurisdiction(), Status: js.GetStatus(), LegalBasis: js.GetLegalBasis(), ActionDeadline: js.GetActionDeadline(),
			})
		} else {
			m.NotActionableIn = append(m.NotActionableIn, js.GetJurisdiction())
		}
	}
	return m
}

// cloneMatch copies the top level of a template: its lists and messages are shared with the
// other hits of the batch, which only the serializer reads.
func cloneMatch(t *concordv1.NoticeMatch) *concordv1.NoticeMatch {
	return &concordv1.NoticeMatch{
		NoticeId: t.NoticeId, Issuer: t.Issuer, IssuingJurisdiction: t.IssuingJurisdiction,
		Categories: t.Categories, Tlp: t.Tlp, AcceptedAt: t.AcceptedAt, Obligations: t.Obligations,
		NotActionableIn: t.NotActionableIn, PreservationRequested: t.PreservationRequested,
		CounterNarratives: t.CounterNarratives,
	}
}

// stream answers a MatchStream: one response per request, in order.
func (s *Service) stream(ctx context.Context, recv func() (*concordv1.MatchStreamRequest, error), send func(*concordv1.MatchStreamResponse) error) error {
	c, err := signed.Caller(ctx)
	if err != nil {
		return err
	}
	// Like every long-lived read, a stream needs only one barrier: the first batch's. Later
	// batches see the node's state as it is applied.
	current := false
	for {
		req, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if req.GetBatch() == nil {
			return fault.Invalid("batch: value is required")
		}
		if !current {
			if err := s.barrier(ctx, req.GetBatch()); err != nil {
				return err
			}
			current = req.GetBatch().GetMaxStaleness() == nil
		}
		resp, err := s.match(ctx, c.PartnerID, req.GetBatch())
		if err != nil {
			return err
		}
		if err := send(&concordv1.MatchStreamResponse{Batch: resp}); err != nil {
			return err
		}
	}
}

// GRPC is the service for the gRPC port.
func (s *Service) GRPC() concordv1.MatchServiceServer { return grpcMatch{s: s} }

// Connect is the service for the HTTPS port.
func (s *Service) Connect() concordv1connect.MatchServiceHandler { return connectMatch{s} }

type grpcMatch struct {
	concordv1.UnimplementedMatchServiceServer
	s *Service
}

func (g grpcMatch) Match(ctx context.Context, req *concordv1.MatchRequest) (*concordv1.MatchResponse, error) {
	return g.s.Match(ctx, req)
}

func (g grpcMatch) MatchStream(stream grpc.BidiStreamingServer[concordv1.MatchStreamRequest, concordv1.MatchStreamResponse]) error {
	return g.s.stream(stream.Context(), stream.Recv, stream.Send)
}

type connectMatch struct{ *Service }

func (c connectMatch) MatchStream(ctx context.Context, stream concordv1connect.MatchServiceMatchStreamServerStream) error {
	return c.stream(ctx, stream.Receive, stream.Send)
}
