package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	concordv1 "concord/gen/concord/v1"
	"concord/translog"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"
)

// testLog is a log built here, signed with a key of its own, that makes receipts as a node does.
type testLog struct {
	t      *testing.T
	tree   *translog.Tree
	envs   []*concordv1.Envelope
	leaves [][]byte
	signer note.Signer
	key    note.Verifier
}

// newTestLog logs size statements; logs of different names differ in every entry.
func newTestLog(t *testing.T, name string, size int) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "concord.test/log")
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{t: t, tree: translog.NewTree()}
	if l.signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if l.key, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	for i := range size {
		env := &concordv1.Envelope{PayloadType: "application/vnd.concord.notice.v1+protobuf", Payload: fmt.Appendf(nil, "%s statement %d", name, i)}
		leaf, err := proto.MarshalOptions{Deterministic: true}.Marshal(&concordv1.LogEntry{Index: uint64(i), Body: &concordv1.LogEntry_Statement{Statement: env}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.tree.Append(leaf); err != nil {
			t.Fatal(err)
		}
		l.envs, l.leaves = append(l.envs, env), append(l.leaves, leaf)
	}
	return l
}

// fork is a log signed with l's key whose first at entries are l's and the rest differ: a hub
// showing two views of its log.
func (l *testLog) fork(at int) *testLog {
	l.t.Helper()
	f := newTestLog(l.t, "fork", len(l.leaves))
	f.tree, f.signer, f.key = translog.NewTree(), l.signer, l.key
	f.envs, f.leaves = append(l.envs[:at:at], f.envs[at:]...), append(l.leaves[:at:at], f.leaves[at:]...)
	for _, leaf := range f.leaves {
		if _, err := f.tree.Append(leaf); err != nil {
			l.t.Fatal(err)
		}
	}
	return f
}

// checkpoint signs the tree of size entries.
func (l *testLog) checkpoint(size int64) (translog.Checkpoint, string) {
	l.t.Helper()
	root, err := l.tree.Root(size)
	if err != nil {
		l.t.Fatal(err)
	}
	cp := translog.Checkpoint{Origin: l.key.Name(), Size: size, Root: root}
	signed, err := cp.Sign(l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	return cp, signed
}

// receipt proves entry index in the checkpoint of size entries, consistent with the tree of
// from entries (0: no consistency proof).
func (l *testLog) receipt(index, size, from int64) *concordv1.Receipt {
	l.t.Helper()
	cp, signed := l.checkpoint(size)
	incl, err := l.tree.InclusionProof(index, size)
	if err != nil {
		l.t.Fatal(err)
	}
	leaf := translog.LeafHash(l.leaves[index])
	r := &concordv1.Receipt{Index: uint64(index), InclusionProof: translog.HashesToBytes(incl), LeafHash: leaf[:], Entry: l.leaves[index],
		Checkpoint: &concordv1.Checkpoint{Note: signed, Origin: cp.Origin, Size: uint64(size), RootHash: cp.Root[:]}}
	if from > 0 {
		proof, err := l.tree.ConsistencyProof(from, size)
		if err != nil {
			l.t.Fatal(err)
		}
		r.ConsistencyProof, r.ConsistencyFrom = translog.HashesToBytes(proof), uint64(from)
	}
	return r
}

// A receipt is accepted with its own consistency proof, and refused when the proof, or what it
// starts from, is not the one the client holds: no call to the hub is needed either way (this
// client has no connection).
func TestReceiptConsistencyProofIsChecked(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, "main", 40)
	from, _ := l.checkpoint(13)
	forked := l.fork(5) // the same key and first 5 entries; then another view

	for _, tc := range []struct {
		name   string
		tamper func(r *concordv1.Receipt)
		// sent is the size the request gave (the client's checkpoint of that size).
		sent int64
		want error // nil: accepted
	}{
		{name: "untouched", sent: 13},
		{name: "a proof hash changed", sent: 13, want: translog.ErrProof, tamper: func(r *concordv1.Receipt) {
			r.ConsistencyProof[0] = append([]byte{}, r.ConsistencyProof[0]...)
			r.ConsistencyProof[0][0] ^= 1
		}},
		{name: "a proof hash dropped", sent: 13, want: translog.ErrProof, tamper: func(r *concordv1.Receipt) {
			r.ConsistencyProof = r.ConsistencyProof[1:]
		}},
		{name: "a short proof hash", sent: 13, want: translog.ErrProof, tamper: func(r *concordv1.Receipt) {
			r.ConsistencyProof[0] = r.ConsistencyProof[0][:31]
		}},
		{name: "proof from another size than the request's", sent: 13, want: translog.ErrProof, tamper: func(r *concordv1.Receipt) {
			other := l.receipt(30, 35, 12)
			r.ConsistencyProof, r.ConsistencyFrom = other.ConsistencyProof, other.ConsistencyFrom
		}},
		{name: "a proof the request did not ask for", sent: 0, want: translog.ErrProof},
		{name: "a checkpoint of a forked log", sent: 13, want: translog.ErrProof, tamper: func(r *concordv1.Receipt) {
			f := forked.receipt(30, 35, 13)
			r.Checkpoint, r.InclusionProof, r.ConsistencyProof = f.Checkpoint, f.InclusionProof, f.ConsistencyProof
			r.Entry, r.LeafHash = f.Entry, f.LeafHash
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &Client{logKey: l.key, lastCP: &from}
			r := l.receipt(30, 35, 13)
			if tc.tamper != nil {
				tc.tamper(r)
			}
			var sent *translog.Checkpoint
			if tc.sent != 0 {
				sent = &from
			}
			env := l.envs[30]
			if tc.name == "a checkpoint of a forked log" {
				env = forked.envs[30]
			}
			err := c.checkReceipt(context.Background(), r, env, sent)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("checkReceipt = %v, want accepted", err)
				}
				if got := c.verified(); got.Size != 35 {
					t.Fatalf("largest verified checkpoint has %d entries, want 35", got.Size)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("checkReceipt = %v, want %v", err, tc.want)
			}
			if got := c.verified(); got.Size != 13 {
				t.Fatalf("a refused receipt moved the largest verified checkpoint to %d entries", got.Size)
			}
		})
	}
}

