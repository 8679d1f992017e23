package state

import (
	"fmt"
	"slices"
	"time"

	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Notice records are large (a signed envelope of up to 10 000 hashes) and never modified once
// stored: a change stores a new record. So reads return shallow copies, whose top-level fields
// the caller may set but whose nested messages (the notice, the envelope, the jurisdiction
// states) are shared with the store and must never be modified.

// Notice returns the record of notice id (a shallow copy, see above), or nil if there is none.
// It does not check visibility: callers do, with NoticeVisibleTo.
func (s *Store) Notice(ws memdb.WatchSet, id string) (*concordv1.NoticeRecord, error) {
	watch, raw, err := s.db.Txn(false).FirstWatch(tableNotices, indexID, id)
	if err != nil {
		return nil, fmt.Errorf("notice %s: %w", id, err)
	}
	ws.Add(watch)
	if raw == nil {
		return nil, nil
	}
	return shallowRecord(raw.(*concordv1.NoticeRecord)), nil
}

// NoticeRow returns the stored record of notice id, or nil: read-only, never modify it or
// anything it holds. It costs no copy, for the match path.
func (s *Store) NoticeRow(id string) (*concordv1.NoticeRecord, error) {
	return noticeRowTxn(s.db.Txn(false), id)
}

// NoticesIndex returns the raft index of the last change to any notice.
func (s *Store) NoticesIndex() uint64 {
	idx, err := maxIndexTxn(s.db.Txn(false), noticeTables...)
	if err != nil {
		panic(err) // only a schema bug makes an index look-up fail
	}
	return idx
}

// NoticeQuery selects notices for ListNotices. Empty fields select everything.
type NoticeQuery struct {
	// Viewer is the calling partner: only notices it may see are returned.
	Viewer string
	// Jurisdiction with Statuses: the notice's status there is one of Statuses; with no
	// Statuses, anything but NOT_COVERED.
	Jurisdiction string
	Statuses     []concordv1.AdoptionStatus
	// Categories: at least one of them.
	Categories []concordv1.Category
	States     []concordv1.NoticeState
	Issuer     string
	// UpdatedSince: updated_at at or after it.
	UpdatedSince time.Time
	// After: only notice ids greater than it (the page token).
	After string
	// Limit is the page size; MaxScan bounds the rows examined for one page (default 10 000),
	// so a page of a rare filter returns in bounded time, possibly short.
	Limit   int
	MaxScan int
}

// NoticePage is one page of ListNotices.
type NoticePage struct {
	// Records are shallow copies (see Notice), in notice id order.
	Records []*concordv1.NoticeRecord
	// Next is the id to continue after, or "" when the scan is complete.
	Next string
	// Index is the notices index the page was read at.
	Index uint64
}

// ListNotices returns one page of the notices q selects, in notice id order. Each notice appears
// on at most one page of a scan, whatever changes between pages.
func (s *Store) ListNotices(q NoticeQuery) (*NoticePage, error) {
	txn := s.db.Txn(false)
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if q.MaxScan <= 0 {
		q.MaxScan = 10000
	}
	index, start, same := q.driver()
	iter, err := txn.LowerBound(tableNotices, index, start)
	if err != nil {
		return nil, fmt.Errorf("list notices: %w", err)
	}
	page := &NoticePage{}
	if page.Index, err = maxIndexTxn(txn, noticeTables...); err != nil {
		return nil, err
	}
	scanned := 0
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		rec := raw.(*concordv1.NoticeRecord)
		if !same(rec) {
			break
		}
		id := rec.GetNotice().GetNoticeId()
		if id <= q.After {
			continue
		}
		scanned++
		if q.matches(rec) {
			if len(page.Records) == q.Limit {
				// Another row for the caller exists: the page ends on its last record. (Rows the
				// caller may not see never make a page end with a token.)
				page.Next = page.Records[q.Limit-1].GetNotice().GetNoticeId()
				return page, nil
			}
			page.Records = append(page.Records, shallowRecord(rec))
		}
		if scanned >= q.MaxScan {
			page.Next = id
			return page, nil
		}
	}
	return page, nil
}

