// Package notice is the core of NoticeService: authorities issue removal notices under their own
// law, endorse or object to other jurisdictions' notices, and withdraw their own; every partner
// reads what its sharing restrictions let it see.
package notice

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/statementid"
	"concord/server/fault"
	"concord/server/fsm"
	"concord/server/signed"
	"concord/server/state"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MaxNoticeBytes bounds a notice's signed payload. 10 000 hashes of any fixed-size kind take
// about 400 KB; the bound keeps every notice one raft entry (so it is applied whole or not at
// all) and far below the 4 MiB message limit. A longer list, or long videos, go as several
// notices.
const MaxNoticeBytes = 480 << 10

// MaxStatementBytes bounds an endorsement, objection or withdrawal.
const MaxStatementBytes = 16 << 10

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// Service implements NoticeService for both transports.
type Service struct {
	concordv1.UnimplementedNoticeServiceServer

	state     func() *state.Store
	raft      fsm.Applier
	receipts  Receipts
	now       func() time.Time
	validator protovalidate.Validator

	// MaxLag overrides DefaultMaxLag (set before serving).
	MaxLag uint64
	// Stopping, closed when the node shuts down, ends every watch stream (set before serving).
	Stopping <-chan struct{}
	// PageTokenKey seals page tokens (32 bytes, the same on every node, so that a token works
	// on any; set before serving). Unset: a random key, tokens then last as long as the process.
	PageTokenKey []byte

	aeadOnce sync.Once
	aeadVal  cipher.AEAD

	// watchers are the open feed streams, for monitoring (see Watchers).
	watchersMu sync.Mutex
	watchers   map[*watcher]struct{}
}

// Receipts proves that a log entry was logged (see transparency.Publisher).
type Receipts interface {
	Receipt(ctx context.Context, index, consistencyFrom uint64) (*concordv1.Receipt, error)
}

