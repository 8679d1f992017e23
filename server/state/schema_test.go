package state

import (
	"bytes"
	"slices"
	"testing"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"

	"github.com/hashicorp/go-memdb"
)

// indexerCase is one index of one table: the key a look-up builds from its arguments, the key an
// object is stored under, and the key a prefix scan builds.
type indexerCase struct {
	read       []any
	readKey    []byte
	write      any
	writeKey   []byte   // nil: the object is not indexed
	writeKeys  [][]byte // for an index of several keys per object (a memdb.MultiIndexer)
	prefix     []any
	prefixKey  []byte
	wrongWrite any // an object of another type, which must be refused
}

const testNoticeID = "01J0000000000000000000000A"

var (
	testRecord = &concordv1.NoticeRecord{
		Notice: &concordv1.Notice{NoticeId: testNoticeID, Issuer: "fr-pharos", Categories: []concordv1.Category{
			concordv1.Category_CATEGORY_GLORIFICATION, concordv1.Category_CATEGORY_INCITEMENT}},
		State: concordv1.NoticeState_NOTICE_STATE_ACTIVE,
		Jurisdictions: []*concordv1.JurisdictionState{
			{Jurisdiction: "DE", Status: concordv1.AdoptionStatus_ADOPTION_STATUS_ENDORSED},
			{Jurisdiction: "FR", Status: concordv1.AdoptionStatus_ADOPTION_STATUS_ISSUING},
		},
	}
	testAction  = &concordv1.ActionRecord{Report: &concordv1.ActionReport{ReportId: "01A0000000000000000000000A", NoticeId: testNoticeID, Reporter: "videoshare"}}
	testApplied = &statev1.AppliedStatement{StatementId: "01J0000000000000000000000B", NoticeId: testNoticeID}
)

