// Package state is Concord's queryable state: a go-memdb database written only by the raft FSM,
// one raft entry per write transaction, and read by the service from consistent snapshots.
//
// Every read returns objects the caller owns (clones): the stored objects are never shared, so a
// caller may modify what it gets back. Every write stamps the raft index of the entry that made
// it into the index table, which feeds blocking queries and resumable feeds.
package state

import (
	"fmt"
	"sync"

	statev1 "concord/gen/concord/state/v1"

	"github.com/hashicorp/go-memdb"
)

// ReadTxn is the part of a memdb transaction that queries use, so one query helper serves a
// read transaction, a write transaction that must see its own writes, and a snapshot.
type ReadTxn interface {
	Get(table, index string, args ...any) (memdb.ResultIterator, error)
	First(table, index string, args ...any) (any, error)
	FirstWatch(table, index string, args ...any) (<-chan struct{}, any, error)
	Last(table, index string, args ...any) (any, error)
	LowerBound(table, index string, args ...any) (memdb.ResultIterator, error)
}

// WriteTxn is a memdb write transaction.
type WriteTxn interface {
	ReadTxn
	Insert(table string, obj any) error
	Delete(table string, obj any) error
}

// Store is the state store. Its methods are safe for concurrent use; writes are serialised by
// memdb and, above it, by raft.
type Store struct {
	db *memdb.MemDB

	// abandonCh is closed when a snapshot restore replaces this store, so that blocking
	// queries and feeds watching it re-read from the new one.
	abandonCh   chan struct{}
	abandonOnce sync.Once

	// restoredIndex is the applied index of the snapshot the store was restored from.
	restoredIndex uint64
	// restoredMeta is the meta record of the snapshot the store was restored from.
	restoredMeta *statev1.Meta
}

// RestoredIndex is the raft index of the last command applied to the state of the snapshot this
// store was restored from (0 for a store that was not restored).
func (s *Store) RestoredIndex() uint64 { return s.restoredIndex }

// RestoredMeta is the meta record of the snapshot this store was restored from (read-only), or
// nil for a store that was not restored.
func (s *Store) RestoredMeta() *statev1.Meta { return s.restoredMeta }

// New returns an empty store.
func New() (*Store, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("state: create memdb: %w", err)
	}
	return &Store{db: db, abandonCh: make(chan struct{})}, nil
}

// AbandonCh is closed once the store has been replaced by a restore and must not be read any
// more: long-polls watching it should re-read from the FSM's current store.
func (s *Store) AbandonCh() <-chan struct{} { return s.abandonCh }

// Abandon marks the store as replaced. It is safe to call more than once.
func (s *Store) Abandon() { s.abandonOnce.Do(func() { close(s.abandonCh) }) }
