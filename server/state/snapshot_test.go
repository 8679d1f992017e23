package state

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// testBusyStore has a row in every table and more than one index entry.
func testBusyStore(t *testing.T) *Store {
	t.Helper()
	s := testStore(t)
	mustApply(t, s, 2, setJurisdiction(testJurisdiction("BE", "FR")), t0)
	mustApply(t, s, 3, upsert(&concordv1.Partner{Id: "be-fedpol", DisplayName: "Fedpol", Jurisdiction: "BE", Roles: []concordv1.Role{concordv1.Role_ROLE_AUTHORITY}}), t0)
	mustApply(t, s, 4, addKey("be-fedpol", "fedpol", timestamppb.New(t0), timestamppb.New(t0.Add(time.Hour))), t0)
	mustApply(t, s, 5, revoke("fr-pharos", pharosKeyID), t0.Add(time.Minute))
	return s
}

func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	s := testBusyStore(t)
	snap := s.Snapshot()
	// Writes after the snapshot was taken do not show in it.
	mustApply(t, s, 6, setJurisdiction(testJurisdiction("NL")), t0)

	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	persisted := bytes.Clone(buf.Bytes())
	r, err := Restore(&buf)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !bytes.Equal(snapshotBytes(t, r), persisted) {
		t.Fatal("persisting the restored store gives other bytes")
	}
	if r.RegistryIndex() != 5 || !r.Bootstrapped() {
		t.Fatalf("restored registry index %d, want 5", r.RegistryIndex())
	}
	if j, _ := r.Jurisdiction(nil, "NL"); j != nil {
		t.Fatal("the snapshot holds a write made after it was taken")
	}

	// Every read gives the same answer on the restored store (NL aside).
	mustApply(t, r, 6, setJurisdiction(testJurisdiction("NL")), t0)
	wantP, _ := s.Partners(nil)
	gotP, _ := r.Partners(nil)
	wantJ, _ := s.Jurisdictions(nil)
	gotJ, _ := r.Jurisdictions(nil)
	if !equalProtos(gotP, wantP) || !equalProtos(gotJ, wantJ) {
		t.Fatalf("restored partners %v jurisdictions %v; want %v %v", gotP, gotJ, wantP, wantJ)
	}
	for _, p := range wantP {
		for _, k := range p.GetSigningKeys() {
			got, _ := r.SigningKey(k.GetKeyId())
			if !proto.Equal(got, k) {
				t.Fatalf("restored key %s = %v, want %v", k.GetKeyId(), got, k)
			}
		}
	}
}

func TestSnapshotAppliedChangesRoundTrip(t *testing.T) {
	t.Parallel()
	s := testStore(t)
	a := mustApply(t, s, 2, setJurisdiction(testJurisdiction("BE")), t0)
	r, err := Restore(bytes.NewReader(snapshotBytes(t, s)))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := r.AppliedChange(a.GetChangeId()); !proto.Equal(got, a) {
		t.Fatalf("restored applied change = %v, want %v", got, a)
	}
}

func TestSnapshotEmptyStore(t *testing.T) {
	t.Parallel()
	s, _ := New()
	r, err := Restore(bytes.NewReader(snapshotBytes(t, s)))
	if err != nil || r.Bootstrapped() {
		t.Fatalf("restore of an empty store: %v, bootstrapped %v", err, r != nil && r.Bootstrapped())
	}
}

func record(rt recordType, body []byte) []byte {
	b := []byte{byte(rt)}
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

func TestRestoreRefusesBadStreams(t *testing.T) {
	t.Parallel()
	good := snapshotBytes(t, testStore(t))
	meta := func(m *statev1.Meta) []byte {
		b, _ := proto.Marshal(m)
		return record(metaRecord, b)
	}
	cases := []struct {
		name   string
		stream []byte
		substr string
	}{
		{"empty", nil, "empty"},
		{"no meta first", record(partnerRecord, nil), "want a meta record"},
		{"newer format", meta(&statev1.Meta{Format: 99}), "format 99"},
		{"unknown record type", append(meta(&statev1.Meta{Format: snapshotFormat}), record(200, []byte{1})...), "unknown type 200"},
		{"truncated", good[:len(good)-3], "unexpected EOF"},
		{"undecodable row", append(meta(&statev1.Meta{Format: snapshotFormat}), record(partnerRecord, []byte{0xff})...), "type 3"},
		{"meta disagrees with rows", append(meta(&statev1.Meta{Format: snapshotFormat, RegistryIndex: 9}), good[len(meta(&statev1.Meta{Format: snapshotFormat, RegistryIndex: 1})):]...), "inconsistent"},
		{"oversized record", append(meta(&statev1.Meta{Format: snapshotFormat}), binary.AppendUvarint([]byte{byte(partnerRecord)}, maxRecordBytes+1)...), "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Restore(bytes.NewReader(tc.stream))
			if err == nil || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("Restore: %v; want an error saying %q", err, tc.substr)
			}
		})
	}
}

func TestIndexEntryEncoding(t *testing.T) {
	t.Parallel()
	for _, e := range []*IndexEntry{{Key: "partners", Value: 1}, {Key: "registry_changes", Value: 1 << 62}} {
		b, err := marshalIndexEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		// The same bytes as the hand-written encoding of earlier snapshots: key (1), value (2).
		want := protowire.AppendVarint(protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), e.Key), 2, protowire.VarintType), e.Value)
		if !bytes.Equal(b, want) {
			t.Fatalf("encoding of %v = %x, want %x", e, b, want)
		}
		got, err := unmarshalIndexEntry(b)
		if err != nil || !proto.Equal(got, e) {
			t.Fatalf("round trip of %+v = %+v, %v", e, got, err)
		}
	}
	if _, err := unmarshalIndexEntry([]byte{0x10, 0x01}); err == nil {
		t.Fatal("an index entry without a key was accepted")
	}
}

func equalProtos[M proto.Message](a, b []M) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestSnapshotKeepsTheAppliedIndex(t *testing.T) {
	t.Parallel()
	s := testBusyStore(t)
	for _, tc := range []struct {
		name    string
		applied uint64
		want    uint64
	}{
		// A refused command after the last change still counts as applied.
		{"recorded", 9, 9},
		// A snapshot that did not record it: the last change to any table.
		{"not recorded", 0, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := s.Snapshot()
			snap.AppliedIndex = tc.applied
			var buf bytes.Buffer
			if err := snap.Persist(&buf); err != nil {
				t.Fatal(err)
			}
			r, err := Restore(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if r.RestoredIndex() != tc.want {
				t.Fatalf("RestoredIndex = %d, want %d", r.RestoredIndex(), tc.want)
			}
		})
	}
	if s.RestoredIndex() != 0 {
		t.Fatalf("a store that was not restored reports RestoredIndex %d", s.RestoredIndex())
	}
}