func TestSchemaIndexers(t *testing.T) {
	t.Parallel()
	key := &concordv1.SigningKey{KeyId: "0a1b", PartnerId: "hub-ops"}
	cases := map[string]map[string]indexerCase{
		tableIndex: {
			indexID: {
				read: []any{"partners"}, readKey: []byte("partners\x00"),
				write: &IndexEntry{Key: "partners", Value: 7}, writeKey: []byte("partners\x00"),
				prefix: []any{"part"}, prefixKey: []byte("part"),
				wrongWrite: &concordv1.Partner{Id: "partners"},
			},
		},
		tablePartners: {
			indexID: {
				read: []any{"fr-pharos"}, readKey: []byte("fr-pharos\x00"),
				write: &concordv1.Partner{Id: "fr-pharos"}, writeKey: []byte("fr-pharos\x00"),
				prefix: []any{"fr"}, prefixKey: []byte("fr"),
				wrongWrite: key,
			},
		},
		tableSigningKeys: {
			indexID: {
				read: []any{"0a1b"}, readKey: []byte("0a1b\x00"),
				write: key, writeKey: []byte("0a1b\x00"),
				prefix: []any{""}, prefixKey: []byte{},
				wrongWrite: &concordv1.Partner{Id: "0a1b"},
			},
			indexPartner: {
				read: []any{"hub-ops"}, readKey: []byte("hub-ops\x00"),
				write: key, writeKey: []byte("hub-ops\x00"),
				prefix: []any{"hub"}, prefixKey: []byte("hub"),
				wrongWrite: &concordv1.Partner{Id: "hub-ops"},
			},
		},
		tableJurisdictions: {
			indexID: {
				read: []any{"FR"}, readKey: []byte("FR\x00"),
				write: &concordv1.Jurisdiction{Code: "FR"}, writeKey: []byte("FR\x00"),
				prefix: []any{"F"}, prefixKey: []byte("F"),
				wrongWrite: &concordv1.Partner{Id: "FR"},
			},
		},
		tableNotices: {
			indexID: {
				read: []any{testNoticeID}, readKey: []byte(testNoticeID + "\x00"),
				write: testRecord, writeKey: []byte(testNoticeID + "\x00"),
				prefix: []any{"01J"}, prefixKey: []byte("01J"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
			indexIssuer: {
				read: []any{"fr-pharos"}, readKey: []byte("fr-pharos\x00"),
				write: testRecord, writeKeys: [][]byte{[]byte("fr-pharos\x00")},
				prefix: []any{"fr"}, prefixKey: []byte("fr"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
			indexAdoption: {
				read: []any{"DE\x003"}, readKey: []byte("DE\x003\x00"),
				write: testRecord, writeKeys: [][]byte{[]byte("DE\x003\x00"), []byte("FR\x001\x00")},
				prefix: []any{"DE\x00"}, prefixKey: []byte("DE\x00"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
			indexCategory: {
				read: []any{"6"}, readKey: []byte("6\x00"),
				write: testRecord, writeKeys: [][]byte{[]byte("6\x00"), []byte("1\x00")},
				prefix: []any{"6"}, prefixKey: []byte("6"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
			indexNoticeState: {
				read: []any{"1"}, readKey: []byte("1\x00"),
				write: testRecord, writeKeys: [][]byte{[]byte("1\x00")},
				prefix: []any{"1"}, prefixKey: []byte("1"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
		},
		tableStatements: {
			indexID: {
				read: []any{"01J0000000000000000000000B"}, readKey: []byte("01J0000000000000000000000B\x00"),
				write: testApplied, writeKey: []byte("01J0000000000000000000000B\x00"),
				prefix: []any{"01J"}, prefixKey: []byte("01J"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
			indexStatementsOf: {
				read: []any{testNoticeID}, readKey: []byte(testNoticeID + "\x00"),
				write: testApplied, writeKeys: [][]byte{[]byte(testNoticeID + "\x00")},
				prefix: []any{"01J"}, prefixKey: []byte("01J"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
		},
		tableLog: {
			indexID: {
				read: []any{uint64(7)}, readKey: []byte{0, 0, 0, 0, 0, 0, 0, 7},
				write: &statev1.LogRow{Index: 258}, writeKey: []byte{0, 0, 0, 0, 0, 0, 1, 2},
				prefix: []any{""}, prefixKey: []byte{},
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
		},
		tableEvents: {
			indexID: {
				read: []any{uint64(3)}, readKey: []byte{0, 0, 0, 0, 0, 0, 0, 3},
				write: &concordv1.NoticeEvent{Cursor: 3, NoticeId: testNoticeID}, writeKey: []byte{0, 0, 0, 0, 0, 0, 0, 3},
				prefix: []any{""}, prefixKey: []byte{},
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
			indexOfNotice: {
				read: []any{testNoticeID}, readKey: []byte(testNoticeID + "\x00"),
				write: &concordv1.NoticeEvent{Cursor: 3, NoticeId: testNoticeID}, writeKey: []byte(testNoticeID + "\x00"),
				prefix: []any{"01J"}, prefixKey: []byte("01J"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
		},
		tableActions: {
			indexID: {
				read: []any{"01A0000000000000000000000A"}, readKey: []byte("01A0000000000000000000000A\x00"),
				write: testAction, writeKey: []byte("01A0000000000000000000000A\x00"),
				prefix: []any{"01A"}, prefixKey: []byte("01A"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
			indexOfNotice: {
				read: []any{testNoticeID}, readKey: []byte(testNoticeID + "\x00"),
				write: testAction, writeKey: []byte(testNoticeID + "\x00"),
				prefix: []any{"01J"}, prefixKey: []byte("01J"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
			indexReporter: {
				read: []any{"videoshare"}, readKey: []byte("videoshare\x00"),
				write: testAction, writeKey: []byte("videoshare\x00"),
				prefix: []any{"video"}, prefixKey: []byte("video"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
		},
		tableClock: {
			indexID: {
				read: []any{"accepted_at"}, readKey: []byte("accepted_at\x00"),
				write: &IndexEntry{Key: "accepted_at", Value: 7}, writeKey: []byte("accepted_at\x00"),
				prefix: []any{"acc"}, prefixKey: []byte("acc"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
		},
		tableRegistryChanges: {
			indexID: {
				read: []any{"01J0000000000000000000000A"}, readKey: []byte("01J0000000000000000000000A\x00"),
				write: &statev1.AppliedChange{ChangeId: "01J0000000000000000000000A"}, writeKey: []byte("01J0000000000000000000000A\x00"),
				prefix: []any{"01J"}, prefixKey: []byte("01J"),
				wrongWrite: &concordv1.Partner{Id: "x"},
			},
		},
	}

	s := schema()
	if err := s.Validate(); err != nil {
		t.Fatalf("schema: %v", err)
	}
	for table, ts := range s.Tables {
		for index := range ts.Indexes {
			if _, ok := cases[table][index]; !ok {
				t.Errorf("table %s index %s has no indexer test case", table, index)
			}
		}
	}
	for table, indexes := range cases {
		for index, tc := range indexes {
			t.Run(table+"/"+index, func(t *testing.T) {
				t.Parallel()
				ix := s.Tables[table].Indexes[index].Indexer
				got, err := ix.FromArgs(tc.read...)
				if err != nil || !bytes.Equal(got, tc.readKey) {
					t.Errorf("FromArgs(%v) = %q, %v; want %q", tc.read, got, err, tc.readKey)
				}
				var wrong error
				if multi, ok := ix.(memdb.MultiIndexer); ok {
					ok, got, err := multi.FromObject(tc.write)
					if err != nil || ok != (tc.writeKeys != nil) || !slices.EqualFunc(got, tc.writeKeys, bytes.Equal) {
						t.Errorf("FromObject(%v) = %v, %q, %v; want %q", tc.write, ok, got, err, tc.writeKeys)
					}
					_, _, wrong = multi.FromObject(tc.wrongWrite)
				} else {
					single := ix.(memdb.SingleIndexer)
					ok, got, err := single.FromObject(tc.write)
					if err != nil || ok != (tc.writeKey != nil) || !bytes.Equal(got, tc.writeKey) {
						t.Errorf("FromObject(%v) = %v, %q, %v; want %q", tc.write, ok, got, err, tc.writeKey)
					}
					_, _, wrong = single.FromObject(tc.wrongWrite)
				}
				got, err = ix.(memdb.PrefixIndexer).PrefixFromArgs(tc.prefix...)
				if err != nil || !bytes.Equal(got, tc.prefixKey) {
					t.Errorf("PrefixFromArgs(%v) = %q, %v; want %q", tc.prefix, got, err, tc.prefixKey)
				}
				if wrong == nil {
					t.Errorf("FromObject(%T) accepted an object of the wrong type", tc.wrongWrite)
				}
				if _, err := ix.FromArgs(); err == nil {
					t.Error("FromArgs() accepted no argument")
				}
				if _, err := ix.FromArgs(42); err == nil {
					t.Error("FromArgs(42) accepted a non-string argument")
				}
			})
		}
	}
}

func TestIndexerSkipsEmptyField(t *testing.T) {
	t.Parallel()
	ix := stringIndexer[*concordv1.Partner]{field: (*concordv1.Partner).GetId}
	ok, key, err := ix.FromObject(&concordv1.Partner{})
	if ok || key != nil || err != nil {
		t.Fatalf("FromObject(empty id) = %v, %q, %v; want not indexed", ok, key, err)
	}
}
