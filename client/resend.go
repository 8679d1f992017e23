package client

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"concord/internal/rpcmethod"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// This file is the client's one retry policy: after a failed attempt, whether a call is sent
// again, when, and what its caller is told. Every write RPC is declared IDEMPOTENT (re-sending
// the same envelope returns the original result), so a write whose answer was lost is sent again
// until an answer says what became of it: a write that committed is never reported as failed.

// callKind is what a method's .proto declares of its side effects.
type callKind uint8

const (
	// once: not declared idempotent; sent once.
	once callKind = iota
	// read: NO_SIDE_EFFECTS.
	read
	// write: IDEMPOTENT; an attempt that got no answer may have taken effect.
	write
)

func callKindOf(method string) callKind {
	switch {
	case rpcmethod.ReadOnly(method):
		return read
	case rpcmethod.Retryable(method):
		return write
	}
	return once
}

// verdict is what the client does after a failed attempt.
type verdict uint8

const (
	// answer: the error is the call's answer; return it.
	answer verdict = iota
	// resend: send again after a backoff, on the next node (the failover moved on).
	resend
	// resendLater: the node refused to take the call now (rate limit); send again to the same
	// node once its RetryInfo hint has passed.
	resendLater
	// unknown: a write may have committed and no answer will tell: OutcomeUnknownError.
	unknown
)

// decide is the decision table. err is the failed attempt's error, ambiguous whether an earlier
// attempt of this write got no answer (it may have committed), callerDone whether the caller's
// context has ended. It returns the verdict and whether the write is ambiguous from now on.
//
//	| the attempt's answer                                      | first answer | after no answer |
//	|-----------------------------------------------------------|--------------|-----------------|
//	| Unavailable (not a refused handshake), DeadlineExceeded    | resend       | resend          |
//	|   or Canceled while the caller's context is alive          |              |                 |
//	| ResourceExhausted (refused before the handler: no effect)  | answer       | resendLater     |
//	|   (a read waits out its RetryInfo hint, within Retries)   |              |                 |
//	| InvalidArgument, NotFound, AlreadyExists,                  | answer       | answer          |
//	|   FailedPrecondition, OutOfRange: the statement itself     |              |                 |
//	|   is refused, after the hub looked up a re-send            |              |                 |
//	| Internal, Unknown, DataLoss: the hub failed, maybe after   | unknown      | unknown         |
//	|   committing                                               |              |                 |
//	| PermissionDenied, Unauthenticated, Unimplemented, a        | answer       | unknown         |
//	|   refused handshake, ...: refused before the handler,      |              |                 |
//	|   which says nothing of an earlier attempt                 |              |                 |
//	| the caller's context ended                                 | unknown      | unknown         |
//
// That table is for writes. A read is sent again on the first row, and on ResourceExhausted
// once the refusal's RetryInfo hint has passed; every other error is its answer.
func decide(k callKind, err error, ambiguous, callerDone, retryExhausted bool) (verdict, bool) {
	if k == once {
		return answer, false
	}
	code := status.Code(err)
	switch {
	case callerDone:
		if k == write {
			return unknown, true // the attempt may have reached the hub
		}
		return answer, false
	case code == codes.Unavailable && retriable(err), code == codes.DeadlineExceeded, code == codes.Canceled:
		return resend, ambiguous || k == write
	case code == codes.ResourceExhausted:
		if (k == write && ambiguous) || retryExhausted || k == read {
			return resendLater, ambiguous
		}
		return answer, ambiguous
	case k == read:
		return answer, false
	case code == codes.InvalidArgument, code == codes.NotFound, code == codes.AlreadyExists,
		code == codes.FailedPrecondition, code == codes.OutOfRange:
		return answer, false
	case code == codes.Internal, code == codes.Unknown, code == codes.DataLoss:
		return unknown, true
	case ambiguous:
		return unknown, true
	}
	return answer, false
}

// OutcomeUnknownError is the error of a write that may or may not have committed: an attempt
// got no answer (a node went away or did not answer in time, or the hub failed), and no later
// attempt answered before the context ended or Config.Retries ran out. Re-send the same request
// (Client.Resend does, and verifies the receipt) to learn it: a write that committed returns its
// original result. Never sign the statement again under a new id: it would be logged twice.
type OutcomeUnknownError struct {
	// Method is the RPC's full name, Request the request to send again as it is.
	Method  string
	Request proto.Message
	// Err is the last attempt's error.
	Err error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("client: %s: outcome unknown, the write may have committed: re-send the same request (the same envelope) to learn it: %v",
		e.Method, e.Err)
}