// driver picks the index to scan: the most selective filter that one index serves in notice id
// order. It returns the index, the lower bound to start at, and a test that the scan is still
// inside the filter's range.
func (q *NoticeQuery) driver() (index string, start string, same func(*concordv1.NoticeRecord) bool) {
	switch {
	case q.Issuer != "":
		return indexIssuer, compoundKey(q.Issuer, q.After), func(r *concordv1.NoticeRecord) bool {
			return r.GetNotice().GetIssuer() == q.Issuer
		}
	case q.Jurisdiction != "" && len(q.Statuses) == 1:
		j, st := q.Jurisdiction, q.Statuses[0]
		return indexAdoption, compoundKey(adoptionKey(j, st), q.After), func(r *concordv1.NoticeRecord) bool {
			s := jurisdictionState(r, j)
			return s != nil && s.GetStatus() == st
		}
	case len(q.Categories) == 1:
		c := q.Categories[0]
		return indexCategory, compoundKey(fmt.Sprint(int(c)), q.After), func(r *concordv1.NoticeRecord) bool {
			return slices.Contains(r.GetNotice().GetCategories(), c)
		}
	case len(q.States) == 1:
		st := q.States[0]
		return indexNoticeState, compoundKey(fmt.Sprint(int(st)), q.After), func(r *concordv1.NoticeRecord) bool {
			return r.GetState() == st
		}
	}
	return indexID, q.After, func(*concordv1.NoticeRecord) bool { return true }
}

func (q *NoticeQuery) matches(r *concordv1.NoticeRecord) bool {
	if !NoticeVisibleTo(r, q.Viewer) {
		return false
	}
	n := r.GetNotice()
	if q.Issuer != "" && n.GetIssuer() != q.Issuer {
		return false
	}
	if q.Jurisdiction != "" {
		s := jurisdictionState(r, q.Jurisdiction)
		if s == nil {
			return false
		}
		if len(q.Statuses) == 0 {
			if s.GetStatus() == concordv1.AdoptionStatus_ADOPTION_STATUS_NOT_COVERED {
				return false
			}
		} else if !slices.Contains(q.Statuses, s.GetStatus()) {
			return false
		}
	}
	if len(q.Categories) > 0 && !slices.ContainsFunc(n.GetCategories(), func(c concordv1.Category) bool { return slices.Contains(q.Categories, c) }) {
		return false
	}
	if len(q.States) > 0 && !slices.Contains(q.States, r.GetState()) {
		return false
	}
	if !q.UpdatedSince.IsZero() && r.GetUpdatedAt().AsTime().Before(q.UpdatedSince) {
		return false
	}
	return true
}

func jurisdictionState(r *concordv1.NoticeRecord, code string) *concordv1.JurisdictionState {
	for _, s := range r.GetJurisdictions() {
		if s.GetJurisdiction() == code {
			return s
		}
	}
	return nil
}

// CheckNoticeStatement runs the rules of an endorsement, objection or withdrawal on the current
// state without writing. It returns the original result, and no error, for an identical re-send.
func (s *Store) CheckNoticeStatement(st Statement, signerKeyID string, at time.Time, envelopeDigest []byte) (*StatementResult, error) {
	txn := s.db.Txn(false)
	applied, _, _, err := checkNoticeStatementTxn(txn, st, signerKeyID, at, envelopeDigest)
	if err != nil || applied == nil {
		return nil, err
	}
	return replayedStatement(txn, applied)
}

// StatementResult is the outcome of an endorsement, objection or withdrawal.
type StatementResult struct {
	// Record is the notice after the statement (a shallow copy, see Notice).
	Record *concordv1.NoticeRecord
	// Index is the raft index that committed the statement.
	Index uint64
	// LogIndex is the statement's transparency log entry.
	LogIndex uint64
}

func replayedStatement(txn ReadTxn, applied *statev1.AppliedStatement) (*StatementResult, error) {
	rec, err := noticeRowTxn(txn, applied.GetNoticeId())
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("statement %s refers to missing notice %s", applied.GetStatementId(), applied.GetNoticeId())
	}
	return &StatementResult{Record: shallowRecord(rec), Index: applied.GetIndex(), LogIndex: applied.GetLogIndex()}, nil
}

