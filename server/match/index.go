// Package match is the core of MatchService: it answers which notices in force cover a batch of
// hashes, through the match index that the FSM keeps beside the state store, and tells a
// platform what each notice asks where. A platform never learns of a notice its sharing
// restrictions hide from it.
package match

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	concordv1 "concord/gen/concord/v1"
	"concord/matchindex"
	"concord/server/fsm"
	"concord/server/state"

	"google.golang.org/protobuf/encoding/protowire"
)

// Index is the match index of the notices in force, derived from the state by the FSM: it adds a
// notice's hashes when the notice is accepted, removes them when it is withdrawn or superseded,
// and is rebuilt from the store after a snapshot restore.
type Index struct {
	cur    atomic.Pointer[matchindex.Index]
	opts   matchindex.Options
	logger *slog.Logger
}

var _ fsm.Derived = (*Index)(nil)

// NewIndex returns an empty index.
func NewIndex(opts matchindex.Options, logger *slog.Logger) *Index {
	if logger == nil {
		logger = slog.Default()
	}
	x := &Index{opts: opts, logger: logger}
	x.cur.Store(matchindex.New(opts))
	return x
}

// Current returns the index to query. A rebuild replaces it.
func (x *Index) Current() *matchindex.Index { return x.cur.Load() }

// hashes converts a notice's hashes for the index.
func hashes(hs []*concordv1.Hash) []matchindex.Hash {
	out := make([]matchindex.Hash, len(hs))
	for i, h := range hs {
		out[i] = matchindex.Hash{Kind: matchindex.Kind(h.GetKind()), Value: h.GetValue()}
	}
	return out
}

// NoticeAccepted indexes an accepted notice's hashes.
func (x *Index) NoticeAccepted(index uint64, n *concordv1.Notice) {
	if err := x.Current().Add(n.GetNoticeId(), hashes(n.GetHashes())); err != nil {
		// The service validated every hash before the notice was committed: this is a bug, and
		// the notice would go unmatched. Say so loudly; a rebuild (restart) retries it.
		x.logger.Error("match index: notice not indexed", "notice", n.GetNoticeId(), "raft_index", index, "error", err)
	}
}

// NoticeRetired takes a withdrawn or superseded notice out of the index.
func (x *Index) NoticeRetired(index uint64, id string) {
	if err := x.Current().Remove(id); err != nil {
		x.logger.Error("match index: notice not removed", "notice", id, "raft_index", index, "error", err)
	}
}

// Rebuild builds a new index of the notices in force in st and swaps it in.
func (x *Index) Rebuild(st *state.Store) error {
	ix, err := Build(st, x.opts)
	if err != nil {
		return err
	}
	x.cur.Store(ix)
	return nil
}

// Build builds an index of the notices in force in st, from their signed payloads.
func Build(st *state.Store, opts matchindex.Options) (*matchindex.Index, error) {
	b := matchindex.NewBuilder(opts)
	var buildErr error
	var buf []matchindex.Hash // reused: the builder copies what it keeps
	err := st.Notices(func(rec *concordv1.NoticeRecord) bool {
		if rec.GetState() != concordv1.NoticeState_NOTICE_STATE_ACTIVE {
			return true
		}
		id, hs, err := noticeHashes(rec.GetEnvelope().GetPayload(), buf)
		buf = hs
		if err != nil {
			buildErr = fmt.Errorf("match index: notice %s: stored payload does not parse: %w", rec.GetNotice().GetNoticeId(), err)
			return false
		}
		if err := b.Add(id, hs); err != nil {
			buildErr = fmt.Errorf("match index: notice %s: %w", id, err)
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if buildErr != nil {
		return nil, buildErr
	}
	return b.Finish(), nil
}

// Field numbers of concordv1.Notice and concordv1.Hash that the index reads.
const (
	noticeIDField     = 1
	noticeHashesField = 6
	hashKindField     = 1
	hashValueField    = 2
)

// noticeHashes reads a signed notice's id and hashes from its payload, as proto.Unmarshal of a
// concordv1.Notice would give them, without decoding the rest: a restart indexes millions of
// hashes, and the general decoder's allocations were most of that time. The hashes are appended
// to buf[:0]; their values point into payload.
func noticeHashes(payload []byte, buf []matchindex.Hash) (string, []matchindex.Hash, error) {
	var id string
	out := buf[:0]
	for len(payload) > 0 {
		num, typ, n := protowire.ConsumeTag(payload)
		if n < 0 {
			return "", nil, protowire.ParseError(n)
		}
		payload = payload[n:]
		switch {
		case num == noticeIDField && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(payload)
			if n < 0 {
				return "", nil, protowire.ParseError(n)
			}
			id, payload = string(v), payload[n:]
		case num == noticeHashesField && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(payload)
			if n < 0 {
				return "", nil, protowire.ParseError(n)
			}
			h, err := hashFields(v)
			if err != nil {
				return "", nil, err
			}
			out, payload = append(out, h), payload[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, payload)
			if n < 0 {
				return "", nil, protowire.ParseError(n)
			}
			payload = payload[n:]
		}
	}
	return id, out, nil
}

// hashFields reads a concordv1.Hash's kind and value.
func hashFields(b []byte) (matchindex.Hash, error) {
	var h matchindex.Hash
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return h, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == hashKindField && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return h, protowire.ParseError(n)
			}
			h.Kind, b = matchindex.Kind(int32(v)), b[n:]
		case num == hashValueField && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return h, protowire.ParseError(n)
			}
			h.Value, b = v, b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return h, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return h, nil
}
