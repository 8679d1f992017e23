// The log checks against vectors that typescript_test.go makes with the server's own tree
// (concord/translog) and signed notes (golang.org/x/mod/sumdb/note), from the file in argv[2]:
// every inclusion and consistency proof of a tree of up to 33 entries verifies, each proof
// altered in any of several ways is refused, and each checkpoint note verifies or is refused as
// Go decided.
import { readFileSync } from "node:fs";
import { NoteKey, base64, checkConsistency, checkInclusion, leafHash, openCheckpoint } from "../tlog.js";
import { eq, ok, run } from "./check.js";

interface Vectors {
  vkey: string;
  entries: string[];
  roots: string[]; // roots[n-1]: the root of the first n entries
  inclusion: { index: number; size: number; proof: string[] | null }[];
  consistency: { old: number; new: number; proof: string[] | null }[];
  notes: { why: string; note: string; valid: boolean; size: number }[];
}

/** Whether check throws a ReceiptError (and throws anything else). */
async function refused(check: Promise<void>): Promise<boolean> {
  try {
    await check;
    return false;
  } catch (err) {
    if (err instanceof Error && err.name === "ReceiptError") return true;
    throw err;
  }
}

function flipped(proof: Uint8Array[], i: number): Uint8Array[] {
  return proof.map((h, j) => (j === i ? h.map((b, k) => (k === 0 ? b ^ 1 : b)) : h));
}

run("tlog-vectors", async () => {
  const v = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as Vectors;
  const key = await NoteKey.parse(v.vkey);
  const leaves = await Promise.all(v.entries.map((e) => leafHash(base64(e))));
  const roots = v.roots.map(base64);
  const root = (n: number) => roots[n - 1]!;
  let checked = 0;

  for (const t of v.inclusion) {
    const proof = (t.proof ?? []).map(base64);
    const [i, n] = [BigInt(t.index), BigInt(t.size)];
    await checkInclusion(proof, i, n, root(t.size), leaves[t.index]!);
    const bad: [string, () => Promise<void>][] = [
      ["a leaf of another entry", () => checkInclusion(proof, i, n, root(t.size), leaves[t.index + 1] ?? leaves[t.index - 1]!)],
      ["the next size", () => checkInclusion(proof, i, n + 1n, roots[t.size] ?? root(1), leaves[t.index]!)],
      ["a hash too many", () => checkInclusion([...proof, roots[0]!], i, n, root(t.size), leaves[t.index]!)],
    ];
    if (t.size > 1) {
      bad.push(["another index", () => checkInclusion(proof, (i ^ 1n) < n ? i ^ 1n : i - 1n, n, root(t.size), leaves[t.index]!)]);
      bad.push(["a hash too few", () => checkInclusion(proof.slice(0, -1), i, n, root(t.size), leaves[t.index]!)]);
      for (let j = 0; j < proof.length; j++) bad.push([`hash ${j} altered`, () => checkInclusion(flipped(proof, j), i, n, root(t.size), leaves[t.index]!)]);
    }
    for (const [what, check] of bad) {
      ok(await refused(check()), `inclusion of ${t.index} in ${t.size} with ${what} is refused`);
      checked++;
    }
  }

  for (const t of v.consistency) {
    const proof = (t.proof ?? []).map(base64);
    const [m, n] = [BigInt(t.old), BigInt(t.new)];
    await checkConsistency(proof, m, root(t.old), n, root(t.new));
    if (t.old === t.new) {
      continue;
    }
    const bad: [string, () => Promise<void>][] = [
      ["another old root", () => checkConsistency(proof, m, root(t.old === 1 ? 2 : t.old - 1), n, root(t.new))],
      ["another new root", () => checkConsistency(proof, m, root(t.old), n, root(t.new === 1 ? 2 : t.new - 1))],
      ["a hash too many", () => checkConsistency([...proof, roots[0]!], m, root(t.old), n, root(t.new))],
      ["the sizes swapped", () => checkConsistency(proof, n, root(t.new), m, root(t.old))],
    ];
    if (proof.length > 0) {
      bad.push(["a hash too few", () => checkConsistency(proof.slice(0, -1), m, root(t.old), n, root(t.new))]);
      for (let j = 0; j < proof.length; j++) bad.push([`hash ${j} altered`, () => checkConsistency(flipped(proof, j), m, root(t.old), n, root(t.new))]);
    }
    for (const [what, check] of bad) {
      ok(await refused(check()), `consistency of ${t.old} with ${t.new} with ${what} is refused`);
      checked++;
    }
  }

  for (const t of v.notes) {
    let got: string;
    try {
      const cp = await openCheckpoint(t.note, key);
      eq(cp.size, BigInt(t.size), `the size of the note ${t.why}`);
      got = "valid";
    } catch (err) {
      if (!(err instanceof Error) || err.name !== "ReceiptError") throw err;
      got = `refused (${err.message})`;
    }
    ok(got.startsWith(t.valid ? "valid" : "refused"), `the note ${t.why}: ${got}`);
    console.log(`note ${t.why}: ${got}`);
  }
  console.log(`${v.inclusion.length} inclusion and ${v.consistency.length} consistency proofs verified, ${checked} altered ones refused, ${v.notes.length} notes`);
});