// New returns the notice service reading the current state from st and writing through raft.
// now stamps each statement; it is read here, on the leader, never inside the FSM.
func New(st func() *state.Store, raft fsm.Applier, receipts Receipts, now func() time.Time) (*Service, error) {
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("notice: protovalidate: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Service{state: st, raft: raft, receipts: receipts, now: now, validator: v}, nil
}

// SubmitNotice verifies a signed notice and commits it.
func (s *Service) SubmitNotice(ctx context.Context, req *concordv1.SubmitNoticeRequest) (*concordv1.SubmitNoticeResponse, error) {
	c, err := signed.Caller(ctx)
	if err != nil {
		return nil, err
	}
	at := s.now().UTC()
	st := s.state()
	n := &concordv1.Notice{}
	opened, err := signed.Open(st, c, req.GetEnvelope(), dsse.PayloadTypeNotice, at, MaxNoticeBytes, "notice", n)
	if kr := signed.AsKeyRefused(err); kr != nil {
		// The key may no longer sign, but this may be a re-send of a notice it signed in time.
		if orig, _ := st.CheckNotice(n, kr.Opened.Key.GetKeyId(), at, kr.Opened.Digest); orig != nil {
			return s.submitted(ctx, orig, req.GetConsistencyFrom())
		}
		return nil, kr.Err
	}
	if err != nil {
		return nil, err
	}
	if err := s.validator.Validate(n); err != nil {
		return nil, fault.Invalid("envelope.payload (Notice): %v", err)
	}
	if n.GetIssuer() != c.PartnerID {
		return nil, fault.Invalid("envelope.payload.issuer is %q but the notice is signed by %q: set issuer to the signer", n.GetIssuer(), c.PartnerID)
	}
	if err := statementid.Check("notice_id", n.GetNoticeId(), c.PartnerID); err != nil {
		// Only an identical re-send, of a notice accepted before ids carried their signer's tag,
		// gets through; any other answer would tell whether the id is taken.
		if orig, _ := st.CheckNotice(n, opened.Key.GetKeyId(), at, opened.Digest); orig != nil {
			return s.submitted(ctx, orig, req.GetConsistencyFrom())
		}
		return nil, fault.Invalid("envelope.payload.%v", err)
	}
	// Check before the raft round trip, for a fast and precise refusal; the FSM checks again at
	// apply time, so a concurrent change cannot slip through.
	orig, err := st.CheckNotice(n, opened.Key.GetKeyId(), at, opened.Digest)
	if err != nil {
		return nil, err
	}
	if orig != nil {
		return s.submitted(ctx, orig, req.GetConsistencyFrom())
	}
	rec, err := fsm.Commit[*concordv1.NoticeRecord](ctx, s.raft, fsm.SubmitNoticeType, &statev1.SubmitNotice{
		Envelope:    req.GetEnvelope(),
		SignerKeyId: opened.Key.GetKeyId(),
		At:          timestamppb.New(at),
	})
	if err != nil {
		return nil, err
	}
	return s.submitted(ctx, rec, req.GetConsistencyFrom())
}

func (s *Service) submitted(ctx context.Context, rec *concordv1.NoticeRecord, consistencyFrom uint64) (*concordv1.SubmitNoticeResponse, error) {
	receipt, err := s.receipts.Receipt(ctx, rec.GetLogIndex(), consistencyFrom)
	if err != nil {
		return nil, err
	}
	return &concordv1.SubmitNoticeResponse{Notice: Summary(rec, s.now()), Receipt: receipt}, nil
}

// EndorseNotice verifies a signed endorsement and commits it.
func (s *Service) EndorseNotice(ctx context.Context, req *concordv1.EndorseNoticeRequest) (*concordv1.EndorseNoticeResponse, error) {
	res, err := s.statement(ctx, req.GetEnvelope(), dsse.PayloadTypeEndorsement, "endorsement")
	if err != nil {
		return nil, err
	}
	receipt, err := s.receipts.Receipt(ctx, res.LogIndex, req.GetConsistencyFrom())
	if err != nil {
		return nil, err
	}
	return &concordv1.EndorseNoticeResponse{Notice: Summary(res.Record, s.now()), Index: res.Index, Receipt: receipt}, nil
}

// ObjectToNotice verifies a signed objection and commits it.
func (s *Service) ObjectToNotice(ctx context.Context, req *concordv1.ObjectToNoticeRequest) (*concordv1.ObjectToNoticeResponse, error) {
	res, err := s.statement(ctx, req.GetEnvelope(), dsse.PayloadTypeObjection, "objection")
	if err != nil {
		return nil, err
	}
	receipt, err := s.receipts.Receipt(ctx, res.LogIndex, req.GetConsistencyFrom())
	if err != nil {
		return nil, err
	}
	return &concordv1.ObjectToNoticeResponse{Notice: Summary(res.Record, s.now()), Index: res.Index, Receipt: receipt}, nil
}

// WithdrawNotice verifies a signed withdrawal and commits it.
func (s *Service) WithdrawNotice(ctx context.Context, req *concordv1.WithdrawNoticeRequest) (*concordv1.WithdrawNoticeResponse, error) {
	res, err := s.statement(ctx, req.GetEnvelope(), dsse.PayloadTypeWithdrawal, "withdrawal")
	if err != nil {
		return nil, err
	}
	receipt, err := s.receipts.Receipt(ctx, res.LogIndex, req.GetConsistencyFrom())
	if err != nil {
		return nil, err
	}
	return &concordv1.WithdrawNoticeResponse{Notice: Summary(res.Record, s.now()), Index: res.Index, Receipt: receipt}, nil
}

// statement verifies and commits an endorsement, objection or withdrawal.
func (s *Service) statement(ctx context.Context, env *concordv1.Envelope, payloadType, name string) (*state.StatementResult, error) {
	c, err := signed.Caller(ctx)
	if err != nil {
		return nil, err
	}
	at := s.now().UTC()
	st := s.state()
	stmt, err := state.NewStatement(payloadType)
	if err != nil {
		return nil, err
	}
	msg := state.StatementMessage(stmt)
	opened, err := signed.Open(st, c, env, payloadType, at, MaxStatementBytes, name, msg)
	if kr := signed.AsKeyRefused(err); kr != nil {
		// A re-send of a statement its key signed in time gets the original answer.
		if orig, _ := st.CheckNoticeStatement(stmt, kr.Opened.Key.GetKeyId(), at, kr.Opened.Digest); orig != nil {
			return orig, nil
		}
		return nil, kr.Err
	}
	if err != nil {
		return nil, err
	}
	if err := s.validator.Validate(msg); err != nil {
		return nil, fault.Invalid("envelope.payload (%T): %v", msg, err)
	}
	if stmt.Author() != c.PartnerID {
		return nil, fault.Invalid("envelope.payload.author is %q but the %s is signed by %q: set author to the signer", stmt.Author(), name, c.PartnerID)
	}
	if err := statementid.Check(name+"_id", stmt.ID(), c.PartnerID); err != nil {
		// As for a notice: only an identical re-send of a statement accepted before ids carried
		// tags gets through.
		if orig, _ := st.CheckNoticeStatement(stmt, opened.Key.GetKeyId(), at, opened.Digest); orig != nil {
			return orig, nil
		}
		return nil, fault.Invalid("envelope.payload.%v", err)
	}
	orig, err := st.CheckNoticeStatement(stmt, opened.Key.GetKeyId(), at, opened.Digest)
	if err != nil {
		return nil, err
	}
	if orig != nil {
		return orig, nil
	}
	return fsm.Commit[*state.StatementResult](ctx, s.raft, fsm.NoticeStatementType, &statev1.NoticeStatement{
		Envelope:    env,
		SignerKeyId: opened.Key.GetKeyId(),
		At:          timestamppb.New(at),
	})
}

// GetNotice returns one notice the caller may see.
func (s *Service) GetNotice(ctx context.Context, req *concordv1.GetNoticeRequest) (*concordv1.GetNoticeResponse, error) {
	c, err := signed.Caller(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := s.state().Notice(nil, req.GetNoticeId())
	if err != nil {
		return nil, err
	}
	if rec == nil || !state.NoticeVisibleTo(rec, c.PartnerID) {
		// The same answer whether it does not exist or may not be seen: existence leaks nothing.
		return nil, fault.NotFound("notice %s not found", req.GetNoticeId())
	}
	if req.GetView() == concordv1.NoticeView_NOTICE_VIEW_SUMMARY {
		return &concordv1.GetNoticeResponse{Notice: Summary(rec, s.now())}, nil
	}
	full, err := Full(rec, s.now())
	if err != nil {
		return nil, err
	}
	return &concordv1.GetNoticeResponse{Notice: full}, nil
}

// knownJurisdiction refuses a filter on a jurisdiction the registry does not hold: it would
// match nothing, and a typo should not pass for "no notices".
func (s *Service) knownJurisdiction(code string) error {
	j, err := s.state().Jurisdiction(nil, code)
	if err != nil || j != nil {
		return err
	}
	all, err := s.state().Jurisdictions(nil)
	if err != nil {
		return err
	}
	codes := make([]string, len(all))
	for i, j := range all {
		codes[i] = j.GetCode()
	}
	return fault.Invalid("jurisdiction: %q is not a partner jurisdiction (the registry has %s)", code, strings.Join(codes, ", "))
}

// ListNotices returns a page of the notices the caller may see.
func (s *Service) ListNotices(ctx context.Context, req *concordv1.ListNoticesRequest) (*concordv1.ListNoticesResponse, error) {
	c, err := signed.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if code := req.GetJurisdiction(); code != "" {
		if err := s.knownJurisdiction(code); err != nil {
			return nil, err
		}
	}
	filters := filterDigest(req)
	after, err := s.decodePageToken(c.PartnerID, req.GetPageToken(), filters)
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultPageSize
	}
	q := state.NoticeQuery{
		Viewer:       c.PartnerID,
		Jurisdiction: req.GetJurisdiction(),
		Statuses:     req.GetStatuses(),
		Categories:   req.GetCategories(),
		States:       req.GetStates(),
		Issuer:       req.GetIssuer(),
		After:        after,
		Limit:        min(size, maxPageSize),
	}
	if ts := req.GetUpdatedSince(); ts != nil {
		q.UpdatedSince = ts.AsTime()
	}
	page, err := s.state().ListNotices(q)
	if err != nil {
		return nil, err
	}
	now := s.now()
	resp := &concordv1.ListNoticesResponse{Index: page.Index}
	for _, rec := range page.Records {
		if req.GetView() == concordv1.NoticeView_NOTICE_VIEW_FULL {
			full, err := Full(rec, now)
			if err != nil {
				return nil, err
			}
			resp.Notices = append(resp.Notices, full)
			continue
		}
		resp.Notices = append(resp.Notices, Summary(rec, now))
	}
	if page.Next != "" {
		resp.NextPageToken = s.encodePageToken(c.PartnerID, filters, page.Next)
	}
	return resp, nil
}

// Summary returns the SUMMARY view of a stored record: no hashes, no envelopes, and each
// jurisdiction's objection window marked open or closed as of now.
func Summary(rec *concordv1.NoticeRecord, now time.Time) *concordv1.NoticeRecord {
	// Every field but the envelopes, copied shallowly, then deeply: the stored record's
	// envelopes are large and never needed here.
	shallow := &concordv1.NoticeRecord{}
	dst := shallow.ProtoReflect()
	rec.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch fd.Name() {
		case "envelope", "statements":
		default:
			dst.Set(fd, v)
		}
		return true
	})
	out := proto.CloneOf(shallow)
	markWindows(out, now)
	return out
}

