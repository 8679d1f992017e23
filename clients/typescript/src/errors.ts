// Typed errors: one class per gRPC status the API answers with, so that callers catch what they
// can act on (except InvalidArgument: fix the request). Every error of the SDK is a ConcordError.
import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import type { VerifiedCheckpoint } from "./tlog.js";

/** An error of a call to Concord: code is the gRPC status, message what the hub said. */
export class ConcordError extends Error {
  readonly code: Code;

  constructor(message: string, code: Code = Code.Unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /** The status's name as gRPC spells it, e.g. "INVALID_ARGUMENT". */
  get codeName(): string {
    return statusName(this.code);
  }
}

export class InvalidArgument extends ConcordError {}
export class NotFound extends ConcordError {}
export class AlreadyExists extends ConcordError {}
export class PermissionDenied extends ConcordError {}
export class Unauthenticated extends ConcordError {}
export class FailedPrecondition extends ConcordError {}
export class Unavailable extends ConcordError {}
export class DeadlineExceeded extends ConcordError {}
export class Canceled extends ConcordError {}
export class Internal extends ConcordError {}

/** Over a rate or work limit: retry after the delay the hub gave, if it gave one. */
export class ResourceExhausted extends ConcordError {
  /** The hub's RetryInfo hint, in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, retryAfterMs: number | undefined, options?: { cause?: unknown }) {
    super(message, Code.ResourceExhausted, options);
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * A write's receipt did not verify: the statement may be committed, but the hub's proof that
 * it was logged as sent is not good. Keep the response and report it.
 */
export class ReceiptError extends ConcordError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, Code.DataLoss, options);
  }
}

/**
 * A write committed and its receipt checked, except its consistency with the checkpoints this
 * client verified before: the hub's consistency proof could not be had (err says why). The write
 * stands; check checkpoint later with Client.checkpoint().
 */
export class UnverifiedReceiptError extends ConcordError {
  /** The write's answer. */
  response: unknown;

  constructor(
    readonly checkpoint: VerifiedCheckpoint,
    err: ConcordError,
  ) {
    super(`the write committed, but its checkpoint of ${checkpoint.size} entries could not be proven consistent with the last one verified: ${err.message}`, err.code, {
      cause: err,
    });
  }
}

/**
 * A write that may or may not have committed: an attempt got no answer (a node went away or
 * did not answer in time, or the hub failed) and no later attempt answered. Send the same
 * request again with Client.resend(error) to learn it: a write that committed returns its
 * original answer. Never sign the statement again under a new id: it would be logged twice.
 */
export class OutcomeUnknownError extends ConcordError {
  /** The RPC's name, e.g. "concord.v1.NoticeService.SubmitNotice". */
  readonly method: string;
  /** The request, to send again exactly as it is. */
  readonly request: unknown;

  constructor(method: string, request: unknown, last: ConcordError) {
    super(`${method}: outcome unknown, the write may have committed: re-send the same request (Client.resend): ${last.message}`, last.code, {
      cause: last,
    });
    this.method = method;
    this.request = request;
  }
}

const classes: Partial<Record<Code, new (message: string, code: Code, options?: { cause?: unknown }) => ConcordError>> = {
  [Code.InvalidArgument]: InvalidArgument,
  [Code.NotFound]: NotFound,
  [Code.AlreadyExists]: AlreadyExists,
  [Code.PermissionDenied]: PermissionDenied,
  [Code.Unauthenticated]: Unauthenticated,
  [Code.FailedPrecondition]: FailedPrecondition,
  [Code.Unavailable]: Unavailable,
  [Code.DeadlineExceeded]: DeadlineExceeded,
  [Code.Canceled]: Canceled,
  [Code.Internal]: Internal,
};

/** The typed error of a failed call (anything thrown by a transport). */
export function fromConnectError(err: unknown): ConcordError {
  if (err instanceof ConcordError) {
    return err;
  }
  const ce = ConnectError.from(err);
  const message = ce.rawMessage.trim() || statusName(ce.code);
  if ([Code.Unavailable, Code.Internal, Code.Unknown].includes(ce.code) && isTLSFailure(ce)) {
    // connect-node reports a TLS alert as Internal, grpc-go as Unavailable: it is neither a
    // fault of the hub nor one that goes away.
    return new HandshakeRefused(`the TLS handshake failed (check the CA, the certificate and the key): ${message}`, { cause: ce });
  }
  if (ce.code === Code.ResourceExhausted) {
    return new ResourceExhausted(message, retryDelayMs(ce), { cause: ce });
  }
  const cls = classes[ce.code];
  return cls ? new cls(message, ce.code, { cause: ce }) : new ConcordError(message, ce.code, { cause: ce });
}

/**
 * The TLS handshake failed: the node refused this client's certificate (another CA, revoked,
 * expired) or the node's certificate does not verify against the CA. No retry fixes it.
 */
export class HandshakeRefused extends Unauthenticated {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, Code.Unauthenticated, options);
  }
}

/**
 * Whether a failed call is the TLS layer's refusal rather than a node that went away: an error
 * of node's TLS in its causes (a status the hub sent has none, whatever its message says).
 */
function isTLSFailure(err: Error): boolean {
  for (let e: unknown = err.cause; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_OSSL_)/.test(code)) {
      return true;
    }
    if (/\b(alert|certificate|SSL routines)\b/i.test(e.message)) {
      return true;
    }
  }
  return false;
}

/** The google.rpc.RetryInfo detail's delay, in milliseconds, if the error carries one. */
function retryDelayMs(err: ConnectError): number | undefined {
  for (const d of err.details) {
    const detail = d as { type?: string; value?: unknown };
    if (detail.type !== "google.rpc.RetryInfo" || !(detail.value instanceof Uint8Array)) {
      continue;
    }
    // RetryInfo { Duration retry_delay = 1; }, Duration { int64 seconds = 1; int32 nanos = 2; }
    const outer = new BinaryReader(detail.value);
    while (outer.pos < outer.len) {
      const [field, wireType] = outer.tag();
      if (field !== 1) {
        outer.skip(wireType);
        continue;
      }
      const inner = new BinaryReader(outer.bytes());
      let ms = 0;
      while (inner.pos < inner.len) {
        const [f, wt] = inner.tag();
        if (f === 1) ms += Number(inner.int64()) * 1000;
        else if (f === 2) ms += inner.int32() / 1e6;
        else inner.skip(wt);
      }
      return ms;
    }
  }
  return undefined;
}

function statusName(code: Code): string {
  return (Code[code] ?? "Unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
