package state

import (
	"fmt"

	concordv1 "concord/gen/concord/v1"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The notice feed: one row per notice event, keyed by its cursor (1, 2, ...), written in the
// same transaction as the change it reports. Watchers read it at their own pace from consistent
// snapshots, so a slow watcher holds no writer and no other watcher back.
const (
	tableEvents   = "events"
	indexOfNotice = "notice"
)

func eventsTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableEvents,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: uint64Indexer[*concordv1.NoticeEvent]{field: (*concordv1.NoticeEvent).GetCursor}},
			indexOfNotice: {Name: indexOfNotice, Indexer: stringIndexer[*concordv1.NoticeEvent]{
				field: (*concordv1.NoticeEvent).GetNoticeId}},
		},
	}
}

// appendEventTxn records an event; its cursor is the next one.
func appendEventTxn(txn WriteTxn, raftIdx, logIdx uint64, at *timestamppb.Timestamp, ev *concordv1.NoticeEvent) error {
	last, err := lastCursorTxn(txn)
	if err != nil {
		return err
	}
	ev.Cursor = last + 1
	ev.EventId = fmt.Sprintf("%s-%d", ev.GetNoticeId(), ev.Cursor)
	ev.At = at
	ev.LogIndex = logIdx
	if err := txn.Insert(tableEvents, ev); err != nil {
		return fmt.Errorf("notice event %d: %w", ev.Cursor, err)
	}
	return bumpIndexTxn(txn, tableEvents, raftIdx)
}

func lastCursorTxn(txn ReadTxn) (uint64, error) {
	raw, err := txn.Last(tableEvents, indexIDPrefix)
	if err != nil {
		return 0, fmt.Errorf("last notice event: %w", err)
	}
	if raw == nil {
		return 0, nil
	}
	return raw.(*concordv1.NoticeEvent).GetCursor(), nil
}

// LastCursor is the cursor of the feed's last event (0 when there is none), and a channel closed
// when a later event is committed.
func (s *Store) LastCursor() (uint64, <-chan struct{}, error) {
	txn := s.db.Txn(false)
	// Every append bumps the events table's index row: its watch channel fires on a new event.
	watch, _, err := txn.FirstWatch(tableIndex, indexID, tableEvents)
	if err != nil {
		return 0, nil, fmt.Errorf("watch notice events: %w", err)
	}
	last, err := lastCursorTxn(txn)
	if err != nil {
		return 0, nil, err
	}
	return last, watch, nil
}

// Events calls fn with the events after cursor, in order (read-only: never modify them), until
// the feed ends or fn returns false.
func (s *Store) Events(after uint64, fn func(*concordv1.NoticeEvent) bool) error {
	iter, err := s.db.Txn(false).LowerBound(tableEvents, indexID, after+1)
	if err != nil {
		return fmt.Errorf("notice events after %d: %w", after, err)
	}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		if !fn(raw.(*concordv1.NoticeEvent)) {
			return nil
		}
	}
	return nil
}

// NoticeEvents returns the events of one notice in order (read-only).
func (s *Store) NoticeEvents(noticeID string) ([]*concordv1.NoticeEvent, error) {
	iter, err := s.db.Txn(false).Get(tableEvents, indexOfNotice, noticeID)
	if err != nil {
		return nil, fmt.Errorf("events of notice %s: %w", noticeID, err)
	}
	var out []*concordv1.NoticeEvent
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		out = append(out, raw.(*concordv1.NoticeEvent))
	}
	return out, nil
}
