"""Concord's Python SDK: a partner's client of the hub (see Client), over the code generated from
proto/ (concord.v1), with statements signed in DSSE envelopes and receipts verified."""

from .client import Client, Written, dev_files
from .errors import (AlreadyExists, ConcordError, DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound,
                     OutcomeUnknown, PermissionDenied, ReceiptError, ResourceExhausted, Unauthenticated, Unavailable)

__all__ = ["Client", "Written", "dev_files", "ConcordError", "InvalidArgument", "NotFound", "AlreadyExists", "PermissionDenied",
           "Unauthenticated", "FailedPrecondition", "ResourceExhausted", "Unavailable", "DeadlineExceeded", "ReceiptError",
           "OutcomeUnknown"]
