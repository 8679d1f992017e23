// Package registry is the core of RegistryService: who is connected, under which law, and the
// signed changes through which the hub's operations team changes that.
package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/registryfile"
	"concord/internal/statementid"
	"concord/server/authz"
	"concord/server/fault"
	"concord/server/fsm"
	"concord/server/signed"
	"concord/server/state"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MaxChangeBytes bounds a registry change's payload: changes are small, and every command must
// stay far below raft's entry size limit.
const MaxChangeBytes = 64 << 10

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// Service implements RegistryService for both transports.
type Service struct {
	concordv1.UnimplementedRegistryServiceServer

	state     func() *state.Store
	raft      fsm.Applier
	receipts  Receipts
	now       func() time.Time
	validator protovalidate.Validator
}

// Receipts proves that a log entry was logged (see transparency.Publisher).
type Receipts interface {
	Receipt(ctx context.Context, index, consistencyFrom uint64) (*concordv1.Receipt, error)
}

// New returns the registry service reading the current state from st and writing through raft.
// now stamps each change; it is read here, on the leader, never inside the FSM.
func New(st func() *state.Store, raft fsm.Applier, receipts Receipts, now func() time.Time) (*Service, error) {
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("registry: protovalidate: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Service{state: st, raft: raft, receipts: receipts, now: now, validator: v}, nil
}

func caller(ctx context.Context) (*authz.Caller, error) { return signed.Caller(ctx) }

// WhoAmI returns the caller as the registry knows it.
func (s *Service) WhoAmI(ctx context.Context, _ *concordv1.WhoAmIRequest) (*concordv1.WhoAmIResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.state().Partner(nil, c.PartnerID)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fault.Denied("partner %q is not in the registry", c.PartnerID)
	}
	return &concordv1.WhoAmIResponse{Partner: p, CertificateUri: c.CertURI, StatementIdTag: statementid.Tag(c.PartnerID)}, nil
}

// ListPartners lists partners in id order, a page at a time.
func (s *Service) ListPartners(ctx context.Context, req *concordv1.ListPartnersRequest) (*concordv1.ListPartnersResponse, error) {
	after, err := decodePageToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	st := s.state()
	all, err := st.Partners(nil)
	if err != nil {
		return nil, err
	}
	resp := &concordv1.ListPartnersResponse{RegistryIndex: st.RegistryIndex()}
	for _, p := range all {
		if p.GetId() <= after {
			continue
		}
		if len(resp.Partners) == size {
			resp.NextPageToken = encodePageToken(resp.Partners[size-1].GetId())
			break
		}
		resp.Partners = append(resp.Partners, p)
	}
	return resp, nil
}

// Page tokens are opaque to clients: the last partner id of the previous page.
func encodePageToken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("p:" + lastID))
}

func decodePageToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 3 || string(b[:2]) != "p:" {
		return "", fault.Invalid("page_token: not a token this server issued; pass next_page_token from the previous response, or nothing for the first page")
	}
	return string(b[2:]), nil
}

// ListJurisdictions lists every jurisdiction.
func (s *Service) ListJurisdictions(ctx context.Context, _ *concordv1.ListJurisdictionsRequest) (*concordv1.ListJurisdictionsResponse, error) {
	st := s.state()
	js, err := st.Jurisdictions(nil)
	if err != nil {
		return nil, err
	}
	return &concordv1.ListJurisdictionsResponse{Jurisdictions: js, RegistryIndex: st.RegistryIndex()}, nil
}

