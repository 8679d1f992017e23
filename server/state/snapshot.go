package state

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"concord/dsse"
	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"
)

// snapshotFormat is the version of the snapshot stream. Bump it when a change to the stream
// cannot be read by older servers; adding a record type does not need a bump, since old servers
// refuse unknown records anyway.
const snapshotFormat = 1

// maxRecordBytes bounds one record, so a corrupt length cannot make Restore allocate gigabytes.
const maxRecordBytes = 64 << 20

// recordType identifies a snapshot record. Values are append-only: never renumber or reuse one.
type recordType byte

const (
	metaRecord          recordType = 1  // statev1.Meta, always the first record
	indexRecord         recordType = 2  // IndexEntry, see marshalIndexEntry
	partnerRecord       recordType = 3  // concordv1.Partner, without signing keys
	signingKeyRecord    recordType = 4  // concordv1.SigningKey
	jurisdictionRecord  recordType = 5  // concordv1.Jurisdiction
	appliedChangeRecord recordType = 6  // statev1.AppliedChange
	noticeRecord        recordType = 7  // concordv1.NoticeRecord
	statementRecord     recordType = 8  // statev1.AppliedStatement
	logRecord           recordType = 9  // statev1.LogRow
	eventRecord         recordType = 10 // concordv1.NoticeEvent
	actionRecord        recordType = 11 // concordv1.ActionRecord
	clockRecord         recordType = 12 // IndexEntry: the log's clock
)

// persister writes one table's rows, in primary key order, so that equal states give
// byte-identical snapshots.
type persister struct {
	table   string
	record  recordType
	marshal func(obj any) ([]byte, error)
}

// restorer inserts one record into the store being restored.
type restorer func(txn *memdb.Txn, data []byte) error

var (
	persisters []persister
	restorers  = map[recordType]restorer{}
)

func init() {
	registerTable(tableIndex, indexRecord,
		func(obj any) ([]byte, error) { return marshalIndexEntry(obj.(*IndexEntry)) },
		func(txn *memdb.Txn, data []byte) error {
			e, err := unmarshalIndexEntry(data)
			if err != nil {
				return err
			}
			return txn.Insert(tableIndex, e)
		})
	registerProtoTable[*concordv1.Partner](tablePartners, partnerRecord)
	registerProtoTable[*concordv1.SigningKey](tableSigningKeys, signingKeyRecord)
	registerProtoTable[*concordv1.Jurisdiction](tableJurisdictions, jurisdictionRecord)
	registerProtoTable[*statev1.AppliedChange](tableRegistryChanges, appliedChangeRecord)
	// A notice's envelope is already in its log entry: it is persisted once, there, and
	// attached again on restore (restoreNoticeEnvelopes).
	registerTable(tableNotices, noticeRecord,
		func(obj any) ([]byte, error) {
			rec := shallowRecord(obj.(*concordv1.NoticeRecord))
			rec.Envelope = nil
			return deterministic.Marshal(rec)
		},
		func(txn *memdb.Txn, data []byte) error {
			rec := &concordv1.NoticeRecord{}
			if err := proto.Unmarshal(data, rec); err != nil {
				return err
			}
			return txn.Insert(tableNotices, rec)
		})
	registerProtoTable[*statev1.AppliedStatement](tableStatements, statementRecord)
	registerProtoTable[*statev1.LogRow](tableLog, logRecord)
	registerProtoTable[*concordv1.NoticeEvent](tableEvents, eventRecord)
	registerProtoTable[*concordv1.ActionRecord](tableActions, actionRecord)
	registerProtoTable[*IndexEntry](tableClock, clockRecord)
}