// The largest verified checkpoint grows only along proven links: a receipt proven from a
// checkpoint the client has since moved past is accepted but does not replace the newer one.
func TestReceiptsOfConcurrentWritesKeepOneChain(t *testing.T) {
	t.Parallel()
	l := newTestLog(t, "main", 40)
	from, _ := l.checkpoint(10)
	c := &Client{logKey: l.key, lastCP: &from}
	ctx := context.Background()
	// Two writes sent while the client held 10 entries; the second answer comes first.
	if err := c.checkReceipt(ctx, l.receipt(25, 30, 10), l.envs[25], &from); err != nil {
		t.Fatal(err)
	}
	if err := c.checkReceipt(ctx, l.receipt(20, 22, 10), l.envs[20], &from); err != nil {
		t.Fatalf("a receipt proven from the checkpoint the write was sent with: %v", err)
	}
	if got := c.verified(); got.Size != 30 {
		t.Fatalf("largest verified checkpoint: %d entries, want 30", got.Size)
	}
	// A view that forks after 10 entries proves itself consistent with them, but its tree of
	// 30 entries is not the one the client holds.
	f := l.fork(10)
	if err := c.checkReceipt(ctx, f.receipt(20, 30, 10), f.envs[20], &from); !errors.Is(err, translog.ErrProof) {
		t.Fatalf("a second tree of 30 entries: %v, want ErrProof", err)
	}
}

// Without a log key, the write helpers refuse before sending anything.
func TestWritesNeedTheLogKeyBeforeSending(t *testing.T) {
	t.Parallel()
	c := &Client{}
	if _, err := c.SubmitNotice(context.Background(), &concordv1.Notice{}); !errors.Is(err, ErrNoLogKey) {
		t.Fatalf("SubmitNotice without a log key = %v, want ErrNoLogKey", err)
	}
}