// SubmitNotice accepts notice n, the parsed payload of cmd's envelope whose signature the service
// verified, at raft index idx, after checking the rules again (CheckNotice) as of the
// leader-stamped cmd.at. Re-submitting an identical envelope returns the original record and
// changes nothing. It returns the stored record (a shallow copy) and the notice it superseded,
// if any.
func (s *Store) SubmitNotice(idx uint64, n *concordv1.Notice, cmd *statev1.SubmitNotice) (rec *concordv1.NoticeRecord, superseded string, replay bool, err error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	rec, superseded, replay, err = submitNoticeTxn(txn, idx, n, cmd)
	if err != nil {
		return nil, "", false, err
	}
	txn.Commit()
	return shallowRecord(rec), superseded, replay, nil
}

func submitNoticeTxn(txn WriteTxn, idx uint64, n *concordv1.Notice, cmd *statev1.SubmitNotice) (*concordv1.NoticeRecord, string, bool, error) {
	at, atTS, err := acceptedTimeTxn(txn, cmd.GetAt())
	if err != nil {
		return nil, "", false, err
	}
	orig, err := checkNoticeTxn(txn, n, cmd.GetSignerKeyId(), at, dsse.Digest(cmd.GetEnvelope()))
	if err != nil {
		return nil, "", false, err
	}
	if orig != nil {
		return orig, "", true, nil
	}
	if err := checkCosignersTxn(txn, cmd.GetEnvelope(), at); err != nil {
		return nil, "", false, err
	}
	js, err := jurisdictionsTxn(txn)
	if err != nil {
		return nil, "", false, err
	}
	// The record keeps the notice without its hashes: they stay in the signed payload (and in
	// the match index), so a 10 000-hash notice is not held twice in memory.
	hashes := n.Hashes
	n.Hashes = nil
	meta := proto.CloneOf(n)
	n.Hashes = hashes
	rec := &concordv1.NoticeRecord{
		Notice:        meta,
		Envelope:      cmd.GetEnvelope(),
		State:         concordv1.NoticeState_NOTICE_STATE_ACTIVE,
		HashCount:     uint32(len(hashes)),
		AcceptedAt:    atTS,
		AcceptedIndex: idx,
		UpdatedAt:     atTS,
		UpdatedIndex:  idx,
		Jurisdictions: deriveJurisdictions(js, n, at),
		SignerKeyId:   cmd.GetSignerKeyId(),
	}
	var entry []byte
	if rec.LogIndex, entry, err = appendLogTxn(txn, idx, atTS, statementEntry(cmd.GetEnvelope(), cmd.GetSignerKeyId()), n.GetNoticeId()); err != nil {
		return nil, "", false, err
	}
	rec.Envelope = sharedEnvelope(rec.GetEnvelope(), entry)
	if err := txn.Insert(tableNotices, rec); err != nil {
		return nil, "", false, fmt.Errorf("insert notice %s: %w", n.GetNoticeId(), err)
	}
	newEvent := &concordv1.NoticeEvent{Type: concordv1.NoticeEventType_NOTICE_EVENT_TYPE_NEW, NoticeId: n.GetNoticeId(), By: n.GetIssuer(), Changes: rec.GetJurisdictions()}
	for _, js := range rec.GetJurisdictions() {
		if js.GetStatus() == concordv1.AdoptionStatus_ADOPTION_STATUS_RECOGNISED {
			newEvent.RecognisedIn = append(newEvent.RecognisedIn, js.GetJurisdiction())
		}
	}
	if err := appendEventTxn(txn, idx, rec.GetLogIndex(), atTS, newEvent); err != nil {
		return nil, "", false, err
	}
	if old := n.GetSupersedes(); old != "" {
		prev, err := noticeRowTxn(txn, old)
		if err != nil {
			return nil, "", false, err
		}
		next := shallowRecord(prev)
		next.State = concordv1.NoticeState_NOTICE_STATE_SUPERSEDED
		next.SupersededBy = n.GetNoticeId()
		endObligations(next, atTS, "superseded by notice "+n.GetNoticeId())
		touch(next, idx, atTS)
		if err := txn.Insert(tableNotices, next); err != nil {
			return nil, "", false, fmt.Errorf("supersede notice %s: %w", old, err)
		}
		if err := appendEventTxn(txn, idx, rec.GetLogIndex(), atTS, &concordv1.NoticeEvent{
			Type: concordv1.NoticeEventType_NOTICE_EVENT_TYPE_SUPERSEDED, NoticeId: old, By: n.GetIssuer(),
			Changes: next.GetJurisdictions(), SupersededBy: n.GetNoticeId(),
		}); err != nil {
			return nil, "", false, err
		}
	}
	if err := bumpIndexTxn(txn, tableNotices, idx); err != nil {
		return nil, "", false, err
	}
	return rec, n.GetSupersedes(), false, nil
}

