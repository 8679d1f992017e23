// The Concord client, whatever carries its calls: statements signed with the partner's key,
// every write's receipt verified against the log key before it returns, reads and writes sent
// again only when the API declares them safe to repeat, and a feed that resumes by itself.
// Node's entry (index.ts) dials gRPC with mutual TLS; the browser's (browser.ts) speaks
// Connect over fetch. This file uses neither.
import { create, equals, fromBinary, type DescMessage, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client as ServiceClient, type Transport } from "@connectrpc/connect";
import { ActionReportSchema, ActionService, type GetComplianceRequestSchema, type GetComplianceResponse } from "./gen/concord/v1/action_pb.js";
import { LogEntrySchema, LogService, ReceiptSchema, type Receipt } from "./gen/concord/v1/log_pb.js";
import { MatchService, type MatchResponse } from "./gen/concord/v1/match_pb.js";
import {
  EndorsementSchema,
  NoticeSchema,
  NoticeService,
  NoticeView,
  ObjectionSchema,
  WithdrawalSchema,
  type NoticeEvent,
  type NoticeRecord,
} from "./gen/concord/v1/notice_pb.js";
import { RegistryService, type WhoAmIResponse } from "./gen/concord/v1/registry_pb.js";
import { EnvelopeSchema, type Category, type Envelope, type HashSchema } from "./gen/concord/v1/types_pb.js";
import { signStatement, type StatementSigner } from "./dsse.js";
import {
  ConcordError,
  NotFound,
  OutcomeUnknownError,
  ReceiptError,
  ResourceExhausted,
  UnverifiedReceiptError,
  fromConnectError,
} from "./errors.js";
import { newStatementId } from "./ids.js";
import { checkConsistency, checkInclusion, equal, leafHash, openCheckpoint, type NoteKey, type VerifiedCheckpoint } from "./tlog.js";

/** A connection to a node: a transport and how to let go of it. */
export interface Connection {
  readonly transport: Transport;
  close(): void;
}

/** Opens a connection to the node. The feed (watch) opens one of its own. */
export type Dialer = () => Connection;

export interface ClientOptions {
  /** The partner's statement-signing key; needed to write. */
  signer?: StatementSigner;
  /** The hub's log verifier key (log.pub); needed to write: receipts are checked with it. */
  logKey?: NoteKey;
  /** Deadline of each attempt of a call, in milliseconds (default 30 000). */
  timeoutMs?: number;
  /** How often a call the API declares safe to repeat is sent again (default 3). */
  retries?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * A write's answer and its receipt, verified: the entry at receipt.index carries exactly the
 * statement sent, in the checkpoint of checkpoint.size entries the log key signed, which extends
 * every checkpoint this client verified before.
 */
export interface Written<R> {
  readonly response: R;
  readonly receipt: Receipt;
  readonly checkpoint: VerifiedCheckpoint;
}

export interface WatchOptions {
  /** Resume after this cursor (an event's, or the last one seen by an earlier run). */
  after?: bigint;
  /** Without after: from the beginning of the feed (else only new events). */
  fromStart?: boolean;
  jurisdictions?: string[];
  categories?: Category[];
  /** Seconds between the hub's heartbeats on a quiet feed (default 15). */
  heartbeatSeconds?: number;
  /** Pause before resuming a broken stream, in milliseconds (default 1 000, doubling to 10 000). */
  reconnectDelayMs?: number;
  /** Ends the watch: the iterator returns. */
  signal?: AbortSignal;
  /** Called with the error that broke the stream, before resuming after cursor. */
  onResume?: (err: ConcordError, cursor: bigint | undefined) => void;
}

type HashInit = MessageInitShape<typeof HashSchema>;

export interface MatchOptions extends CallOptions {
  /** Largest PDQ Hamming distance that counts as a match, 0 to 31 (0: the default, 31). */
  maxPdqDistance?: number;
  /** Also match the rotations and reflections of PDQ hashes. */
  dihedral?: boolean;
  requestId?: string;
}

type CallKind = "once" | "read" | "write";

/** The longest RetryInfo hint a call waits out by itself. */
const maxLimitWaitMs = 30_000;

export class Client {
  /** The generated service clients over this client's connection (no retries, no receipts). */
  readonly registry: ServiceClient<typeof RegistryService>;
  readonly notices: ServiceClient<typeof NoticeService>;
  readonly matches: ServiceClient<typeof MatchService>;
  readonly log: ServiceClient<typeof LogService>;
  readonly actions: ServiceClient<typeof ActionService>;

