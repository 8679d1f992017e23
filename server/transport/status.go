package transport

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"concord/server/fault"

	"connectrpc.com/connect/v2"
	"connectrpc.com/connect/v2/connectproto"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// grpcError turns a core error into a gRPC status error. Errors that are neither faults nor
// statuses are bugs or I/O failures: the caller gets Internal, the log gets the detail.
func grpcError(ctx context.Context, logger *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var f *fault.Error
	switch {
	case errors.As(err, &f):
		st := status.New(f.Code, f.Msg)
		if f.RetryAfter > 0 {
			if withInfo, err := st.WithDetails(retryInfo(f.RetryAfter)); err == nil {
				st = withInfo
			}
		}
		return st.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded before the request completed")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	}
	logger.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error: the hub logged the details")
}

// retryInfo is the standard detail (google.rpc.RetryInfo) that tells a client how long to wait.
func retryInfo(after time.Duration) *errdetails.RetryInfo {
	return &errdetails.RetryInfo{RetryDelay: durationpb.New(after)}
}

// connectError is grpcError for connect-go: only *connect.Error values keep their code.
func connectError(ctx context.Context, logger *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	var f *fault.Error
	switch {
	case errors.As(err, &f):
		ce := connect.NewError(connect.Code(f.Code), f.Msg)
		if f.RetryAfter > 0 {
			if detail, err := connectproto.NewErrorDetail(retryInfo(f.RetryAfter)); err == nil {
				ce = ce.WithDetail(detail)
			}
		}
		return ce
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, "deadline exceeded before the request completed")
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, "request canceled")
	}
	logger.ErrorContext(ctx, "internal error", "err", err)
	return connect.NewError(connect.CodeInternal, "internal error: the hub logged the details")
}