// UpdateRegistry verifies a signed registry change and commits it.
func (s *Service) UpdateRegistry(ctx context.Context, req *concordv1.UpdateRegistryRequest) (*concordv1.UpdateRegistryResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	env := req.GetEnvelope()
	at := s.now().UTC()
	st := s.state()
	change := &concordv1.RegistryChange{}
	// Open verifies the signature before it parses the payload.
	opened, err := signed.Open(st, c, env, dsse.PayloadTypeRegistryChange, at, MaxChangeBytes, "registry change", change)
	if kr := signed.AsKeyRefused(err); kr != nil {
		// A re-send of a change its key signed in time gets the original answer.
		if orig, _ := st.CheckRegistryChange(change, kr.Opened.Key.GetKeyId(), at, kr.Opened.Digest); orig != nil {
			return s.appliedResponse(ctx, orig, req.GetConsistencyFrom())
		}
		return nil, kr.Err
	}
	if err != nil {
		return nil, err
	}
	key := opened.Key
	if err := s.validator.Validate(change); err != nil {
		return nil, fault.Invalid("envelope.payload (RegistryChange): %v", err)
	}
	if change.GetAuthor() != c.PartnerID {
		return nil, fault.Invalid("envelope.payload.author is %q but the change is signed by %q: set author to the signer", change.GetAuthor(), c.PartnerID)
	}
	if err := checkTagFree(st, change.GetUpsertPartner()); err != nil {
		return nil, err
	}
	if p := change.GetUpsertPartner(); p != nil {
		if err := state.CheckWitnessURL(p); err != nil {
			return nil, fault.Invalid("upsert_partner.witness_url: %v", err)
		}
	}
	digest := opened.Digest
	// Check before the raft round trip, for a fast and precise refusal; the FSM checks again at
	// apply time, so a concurrent revocation cannot slip through.
	orig, err := st.CheckRegistryChange(change, key.GetKeyId(), at, digest)
	if err != nil {
		return nil, err
	}
	if orig != nil {
		return s.appliedResponse(ctx, orig, req.GetConsistencyFrom())
	}
	applied, err := fsm.Commit[*statev1.AppliedChange](ctx, s.raft, fsm.ApplyRegistryChangeType, &statev1.ApplyRegistryChange{
		Envelope:    env,
		SignerKeyId: key.GetKeyId(),
		At:          timestamppb.New(at),
	})
	if err != nil {
		return nil, err
	}
	return s.appliedResponse(ctx, applied, req.GetConsistencyFrom())
}

func (s *Service) appliedResponse(ctx context.Context, a *statev1.AppliedChange, consistencyFrom uint64) (*concordv1.UpdateRegistryResponse, error) {
	receipt, err := s.receipts.Receipt(ctx, a.GetLogIndex(), consistencyFrom)
	if err != nil {
		return nil, err
	}
	return &concordv1.UpdateRegistryResponse{ChangeId: a.GetChangeId(), RegistryIndex: a.GetIndex(), AppliedAt: a.GetAt(), Receipt: receipt}, nil
}

// Bootstrap loads reg into the registry on a node's first start and reports whether it did.
// Once bootstrapped, only signed UpdateRegistry calls change the registry.
func Bootstrap(ctx context.Context, st *state.Store, raft fsm.Applier, reg *registryfile.Registry, at time.Time) (bool, error) {
	if st.Bootstrapped() {
		return false, nil
	}
	if reg == nil {
		return false, errors.New("the registry is empty and no bootstrap registry file was given")
	}
	cmd, err := fsm.Encode(fsm.BootstrapRegistryType, &statev1.BootstrapRegistry{
		Partners:      reg.Partners,
		Jurisdictions: reg.Jurisdictions,
		SigningKeys:   reg.SigningKeys,
		At:            timestamppb.New(at.UTC()),
	})
	if err != nil {
		return false, err
	}
	_, resp, err := raft.Apply(ctx, cmd)
	if err != nil {
		return false, fmt.Errorf("bootstrap registry: %w", err)
	}
	if err, ok := resp.(error); ok {
		return false, fmt.Errorf("bootstrap registry: %w", err)
	}
	return true, nil
}

// checkTagFree refuses a new partner whose statement id tag (statementid.Tag) another partner
// already has: tags keep partners' statement ids apart. With 30-bit tags it is rare (about one
// registry in 20 000 with 200 partners); the refusal asks for another id. Checked on the way
// in only, so that a log written before the rule replays unchanged.
func checkTagFree(st *state.Store, p *concordv1.Partner) error {
	if p == nil {
		return nil
	}
	existing, err := st.Partners(nil)
	if err != nil {
		return err
	}
	tag := statementid.Tag(p.GetId())
	for _, q := range existing {
		if q.GetId() != p.GetId() && statementid.Tag(q.GetId()) == tag {
			return fault.Precondition("partner id %q has the statement id tag %s of partner %q: choose another id", p.GetId(), tag, q.GetId())
		}
	}
	return nil
}