// Full returns the FULL view of a stored record: the notice with its hashes, parsed from the
// signed payload, and every signed envelope.
func Full(rec *concordv1.NoticeRecord, now time.Time) (*concordv1.NoticeRecord, error) {
	out := Summary(rec, now)
	n := &concordv1.Notice{}
	if err := proto.Unmarshal(rec.GetEnvelope().GetPayload(), n); err != nil {
		return nil, fmt.Errorf("notice %s: stored payload does not parse: %w", rec.GetNotice().GetNoticeId(), err)
	}
	out.Notice = n
	out.Envelope = proto.CloneOf(rec.GetEnvelope())
	for _, e := range rec.GetStatements() {
		out.Statements = append(out.Statements, proto.CloneOf(e))
	}
	return out, nil
}

func markWindows(rec *concordv1.NoticeRecord, now time.Time) {
	for _, js := range rec.GetJurisdictions() {
		closes := js.GetObjectionWindowClosesAt()
		js.ObjectionWindowOpen = js.GetStatus() == concordv1.AdoptionStatus_ADOPTION_STATUS_RECOGNISED &&
			closes != nil && now.Before(closes.AsTime())
	}
}

// filterDigest identifies a request's filters, so a page token is only used with the filters it
// was issued for.
func filterDigest(req *concordv1.ListNoticesRequest) string {
	f := proto.CloneOf(req)
	f.PageToken, f.PageSize, f.View = "", 0, 0
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(f)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// Page tokens are sealed (AES-GCM, bound to the partner they were issued to): they hold the
// filters' digest and the id where the scan stopped, which may be a notice the caller may not
// see, so they must reveal nothing.
func (s *Service) aead() cipher.AEAD {
	s.aeadOnce.Do(func() {
		key := s.PageTokenKey
		if len(key) != 32 {
			key = make([]byte, 32)
			_, _ = rand.Read(key) // tokens then last as long as the process
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			panic(err) // a 32-byte key is always valid
		}
		s.aeadVal, _ = cipher.NewGCM(block)
	})
	return s.aeadVal
}

func (s *Service) encodePageToken(partner, filters, lastID string) string {
	a := s.aead()
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	sealed := a.Seal(nonce, nonce, []byte("n1:"+filters+":"+lastID), []byte(partner))
	return base64.RawURLEncoding.EncodeToString(sealed)
}

func (s *Service) decodePageToken(partner, tok, filters string) (string, error) {
	if tok == "" {
		return "", nil
	}
	bad := fault.Invalid("page_token: not a token this server issued to you; pass next_page_token from the previous response, or nothing for the first page")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	a := s.aead()
	if err != nil || len(b) < a.NonceSize() {
		return "", bad
	}
	plain, err := a.Open(nil, b[:a.NonceSize()], b[a.NonceSize():], []byte(partner))
	if err != nil {
		return "", bad
	}
	parts := strings.SplitN(string(plain), ":", 3)
	if len(parts) != 3 || parts[0] != "n1" {
		return "", bad
	}
	if parts[1] != filters {
		return "", fault.Invalid("page_token was issued for other filters: send the same filters with it, or start again without a token")
	}
	return parts[2], nil
}
