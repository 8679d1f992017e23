package client

import (
	"context"
	"errors"
	"fmt"

	concordv1 "concord/gen/concord/v1"
	"concord/translog"
)

// ErrNoLogKey is returned by the write helpers when the client cannot verify receipts.
var ErrNoLogKey = errors.New("client: no transparency log key (Config.LogKeyFile, the hub's log.pub): receipts cannot be verified")

// checkReceipt verifies a write's receipt (see translog.VerifyReceipt) and that its checkpoint
// is consistent with every checkpoint this client verified before: a hub that showed this client
// two views of the log is caught here.
func (c *Client) checkReceipt(ctx context.Context, r *concordv1.Receipt, sent *concordv1.Envelope) error {
	if c.logKey == nil {
		return ErrNoLogKey
	}
	if r == nil {
		return fmt.Errorf("%w: the hub returned no receipt", translog.ErrProof)
	}
	_, cp, err := translog.VerifyReceipt(r, c.logKey, sent)
	if err != nil {
		return err
	}
	return c.CheckCheckpoint(ctx, cp)
}

// CheckCheckpoint verifies that cp is consistent with the largest checkpoint this client has
// seen, asking the hub for a consistency proof, and remembers the larger of the two.
func (c *Client) CheckCheckpoint(ctx context.Context, cp translog.Checkpoint) error {
	c.cpMu.Lock()
	defer c.cpMu.Unlock()
	old := c.lastCP
	if old == nil {
		c.lastCP = &cp
		return nil
	}
	oldCP, newCP := *old, cp
	if newCP.Size < oldCP.Size {
		oldCP, newCP = newCP, oldCP
	}
	if oldCP.Size == newCP.Size {
		if oldCP.Root != newCP.Root {
			return fmt.Errorf("%w: the hub signed two different trees of %d entries", translog.ErrProof, oldCP.Size)
		}
		return nil
	}
	resp, err := c.Log.GetConsistencyProof(ctx, &concordv1.GetConsistencyProofRequest{OldSize: uint64(oldCP.Size), NewSize: uint64(newCP.Size)})
	if err != nil {
		return fmt.Errorf("consistency proof %d → %d: %w", oldCP.Size, newCP.Size, err)
	}
	proof, err := translog.HashesFromBytes(resp.GetHashes())
	if err != nil {
		return err
	}
	if err := translog.CheckConsistency(proof, oldCP.Size, oldCP.Root, newCP.Size, newCP.Root); err != nil {
		return err
	}
	if cp.Size > old.Size {
		c.lastCP = &cp
	}
	return nil
}
