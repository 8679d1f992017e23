package transparency

import (
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/statetest"
	"concord/translog"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// FuzzTilePath feeds request paths to parseTilePath. A path it accepts names a C2SP tile (level
// -1 for entries, or 0 to 63; width 1 to 256) and is the one path of that tile; a refused path
// is a 400 that lists the forms served. For a tree of the fuzzer's size, inTree accepts a tile
// exactly when all its hashes (or entries) are in the tree, reckoned without overflow.
func FuzzTilePath(f *testing.F) {
	for _, p := range []string{"tile/0/000", "tile/0/x001/234.p/5", "tile/1/000.p/255", "tile/entries/000",
		"tile/entries/x001/x234/067.p/8", "tile/63/000", "tile/64/000", "tile/data/000", "tile/0/001.p/256", "checkpoint"} {
		f.Add(p, int64(256*256+17))
	}
	f.Fuzz(func(t *testing.T, path string, size int64) {
		tile, err := parseTilePath(path)
		if err != nil {
			var te *tileError
			if !errors.As(err, &te) || te.status != http.StatusBadRequest || !strings.Contains(te.msg, tilePathForms) {
				t.Fatalf("%q refused with %v", path, err)
			}
			return
		}
		if tile.H != tileHeight || tile.L < -1 || tile.L > maxLevel || tile.W < 1 || tile.W > tileWidth || tile.N < 0 {
			t.Fatalf("%q parses as %+v", path, tile)
		}
		if got := tilePath(tile); got != path {
			t.Fatalf("%q parses as %+v, whose path is %q", path, tile, got)
		}
		if size < 0 {
			return
		}
		// The tile's last hash at its level is number N*256+W-1; the tree has
		// ⌊size / 256^level⌋ hashes at that level.
		have := new(big.Int).Rsh(big.NewInt(size), uint(tileHeight*max(tile.L, 0)))
		need := new(big.Int).Add(new(big.Int).Mul(big.NewInt(tile.N), big.NewInt(tileWidth)), big.NewInt(int64(tile.W)))
		if in := inTree(tile, size) == nil; in != (need.Cmp(have) <= 0) {
			t.Fatalf("inTree(%+v, %d) = %v; the tree has %v hashes at level %d, the tile needs %v", tile, size, in, have, tile.L, need)
		}
	})
}

// FuzzAddCosignature feeds cosigned checkpoints to AddCosignature as the observatory's
// witness. An accepted one is the text of a checkpoint the hub signed, and the checkpoint then
// served carries a cosignature that verifies with the witness's key, beside the log's
// signature; the same note from a partner without a witness key, or with a bit of its text
// flipped, is refused; every refusal says what to fix. Seeds: the witness's cosignature of the
// hub's checkpoint, and that merged with the hub's signature.
func FuzzAddCosignature(f *testing.F) {
	n := statetest.New(f)
	n.SubmitNotice(f)
	tree := translog.NewTree()
	if err := syncTestTree(tree, n); err != nil {
		f.Fatal(err)
	}
	logSigner, logKey := statetest.LogKey(f)
	pub, err := Open(f.TempDir(), logSigner, logKey, func() *translog.Tree { return tree }, n.State)
	if err != nil {
		f.Fatal(err)
	}
	s := NewService(n.State, func() *translog.Tree { return tree }, pub)
	witness := n.Witness("observatory")
	witnessKey, err := witnessVerifier(n)
	if err != nil {
		f.Fatal(err)
	}
	ctx := n.Caller("observatory")
	resp, err := s.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
	if err != nil {
		f.Fatal(err)
	}
	hubNote := resp.GetCheckpoint().GetNote()
	text, _, _ := strings.Cut(hubNote, "\n\n")
	cosig, err := note.Sign(&note.Note{Text: text + "\n"}, witness)
	if err != nil {
		f.Fatal(err)
	}
	merged, err := translog.AddSignatures(hubNote, string(cosig))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{string(cosig), merged} {
		if _, err := s.AddCosignature(ctx, &concordv1.AddCosignatureRequest{CosignedCheckpoint: seed}); err != nil {
			f.Fatalf("seed %q: %v", seed, err)
		}
		f.Add(seed, uint16(len(seed)))
	}

	f.Fuzz(func(t *testing.T, cosigned string, flip uint16) {
		got, err := s.AddCosignature(ctx, &concordv1.AddCosignatureRequest{CosignedCheckpoint: cosigned})
		if err != nil {
			if !statetest.Refusal(err) {
				t.Fatalf("neither accepted nor refused with a reason: %v", err)
			}
			return
		}
		if !strings.HasPrefix(cosigned, text+"\n\n") {
			t.Fatalf("accepted a cosignature of another text: %q", cosigned)
		}
		served := got.GetCheckpoint().GetNote()
		cp, err := translog.OpenCosignedCheckpoint(served, logKey, []note.Verifier{witnessKey}, 1)
		if err != nil || cp.Text() != text+"\n" || got.GetCosignatures() < 1 {
			t.Fatalf("the checkpoint served after the cosignature: %+v, %v (%d cosignatures)", cp, err, got.GetCosignatures())
		}
		if _, err := s.AddCosignature(n.Caller("videoshare"), &concordv1.AddCosignatureRequest{CosignedCheckpoint: cosigned}); !statetest.Refusal(err) {
			t.Fatalf("a partner without a witness key: %v", err)
		}
		b := []byte(cosigned)
		b[int(flip)%len(text)] ^= 1 << (flip >> 13)
		if _, err := s.AddCosignature(ctx, &concordv1.AddCosignatureRequest{CosignedCheckpoint: string(b)}); err == nil {
			t.Fatalf("accepted with a flipped bit in its text: %q", b)
		}
	})
}

// syncTestTree appends the store's log entries to tree, as the FSM does.
func syncTestTree(tree *translog.Tree, n *statetest.Node) error {
	var err error
	walkErr := n.Store.LogRows(0, func(row *statev1.LogRow) bool {
		_, err = tree.Append(row.GetEntry())
		return err == nil
	})
	return errors.Join(walkErr, err)
}

// witnessVerifier is the observatory's registered witness key, as AddCosignature reads it.
func witnessVerifier(n *statetest.Node) (note.Verifier, error) {
	p, err := n.Store.Partner(nil, "observatory")
	if err != nil {
		return nil, err
	}
	return formats.NewVerifierForCosignatureV1(p.GetWitnessKey())
}
