package translog

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func testTree(t *testing.T, n int) (*Tree, [][]byte) {
	t.Helper()
	tr := NewTree()
	var entries [][]byte
	for i := range n {
		e := fmt.Appendf(nil, "entry %d", i)
		idx, err := tr.Append(e)
		if err != nil || idx != int64(i) {
			t.Fatalf("append %d: index %d, %v", i, idx, err)
		}
		entries = append(entries, e)
	}
	return tr, entries
}

func TestInclusionAtEverySize(t *testing.T) {
	t.Parallel()
	tr, entries := testTree(t, 70)
	for n := int64(1); n <= 70; n++ {
		root, err := tr.Root(n)
		if err != nil {
			t.Fatal(err)
		}
		for i := int64(0); i < n; i++ {
			p, err := tr.InclusionProof(i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckInclusion(p, i, n, root, LeafHash(entries[i])); err != nil {
				t.Fatalf("leaf %d in tree %d: %v", i, n, err)
			}
			// A tampered entry, or the proof checked against another size, is detected.
			if err := CheckInclusion(p, i, n, root, LeafHash(append([]byte("x"), entries[i]...))); err == nil {
				t.Fatalf("tampered leaf %d accepted in tree %d", i, n)
			}
			if n > 1 {
				other, _ := tr.Root(n - 1)
				if err := CheckInclusion(p, i, n-1, other, LeafHash(entries[i])); err == nil && i < n-1 {
					t.Fatalf("proof for size %d accepted for size %d", n, n-1)
				}
			}
		}
	}
}

func TestConsistencyBetweenEverySize(t *testing.T) {
	t.Parallel()
	tr, _ := testTree(t, 40)
	for m := int64(1); m <= 40; m++ {
		oldRoot, _ := tr.Root(m)
		for n := m; n <= 40; n++ {
			newRoot, _ := tr.Root(n)
			p, err := tr.ConsistencyProof(m, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckConsistency(p, m, oldRoot, n, newRoot); err != nil {
				t.Fatalf("%d → %d: %v", m, n, err)
			}
			if m < n {
				forged := newRoot
				forged[0] ^= 1
				if err := CheckConsistency(p, m, oldRoot, n, forged); err == nil {
					t.Fatalf("%d → %d: a forged new root verified", m, n)
				}
			}
		}
	}
	// A log that rewrote history: same size, other content.
	other, _ := testTree(t, 39)
	if _, err := other.Append([]byte("rewritten")); err != nil {
		t.Fatal(err)
	}
	oldRoot, _ := tr.Root(40)
	otherRoot, _ := other.Root(40)
	if err := CheckConsistency(nil, 40, oldRoot, 40, otherRoot); err == nil {
		t.Fatal("two roots for one size verified")
	}
}

func TestBeyondTheTree(t *testing.T) {
	t.Parallel()
	tr, _ := testTree(t, 5)
	if _, err := tr.InclusionProof(5, 5); err == nil {
		t.Error("proof of a leaf beyond the tree")
	}
	if _, err := tr.Root(6); err == nil {
		t.Error("root of a tree larger than the log")
	}
	if _, err := tr.ConsistencyProof(0, 5); err == nil {
		t.Error("consistency from size 0")
	}
}

func testKey(t *testing.T, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestCheckpointSignAndOpen(t *testing.T) {
	t.Parallel()
	tr, _ := testTree(t, 9)
	root, _ := tr.Root(9)
	signer, verifier := testKey(t, "concord.example/log")
	cp := Checkpoint{Origin: "concord.example/log", Size: 9, Root: root}
	signed, err := cp.Sign(signer)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := OpenCheckpoint(signed, verifier)
	if err != nil || got != cp {
		t.Fatalf("open: %v, %v; want %v", got, err, cp)
	}
	// A forged checkpoint: other size, other key, or the text changed after signing.
	otherSigner, _ := testKey(t, "concord.example/log")
	forgedByKey, _ := cp.Sign(otherSigner)
	forgedText := strings.Replace(signed, "\n9\n", "\n10\n", 1)
	for name, s := range map[string]string{"another key": forgedByKey, "changed size": forgedText} {
		if _, _, err := OpenCheckpoint(s, verifier); err == nil {
			t.Errorf("forged checkpoint (%s) verified", name)
		}
	}
	// A witness cosignature merges onto the checkpoint and keeps the hub's signature valid.
	witness, witnessV := testKey(t, "witness.example")
	cosigned, err := cp.Sign(witness)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := AddSignatures(signed, cosigned)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenCheckpoint(merged, verifier); err != nil {
		t.Fatalf("merged note: %v", err)
	}
	if _, err := note.Open([]byte(merged), note.VerifierList(witnessV)); err != nil {
		t.Fatalf("witness signature lost in the merge: %v", err)
	}
	if _, err := AddSignatures(signed, forgedText); err == nil {
		t.Error("merged a cosignature of another checkpoint")
	}
}
