// Package fault holds the typed errors of Concord's service core. The core says what went wrong
// and what to fix; the transports turn the error into a gRPC or Connect status at the edge.
package fault

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
)

// Error is a core error that maps to a status code.
type Error struct {
	Code codes.Code
	Msg  string
	// RetryAfter, when set, is how long the caller should wait before trying again; the
	// transports send it as a RetryInfo detail.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Msg }

func newf(code codes.Code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Invalid reports a request the caller must correct (InvalidArgument).
func Invalid(format string, args ...any) error { return newf(codes.InvalidArgument, format, args...) }

// NotFound reports a missing record.
func NotFound(format string, args ...any) error { return newf(codes.NotFound, format, args...) }

// Exists reports an id already used by something else (AlreadyExists).
func Exists(format string, args ...any) error { return newf(codes.AlreadyExists, format, args...) }

// Precondition reports a request that the current state does not allow (FailedPrecondition).
func Precondition(format string, args ...any) error {
	return newf(codes.FailedPrecondition, format, args...)
}

// Denied reports a caller that may not do this (PermissionDenied).
func Denied(format string, args ...any) error { return newf(codes.PermissionDenied, format, args...) }

// Unauthenticated reports a caller whose identity could not be established.
func Unauthenticated(format string, args ...any) error {
	return newf(codes.Unauthenticated, format, args...)
}

// Exhausted reports a caller over a limit (ResourceExhausted).
func Exhausted(format string, args ...any) error {
	return newf(codes.ResourceExhausted, format, args...)
}

// ExhaustedFor is Exhausted with the wait after which the caller's retry would be allowed.
func ExhaustedFor(retryAfter time.Duration, format string, args ...any) error {
	return &Error{Code: codes.ResourceExhausted, Msg: fmt.Sprintf(format, args...), RetryAfter: retryAfter}
}

// Aborted reports an operation the caller must start again (ABORTED), e.g. a stream to resume.
func Aborted(format string, args ...any) error { return newf(codes.Aborted, format, args...) }

// Unavailable reports a temporary condition worth retrying (e.g. not the leader yet).
func Unavailable(format string, args ...any) error {
	return newf(codes.Unavailable, format, args...)
}

// CodeOf returns the status code of err: its fault code, or Internal for any other error.
func CodeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var f *Error
	if errors.As(err, &f) {
		return f.Code
	}
	return codes.Internal
}