  private readonly conn: Connection;
  private readonly signer: StatementSigner | undefined;
  private readonly logKey: NoteKey | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private me: Promise<WhoAmIResponse> | undefined;
  /** The largest checkpoint verified; it only grows along proven links. */
  private verified: VerifiedCheckpoint | undefined;

  constructor(
    private readonly dial: Dialer,
    options: ClientOptions = {},
  ) {
    this.conn = dial();
    this.signer = options.signer;
    this.logKey = options.logKey;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retries = options.retries ?? 3;
    const t = this.conn.transport;
    this.registry = createClient(RegistryService, t);
    this.notices = createClient(NoticeService, t);
    this.matches = createClient(MatchService, t);
    this.log = createClient(LogService, t);
    this.actions = createClient(ActionService, t);
  }

  /** Closes the connection (a watch closes its own when it ends). */
  close(): void {
    this.conn.close();
  }

  /** The largest checkpoint this client has verified. */
  get verifiedCheckpoint(): VerifiedCheckpoint | undefined {
    return this.verified;
  }

  /** Who the hub takes this client for: its partner record and statement id tag. */
  whoami(options?: CallOptions): Promise<WhoAmIResponse> {
    if (!this.me) {
      this.me = this.call(RegistryService.method.whoAmI, {}, options);
      this.me.catch(() => (this.me = undefined));
    }
    return this.me;
  }

  // Writes.

  /**
   * Signs and submits a notice (noticeId, issuer, jurisdiction and createdAt filled in when
   * empty) and verifies its receipt. response.notice is the record.
   */
  async submitNotice(init: MessageInitShape<typeof NoticeSchema>, options?: CallOptions) {
    const me = await this.whoami(options);
    const notice = create(NoticeSchema, init);
    notice.issuer ||= me.partner?.id ?? "";
    notice.jurisdiction ||= me.partner?.jurisdiction ?? "";
    notice.noticeId ||= newStatementId(me.statementIdTag);
    notice.createdAt ??= timestampNow();
    return this.commit(NoticeService.method.submitNotice, NoticeSchema, notice, options);
  }

  /** Adopts a notice in this partner's jurisdiction under one of its provisions. */
  async endorseNotice(noticeId: string, legalBasis: string, options?: CallOptions) {
    const me = await this.whoami(options);
    const e = create(EndorsementSchema, {
      endorsementId: newStatementId(me.statementIdTag),
      noticeId,
      legalBasis,
      author: me.partner?.id,
      jurisdiction: me.partner?.jurisdiction,
      createdAt: timestampNow(),
    });
    return this.commit(NoticeService.method.endorseNotice, EndorsementSchema, e, options);
  }

  /** Declares a notice not actionable in this partner's jurisdiction, with a reason. */
  async objectToNotice(noticeId: string, reason: string, options?: CallOptions) {
    const me = await this.whoami(options);
    const o = create(ObjectionSchema, {
      objectionId: newStatementId(me.statementIdTag),
      noticeId,
      reason,
      author: me.partner?.id,
      jurisdiction: me.partner?.jurisdiction,
      createdAt: timestampNow(),
    });
    return this.commit(NoticeService.method.objectToNotice, ObjectionSchema, o, options);
  }

  /** Withdraws this partner's notice; reinstate tells platforms to put the content back. */
  async withdrawNotice(noticeId: string, reason: string, options?: CallOptions & { reinstate?: boolean }) {
    const me = await this.whoami(options);
    const w = create(WithdrawalSchema, {
      withdrawalId: newStatementId(me.statementIdTag),
      noticeId,
      reason,
      reinstate: options?.reinstate ?? false,
      author: me.partner?.id,
      createdAt: timestampNow(),
    });
    return this.commit(NoticeService.method.withdrawNotice, WithdrawalSchema, w, options);
  }

  /**
   * Signs and submits a platform's action report (reportId, reporter, and occurredAt and
   * createdAt, now, filled in when empty).
   */
  async reportAction(init: MessageInitShape<typeof ActionReportSchema>, options?: CallOptions) {
    const me = await this.whoami(options);
    const report = create(ActionReportSchema, init);
    report.reporter ||= me.partner?.id ?? "";
    report.reportId ||= newStatementId(me.statementIdTag);
    report.occurredAt ??= timestampNow();
    report.createdAt ??= timestampNow();
    return this.commit(ActionService.method.reportAction, ActionReportSchema, report, options);
  }

