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

	"google.golang.org/protobuf/proto"
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
	err := st.Notices(func(rec *concordv1.NoticeRecord) bool {
		if rec.GetState() != concordv1.NoticeState_NOTICE_STATE_ACTIVE {
			return true
		}
		var n concordv1.Notice
		if err := proto.Unmarshal(rec.GetEnvelope().GetPayload(), &n); err != nil {
			buildErr = fmt.Errorf("match index: notice %s: stored payload does not parse: %w", rec.GetNotice().GetNoticeId(), err)
			return false
		}
		if err := b.Add(n.GetNoticeId(), hashes(n.GetHashes())); err != nil {
			buildErr = fmt.Errorf("match index: notice %s: %w", n.GetNoticeId(), err)
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
