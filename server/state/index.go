package state

import (
	"fmt"

	statev1 "concord/gen/concord/state/v1"

	"github.com/hashicorp/go-memdb"
)

const tableIndex = "index"

// IndexEntry records the raft index of the last change to a table (Nomad's index table). It
// feeds blocking queries ("wait until the partners table passes index N") and resumable feeds.
type IndexEntry = statev1.IndexEntry

func indexTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableIndex,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: stringIndexer[*IndexEntry]{field: func(e *IndexEntry) string { return e.Key }},
			},
		},
	}
}

// tableIndexTxn returns the raft index of table's last change, or 0 if it never changed.
func tableIndexTxn(txn ReadTxn, table string) (uint64, error) {
	raw, err := txn.First(tableIndex, indexID, table)
	if err != nil {
		return 0, fmt.Errorf("index of table %s: %w", table, err)
	}
	if raw == nil {
		return 0, nil
	}
	return raw.(*IndexEntry).Value, nil
}

// maxIndexTxn returns the highest index of tables.
func maxIndexTxn(txn ReadTxn, tables ...string) (uint64, error) {
	var max uint64
	for _, t := range tables {
		idx, err := tableIndexTxn(txn, t)
		if err != nil {
			return 0, err
		}
		if idx > max {
			max = idx
		}
	}
	return max, nil
}

// bumpIndexTxn records idx as the index of table's last change. Raft indexes only grow, so an
// older idx than the recorded one is a bug in the caller.
func bumpIndexTxn(txn WriteTxn, table string, idx uint64) error {
	cur, err := tableIndexTxn(txn, table)
	if err != nil {
		return err
	}
	if idx < cur {
		return fmt.Errorf("index of table %s: raft index %d is below the recorded %d", table, idx, cur)
	}
	if idx == cur {
		return nil
	}
	if err := txn.Insert(tableIndex, &IndexEntry{Key: table, Value: idx}); err != nil {
		return fmt.Errorf("index of table %s: %w", table, err)
	}
	return nil
}

// lastChangeTxn returns the highest index of any table: the raft index of the last command that
// changed the state.
func lastChangeTxn(txn ReadTxn) (uint64, error) {
	iter, err := txn.Get(tableIndex, indexIDPrefix, "")
	if err != nil {
		return 0, fmt.Errorf("index table: %w", err)
	}
	var max uint64
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		max = maxU64(max, raw.(*IndexEntry).Value)
	}
	return max, nil
}

func maxU64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// LastChange returns the raft index of the last command that changed the state.
func (s *Store) LastChange() uint64 {
	idx, err := lastChangeTxn(s.db.Txn(false))
	if err != nil {
		panic(err) // only a schema bug makes an index look-up fail
	}
	return idx
}