  /**
   * Sends a write whose outcome was unknown again, exactly as it was, and verifies the receipt:
   * a write that committed returns its original answer.
   */
  async resend(unknown: OutcomeUnknownError, options?: CallOptions): Promise<Written<unknown>> {
    const method = writeMethods.find((m) => `${m.parent.typeName}.${m.name}` === unknown.method);
    if (!method) {
      throw new ConcordError(`resend: ${unknown.method} is not a write of this SDK`, Code.InvalidArgument);
    }
    const request = unknown.request as { envelope?: Envelope };
    const response = (await this.call(method as DescMethodUnary, request as MessageInitShape<DescMessage>, options, true)) as { receipt?: Receipt };
    if (!response.receipt) {
      throw new ReceiptError("the hub returned no receipt");
    }
    const checkpoint = await this.verifyReceipt(response.receipt, request.envelope);
    return { response, receipt: response.receipt, checkpoint };
  }

  private async commit<S extends DescMessage, I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    schema: S,
    statement: MessageShape<S>,
    options: CallOptions | undefined,
  ): Promise<Written<MessageShape<O>>> {
    if (!this.signer || !this.logKey) {
      throw new ConcordError("writing needs the partner's signing key and the hub's log key", Code.FailedPrecondition);
    }
    const envelope = await signStatement(schema, statement, this.signer);
    const from = this.verified;
    const request = { envelope, consistencyFrom: from?.size ?? 0n } as unknown as MessageInitShape<I>;
    const response = await this.call(method, request, options);
    const receipt = (response as { receipt?: Receipt }).receipt;
    if (!receipt) {
      throw new ReceiptError("the hub returned no receipt");
    }
    try {
      const checkpoint = await this.checkReceipt(receipt, envelope, from);
      return { response, receipt, checkpoint };
    } catch (err) {
      if (err instanceof UnverifiedReceiptError) {
        err.response = response;
      }
      throw err;
    }
  }

  // Reads.

  /**
   * Matches a batch of up to 10 000 hashes: one HashResult per hash, in order. dihedral: also
   * the rotations and reflections of PDQ hashes.
   */
  match(hashes: HashInit[], options: MatchOptions = {}): Promise<MatchResponse> {
    return this.call(
      MatchService.method.match,
      { hashes, maxPdqDistance: options.maxPdqDistance ?? 0, pdqDihedral: options.dihedral ?? false, requestId: options.requestId ?? "" },
      options,
    );
  }

  /**
   * Matches batches as they come, on one stream (MatchStream): batches is an iterable or async
   * iterable of hash lists (fed by uploads, say), read as the stream needs them. Yields one
   * MatchResponse per batch, in order, its requestId the batch's position from 0. A broken
   * stream throws a typed error and is not retried: the batches not answered yet are those
   * after the last response received. Over gRPC (node); browsers' fetch cannot stream requests.
   */
  async *matchStream(
    batches: Iterable<HashInit[]> | AsyncIterable<HashInit[]>,
    options: Omit<MatchOptions, "requestId" | "timeoutMs"> = {},
  ): AsyncGenerator<MatchResponse, void, undefined> {
    const maxPdqDistance = options.maxPdqDistance ?? 0;
    const pdqDihedral = options.dihedral ?? false;
    async function* requests() {
      let i = 0;
      for await (const hashes of batches) {
        yield { batch: { hashes, maxPdqDistance, pdqDihedral, requestId: String(i++) } };
      }
    }
    try {
      for await (const resp of this.matches.matchStream(requests(), { signal: options.signal })) {
        if (resp.batch) {
          yield resp.batch;
        }
      }
    } catch (e) {
      throw fromConnectError(e);
    }
  }

  /** A notice as the hub holds it (the FULL view unless view says otherwise). */
  async getNotice(noticeId: string, options?: CallOptions & { view?: NoticeView }): Promise<NoticeRecord> {
    const resp = await this.call(NoticeService.method.getNotice, { noticeId, view: options?.view ?? NoticeView.UNSPECIFIED }, options);
    if (!resp.notice) {
      throw new NotFound(`notice ${noticeId}`, Code.NotFound);
    }
    return resp.notice;
  }

