package translog

import (
	"crypto/rand"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// benchTree is a tree of n leaves, built once per size.
var benchTrees = map[int64]*Tree{}

func benchTree(b *testing.B, n int64) *Tree {
	b.Helper()
	if t, ok := benchTrees[n]; ok {
		return t
	}
	t := NewTree()
	for i := range n {
		if _, err := t.Append(fmt.Appendf(nil, "entry %d", i)); err != nil {
			b.Fatal(err)
		}
	}
	benchTrees[n] = t
	return t
}

// BenchmarkAppend is the cost of adding one leaf to the tree (the FSM does it for every
// accepted statement).
func BenchmarkAppend(b *testing.B) {
	t := NewTree()
	entry := make([]byte, 400)
	for b.Loop() {
		if _, err := t.Append(entry); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProofs measures building and checking inclusion and consistency proofs in a tree of
// 1 M leaves.
func BenchmarkProofs(b *testing.B) {
	const n = 1 << 20
	t := benchTree(b, n)
	root, _ := t.Root(n)
	oldRoot, _ := t.Root(n / 3)
	leaf, _ := t.LeafHashAt(12345)
	incl, _ := t.InclusionProof(12345, n)
	cons, _ := t.ConsistencyProof(n/3, n)
	b.Run("inclusion/prove", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := t.InclusionProof(int64(i%n), n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("inclusion/check", func(b *testing.B) {
		for b.Loop() {
			if err := CheckInclusion(incl, 12345, n, root, leaf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consistency/prove", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := t.ConsistencyProof(int64(1+i%(n-1)), n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consistency/check", func(b *testing.B) {
		for b.Loop() {
			if err := CheckConsistency(cons, n/3, oldRoot, n, root); err != nil {
				b.Fatal(err)
			}
		}
	})
	skey, vkey, _ := note.GenerateKey(rand.Reader, "concord.example/log")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	cp := Checkpoint{Origin: "concord.example/log", Size: n, Root: root}
	signed, _ := cp.Sign(signer)
	b.Run("checkpoint/sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := cp.Sign(signer); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("checkpoint/open", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := OpenCheckpoint(signed, verifier); err != nil {
				b.Fatal(err)
			}
		}
	})
}
