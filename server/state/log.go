package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The transparency log's entries. Every accepted statement appends one, in the same write
// transaction as its effect, so the log and the state never disagree; the Merkle tree over the
// entries is derived from this table (see translog.Tree).
const tableLog = "log"

func logTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableLog,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: uint64Indexer[*statev1.LogRow]{field: (*statev1.LogRow).GetIndex}},
		},
	}
}

// appendLogTxn appends a log entry for a statement accepted at raft index raftIdx, at the
// leader-stamped time at, and returns its index and bytes. The entry's bytes are built here,
// once: they are the leaf, served byte for byte from then on.
func appendLogTxn(txn WriteTxn, raftIdx uint64, at *timestamppb.Timestamp, entry *concordv1.LogEntry, noticeID string) (uint64, []byte, error) {
	return appendLogRowTxn(txn, raftIdx, at, entry, &statev1.LogRow{NoticeId: noticeID})
}

// appendLogRowTxn is appendLogTxn with the row's other fields (the reporter of an action
// report) given in row.
func appendLogRowTxn(txn WriteTxn, raftIdx uint64, at *timestamppb.Timestamp, entry *concordv1.LogEntry, row *statev1.LogRow) (uint64, []byte, error) {
	n, err := logSizeTxn(txn)
	if err != nil {
		return 0, nil, err
	}
	entry.Index = n
	entry.AcceptedAt = at
	b, err := deterministic.Marshal(entry)
	if err != nil {
		return 0, nil, fmt.Errorf("log entry %d: %w", n, err)
	}
	row.Index, row.Entry = n, b
	if err := txn.Insert(tableLog, row); err != nil {
		return 0, nil, fmt.Errorf("log entry %d: %w", n, err)
	}
	if err := txn.Insert(tableClock, &IndexEntry{Key: clockKey, Value: uint64(at.AsTime().UnixNano())}); err != nil {
		return 0, nil, fmt.Errorf("log clock: %w", err)
	}
	return n, b, bumpIndexTxn(txn, tableLog, raftIdx)
}

// sharedEnvelope returns env with its payload pointing into entry, the log entry that carries
// it, when entry does carry it: a large notice is then held in memory once, not twice.
func sharedEnvelope(env *concordv1.Envelope, entry []byte) *concordv1.Envelope {
	p := env.GetPayload()
	off := bytes.Index(entry, p)
	if off < 0 {
		return env
	}
	return &concordv1.Envelope{Payload: entry[off : off+len(p) : off+len(p)], PayloadType: env.GetPayloadType(), Signatures: env.GetSignatures()}
}

// The clock table holds one row, clockKey: the accepted time of the last log entry, in Unix
// nanoseconds. Accepted times never go back (see acceptedTimeTxn).
const (
	tableClock = "clock"
	clockKey   = "accepted_at"
)

func clockTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableClock,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: stringIndexer[*IndexEntry]{field: func(e *IndexEntry) string { return e.Key }}},
		},
	}
}

// acceptedTimeTxn is the time a command is accepted at: the leader's stamp, or the last entry's
// accepted time if that is later. Commands are stamped before the raft round trip, so a
// statement stamped first may commit second (a large notice, a leader change with clock skew);
// taking the later time keeps accepted times in log order, and judges every rule (a key revoked
// by the entry before, say) as of a time no earlier than any entry before it.
func acceptedTimeTxn(txn ReadTxn, stamp *timestamppb.Timestamp) (time.Time, *timestamppb.Timestamp, error) {
	at, err := commandTime(stamp)
	if err != nil {
		return time.Time{}, nil, err
	}
	raw, err := txn.First(tableClock, indexID, clockKey)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("log clock: %w", err)
	}
	if raw != nil {
		if last := time.Unix(0, int64(raw.(*IndexEntry).Value)); last.After(at) {
			at = last
		}
	}
	return at, timestamppb.New(at), nil
}

// statementEntry is the log entry of a signed statement.
func statementEntry(env *concordv1.Envelope, signerKeyID string) *concordv1.LogEntry {
	return &concordv1.LogEntry{Body: &concordv1.LogEntry_Statement{Statement: env}, SignerKeyId: signerKeyID}
}

func logSizeTxn(txn ReadTxn) (uint64, error) {
	raw, err := txn.Last(tableLog, indexIDPrefix)
	if err != nil {
		return 0, fmt.Errorf("log size: %w", err)
	}
	if raw == nil {
		return 0, nil
	}
	return raw.(*statev1.LogRow).GetIndex() + 1, nil
}

// LogSize is the number of log entries.
func (s *Store) LogSize() uint64 {
	n, err := logSizeTxn(s.db.Txn(false))
	if err != nil {
		panic(err) // only a schema bug makes the look-up fail
	}
	return n
}

// LogRow returns entry i (read-only: never modify it), or nil beyond the log.
func (s *Store) LogRow(i uint64) (*statev1.LogRow, error) {
	raw, err := s.db.Txn(false).First(tableLog, indexID, i)
	if err != nil {
		return nil, fmt.Errorf("log entry %d: %w", i, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*statev1.LogRow), nil
}

// LogRows calls fn with entries from, from+1, ... (read-only) until the log ends or fn returns
// false.
func (s *Store) LogRows(from uint64, fn func(*statev1.LogRow) bool) error {
	iter, err := s.db.Txn(false).LowerBound(tableLog, indexID, from)
	if err != nil {
		return fmt.Errorf("log entries from %d: %w", from, err)
	}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		if !fn(raw.(*statev1.LogRow)) {
			return nil
		}
	}
	return nil
}

// uint64Indexer indexes objects of type T by one uint64 field, big-endian so that keys sort as
// numbers.
type uint64Indexer[T any] struct {
	field func(T) uint64
}

func (x uint64Indexer[T]) FromObject(raw any) (bool, []byte, error) {
	obj, ok := raw.(T)
	if !ok {
		var want T
		return false, nil, fmt.Errorf("index: object is %T, want %T", raw, want)
	}
	return true, binary.BigEndian.AppendUint64(nil, x.field(obj)), nil
}

func (x uint64Indexer[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("index: got %d arguments, want 1", len(args))
	}
	v, ok := args[0].(uint64)
	if !ok {
		return nil, fmt.Errorf("index: argument is %T, want uint64", args[0])
	}
	return binary.BigEndian.AppendUint64(nil, v), nil
}

// PrefixFromArgs takes no argument, or "": the prefix of every key, to scan the whole table or
// find its first or last row.
func (x uint64Indexer[T]) PrefixFromArgs(args ...any) ([]byte, error) {
	if len(args) > 1 || (len(args) == 1 && args[0] != "") {
		return nil, fmt.Errorf("index: a prefix scan of a number index takes no argument, got %v", args)
	}
	return []byte{}, nil
}