  /** Deadlines and whether they were met (filters: GetComplianceRequest's fields). */
  compliance(filters: MessageInitShape<typeof GetComplianceRequestSchema> = {}, options?: CallOptions): Promise<GetComplianceResponse> {
    return this.call(ActionService.method.getCompliance, filters, options);
  }

  /**
   * The hub's latest checkpoint, verified with the log key and proven consistent with every
   * checkpoint this client verified before.
   */
  async checkpoint(options?: CallOptions): Promise<VerifiedCheckpoint> {
    const resp = await this.call(LogService.method.getCheckpoint, {}, options);
    const cp = await openCheckpoint(resp.checkpoint?.note ?? "", this.requireLogKey());
    await this.checkCheckpoint(cp);
    return cp;
  }

  /**
   * The notice events this partner may see, as they are committed, for as long as the caller
   * iterates. After a disconnect or a node restart it resumes after the last cursor received
   * (an event's or a heartbeat's), so nothing is missed or repeated; keep the cursors to resume
   * a later run (after). A stream silent for two heartbeats (a node gone without closing it) is
   * given up, with its connection, and resumed on a new one.
   */
  async *watch(options: WatchOptions = {}): AsyncGenerator<NoticeEvent, void, undefined> {
    const heartbeatSeconds = options.heartbeatSeconds ?? 15;
    const firstDelay = options.reconnectDelayMs ?? 1000;
    let delay = firstDelay;
    let cursor = options.after;
    while (!options.signal?.aborted) {
      const conn = this.dial();
      const stop = new AbortController();
      const onAbort = () => stop.abort();
      options.signal?.addEventListener("abort", onAbort);
      let silent = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const watchdog = (on: boolean) => {
        clearTimeout(timer);
        if (on) {
          timer = setTimeout(() => {
            silent = true;
            stop.abort();
          }, (2 * heartbeatSeconds + 1) * 1000);
        }
      };
      let broke: ConcordError | undefined;
      try {
        const stream = createClient(NoticeService, conn.transport).watchNotices(
          {
            after: cursor,
            fromStart: (options.fromStart ?? false) && cursor === undefined,
            jurisdictions: options.jurisdictions ?? [],
            categories: options.categories ?? [],
            heartbeatSeconds,
          },
          { signal: stop.signal },
        );
        watchdog(true);
        for await (const msg of stream) {
          delay = firstDelay;
          if (msg.message.case === "event") {
            cursor = msg.message.value.cursor;
            watchdog(false); // the consumer's time is not the stream's silence
            yield msg.message.value;
            watchdog(true);
          } else if (msg.message.case === "heartbeat") {
            cursor = msg.message.value.cursor;
            watchdog(true);
          }
        }
      } catch (e) {
        if (options.signal?.aborted) {
          return;
        }
        const err = fromConnectError(e);
        if (!resumable(err) && !silent) {
          throw err;
        }
        broke = err;
      } finally {
        watchdog(false);
        options.signal?.removeEventListener("abort", onAbort);
        stop.abort();
        conn.close();
      }
      if (silent) {
        broke = new ConcordError(`the stream was silent for ${2 * heartbeatSeconds + 1} s, two heartbeats: given up with its connection`, Code.Unavailable, {
          cause: broke,
        });
      }
      options.onResume?.(broke ?? new ConcordError("the hub ended the feed's stream", Code.Unavailable), cursor);
      await sleep(delay, options.signal);
      delay = Math.min(2 * delay, 10_000);
    }
  }

  // Receipts.

  /**
   * Checks a write's receipt obtained otherwise (see message Receipt): it is signed by the log
   * key, proves that its entry, carrying exactly sent, is in the log, and that the log is
   * consistent with the largest checkpoint this client verified — by the receipt's own proof
   * when it starts from that checkpoint, or else by asking the hub.
   */
  async verifyReceipt(receipt: Receipt, sent?: Envelope): Promise<VerifiedCheckpoint> {
    let from = this.verified;
    if (receipt.consistencyFrom !== 0n && (!from || from.size !== receipt.consistencyFrom)) {
      receipt = create(ReceiptSchema, { ...receipt, consistencyFrom: 0n, consistencyProof: [] });
      from = undefined;
    }
    return this.checkReceipt(receipt, sent, from);
  }

