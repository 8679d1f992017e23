package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/atomicfile"
	"concord/internal/pki"
	"concord/translog"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// ErrSplitView is returned when the hub shows a checkpoint inconsistent with one seen before:
// two different histories of the same log. Stop, keep the evidence (both checkpoints), and alert.
var ErrSplitView = errors.New("SPLIT VIEW: the hub signed checkpoints of two different logs")

// Witness follows the log's checkpoints, checks that each is consistent with the last it
// cosigned, and cosigns it (C2SP tlog-cosignature) with the partner's witness key. The last
// checkpoint it cosigned is kept in DIR/witnessed before the cosignature leaves, so after a
// restart it never cosigns a checkpoint inconsistent with one it cosigned before.
type Witness struct {
	dir    string
	logKey note.Verifier
	signer *formats.Signer
	last   *translog.Checkpoint
}

const witnessedFile = "witnessed"

// OpenWitness opens the witness state in dir with the witness key in keyFile.
func OpenWitness(dir string, logKey note.Verifier, keyFile string) (*Witness, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	if _, _, err := pki.LoadNoteKey(keyFile); err != nil {
		return nil, err
	}
	signer, err := formats.NewSignerForCosignatureV1(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("witness key %s: %w", keyFile, err)
	}
	w := &Witness{dir: dir, logKey: logKey, signer: signer}
	if b, err := os.ReadFile(filepath.Join(dir, witnessedFile)); err == nil {
		cp, _, err := translog.OpenCheckpoint(string(b), logKey)
		if err != nil {
			return nil, fmt.Errorf("witness: the checkpoint it last cosigned does not verify: %w", err)
		}
		w.last = &cp
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("witness: %w", err)
	}
	return w, nil
}

// Name is the witness key's name.
func (w *Witness) Name() string { return w.signer.Name() }

// Last is the last checkpoint cosigned, or nil.
func (w *Witness) Last() *translog.Checkpoint { return w.last }

// Step fetches the hub's latest checkpoint and, if it is new and consistent with the last one
// cosigned, cosigns it and hands the cosignature to the hub. It returns the checkpoint cosigned
// (nil when there was nothing new) or ErrSplitView.
func (w *Witness) Step(ctx context.Context, c *Client) (*translog.Checkpoint, error) {
	resp, err := c.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{})
	if err != nil {
		return nil, fmt.Errorf("witness: get checkpoint: %w", err)
	}
	signed := resp.GetCheckpoint().GetNote()
	cp, _, err := translog.OpenCheckpoint(signed, w.logKey)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	if w.last != nil {
		switch {
		case cp.Size < w.last.Size:
			return nil, nil // a node behind the one seen before: nothing to cosign
		case cp.Size == w.last.Size:
			if cp.Root != w.last.Root {
				return nil, fmt.Errorf("%w: two roots for %d entries", ErrSplitView, cp.Size)
			}
			return nil, nil
		}
		proof, err := c.Log.GetConsistencyProof(ctx, &concordv1.GetConsistencyProofRequest{OldSize: uint64(w.last.Size), NewSize: uint64(cp.Size)})
		if err != nil {
			return nil, fmt.Errorf("witness: consistency proof %d → %d: %w", w.last.Size, cp.Size, err)
		}
		hashes, err := translog.HashesFromBytes(proof.GetHashes())
		if err != nil {
			return nil, err
		}
		if err := translog.CheckConsistency(hashes, w.last.Size, w.last.Root, cp.Size, cp.Root); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSplitView, err)
		}
	}
	// Remembered durably first: a cosignature is a promise never to sign another history.
	if err := atomicfile.WriteFile(filepath.Join(w.dir, witnessedFile), []byte(signed)); err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	w.last = &cp
	cosig, err := note.Sign(&note.Note{Text: cp.Text()}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("witness: cosign: %w", err)
	}
	if _, err := c.Log.AddCosignature(ctx, &concordv1.AddCosignatureRequest{CosignedCheckpoint: string(cosig)}); err != nil {
		return nil, fmt.Errorf("witness: hand the cosignature to the hub: %w", err)
	}
	return &cp, nil
}

// Run steps every interval until ctx ends or a split view is seen.
func (w *Witness) Run(ctx context.Context, c *Client, interval time.Duration, cosigned func(translog.Checkpoint)) error {
	for {
		cp, err := w.Step(ctx, c)
		switch {
		case errors.Is(err, ErrSplitView):
			return err
		case err != nil && ctx.Err() == nil:
			// The hub may be restarting: try again at the next tick.
		case cp != nil && cosigned != nil:
			cosigned(*cp)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// WitnessedCheckpoint returns the newest checkpoint the hub holds with at least the client's
// quorum of cosignatures by its trusted witnesses (Config.Witnesses, Config.WitnessQuorum),
// verified, and checked consistent with every checkpoint this client saw before.
func (c *Client) WitnessedCheckpoint(ctx context.Context) (translog.Checkpoint, error) {
	if c.logKey == nil {
		return translog.Checkpoint{}, ErrNoLogKey
	}
	resp, err := c.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{MinCosignatures: uint32(c.quorum)})
	if err != nil {
		return translog.Checkpoint{}, err
	}
	cp, err := translog.OpenCosignedCheckpoint(resp.GetCheckpoint().GetNote(), c.logKey, c.witnesses, c.quorum)
	if err != nil {
		return translog.Checkpoint{}, err
	}
	return cp, c.CheckCheckpoint(ctx, cp)
}
