package state

import (
	"bytes"
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
	writeKey   []byte // nil: the object is not indexed
	prefix     []any
	prefixKey  []byte
	wrongWrite any // an object of another type, which must be refused
}

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
				single := ix.(memdb.SingleIndexer)
				ok, got, err := single.FromObject(tc.write)
				if err != nil || ok != (tc.writeKey != nil) || !bytes.Equal(got, tc.writeKey) {
					t.Errorf("FromObject(%v) = %v, %q, %v; want %q", tc.write, ok, got, err, tc.writeKey)
				}
				got, err = ix.(memdb.PrefixIndexer).PrefixFromArgs(tc.prefix...)
				if err != nil || !bytes.Equal(got, tc.prefixKey) {
					t.Errorf("PrefixFromArgs(%v) = %q, %v; want %q", tc.prefix, got, err, tc.prefixKey)
				}
				if _, _, err := single.FromObject(tc.wrongWrite); err == nil {
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
