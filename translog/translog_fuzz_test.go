package translog

import (
	"math/rand/v2"
	"strings"
	"testing"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// fuzzKeys returns the log's and a witness's keys, the same in every fuzzing process so that an
// input found by one verifies in all.
func fuzzKeys(tb testing.TB) (logSigner note.Signer, logKey note.Verifier, witness note.Signer, witnessKey note.Verifier) {
	tb.Helper()
	seeded := rand.NewChaCha8([32]byte{'c', 'o', 'n', 'c', 'o', 'r', 'd'})
	skey, vkey, err := note.GenerateKey(seeded, "concord.example/log")
	if err != nil {
		tb.Fatal(err)
	}
	if logSigner, err = note.NewSigner(skey); err != nil {
		tb.Fatal(err)
	}
	if logKey, err = note.NewVerifier(vkey); err != nil {
		tb.Fatal(err)
	}
	wskey, wvkey, err := note.GenerateKey(seeded, "observatory.witness.concord.example")
	if err != nil {
		tb.Fatal(err)
	}
	if witness, err = formats.NewSignerForCosignatureV1(wskey); err != nil {
		tb.Fatal(err)
	}
	if witnessKey, err = formats.NewVerifierForCosignatureV1(wvkey); err != nil {
		tb.Fatal(err)
	}
	return logSigner, logKey, witness, witnessKey
}

// fuzzCheckpoints returns signed checkpoints of a real tree: the empty one, one of 9 entries,
// and one of 300 with a witness's cosignature merged in.
func fuzzCheckpoints(tb testing.TB) []string {
	tb.Helper()
	logSigner, _, witness, _ := fuzzKeys(tb)
	tr := NewTree()
	var out []string
	for i := range 300 {
		switch int64(i) {
		case 0, 9:
			root, err := tr.Root(int64(i))
			if err != nil {
				tb.Fatal(err)
			}
			s, err := Checkpoint{Origin: logSigner.Name(), Size: int64(i), Root: root}.Sign(logSigner)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, s)
		}
		if _, err := tr.Append([]byte{byte(i), byte(i >> 8), 'e'}); err != nil {
			tb.Fatal(err)
		}
	}
	root, _ := tr.Root(300)
	cp := Checkpoint{Origin: logSigner.Name(), Size: 300, Root: root}
	signed, err := cp.Sign(logSigner)
	if err != nil {
		tb.Fatal(err)
	}
	cosig, err := note.Sign(&note.Note{Text: cp.Text()}, witness)
	if err != nil {
		tb.Fatal(err)
	}
	merged, err := AddSignatures(signed, string(cosig))
	if err != nil {
		tb.Fatal(err)
	}
	return append(out, merged)
}

// FuzzParseCheckpoint: a checkpoint body parses only in its one canonical form (so that two
// texts never stand for one tree head), and formats back to the lines it was read from.
func FuzzParseCheckpoint(f *testing.F) {
	for _, s := range fuzzCheckpoints(f) {
		text, _, _ := strings.Cut(s, "\n\n")
		f.Add(text + "\n")
		f.Add(text + "\nextension line\n")
	}
	f.Add("concord.example/log\n-0\nAAAA\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCheckpoint(text)
		if err != nil {
			return
		}
		if c.Origin == "" || strings.Contains(c.Origin, "\n") || c.Size < 0 {
			t.Fatalf("%q parses as %+v", text, c)
		}
		if !strings.HasPrefix(text, c.Text()) {
			t.Fatalf("%q parses as %+v, whose text %q is not what was read", text, c, c.Text())
		}
		if again, err := ParseCheckpoint(c.Text()); err != nil || again != c {
			t.Fatalf("%+v formats to %q, which parses as %+v, %v", c, c.Text(), again, err)
		}
	})
}

// FuzzOpenCheckpoint feeds signed notes to the clients' checks. A note that opens is a
// checkpoint of the log's origin that the log key signs again to the same signature line; a
// flipped bit in its text makes it fail; merged with itself it opens to the same checkpoint and
// gains no signature; OpenCosignedCheckpoint with a quorum of one accepts it only when it
// opens, and then as the same checkpoint.
func FuzzOpenCheckpoint(f *testing.F) {
	logSigner, logKey, _, witnessKey := fuzzKeys(f)
	for i, s := range fuzzCheckpoints(f) {
		f.Add(s, uint16(i*977))
	}
	f.Fuzz(func(t *testing.T, signed string, flip uint16) {
		cp, n, err := OpenCheckpoint(signed, logKey)
		cosigned, cerr := OpenCosignedCheckpoint(signed, logKey, []note.Verifier{witnessKey}, 1)
		if cerr == nil && (err != nil || cosigned != cp) {
			t.Fatalf("cosigned %+v, but OpenCheckpoint says %+v, %v", cosigned, cp, err)
		}
		if err != nil {
			return
		}
		if cp.Origin != logKey.Name() || n.Text != cp.Text() {
			t.Fatalf("opened %+v from text %q", cp, n.Text)
		}
		again, err := cp.Sign(logSigner)
		if err != nil {
			t.Fatal(err)
		}
		_, mine, _ := strings.Cut(again, "\n\n")
		if !strings.Contains(signed, "\n"+mine) {
			t.Fatalf("the log key signs %+v as %q, which the note lacks", cp, mine)
		}
		merged, err := AddSignatures(signed, signed)
		if err != nil {
			t.Fatalf("a checkpoint that opens does not merge with itself: %v", err)
		}
		if got, m, err := OpenCheckpoint(merged, logKey); err != nil || got != cp || len(m.Sigs)+len(m.UnverifiedSigs) > len(n.Sigs)+len(n.UnverifiedSigs) {
			t.Fatalf("merged with itself: %+v, %v", got, err)
		}
		text := []byte(n.Text)
		text[int(flip)%len(text)] ^= 1 << (flip >> 13)
		if _, _, err := OpenCheckpoint(string(text)+signed[len(n.Text):], logKey); err == nil {
			t.Fatalf("a note with a flipped bit in its text opens: %q", text)
		}
	})
}