  /**
   * The checks of verifyReceipt; from is the checkpoint whose size the request gave as
   * consistencyFrom (undefined: none), where the receipt's consistency proof must start.
   */
  private async checkReceipt(r: Receipt, sent: Envelope | undefined, from: VerifiedCheckpoint | undefined): Promise<VerifiedCheckpoint> {
    const cp = await openCheckpoint(r.checkpoint?.note ?? "", this.requireLogKey());
    const leaf = await leafHash(r.entry);
    if (!equal(leaf, r.leafHash)) {
      throw new ReceiptError("the entry's leaf hash is not the receipt's");
    }
    await checkInclusion(r.inclusionProof, r.index, cp.size, cp.root, leaf);
    let entry;
    try {
      entry = fromBinary(LogEntrySchema, r.entry);
    } catch (err) {
      throw new ReceiptError(`log entry ${r.index} does not parse`, { cause: err });
    }
    if (entry.index !== r.index) {
      throw new ReceiptError(`the receipt for entry ${r.index} holds entry ${entry.index}`);
    }
    if (sent && (entry.body.case !== "statement" || !equals(EnvelopeSchema, entry.body.value, sent))) {
      throw new ReceiptError(`log entry ${r.index} does not carry the statement that was sent`);
    }
    if (r.consistencyFrom === 0n) {
      try {
        await this.checkCheckpoint(cp);
      } catch (err) {
        if (err instanceof ReceiptError) {
          throw err;
        }
        throw new UnverifiedReceiptError(cp, fromConnectError(err));
      }
      return cp;
    }
    if (!from || from.size !== r.consistencyFrom) {
      throw new ReceiptError(`the receipt proves consistency from a log of ${r.consistencyFrom} entries, but the request gave ${from?.size ?? 0n}`);
    }
    await checkConsistency(r.consistencyProof, from.size, from.root, cp.size, cp.root);
    this.adopt(from, cp);
    return cp;
  }

  /**
   * Records cp, proven to extend from, which was the largest checkpoint when the write was sent.
   * It becomes the largest if it still extends the largest; if a concurrent write moved the
   * largest on meanwhile, cp stays aside: the largest only grows along proven links.
   */
  private adopt(from: VerifiedCheckpoint, cp: VerifiedCheckpoint): void {
    const head = this.verified;
    if (!head || head.size === from.size) {
      if (!head || cp.size > head.size) {
        this.verified = cp;
      }
    } else if (head.size === cp.size && !equal(head.root, cp.root)) {
      throw new ReceiptError(`the hub signed two different trees of ${cp.size} entries`);
    }
  }

  /**
   * Proves cp consistent with the largest checkpoint verified, asking the hub for a
   * consistency proof either way, and keeps the larger of the two.
   */
  private async checkCheckpoint(cp: VerifiedCheckpoint): Promise<void> {
    for (;;) {
      const head = this.verified;
      if (!head) {
        this.verified = cp;
        return;
      }
      if (head.size === cp.size) {
        if (!equal(head.root, cp.root)) {
          throw new ReceiptError(`the hub signed two different trees of ${cp.size} entries`);
        }
        return;
      }
      const [older, newer] = cp.size < head.size ? [cp, head] : [head, cp];
      const proof = await this.call(LogService.method.getConsistencyProof, { oldSize: older.size, newSize: newer.size });
      await checkConsistency(proof.hashes, older.size, older.root, newer.size, newer.root);
      // Proven against head: done if head is still the largest, or if cp is a prefix of head,
      // hence of whatever extends it. Otherwise prove cp against the new largest.
      if (this.verified === head || cp.size < head.size) {
        if (this.verified === head && cp.size > head.size) {
          this.verified = cp;
        }
        return;
      }
    }
  }

  private requireLogKey(): NoteKey {
    if (!this.logKey) {
      throw new ConcordError("verifying the log needs the hub's log key", Code.FailedPrecondition);
    }
    return this.logKey;
  }

  // Calls.

