// Match calls from the TypeScript SDK, as fast as one client sends them one after the other,
// for the Go benchmark in sdkbench_test.go (which compiles the SDK first).
//
//   node match.mjs ADDR PKI_DIR QUERIES SECONDS
//
// QUERIES holds one batch a line (PDQ hashes in hex, separated by commas), sent in turn. Prints
// {"calls": N, "hashes": H, "seconds": S, "matched": M} as JSON.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

// CONCORD_TS_SDK: the compiled SDK's index.js (default: the package's own build).
const { Client, HashKind } = await import(process.env.CONCORD_TS_SDK ?? "../typescript/dist/index.js");

const [addr, pki, queries, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg);
const batches = readFileSync(queries, "utf8")
  .split("\n")
  .filter((line) => line.trim() !== "")
  .map((line) => line.trim().split(",").map((h) => ({ kind: HashKind.PDQ, value: Uint8Array.from(Buffer.from(h, "hex")), quality: 100 })));

const client = await Client.dev(addr, "videoshare", pki);
await client.match(batches[0]); // the connection's handshake, outside the measurement
let calls = 0, hashes = 0, matched = 0, elapsed = 0;
const start = performance.now();
for (;;) {
  const batch = batches[calls % batches.length];
  const { results } = await client.match(batch);
  calls++;
  hashes += batch.length;
  matched += results.filter((r) => r.matches.length > 0).length;
  elapsed = (performance.now() - start) / 1000;
  if (elapsed >= seconds) break;
}
client.close();
console.log(JSON.stringify({ calls, hashes, seconds: elapsed, matched }));
