package client

import (
	"context"
	"errors"
	"fmt"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/rpcmethod"
	"concord/translog"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// ErrNoLogKey is returned by the write helpers when the client cannot verify receipts. They
// return it before sending anything: a write is never committed only to be reported unverified.
var ErrNoLogKey = errors.New("client: no transparency log key (Config.LogKeyFile, the hub's log.pub): receipts cannot be verified")

// UnverifiedReceiptError is the error of a write that IS committed — the hub answered with its
// record and a receipt whose signature and inclusion proof verify — but whose checkpoint the
// client could not yet prove consistent with the checkpoints it verified before: the hub gave no
// consistency proof (an older hub) and asking for one failed. Do not send the statement again as
// a new one; CheckCheckpoint(ctx, Checkpoint) finishes the check.
type UnverifiedReceiptError struct {
	// Response is the write's answer (*concordv1.SubmitNoticeResponse, ...).
	Response proto.Message
	// Checkpoint is the receipt's checkpoint, signed by the log key.
	Checkpoint translog.Checkpoint
	// Err is why the consistency check could not finish.
	Err error
}

func (e *UnverifiedReceiptError) Error() string {
	return fmt.Sprintf("client: the write is committed (its receipt is signed and proves its entry in the log of %d entries), but that log's consistency with the checkpoints this client verified before is not proven yet: %v",
		e.Checkpoint.Size, e.Err)
}

func (e *UnverifiedReceiptError) Unwrap() error { return e.Err }

func (c *Client) requireLogKey() error {
	if c.logKey == nil {
		return ErrNoLogKey
	}
	return nil
}

// VerifiedCheckpoint is the largest checkpoint this client has verified (by a receipt, a
// consistency proof or a mirror), which the next write's receipt is proven consistent with.
func (c *Client) VerifiedCheckpoint() (translog.Checkpoint, bool) {
	if cp := c.verified(); cp != nil {
		return *cp, true
	}
	return translog.Checkpoint{}, false
}

// verified is the largest checkpoint this client has verified, or nil.
func (c *Client) verified() *translog.Checkpoint {
	c.cpMu.Lock()
	defer c.cpMu.Unlock()
	return c.lastCP
}

// writeResponse is the answer of a write RPC: whatever it holds, a receipt.
type writeResponse interface {
	proto.Message
	GetReceipt() *concordv1.Receipt
}

// commit sends a write, which send builds with consistency_from set to the size of the largest
// checkpoint this client verified, and verifies the receipt that comes back (see checkReceipt).
// Sending again after an attempt got no answer is the retry policy's (see decide).
func commit[R writeResponse](ctx context.Context, c *Client, env *concordv1.Envelope, send func(ctx context.Context, consistencyFrom uint64) (R, error)) (R, error) {
	from := c.verified()
	var size uint64
	if from != nil {
		size = uint64(from.Size)
	}
	resp, err := send(ctx, size)
	if err != nil {
		return resp, err
	}
	if err := c.checkReceipt(ctx, resp.GetReceipt(), env, from); err != nil {
		if ue, ok := errors.AsType[*UnverifiedReceiptError](err); ok {
			ue.Response = resp
		}
		return resp, err
	}
	return resp, nil
}

// VerifyReceipt verifies the receipt of a write made without the helpers (see the Receipt
// message for what is checked): it is signed by the log key, proves that its entry, carrying
// exactly sent, is in the log, and that the log is consistent with the largest checkpoint this
// client verified — by the receipt's own consistency proof when it starts from that checkpoint,
// or else by asking the hub.
func (c *Client) VerifyReceipt(ctx context.Context, r *concordv1.Receipt, sent *concordv1.Envelope) error {
	if err := c.requireLogKey(); err != nil {
		return err
	}
	from := c.verified()
	if r.GetConsistencyFrom() != 0 && (from == nil || uint64(from.Size) != r.GetConsistencyFrom()) {
		// The proof starts from a checkpoint this client does not hold as its largest.
		r = proto.CloneOf(r)
		r.ConsistencyFrom, r.ConsistencyProof = 0, nil
		from = nil
	}
	return c.checkReceipt(ctx, r, sent, from)
}

// checkReceipt verifies a write's receipt (translog.VerifyReceipt) and links its checkpoint to
// the checkpoints this client verified before, so that a hub that showed this client two views
// of the log is caught. from is the checkpoint whose size the request gave as consistency_from
// (nil: none); its proof must start there. A receipt without one (an older hub) is checked
// with GetConsistencyProof, which waits out rate limits; if that cannot finish, the error is an
// *UnverifiedReceiptError, for the write is committed.
func (c *Client) checkReceipt(ctx context.Context, r *concordv1.Receipt, sent *concordv1.Envelope, from *translog.Checkpoint) error {
	if err := c.requireLogKey(); err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("%w: the hub returned no receipt", translog.ErrProof)
	}
	_, cp, err := translog.VerifyReceipt(r, c.logKey, sent)
	if err != nil {
		return err
	}
	if r.GetConsistencyFrom() == 0 {
		if err := c.CheckCheckpoint(ctx, cp); err != nil {
			if errors.Is(err, translog.ErrProof) {
				return err
			}
			return &UnverifiedReceiptError{Checkpoint: cp, Err: err}
		}
		return nil
	}
	if from == nil || uint64(from.Size) != r.GetConsistencyFrom() {
		var sentSize int64
		if from != nil {
			sentSize = from.Size
		}
		return fmt.Errorf("%w: the receipt proves consistency from a log of %d entries, but the request gave %d", translog.ErrProof, r.GetConsistencyFrom(), sentSize)
	}
	proof, err := translog.HashesFromBytes(r.GetConsistencyProof())
	if err != nil {
		return err
	}
	if err := translog.CheckConsistency(proof, from.Size, from.Root, cp.Size, cp.Root); err != nil {
		return fmt.Errorf("receipt: %w", err)
	}
	return c.adopt(from, cp)
}

