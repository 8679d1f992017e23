"""Typed errors: one class per gRPC status the API answers with, so that callers catch what
they can act on (except concord.sdk.InvalidArgument: fix the request)."""

from __future__ import annotations

import grpc


class ConcordError(Exception):
    """An error of a call to Concord: code is the gRPC status code, message what the hub said,
    retry_after (seconds) when to try again, if the hub said (a RetryInfo detail)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    retry_after: float | None = None

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
    """Over a rate or work limit: retry after the delay the hub gave (retry_after, seconds).
    The client waits out delays up to its max_limit_wait by itself."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ConcordError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ConcordError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class ReceiptError(ConcordError):
    """A write's receipt did not verify: the statement may be committed, but the hub's proof
    that it was logged as sent is not good. Keep the response and report it."""

    code = grpc.StatusCode.DATA_LOSS


class OutcomeUnknown(ConcordError):
    """A write got no answer that says whether it committed (the hub went away, or stopped
    answering, after it was sent): it may have. Client.resend(err) sends the same signed envelope
    again, which the hub answers with the original result if it had committed."""

    rpc: tuple[str, str] | None = None  # the client's service attribute and method
    request = None  # the request sent, its signed envelope included


_BY_CODE = {c.code: c for c in (InvalidArgument, NotFound, AlreadyExists, PermissionDenied, Unauthenticated,
                                FailedPrecondition, ResourceExhausted, Unavailable, DeadlineExceeded)}


def from_rpc_error(err: grpc.RpcError) -> ConcordError:
    """The typed error of a failed call (with retry_after from its RetryInfo detail, if any)."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = err.details() if hasattr(err, "details") else str(err)
    cls = _BY_CODE.get(code, ConcordError)
    typed = cls(message or code.name, code)
    typed.retry_after = retry_delay(err)
    return typed


_STATUS_DETAILS = "grpc-status-details-bin"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def retry_delay(err: grpc.RpcError) -> float | None:
    """The delay, in seconds, of the google.rpc.RetryInfo detail of a failed call's status, or
    None. The status (google.rpc.Status) is read from the trailing metadata by hand: its few
    fields do not justify a dependency on googleapis' generated code."""
    trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailers or ():
        if key != _STATUS_DETAILS:
            continue
        try:
            for field, any_bytes in _fields(value):
                if field != 3:  # Status.details: repeated google.protobuf.Any
                    continue
                any_fields = dict(_fields(any_bytes))
                if any_fields.get(1) != _RETRY_INFO.encode():
                    continue
                delay = dict(_fields(any_fields.get(2, b""))).get(1, b"")  # RetryInfo.retry_delay
                duration = dict(_fields(delay))  # google.protobuf.Duration
                return duration.get(1, 0) + duration.get(2, 0) / 1e9
        except (ValueError, TypeError, AttributeError):
            return None
    return None


def _fields(data: bytes):
    """(field number, value) of a protobuf message's fields: varints as int, length-delimited
    fields as bytes. Other wire types are skipped; a malformed message raises ValueError."""
    i = 0

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            if i >= len(data) or shift > 63:
                raise ValueError("truncated varint")
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    while i < len(data):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, varint()
        elif wire == 2:
            n = varint()
            if i + n > len(data):
                raise ValueError("truncated field")
            yield field, data[i:i + n]
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"wire type {wire}")