// ApplyNoticeStatement applies an endorsement, objection or withdrawal, the parsed payload of
// cmd's envelope whose signature the service verified, at raft index idx, after checking the
// rules again as of the leader-stamped cmd.at. An identical re-send returns the original index
// with the notice as it is now, and changes nothing.
func (s *Store) ApplyNoticeStatement(idx uint64, st Statement, cmd *statev1.NoticeStatement) (*StatementResult, bool, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	res, replay, err := noticeStatementTxn(txn, idx, st, cmd)
	if err != nil {
		return nil, false, err
	}
	txn.Commit()
	return res, replay, nil
}

func noticeStatementTxn(txn WriteTxn, idx uint64, st Statement, cmd *statev1.NoticeStatement) (*StatementResult, bool, error) {
	at, atTS, err := acceptedTimeTxn(txn, cmd.GetAt())
	if err != nil {
		return nil, false, err
	}
	digest := dsse.Digest(cmd.GetEnvelope())
	applied, rec, js, err := checkNoticeStatementTxn(txn, st, cmd.GetSignerKeyId(), at, digest)
	if err != nil {
		return nil, false, err
	}
	if applied != nil {
		res, err := replayedStatement(txn, applied)
		return res, true, err
	}
	if err := checkCosignersTxn(txn, cmd.GetEnvelope(), at); err != nil {
		return nil, false, err
	}

	next := shallowRecord(rec)
	next.Statements = append(slices.Clip(rec.GetStatements()), cmd.GetEnvelope())
	touch(next, idx, atTS)
	switch s := st.(type) {
	case *withdrawalStatement:
		next.State = concordv1.NoticeState_NOTICE_STATE_WITHDRAWN
		next.Withdrawal = s.Withdrawal
		endObligations(next, atTS, "withdrawn by "+s.GetAuthor()+": "+s.GetReason())
	case *endorsementStatement:
		js.Status = concordv1.AdoptionStatus_ADOPTION_STATUS_ENDORSED
		js.Actionable = true
		js.LegalBasis = s.GetLegalBasis()
		j, err := jurisdictionRowTxn(txn, js.GetJurisdiction())
		if err != nil {
			return nil, false, err
		}
		js.ActionDeadline = jurisdictionDeadline(j, at)
		js.ObjectionWindowClosesAt = nil
		setStatement(js, s.GetEndorsementId(), s.GetAuthor(), "", atTS)
		next.Jurisdictions = replaceJurisdiction(rec.GetJurisdictions(), js)
	case *objectionStatement:
		js.Status = concordv1.AdoptionStatus_ADOPTION_STATUS_OBJECTED
		js.Actionable = false
		js.ActionDeadline = nil
		setStatement(js, s.GetObjectionId(), s.GetAuthor(), s.GetReason(), atTS)
		next.Jurisdictions = replaceJurisdiction(rec.GetJurisdictions(), js)
	default:
		return nil, false, fmt.Errorf("notice statement %T: not handled", st)
	}
	if err := txn.Insert(tableNotices, next); err != nil {
		return nil, false, fmt.Errorf("update notice %s: %w", st.NoticeID(), err)
	}
	logIdx, _, err := appendLogTxn(txn, idx, atTS, statementEntry(cmd.GetEnvelope(), cmd.GetSignerKeyId()), st.NoticeID())
	if err != nil {
		return nil, false, err
	}
	ev := &concordv1.NoticeEvent{NoticeId: st.NoticeID(), By: st.Author()}
	switch s := st.(type) {
	case *withdrawalStatement:
		ev.Type, ev.Reinstate, ev.Changes = concordv1.NoticeEventType_NOTICE_EVENT_TYPE_WITHDRAWN, s.GetReinstate(), next.GetJurisdictions()
	case *endorsementStatement:
		ev.Type, ev.Changes = concordv1.NoticeEventType_NOTICE_EVENT_TYPE_ENDORSED, []*concordv1.JurisdictionState{js}
	case *objectionStatement:
		ev.Type, ev.Changes = concordv1.NoticeEventType_NOTICE_EVENT_TYPE_OBJECTED, []*concordv1.JurisdictionState{js}
	}
	if err := appendEventTxn(txn, idx, logIdx, atTS, ev); err != nil {
		return nil, false, err
	}
	if err := txn.Insert(tableStatements, &statev1.AppliedStatement{
		StatementId:    st.ID(),
		NoticeId:       st.NoticeID(),
		PayloadType:    cmd.GetEnvelope().GetPayloadType(),
		EnvelopeDigest: digest,
		Index:          idx,
		At:             atTS,
		LogIndex:       logIdx,
	}); err != nil {
		return nil, false, fmt.Errorf("record statement %s: %w", st.ID(), err)
	}
	for _, t := range noticeTables {
		if err := bumpIndexTxn(txn, t, idx); err != nil {
			return nil, false, err
		}
	}
	return &StatementResult{Record: shallowRecord(next), Index: idx, LogIndex: logIdx}, false, nil
}