// adopt records cp, proven to extend from, which was this client's largest checkpoint when the
// write was sent. It becomes the largest if it still extends the largest; if a concurrent write
// moved the largest on meanwhile, cp is consistent with from but not proven so with that one,
// and stays aside: the largest only ever grows along proven links, and the next write starts
// from it.
func (c *Client) adopt(from *translog.Checkpoint, cp translog.Checkpoint) error {
	c.cpMu.Lock()
	defer c.cpMu.Unlock()
	head := c.lastCP
	switch {
	case head == nil || head.Size == from.Size:
		if head == nil || cp.Size > head.Size {
			c.lastCP = &cp
		}
	case head.Size == cp.Size && head.Root != cp.Root:
		return fmt.Errorf("%w: the hub signed two different trees of %d entries", translog.ErrProof, cp.Size)
	}
	return nil
}

// CheckCheckpoint verifies that cp is consistent with the largest checkpoint this client has
// verified, asking the hub for a consistency proof (waiting out rate limits, on any node), and
// remembers the larger of the two.
func (c *Client) CheckCheckpoint(ctx context.Context, cp translog.Checkpoint) error {
	for {
		c.cpMu.Lock()
		head := c.lastCP
		if head == nil {
			c.lastCP = &cp
			c.cpMu.Unlock()
			return nil
		}
		c.cpMu.Unlock()
		if head.Size == cp.Size {
			if head.Root != cp.Root {
				return fmt.Errorf("%w: the hub signed two different trees of %d entries", translog.ErrProof, cp.Size)
			}
			return nil
		}
		oldCP, newCP := *head, cp
		if newCP.Size < oldCP.Size {
			oldCP, newCP = newCP, oldCP
		}
		resp, err := c.Log.GetConsistencyProof(ctx, &concordv1.GetConsistencyProofRequest{OldSize: uint64(oldCP.Size), NewSize: uint64(newCP.Size)}, retryExhausted{})
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
		c.cpMu.Lock()
		// Proven against head: done if head is still the largest, or if cp is a prefix of
		// head, hence of whatever extends it. Otherwise prove cp against the new largest.
		if c.lastCP == head || cp.Size < head.Size {
			if c.lastCP == head && cp.Size > head.Size {
				c.lastCP = &cp
			}
			c.cpMu.Unlock()
			return nil
		}
		c.cpMu.Unlock()
	}
}

// Resend sends the request of a write whose outcome was unknown again, as it is, and verifies
// the receipt: a write that committed returns its original answer, one that had not commits now
// or is refused for good. Its errors say what became of the write as SubmitNotice's do.
func (c *Client) Resend(ctx context.Context, unknown *OutcomeUnknownError) (proto.Message, error) {
	if err := c.requireLogKey(); err != nil {
		return nil, err
	}
	md, ok := rpcmethod.Find(unknown.Method)
	if !ok {
		return nil, fmt.Errorf("client: resend: unknown method %s", unknown.Method)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, fmt.Errorf("client: resend %s: %w", unknown.Method, err)
	}
	reply := mt.New().Interface()
	if err := c.nodes.Invoke(ctx, unknown.Method, unknown.Request, reply, resendOfUnknown{}); err != nil {
		return nil, err
	}
	wr, ok := reply.(writeResponse)
	req, hasEnv := unknown.Request.(interface{ GetEnvelope() *concordv1.Envelope })
	if !ok || !hasEnv {
		return reply, nil // not a statement: no receipt to verify
	}
	if err := c.VerifyReceipt(ctx, wr.GetReceipt(), req.GetEnvelope()); err != nil {
		if ue, ok := errors.AsType[*UnverifiedReceiptError](err); ok {
			ue.Response = reply
		}
		return reply, err
	}
	return reply, nil
}
