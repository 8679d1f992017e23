// The browser bundle (dist/concord.browser.js, built by esbuild for browsers) against a live
// node's HTTPS port, run by typescript_test.go: the Connect protocol over fetch, statements
// signed and receipts verified with WebCrypto. Node stands in for the browser; the one thing it
// adds is the fetch, which presents the partner's client certificate as a browser would from
// its certificate store (undici, with the partner's PEM files).
//
//   CONCORD_HTTPS_ADDR  the node's HTTPS address
//   CONCORD_PKI         its dev PKI
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Agent, fetch as undiciFetch } from "undici";
import { eq, flip, ok, rejects, run, within } from "./check.js";

type Bundle = typeof import("../browser.js");

const bundleFile = fileURLToPath(new URL("../concord.browser.js", import.meta.url));
const baseUrl = `https://${process.env.CONCORD_HTTPS_ADDR}`;
const pki = process.env.CONCORD_PKI!;
const read = (path: string) => readFileSync(`${pki}/${path}`, "utf8");

/** A fetch that presents partner's client certificate. */
function fetchAs(partner: string): typeof fetch {
  const agent = new Agent({ connect: { ca: read("ca.pem"), cert: read(`partners/${partner}/client.pem`), key: read(`partners/${partner}/client.key`) } });
  return ((input: string, init: object) => undiciFetch(input, { ...init, dispatcher: agent })) as unknown as typeof fetch;
}

run("browser", async () => {
  const source = readFileSync(bundleFile, "utf8");
  ok(!/\bnode:|\brequire\(/.test(source), "the bundle imports nothing of node");
  const sdk = (await import(bundleFile)) as Bundle;
  const { Category, HashKind, NoticeEventType, ReceiptSchema } = sdk;

  const connect = (partner: string, json = false) =>
    sdk.Client.connect({ baseUrl, fetch: fetchAs(partner), signingKey: read(`partners/${partner}/signing.key`), logKey: read("log.pub"), json });
  const fr = await connect("fr-pharos");
  const platform = await connect("videoshare", true); // JSON, as developer tools show it

  const pdq = Uint8Array.from({ length: 32 }, (_, i) => (i * 73 + 5) & 0xff);
  const sha = Uint8Array.from({ length: 32 }, (_, i) => (i * 29 + 3) & 0xff);
  const written = await fr.submitNotice({
    legalBasis: "fr.cp.421-2-5",
    categories: [Category.GLORIFICATION],
    hashes: [
      { kind: HashKind.PDQ, value: pdq, quality: 90 },
      { kind: HashKind.SHA256, value: sha },
    ],
  });
  const noticeId = written.response.notice!.notice!.noticeId;
  const again = await fr.submitNotice({ legalBasis: "fr.cp.421-2-5", categories: [Category.GLORIFICATION], hashes: [{ kind: HashKind.SHA256, value: sha.map((b) => b ^ 1) }] });
  eq(again.receipt.consistencyFrom, written.checkpoint.size, "the second receipt proves consistency from the first checkpoint");

  const tampered = sdk.create(ReceiptSchema, structuredClone(written.receipt));
  tampered.entry[tampered.entry.length - 1]! ^= 1;
  const refused = await rejects(fr.verifyReceipt(tampered), "ReceiptError", "a tampered receipt");
  ok(refused instanceof sdk.ConcordError, "the bundle's errors are ConcordErrors");

  // The feed over fetch (a server stream of the Connect protocol).
  for await (const ev of platform.watch({ fromStart: true, heartbeatSeconds: 1 })) {
    eq([ev.noticeId, NoticeEventType[ev.type]], [noticeId, "NEW"], "the feed's first event");
    break;
  }

  const resp = await platform.match(
    [
      { kind: HashKind.PDQ, value: flip(pdq, [7, 77, 177]), quality: 80 },
      { kind: HashKind.SHA256, value: sha },
    ],
    { dihedral: true },
  );
  eq(resp.results.map((r) => r.matches.map((m) => [m.noticeId, m.distance])), [[[noticeId, 3]], [[noticeId, 0]]], "the near-duplicate and the SHA-256 match");
  const bad = await rejects(platform.match([{ kind: HashKind.SHA256, value: new Uint8Array(20) }]), "InvalidArgument", "a short SHA-256");
  ok(bad.message.includes("hashes[0]"), `the message names the field: ${bad.message}`);
  await rejects(platform.submitNotice({ legalBasis: "fr.cp.421-2-5", categories: [Category.GLORIFICATION], hashes: [{ kind: HashKind.SHA256, value: sha }] }), "PermissionDenied", "a platform submitting a notice");
  const reported = await within(platform.reportAction({ noticeId, outcome: sdk.ActionOutcome.REMOVED, jurisdictions: ["FR"] }), 30_000, "the action report");
  ok(reported.receipt.index > again.receipt.index, "the report is logged last");
  eq((await fr.getNotice(noticeId)).notice?.noticeId, noticeId, "getNotice");
  console.log(`bundle of ${source.length} bytes: ${reported.checkpoint.size} log entries verified with WebCrypto`);
});
