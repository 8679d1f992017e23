package client

import (
	"context"
	"errors"
	"fmt"

	"concord/dsse"
	concordv1 "concord/gen/concord/v1"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// Me returns the calling partner as the registry knows it. The first call asks the node; later
// calls return the cached answer (a failed first call is retried).
func (c *Client) Me(ctx context.Context) (*concordv1.Partner, error) {
	c.meMu.Lock()
	defer c.meMu.Unlock()
	if c.me != nil {
		return c.me, nil
	}
	resp, err := c.Registry.WhoAmI(ctx, &concordv1.WhoAmIRequest{})
	if err != nil {
		return nil, fmt.Errorf("who am I: %w", err)
	}
	c.me = resp.GetPartner()
	return c.me, nil
}

func (c *Client) requireSigner() error {
	if c.signer == nil {
		return errors.New("client: no signing key configured (Config.SigningKeyFile): statements must be signed")
	}
	return nil
}

// SignNotice signs n with the partner's key, filling in notice_id, issuer, jurisdiction and
// created_at if they are empty (issuer and jurisdiction from WhoAmI). The returned envelope can be
// re-sent safely: the server recognises it.
func (c *Client) SignNotice(ctx context.Context, n *concordv1.Notice) (*concordv1.Envelope, error) {
	if err := c.requireSigner(); err != nil {
		return nil, err
	}
	if n.GetIssuer() == "" || n.GetJurisdiction() == "" {
		me, err := c.Me(ctx)
		if err != nil {
			return nil, err
		}
		if n.Issuer == "" {
			n.Issuer = me.GetId()
		}
		if n.Jurisdiction == "" {
			n.Jurisdiction = me.GetJurisdiction()
		}
	}
	if n.GetNoticeId() == "" {
		n.NoticeId = NewID(n.GetIssuer())
	}
	if n.GetCreatedAt() == nil {
		n.CreatedAt = timestamppb.Now()
	}
	return dsse.SignMessage(dsse.PayloadTypeNotice, n, *c.signer)
}

// SubmitNotice signs n (see SignNotice), submits it and verifies the receipt, which proves the
// log consistent with the largest checkpoint this client verified before. A write that got no
// answer is sent again, the same envelope, until an answer comes or ctx ends, so an error says
// what became of the notice: *UnverifiedReceiptError, it is committed (the record is returned
// too); *OutcomeUnknownError, it may be (re-send it with Resend to learn); any other error, it
// is not.
func (c *Client) SubmitNotice(ctx context.Context, n *concordv1.Notice) (*concordv1.NoticeRecord, error) {
	resp, err := c.SubmitNoticeWithReceipt(ctx, n)
	return resp.GetNotice(), err
}

// SubmitNoticeWithReceipt is SubmitNotice returning the whole answer: the record and the
// verified receipt, for a partner to keep as proof that the notice was logged.
func (c *Client) SubmitNoticeWithReceipt(ctx context.Context, n *concordv1.Notice) (*concordv1.SubmitNoticeResponse, error) {
	if err := c.requireLogKey(); err != nil {
		return nil, err
	}
	env, err := c.SignNotice(ctx, n)
	if err != nil {
		return nil, err
	}
	return commit(ctx, c, env, func(ctx context.Context, from uint64) (*concordv1.SubmitNoticeResponse, error) {
		return c.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env, ConsistencyFrom: from})
	})
}

// fillStatement sets a statement's author and jurisdiction from WhoAmI when empty.
func (c *Client) fillStatement(ctx context.Context, author, jurisdiction *string) error {
	if err := c.requireSigner(); err != nil {
		return err
	}
	if *author != "" && (jurisdiction == nil || *jurisdiction != "") {
		return nil
	}
	me, err := c.Me(ctx)
	if err != nil {
		return err
	}
	if *author == "" {
		*author = me.GetId()
	}
	if jurisdiction != nil && *jurisdiction == "" {
		*jurisdiction = me.GetJurisdiction()
	}
	return nil
}

// SignEndorsement signs e, filling in endorsement_id, author, jurisdiction and created_at if
// empty.
func (c *Client) SignEndorsement(ctx context.Context, e *concordv1.Endorsement) (*concordv1.Envelope, error) {
	if err := c.fillStatement(ctx, &e.Author, &e.Jurisdiction); err != nil {
		return nil, err
	}
	if e.EndorsementId == "" {
		e.EndorsementId = NewID(e.GetAuthor())
	}
	if e.CreatedAt == nil {
		e.CreatedAt = timestamppb.Now()
	}
	return dsse.SignMessage(dsse.PayloadTypeEndorsement, e, *c.signer)
}

