// The SDK against a live node, run by typescript_test.go: an authority submits a notice,
// another endorses it and a third objects; a platform follows the feed, which resumes across a
// restart of the node with nothing lost or repeated, matches a near-duplicate and a rotated copy,
// and reports its action; the issuer reads compliance and withdraws. Every write's receipt is
// verified, and receipts altered after the fact are refused.
//
//   CONCORD_ADDR         the node's gRPC address (it keeps it across the restart)
//   CONCORD_PKI          its dev PKI
//   CONCORD_FOREIGN_PKI  a PKI of another CA, with the same partners
//   CONCORD_PDQ          a PDQ hash (hex) for the notice
//   CONCORD_PDQ_ROTATED  that picture rotated by 90° anticlockwise (the API's ROTATE_270), a few
//                        bits off (hex)
//
// It prints "restart" when the node should restart and reads "restarted" when it has, and
// "ok" when every check passed.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ActionOutcome,
  Category,
  Client,
  HandshakeRefused,
  HashKind,
  NoticeEventType,
  NoticeSchema,
  NoticeState,
  PdqTransform,
  ReceiptSchema,
  Unavailable,
  fromConnectError,
  loadSigningKey,
  nodeSigner,
  signStatement,
  type NoticeEvent,
  type Receipt,
  type WatchOptions,
} from "../index.js";
import { eq, flip, fromHex, ok, rejects, run, within } from "./check.js";

const addr = process.env.CONCORD_ADDR!;
const pki = process.env.CONCORD_PKI!;
const foreignPki = process.env.CONCORD_FOREIGN_PKI!;
const pdq = fromHex(process.env.CONCORD_PDQ!);
const rotated = fromHex(process.env.CONCORD_PDQ_ROTATED!);
const sha = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** A watch consumed in the background, which the checks wait on. */
class Feed {
  readonly events: NoticeEvent[] = [];
  readonly resumes: string[] = [];
  private failed: unknown;
  private wake: (() => void) | undefined;
  private readonly stop = new AbortController();

  constructor(client: Client, options: WatchOptions) {
    void (async () => {
      try {
        const onResume = (err: Error) => this.resumes.push(err.message);
        for await (const ev of client.watch({ ...options, signal: this.stop.signal, onResume })) {
          this.events.push(ev);
          this.wake?.();
        }
      } catch (err) {
        this.failed = err;
        this.wake?.();
      }
    })();
  }

