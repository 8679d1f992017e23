"""Typed errors: one class per gRPC status the API answers with, so that callers catch what
they can act on (except concord.sdk.InvalidArgument: fix the request)."""

from __future__ import annotations

import grpc


class ConcordError(Exception):
    """An error of a call to Concord: code is the gRPC status code, message what the hub said."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(ConcordError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ConcordError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ConcordError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(ConcordError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ConcordError):
    code = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(ConcordError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(ConcordError):
    """Over a rate or work limit: retry after the delay the hub gave (retry_after, seconds)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_after: float | None = None


class Unavailable(ConcordError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ConcordError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class ReceiptError(ConcordError):
    """A write's receipt did not verify: the statement may be committed, but the hub's proof
    that it was logged as sent is not good. Keep the response and report it."""

    code = grpc.StatusCode.DATA_LOSS


_BY_CODE = {c.code: c for c in (InvalidArgument, NotFound, AlreadyExists, PermissionDenied, Unauthenticated,
                                FailedPrecondition, ResourceExhausted, Unavailable, DeadlineExceeded)}


def from_rpc_error(err: grpc.RpcError) -> ConcordError:
    """The typed error of a failed call."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = err.details() if hasattr(err, "details") else str(err)
    cls = _BY_CODE.get(code, ConcordError)
    return cls(message or code.name, code)