  /**
   * Calls a unary method with the retry policy: a call the .proto declares NO_SIDE_EFFECTS
   * (a read) or IDEMPOTENT (a write: re-sending the same envelope returns the original result)
   * is sent again after an attempt that got no answer; any other is sent once. A read also
   * waits out the hub's rate-limit hints. resent: a write sent again after an unknown outcome.
   */
  private async call<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    options: CallOptions = {},
    resent = false,
  ): Promise<MessageShape<O>> {
    const kind: CallKind =
      method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS
        ? "read"
        : method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT
          ? "write"
          : "once";
    let ambiguous = resent;
    for (let attempt = 0; ; attempt++) {
      let err: ConcordError;
      try {
        const res = await this.conn.transport.unary(method, options.signal, options.timeoutMs ?? this.timeoutMs, undefined, input);
        return res.message;
      } catch (e) {
        err = fromConnectError(e);
      }
      const [verdict, nowAmbiguous] = decide(kind, err, ambiguous, options.signal?.aborted ?? false);
      ambiguous = nowAmbiguous;
      const name = `${method.parent.typeName}.${method.name}`;
      if (verdict === "answer" || (verdict !== "unknown" && attempt >= this.retries)) {
        if (kind === "write" && ambiguous) {
          throw new OutcomeUnknownError(name, create(method.input, input), err);
        }
        throw err;
      }
      if (verdict === "unknown") {
        throw new OutcomeUnknownError(name, create(method.input, input), err);
      }
      let wait = backoff(attempt);
      if (verdict === "resendLater") {
        const hint = (err as ResourceExhausted).retryAfterMs;
        if (hint !== undefined && hint > maxLimitWaitMs) {
          if (kind === "write" && ambiguous) {
            throw new OutcomeUnknownError(name, create(method.input, input), err);
          }
          throw err;
        }
        if (hint !== undefined) {
          wait = hint * (1 + 0.1 * Math.random());
        }
      }
      await sleep(wait, options.signal);
    }
  }
}

const writeMethods = [
  NoticeService.method.submitNotice,
  NoticeService.method.endorseNotice,
  NoticeService.method.objectToNotice,
  NoticeService.method.withdrawNotice,
  ActionService.method.reportAction,
];

type Verdict = "answer" | "resend" | "resendLater" | "unknown";

/**
 * The retry policy's decision table, after a failed attempt (the Go client's): the verdict,
 * and whether the write is ambiguous from now on (an attempt may have committed).
 *
 *   Unavailable, DeadlineExceeded, Canceled while the caller waits (a refused TLS handshake is
 *     HandshakeRefused, Unauthenticated):
 *     resend (a write becomes ambiguous);
 *   ResourceExhausted (refused before the handler): a read, or an ambiguous write, waits out
 *     the hint; a first write answers;
 *   InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, OutOfRange: the answer (the
 *     hub looked a re-sent envelope up before refusing);
 *   Internal, Unknown, DataLoss of a write: unknown (the hub failed, maybe after committing);
 *   anything else: the answer of a first write, unknown after an ambiguous attempt.
 */
function decide(kind: CallKind, err: ConcordError, ambiguous: boolean, callerDone: boolean): [Verdict, boolean] {
  if (kind === "once") {
    return ["answer", false];
  }
  const code = err.code;
  if (callerDone) {
    return kind === "write" ? ["unknown", true] : ["answer", false];
  }
  if (code === Code.Unavailable || code === Code.DeadlineExceeded || code === Code.Canceled) {
    return ["resend", ambiguous || kind === "write"];
  }
  if (code === Code.ResourceExhausted) {
    return kind === "read" || ambiguous ? ["resendLater", ambiguous] : ["answer", false];
  }
  if (kind === "read") {
    return ["answer", false];
  }
  if ([Code.InvalidArgument, Code.NotFound, Code.AlreadyExists, Code.FailedPrecondition, Code.OutOfRange].includes(code)) {
    return ["answer", false];
  }
  if ([Code.Internal, Code.Unknown, Code.DataLoss].includes(code) || ambiguous) {
    return ["unknown", true];
  }
  return ["answer", false];
}

/** Errors after which a feed resumes: the stream or its node went away. */
function resumable(err: ConcordError): boolean {
  switch (err.code) {
    case Code.Unavailable:
    case Code.Aborted:
    case Code.Internal:
    case Code.Unknown:
    case Code.DeadlineExceeded:
    case Code.Canceled: // not the caller's (that returns): the connection's or the node's
      return true;
  }
  return false;
}

/** The pause before re-send attempt+1: exponential from 100 ms, capped at 2 s, ±20 % jitter. */
function backoff(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(attempt, 5), 2000) * (0.8 + 0.4 * Math.random());
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}