// EndorseNotice adopts notice noticeID in the partner's jurisdiction under provision legalBasis.
// Its errors say what became of the endorsement as SubmitNotice's do.
func (c *Client) EndorseNotice(ctx context.Context, noticeID, legalBasis string) (*concordv1.EndorseNoticeResponse, error) {
	if err := c.requireLogKey(); err != nil {
		return nil, err
	}
	env, err := c.SignEndorsement(ctx, &concordv1.Endorsement{NoticeId: noticeID, LegalBasis: legalBasis})
	if err != nil {
		return nil, err
	}
	return commit(ctx, c, env, func(ctx context.Context, from uint64) (*concordv1.EndorseNoticeResponse, error) {
		return c.Notices.EndorseNotice(ctx, &concordv1.EndorseNoticeRequest{Envelope: env, ConsistencyFrom: from})
	})
}

// SignObjection signs o, filling in objection_id, author, jurisdiction and created_at if empty.
func (c *Client) SignObjection(ctx context.Context, o *concordv1.Objection) (*concordv1.Envelope, error) {
	if err := c.fillStatement(ctx, &o.Author, &o.Jurisdiction); err != nil {
		return nil, err
	}
	if o.ObjectionId == "" {
		o.ObjectionId = NewID(o.GetAuthor())
	}
	if o.CreatedAt == nil {
		o.CreatedAt = timestamppb.Now()
	}
	return dsse.SignMessage(dsse.PayloadTypeObjection, o, *c.signer)
}

// ObjectToNotice declares notice noticeID not actionable in the partner's jurisdiction (errors
// as SubmitNotice's).
func (c *Client) ObjectToNotice(ctx context.Context, noticeID, reason string) (*concordv1.ObjectToNoticeResponse, error) {
	if err := c.requireLogKey(); err != nil {
		return nil, err
	}
	env, err := c.SignObjection(ctx, &concordv1.Objection{NoticeId: noticeID, Reason: reason})
	if err != nil {
		return nil, err
	}
	return commit(ctx, c, env, func(ctx context.Context, from uint64) (*concordv1.ObjectToNoticeResponse, error) {
		return c.Notices.ObjectToNotice(ctx, &concordv1.ObjectToNoticeRequest{Envelope: env, ConsistencyFrom: from})
	})
}

// SignWithdrawal signs w, filling in withdrawal_id, author and created_at if empty.
func (c *Client) SignWithdrawal(ctx context.Context, w *concordv1.Withdrawal) (*concordv1.Envelope, error) {
	if err := c.fillStatement(ctx, &w.Author, nil); err != nil {
		return nil, err
	}
	if w.WithdrawalId == "" {
		w.WithdrawalId = NewID(w.GetAuthor())
	}
	if w.CreatedAt == nil {
		w.CreatedAt = timestamppb.Now()
	}
	return dsse.SignMessage(dsse.PayloadTypeWithdrawal, w, *c.signer)
}

// WithdrawNotice withdraws the partner's notice noticeID; reinstate tells platforms to put back
// what they removed (errors as SubmitNotice's).
func (c *Client) WithdrawNotice(ctx context.Context, noticeID, reason string, reinstate bool) (*concordv1.WithdrawNoticeResponse, error) {
	if err := c.requireLogKey(); err != nil {
		return nil, err
	}
	env, err := c.SignWithdrawal(ctx, &concordv1.Withdrawal{NoticeId: noticeID, Reason: reason, Reinstate: reinstate})
	if err != nil {
		return nil, err
	}
	return commit(ctx, c, env, func(ctx context.Context, from uint64) (*concordv1.WithdrawNoticeResponse, error) {
		return c.Notices.WithdrawNotice(ctx, &concordv1.WithdrawNoticeRequest{Envelope: env, ConsistencyFrom: from})
	})
}

// SignActionReport signs r, filling in report_id, reporter and created_at if empty.
func (c *Client) SignActionReport(ctx context.Context, r *concordv1.ActionReport) (*concordv1.Envelope, error) {
	if err := c.fillStatement(ctx, &r.Reporter, nil); err != nil {
		return nil, err
	}
	if r.ReportId == "" {
		r.ReportId = NewID(r.GetReporter())
	}
	if r.CreatedAt == nil {
		r.CreatedAt = timestamppb.Now()
	}
	return dsse.SignMessage(dsse.PayloadTypeActionReport, r, *c.signer)
}

// ReportAction signs r (see SignActionReport), reports it and verifies the receipt (errors as
// SubmitNotice's).
func (c *Client) ReportAction(ctx context.Context, r *concordv1.ActionReport) (*concordv1.ReportActionResponse, error) {
	if err := c.requireLogKey(); err != nil {
		return nil, err
	}
	env, err := c.SignActionReport(ctx, r)
	if err != nil {
		return nil, err
	}
	return commit(ctx, c, env, func(ctx context.Context, from uint64) (*concordv1.ReportActionResponse, error) {
		return c.Actions.ReportAction(ctx, &concordv1.ReportActionRequest{Envelope: env, ConsistencyFrom: from})
	})
}