  /** The first n events, once they came. */
  waitFor(n: number, what: string): Promise<NoticeEvent[]> {
    return within(
      (async () => {
        while (this.events.length < n) {
          if (this.failed) throw this.failed;
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
        return this.events.slice(0, n);
      })(),
      60_000,
      `${what} (the feed had ${this.events.length} events, resumed after: ${this.resumes.join("; ") || "none"})`,
    );
  }

  close(): void {
    this.stop.abort();
  }
}

function altered(r: Receipt, change: (r: Receipt) => void): Receipt {
  const copy = create(ReceiptSchema, structuredClone(r));
  change(copy);
  return copy;
}

run("scenario", async () => {
  const fr = await Client.dev(addr, "fr-pharos", pki);
  const de = await Client.dev(addr, "de-bka", pki);
  const be = await Client.dev(addr, "be-fedpol", pki);
  const platform = await Client.dev(addr, "videoshare", pki, { retries: 10 });
  const feed = new Feed(platform, { fromStart: true, heartbeatSeconds: 1, reconnectDelayMs: 200 });

  // An authority submits a notice; its receipt is verified before submitNotice returns.
  const written = await fr.submitNotice({
    legalBasis: "fr.cp.421-2-5",
    categories: [Category.GLORIFICATION],
    hashes: [
      { kind: HashKind.PDQ, value: pdq, quality: 90 },
      { kind: HashKind.SHA256, value: sha },
    ],
  });
  const noticeId = written.response.notice!.notice!.noticeId;
  eq(noticeId.slice(10, 16), (await fr.whoami()).statementIdTag, "the notice id carries the issuer's tag");
  ok(written.checkpoint.size > written.receipt.index, "the checkpoint covers the entry");
  // A second write: its receipt proves the log extends the checkpoint verified first.
  const again = await fr.submitNotice({ legalBasis: "fr.cp.421-2-5", categories: [Category.GLORIFICATION], hashes: [{ kind: HashKind.SHA256, value: Uint8Array.from(sha).reverse() }] });
  const second = again.response.notice!.notice!.noticeId;
  eq(again.receipt.consistencyFrom, written.checkpoint.size, "the second receipt proves consistency from the first checkpoint");
  ok(again.checkpoint.size > written.checkpoint.size, "the log grew");

  // Receipts altered after the fact are refused.
  const tampered: [string, Receipt][] = [
    ["entry", altered(written.receipt, (r) => (r.entry[r.entry.length - 1]! ^= 1))],
    ["checkpoint size", altered(written.receipt, (r) => (r.checkpoint!.note = r.checkpoint!.note.replace(/\n(\d+)\n/, (_, n) => `\n${BigInt(n) + 1n}\n`)))],
    ["checkpoint signature", altered(written.receipt, (r) => (r.checkpoint!.note = r.checkpoint!.note.replace(/ (\S{4})(\S)(\S*)\n$/, (_, a, b, c) => ` ${a}${b === "A" ? "B" : "A"}${c}\n`)))],
    ["inclusion proof", altered(written.receipt, (r) => (r.inclusionProof[0]![0]! ^= 1))],
    ["index", altered(written.receipt, (r) => (r.index += 1n))],
  ];
  for (const [what, r] of tampered) {
    await rejects(fr.verifyReceipt(r), "ReceiptError", `a receipt with another ${what}`);
  }
  const key = nodeSigner(loadSigningKey(readFileSync(`${pki}/partners/fr-pharos/signing.key`)));
  const other = await signStatement(NoticeSchema, create(NoticeSchema, { noticeId, issuer: "fr-pharos", legalBasis: "fr.cp.421-2-5" }), key);
  await rejects(fr.verifyReceipt(written.receipt, other), "ReceiptError", "a receipt for another statement");
  // A client that verified the first checkpoint refuses a forged consistency proof to the second.
  const auditor = await Client.dev(addr, "fr-pharos", pki);
  await auditor.verifyReceipt(written.receipt);
  await rejects(
    auditor.verifyReceipt(altered(again.receipt, (r) => (r.consistencyProof[0]![0]! ^= 1))),
    "ReceiptError",
    "a receipt with a forged consistency proof",
  );
  await auditor.verifyReceipt(again.receipt);
  auditor.close();

  // Another authority adopts it where it is unlawful too; a third objects.
  const endorsed = await de.endorseNotice(noticeId, "de.stgb.140");
  ok(endorsed.receipt.index > written.receipt.index, "the endorsement is logged after the notice");
  await be.objectToNotice(noticeId, "Satire: not apologie under art. 140bis");

  // The platform's feed, from the start: two notices, the endorsement, the objection.
  const before = await feed.waitFor(4, "the feed's first four events");
  eq(
    before.map((e) => [e.noticeId, NoticeEventType[e.type]]),
    [
      [noticeId, "NEW"],
      [second, "NEW"],
      [noticeId, "ENDORSED"],
      [noticeId, "OBJECTED"],
    ],
    "the feed before the restart",
  );

  // The node restarts; the feed resumes by itself, after its cursor.
  const verifiedBefore = fr.verifiedCheckpoint!.size;
  console.log("restart");
  eq((await within(stdin.next(), 120_000, "the node's restart")).value, "restarted", "the test's answer");
  const third = await fr.submitNotice({ legalBasis: "fr.cp.421-2-1", categories: [Category.RECRUITMENT], hashes: [{ kind: HashKind.SHA256, value: sha.map((b) => b ^ 0xff) }] });
  const thirdId = third.response.notice!.notice!.noticeId;
  const after = await feed.waitFor(5, "the feed's event after the restart");
  eq([after[4]!.noticeId, NoticeEventType[after[4]!.type]], [thirdId, "NEW"], "the first event after the restart");
  ok(feed.resumes.length >= 1, "the feed resumed");
  const cursors = after.map((e) => e.cursor);
  ok(cursors.every((c, i) => i === 0 || c > cursors[i - 1]!), `cursors grow: ${cursors.join(", ")}`);
  eq(third.receipt.consistencyFrom, verifiedBefore, "the log after the restart is proven to extend the one before");

  // Resumed after the first cursor, a new watch starts at the second event.
  for await (const ev of platform.watch({ after: before[0]!.cursor })) {
    eq(ev.cursor, before[1]!.cursor, "a watch resumed after a cursor");
    break;
  }

  // The platform matches a near-duplicate (4 bits flipped), the exact SHA-256, and a copy
  // rotated by 90° anticlockwise, which only the dihedral match finds.
  const resp = await platform.match([
    { kind: HashKind.PDQ, value: flip(pdq, [3, 50, 101, 200]), quality: 80 },
    { kind: HashKind.SHA256, value: sha },
  ]);
  const [near, exact] = resp.results;
  eq(near!.matches.map((m) => m.noticeId), [noticeId], "the near-duplicate matches the notice");
  eq(near!.matches[0]!.distance, 4, "its distance");
  eq(exact!.matches[0]!.hashPosition, 1, "the SHA-256 is the notice's second hash");
  ok(near!.matches[0]!.obligations.some((o) => o.jurisdiction === "DE"), "DE, which endorsed it, obliges action");
  const plain = await platform.match([{ kind: HashKind.PDQ, value: rotated, quality: 80 }]);
  eq(plain.results[0]!.matches.length, 0, "a rotated copy without dihedral");
  const dihedral = await platform.match([{ kind: HashKind.PDQ, value: rotated, quality: 80 }], { dihedral: true });
  eq(dihedral.results[0]!.matches.map((m) => [m.noticeId, PdqTransform[m.pdqTransform]]), [[noticeId, "ROTATE_270"]], "a copy rotated anticlockwise, with dihedral");

  // The same on one stream, batches fed as they come: answered in order, each with its position.
  async function* uploads() {
    yield [{ kind: HashKind.PDQ, value: flip(pdq, [3, 50, 101, 200]), quality: 80 }];
    yield [{ kind: HashKind.PDQ, value: rotated, quality: 80 }];
    yield [{ kind: HashKind.SHA256, value: new Uint8Array(32) }, { kind: HashKind.SHA256, value: sha }];
  }
  const streamed = [];
  for await (const answer of platform.matchStream(uploads(), { dihedral: true })) {
    streamed.push(answer);
  }
  eq(streamed.map((a) => a.requestId), ["0", "1", "2"], "the stream's answers, in order");
  eq(streamed.map((a) => a.results.map((r) => r.matches.map((m) => m.noticeId))), [[[noticeId]], [[noticeId]], [[], [noticeId]]],
    "the stream's matches: the near-duplicate, the rotated copy (dihedral), then a miss and the SHA-256");
  const badStream = platform.matchStream([[{ kind: HashKind.SHA256, value: new Uint8Array(20) }]]);
  await rejects((async () => { for await (const _ of badStream) { /* the error ends it */ } })(), "InvalidArgument", "a short SHA-256 on the stream");

  // Typed errors.
  const bad = await rejects(platform.match([{ kind: HashKind.SHA256, value: new Uint8Array(20) }]), "InvalidArgument", "a short SHA-256");
  ok(bad.message.includes("hashes[0]"), `the message names the field: ${bad.message}`);
  await rejects(platform.submitNotice({ legalBasis: "fr.cp.421-2-5", categories: [Category.GLORIFICATION], hashes: [{ kind: HashKind.SHA256, value: sha }] }), "PermissionDenied", "a platform submitting a notice");
  await rejects(fr.getNotice("01JD5Z3Y5JXY5S42V2W0X9Y8Z7"), "NotFound", "a notice that does not exist");

  // A certificate the node does not trust is refused at the handshake, and not retried (with
  // a thousand retries allowed, a retried refusal would outlast the deadline by far).
  const foreign = await Client.connect(
    addr,
    { ca: `${pki}/ca.pem`, cert: `${foreignPki}/partners/fr-pharos/client.pem`, key: `${foreignPki}/partners/fr-pharos/client.key` },
    { retries: 1000 },
  );
  const refusedTls = await within(rejects(foreign.whoami(), "HandshakeRefused", "a certificate from another CA"), 30_000, "the refusal of a foreign certificate");
  console.log(`refused: ${refusedTls.message}`);
  foreign.close();
  const distrustful = await Client.dev(addr, "fr-pharos", foreignPki, { retries: 1000 });
  const unverified = await within(rejects(distrustful.whoami(), "HandshakeRefused", "a node certificate from another CA"), 30_000, "the refusal of the node's certificate");
  console.log(`refused: ${unverified.message}`);
  distrustful.close();
  // A status the hub sent is what it says, whatever words its message uses.
  const fromHub = fromConnectError(new ConnectError("the node certificate of node-2 is being reloaded: retry", Code.Unavailable));
  ok(fromHub instanceof Unavailable && !(fromHub instanceof HandshakeRefused), `a hub's Unavailable mentioning a certificate: ${fromHub.constructor.name}`);

  // The platform reports what it did; the issuer reads compliance and withdraws.
  const reported = await platform.reportAction({ noticeId, outcome: ActionOutcome.REMOVED, jurisdictions: ["FR", "DE"] });
  ok(reported.receipt.index > endorsed.receipt.index, "the report is logged after the endorsement");
  const summary = (await fr.compliance({ noticeId })).summary!;
  ok(summary.met >= 2, `compliance counts the report for FR and DE: ${JSON.stringify(summary)}`);
  await fr.withdrawNotice(noticeId, "Annulled on appeal", { reinstate: true });
  eq(NoticeState[(await fr.getNotice(noticeId)).state], "WITHDRAWN", "the notice's state");
  const withdrawn = (await feed.waitFor(6, "the withdrawal's event"))[5]!;
  eq([withdrawn.noticeId, NoticeEventType[withdrawn.type], withdrawn.reinstate], [noticeId, "WITHDRAWN", true], "the withdrawal on the feed");
  eq(feed.events.length, 6, "no event twice");
  eq(new Set(feed.events.map((e) => e.eventId)).size, 6, "six distinct events");

  console.log(`feed: ${feed.events.length} events, resumed ${feed.resumes.length} time(s) (${feed.resumes[0]}); log of ${fr.verifiedCheckpoint?.size} entries verified`);
  feed.close();
  for (const c of [fr, de, be, platform]) c.close();
});