func registerTable(table string, rt recordType, marshal func(any) ([]byte, error), restore restorer) {
	if _, dup := restorers[rt]; dup || rt == metaRecord {
		panic(fmt.Sprintf("state: snapshot record type %d registered twice", rt))
	}
	persisters = append(persisters, persister{table: table, record: rt, marshal: marshal})
	restorers[rt] = restore
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// registerProtoTable registers a table whose rows are proto messages of type M.
func registerProtoTable[M proto.Message](table string, rt recordType) {
	registerTable(table, rt,
		func(obj any) ([]byte, error) { return deterministic.Marshal(obj.(M)) },
		func(txn *memdb.Txn, data []byte) error {
			var zero M
			msg := zero.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(data, msg); err != nil {
				return err
			}
			return txn.Insert(table, msg.(M))
		})
}

// Snapshot is a consistent point-in-time view of the store, for raft snapshots. Writes made
// after it was taken do not show in it.
type Snapshot struct {
	txn *memdb.Txn
	// AppliedIndex is the raft index of the last command applied to the state the snapshot
	// shows; Persist records it, and a store restored from the snapshot reports it (see
	// Store.RestoredIndex). The FSM sets it.
	AppliedIndex uint64
	// Raft describes the raft snapshot the state is written into, when there is one (the FSM
	// fills it in from the snapshot sink); zero otherwise.
	Raft RaftSnapshot
	// LogSize and LogRoot are the transparency log's size and root at this state (the FSM sets
	// them; a restore checks the rebuilt tree against them).
	LogSize uint64
	LogRoot []byte
}

// RaftSnapshot identifies a raft snapshot: its index, term and a digest of its configuration.
type RaftSnapshot struct {
	Index, Term         uint64
	ConfigurationDigest []byte
}

// Snapshot returns a consistent view of the store. It is cheap: memdb reads are immutable
// trees, so taking one copies nothing and blocks no writer.
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{txn: s.db.Txn(false)}
}