func setStatement(js *concordv1.JurisdictionState, id, author, reason string, at *timestamppb.Timestamp) {
	js.StatementId, js.StatementAuthor, js.Reason, js.ChangedAt = id, author, reason, at
}

// replaceJurisdiction returns a new list with js in place of the state of its jurisdiction, or
// added in code order if the notice had none (a jurisdiction registered after it).
func replaceJurisdiction(list []*concordv1.JurisdictionState, js *concordv1.JurisdictionState) []*concordv1.JurisdictionState {
	out := make([]*concordv1.JurisdictionState, 0, len(list)+1)
	placed := false
	for _, cur := range list {
		switch {
		case cur.GetJurisdiction() == js.GetJurisdiction():
			out = append(out, js)
			placed = true
			continue
		case !placed && cur.GetJurisdiction() > js.GetJurisdiction():
			out = append(out, js)
			placed = true
		}
		out = append(out, cur)
	}
	if !placed {
		out = append(out, js)
	}
	return out
}

// endObligations marks every jurisdiction of rec WITHDRAWN: nothing is owed anywhere any more.
func endObligations(rec *concordv1.NoticeRecord, at *timestamppb.Timestamp, reason string) {
	out := make([]*concordv1.JurisdictionState, len(rec.GetJurisdictions()))
	for i, cur := range rec.GetJurisdictions() {
		js := proto.CloneOf(cur)
		if js.GetStatus() != concordv1.AdoptionStatus_ADOPTION_STATUS_NOT_COVERED {
			js.Status = concordv1.AdoptionStatus_ADOPTION_STATUS_WITHDRAWN
			js.Reason = reason
			js.ChangedAt = at
		}
		js.Actionable = false
		js.ActionDeadline = nil
		js.ObjectionWindowClosesAt = nil
		out[i] = js
	}
	rec.Jurisdictions = out
}

func touch(rec *concordv1.NoticeRecord, idx uint64, at *timestamppb.Timestamp) {
	rec.UpdatedIndex = idx
	rec.UpdatedAt = at
}

// shallowRecord copies the top-level fields of r: nested messages and lists are shared.
func shallowRecord(r *concordv1.NoticeRecord) *concordv1.NoticeRecord {
	out := &concordv1.NoticeRecord{}
	dst := out.ProtoReflect()
	r.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	return out
}