func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// retryExhausted is a call option that makes a read wait out ResourceExhausted refusals too: the
// client's own check of a receipt must not fail for being rate limited.
type retryExhausted struct{ grpc.EmptyCallOption }

// resendOfUnknown is a call option for a write sent again after an OutcomeUnknownError: its
// outcome is unknown from the first attempt on.
type resendOfUnknown struct{ grpc.EmptyCallOption }

// resender applies the retry policy around each call (see decide).
type resender struct {
	// retries bounds re-sends: of reads, default 3; of writes, none by default (they go on
	// until their outcome is known or the context ends). -1: never.
	retries int
	// writeRetries is set when retries was configured and bounds writes too.
	writeRetries bool
	// attemptTimeout bounds each attempt of a write (0: none).
	attemptTimeout time.Duration
	// logger, if set, gets a line per re-send.
	logger *slog.Logger
}

func (r resender) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	k := callKindOf(method)
	if k == once {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err() // nothing was sent
	}
	exhausted, ambiguous := false, false
	for _, o := range opts {
		switch o.(type) {
		case retryExhausted:
			exhausted = true
		case resendOfUnknown:
			ambiguous = k == write
		}
	}
	limit := r.retries
	if k == write && !r.writeRetries {
		limit = -1 // until the context ends
	} else if limit < 0 {
		limit = 0
	}
	for attempt := 0; ; attempt++ {
		attemptCtx, cancel := ctx, context.CancelFunc(func() {})
		if k == write && r.attemptTimeout > 0 {
			attemptCtx, cancel = context.WithTimeout(ctx, r.attemptTimeout)
		}
		err := invoker(attemptCtx, method, req, reply, cc, opts...)
		cancel()
		if err == nil {
			return nil
		}
		var v verdict
		v, ambiguous = decide(k, err, ambiguous, ctx.Err() != nil, exhausted)
		var wait time.Duration
		switch v {
		case resend:
			wait = backoff(attempt)
		case resendLater:
			wait = retryDelay(err, attempt)
		}
		if v == resend || v == resendLater {
			dl, hasDeadline := ctx.Deadline()
			switch {
			case limit >= 0 && attempt >= limit:
				v = answer
			case hasDeadline && v == resend:
				wait = min(wait, time.Until(dl)/2) // leave the last attempt some time
			case hasDeadline && time.Until(dl) < wait:
				v = answer // the node's hint outlasts the caller: give up now
			case v == resendLater && wait > maxLimitWait:
				v = answer // a partner far over its limits: say so rather than hang
			}
			if v == answer && ambiguous {
				v = unknown
			}
		}
		switch v {
		case answer:
			return err
		case unknown:
			m, _ := req.(proto.Message)
			return &OutcomeUnknownError{Method: method, Request: m, Err: err}
		}
		if r.logger != nil {
			r.logger.WarnContext(ctx, "sending the call again", "grpc.method", method, "attempt", attempt+2,
				"after", wait.Round(time.Millisecond), "grpc.code", status.Code(err).String(), "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if k == write && ambiguous {
				m, _ := req.(proto.Message)
				return &OutcomeUnknownError{Method: method, Request: m, Err: err}
			}
			return err
		}
	}
}

// maxLimitWait is the longest RetryInfo hint a call waits out by itself.
const maxLimitWait = 30 * time.Second

// backoff is the pause before re-send attempt+1: exponential from 100 ms, capped at 2 s, with
// ±20 % jitter so that clients cut off together do not come back together.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 5)
	d = min(d, 2*time.Second)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// retryDelay is the wait a refusal's RetryInfo asks for (plus up to 10 %, to spread callers
// out), or the backoff without one.
func retryDelay(err error, attempt int) time.Duration {
	if st, ok := status.FromError(err); ok {
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
				hint := ri.GetRetryDelay().AsDuration()
				return hint + time.Duration(float64(hint)*0.1*rand.Float64())
			}
		}
	}
	return backoff(attempt)
}

// retriable: Unavailable, except a refused TLS handshake, which no retry will fix.
func retriable(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	msg := st.Message()
	// Only the TLS layer's own refusals: "authentication handshake failed: read: connection
	// reset by peer" is a node going away, which the next node or attempt can fix.
	return !strings.Contains(msg, "tls:") && !strings.Contains(msg, "x509:")
}