// Persist writes the snapshot as a stream of records: a Meta record, then every row of every
// table. Each record is a type byte, the uvarint length of its body, and the body, the row's
// deterministic proto encoding.
func (snap *Snapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriter(w)
	regIdx, err := maxIndexTxn(snap.txn, registryTables...)
	if err != nil {
		return err
	}
	meta, err := deterministic.Marshal(&statev1.Meta{Format: snapshotFormat, RegistryIndex: regIdx, AppliedIndex: snap.AppliedIndex,
		RaftIndex: snap.Raft.Index, RaftTerm: snap.Raft.Term, RaftConfigurationDigest: snap.Raft.ConfigurationDigest,
		LogSize: snap.LogSize, LogRoot: snap.LogRoot})
	if err != nil {
		return fmt.Errorf("snapshot meta: %w", err)
	}
	if err := writeRecord(bw, metaRecord, meta); err != nil {
		return err
	}
	for _, p := range persisters {
		iter, err := snap.txn.Get(p.table, indexIDPrefix, "")
		if err != nil {
			return fmt.Errorf("snapshot table %s: %w", p.table, err)
		}
		for obj := iter.Next(); obj != nil; obj = iter.Next() {
			body, err := p.marshal(obj)
			if err != nil {
				return fmt.Errorf("snapshot table %s: %w", p.table, err)
			}
			if err := writeRecord(bw, p.record, body); err != nil {
				return err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

func writeRecord(w *bufio.Writer, rt recordType, body []byte) error {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = byte(rt)
	n := 1 + binary.PutUvarint(hdr[1:], uint64(len(body)))
	if _, err := w.Write(hdr[:n]); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// Restore builds a new store from a stream written by Snapshot.Persist.
func Restore(r io.Reader) (*Store, error) {
	s, err := New()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(r)
	rt, body, err := readRecord(br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("restore snapshot: the snapshot is empty")
		}
		return nil, err
	}
	if rt != metaRecord {
		return nil, fmt.Errorf("restore snapshot: first record is of type %d, want a meta record", rt)
	}
	var meta statev1.Meta
	if err := proto.Unmarshal(body, &meta); err != nil {
		return nil, fmt.Errorf("restore snapshot: meta record: %w", err)
	}
	if meta.GetFormat() != snapshotFormat {
		return nil, fmt.Errorf("restore snapshot: format %d, this server reads format %d", meta.GetFormat(), snapshotFormat)
	}

	txn := s.db.Txn(true)
	defer txn.Abort()
	for n := 1; ; n++ {
		rt, body, err := readRecord(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w (record %d)", err, n)
		}
		restore, ok := restorers[rt]
		if !ok {
			return nil, fmt.Errorf("restore snapshot: record %d has unknown type %d: was it written by a newer server?", n, rt)
		}
		if err := restore(txn, body); err != nil {
			return nil, fmt.Errorf("restore snapshot: record %d (type %d): %w", n, rt, err)
		}
	}
	if err := restoreNoticeEnvelopes(txn); err != nil {
		return nil, fmt.Errorf("restore snapshot: %w", err)
	}
	regIdx, err := maxIndexTxn(txn, registryTables...)
	if err != nil {
		return nil, err
	}
	if regIdx != meta.GetRegistryIndex() {
		return nil, fmt.Errorf("restore snapshot: the rows give registry index %d but the meta record says %d: the snapshot is inconsistent", regIdx, meta.GetRegistryIndex())
	}
	// Older snapshots did not record the applied index: the last change to any table is the
	// closest bound they hold.
	applied := meta.GetAppliedIndex()
	if applied == 0 {
		if applied, err = lastChangeTxn(txn); err != nil {
			return nil, err
		}
	}
	txn.Commit()
	s.restoredIndex = applied
	s.restoredMeta = &meta
	return s, nil
}

// readRecord returns io.EOF only at a clean record boundary.
func readRecord(r *bufio.Reader) (recordType, []byte, error) {
	t, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, fmt.Errorf("restore snapshot: record length: %w", noEOF(err))
	}
	if n > maxRecordBytes {
		return 0, nil, fmt.Errorf("restore snapshot: record of %d bytes is above the %d-byte limit", n, maxRecordBytes)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("restore snapshot: record body: %w", noEOF(err))
	}
	return recordType(t), body, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// An index row is a statev1.IndexEntry, deterministically encoded.
func marshalIndexEntry(e *IndexEntry) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(e)
}

func unmarshalIndexEntry(b []byte) (*IndexEntry, error) {
	e := &IndexEntry{}
	if err := proto.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("index entry: %w", err)
	}
	if e.GetKey() == "" {
		return nil, errors.New("index entry without a key")
	}
	return e, nil
}

// restoreNoticeEnvelopes attaches to every restored notice the envelope of its log entry,
// sharing the entry's bytes.
func restoreNoticeEnvelopes(txn *memdb.Txn) error {
	iter, err := txn.Get(tableNotices, indexIDPrefix, "")
	if err != nil {
		return err
	}
	var recs []*concordv1.NoticeRecord
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		recs = append(recs, raw.(*concordv1.NoticeRecord))
	}
	for _, rec := range recs {
		raw, err := txn.First(tableLog, indexID, rec.GetLogIndex())
		if err != nil {
			return err
		}
		if raw == nil {
			return fmt.Errorf("notice %s: its log entry %d is missing", rec.GetNotice().GetNoticeId(), rec.GetLogIndex())
		}
		row := raw.(*statev1.LogRow)
		var entry concordv1.LogEntry
		if err := proto.Unmarshal(row.GetEntry(), &entry); err != nil {
			return fmt.Errorf("notice %s: log entry %d: %w", rec.GetNotice().GetNoticeId(), rec.GetLogIndex(), err)
		}
		if entry.GetStatement().GetPayloadType() != dsse.PayloadTypeNotice {
			return fmt.Errorf("notice %s: log entry %d holds a %s", rec.GetNotice().GetNoticeId(), rec.GetLogIndex(), entry.GetStatement().GetPayloadType())
		}
		// The record is the restore transaction's own object, not yet visible to any reader.
		rec.Envelope = sharedEnvelope(entry.GetStatement(), row.GetEntry())
	}
	return nil
}