func noticeRowTxn(txn ReadTxn, id string) (*concordv1.NoticeRecord, error) {
	raw, err := txn.First(tableNotices, indexID, id)
	if err != nil {
		return nil, fmt.Errorf("notice %s: %w", id, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*concordv1.NoticeRecord), nil
}

func appliedStatementTxn(txn ReadTxn, id string) (*statev1.AppliedStatement, error) {
	raw, err := txn.First(tableStatements, indexID, id)
	if err != nil {
		return nil, fmt.Errorf("statement %s: %w", id, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*statev1.AppliedStatement), nil
}

func jurisdictionRowTxn(txn ReadTxn, code string) (*concordv1.Jurisdiction, error) {
	raw, err := txn.First(tableJurisdictions, indexID, code)
	if err != nil {
		return nil, fmt.Errorf("jurisdiction %s: %w", code, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*concordv1.Jurisdiction), nil
}

// jurisdictionsTxn returns the stored jurisdictions (read-only) in code order.
func jurisdictionsTxn(txn ReadTxn) ([]*concordv1.Jurisdiction, error) {
	iter, err := txn.Get(tableJurisdictions, indexIDPrefix, "")
	if err != nil {
		return nil, fmt.Errorf("jurisdictions: %w", err)
	}
	var js []*concordv1.Jurisdiction
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		js = append(js, raw.(*concordv1.Jurisdiction))
	}
	return js, nil
}

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// Statement is a parsed endorsement, objection or withdrawal.
type Statement interface {
	proto.Message
	// ID is the statement's own id.
	ID() string
	NoticeID() string
	Author() string
	// Jurisdiction is the author's jurisdiction ("" for a withdrawal).
	Jurisdiction() string
}

type (
	endorsementStatement struct{ *concordv1.Endorsement }
	objectionStatement   struct{ *concordv1.Objection }
	withdrawalStatement  struct{ *concordv1.Withdrawal }
)

func (s *endorsementStatement) ID() string           { return s.GetEndorsementId() }
func (s *endorsementStatement) NoticeID() string     { return s.GetNoticeId() }
func (s *endorsementStatement) Author() string       { return s.GetAuthor() }
func (s *endorsementStatement) Jurisdiction() string { return s.GetJurisdiction() }
func (s *objectionStatement) ID() string             { return s.GetObjectionId() }
func (s *objectionStatement) NoticeID() string       { return s.GetNoticeId() }
func (s *objectionStatement) Author() string         { return s.GetAuthor() }
func (s *objectionStatement) Jurisdiction() string   { return s.GetJurisdiction() }
func (s *withdrawalStatement) ID() string            { return s.GetWithdrawalId() }
func (s *withdrawalStatement) NoticeID() string      { return s.GetNoticeId() }
func (s *withdrawalStatement) Author() string        { return s.GetAuthor() }
func (s *withdrawalStatement) Jurisdiction() string  { return "" }

// NewStatement returns an empty statement of payload type payloadType, to parse a verified
// payload into, or an error naming the payload types a notice statement may have.
func NewStatement(payloadType string) (Statement, error) {
	switch payloadType {
	case dsse.PayloadTypeEndorsement:
		return &endorsementStatement{&concordv1.Endorsement{}}, nil
	case dsse.PayloadTypeObjection:
		return &objectionStatement{&concordv1.Objection{}}, nil
	case dsse.PayloadTypeWithdrawal:
		return &withdrawalStatement{&concordv1.Withdrawal{}}, nil
	}
	return nil, fault.Invalid("payload type %q is not a notice statement: want %s, %s or %s", payloadType, dsse.PayloadTypeEndorsement, dsse.PayloadTypeObjection, dsse.PayloadTypeWithdrawal)
}

// StatementMessage returns the statement's generated message (for validation and parsing).
func StatementMessage(st Statement) proto.Message {
	switch s := st.(type) {
	case *endorsementStatement:
		return s.Endorsement
	case *objectionStatement:
		return s.Objection
	case *withdrawalStatement:
		return s.Withdrawal
	}
	return nil
}
