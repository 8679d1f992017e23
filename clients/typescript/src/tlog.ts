// Checks of Concord's transparency log with nothing but the log key: signed notes (C2SP
// signed-note, Ed25519), checkpoints (C2SP tlog-checkpoint) and RFC 6962 Merkle proofs. It uses
// WebCrypto only, so that it runs alike in node and in browsers.
import { ReceiptError } from "./errors.js";

const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();

/** SHA-256 of the concatenation of parts. */
export async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await subtle.digest("SHA-256", concat(...parts)));
}

/** A signed-note verifier key, "<name>+<hash>+<base64 key>" (Ed25519, type 0x01). */
export class NoteKey {
  private constructor(
    readonly name: string,
    readonly keyHash: Uint8Array,
    readonly publicKey: CryptoKey,
  ) {}

  /** Parses a verifier key (the text of the hub's log.pub). */
  static async parse(vkey: string): Promise<NoteKey> {
    // The key's base64 may hold "+" too: split at the first two only.
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+(\S+)$/.exec(vkey.trim());
    if (!m) {
      throw new Error(`${JSON.stringify(vkey)} is not a note verifier key (name+hash+key)`);
    }
    const [, name, hashHex, keyB64] = m as unknown as [string, string, string, string];
    const raw = base64(keyB64);
    if (raw.length !== 33 || raw[0] !== 0x01) {
      throw new Error(`${JSON.stringify(vkey)} is not an Ed25519 note verifier key (type 0x01)`);
    }
    const keyHash = (await sha256(utf8.encode(name + "\n"), raw)).subarray(0, 4);
    if (hex(keyHash) !== hashHex) {
      throw new Error(`${JSON.stringify(vkey)}: the key hash is ${hex(keyHash)}, not ${hashHex}`);
    }
    const publicKey = await subtle.importKey("raw", raw.subarray(1), { name: "Ed25519" }, false, ["verify"]);
    return new NoteKey(name, keyHash, publicKey);
  }
}

/** A verified checkpoint: the log's name, its size and its root hash, and the note they came from. */
export interface VerifiedCheckpoint {
  readonly origin: string;
  readonly size: bigint;
  readonly root: Uint8Array;
  readonly note: string;
}

/**
 * Verifies a signed checkpoint note with the log key and returns what it says. The size and
 * root are read from the signed text, never from fields beside it.
 */
export async function openCheckpoint(note: string, key: NoteKey): Promise<VerifiedCheckpoint> {
  // As Go's note.Open: the text ends at the last blank line, and everything after it is
  // signature lines, each ending in a newline.
  const split = note.lastIndexOf("\n\n");
  const sigs = split < 0 ? "" : note.slice(split + 2);
  if (split < 0 || sigs === "" || !sigs.endsWith("\n")) {
    throw new ReceiptError("the checkpoint is not a signed note");
  }
  const text = note.slice(0, split + 1);
  let verified = false;
  for (const line of sigs.slice(0, -1).split("\n")) {
    const space = line.indexOf(" ", 2);
    const name = line.slice(2, space);
    let sig: Uint8Array<ArrayBuffer> | undefined;
    try {
      sig = line.startsWith("\u2014 ") && space > 2 ? base64(line.slice(space + 1)) : undefined;
    } catch {
      sig = undefined;
    }
    if (sig === undefined || sig.length < 5) {
      throw new ReceiptError(`the checkpoint has a line after its text that is not a signature: ${JSON.stringify(line)}`);
    }
    if (name !== key.name || sig.length !== 4 + 64 || !equal(sig.subarray(0, 4), key.keyHash)) {
      continue;
    }
    if (!(await subtle.verify({ name: "Ed25519" }, key.publicKey, sig.subarray(4), utf8.encode(text)))) {
      throw new ReceiptError(`the checkpoint's signature by ${key.name} does not verify`);
    }
    verified = true;
  }
  if (!verified) {
    throw new ReceiptError(`the checkpoint carries no signature by the log key ${key.name}`);
  }
  const [origin, size, rootB64] = text.split("\n");
  if (origin === undefined || size === undefined || rootB64 === undefined || !/^(0|[1-9][0-9]{0,19})$/.test(size)) {
    throw new ReceiptError("the checkpoint's text is not origin, size and root");
  }
  let root: Uint8Array;
  try {
    root = base64(rootB64);
  } catch {
    throw new ReceiptError("the checkpoint's root hash is not base64");
  }
  // Only the canonical encoding: two texts must not stand for one tree head.
  if (root.length !== 32 || btoa(String.fromCharCode(...root)) !== rootB64 || BigInt(size) > 2n ** 63n - 1n) {
    throw new ReceiptError("the checkpoint's size or root hash is not canonical");
  }
  if (origin !== key.name) {
    throw new ReceiptError(`the checkpoint names the log ${JSON.stringify(origin)}, not ${JSON.stringify(key.name)}`);
  }
  return { origin, size: BigInt(size), root, note };
}

/** RFC 6962's leaf hash: SHA-256(0x00 || entry). */
export function leafHash(entry: Uint8Array): Promise<Uint8Array> {
  return sha256(Uint8Array.of(0), entry);
}

function node(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  return sha256(Uint8Array.of(1), left, right);
}

/**
 * Verifies an RFC 6962 (RFC 9162 §2.1.3.2) inclusion proof of leaf at index in a tree of size
 * leaves with root.
 */
/** Refuses a proof holding anything but 32-byte hashes, as RFC 6962's proofs are made of. */
function checkHashLengths(proof: Uint8Array[], what: string): void {
  for (const [i, h] of proof.entries()) {
    if (h.length !== 32) {
      throw new ReceiptError(`hash ${i} of the ${what} proof is ${h.length} bytes, not 32`);
    }
  }
}

export async function checkInclusion(proof: Uint8Array[], index: bigint, size: bigint, root: Uint8Array, leaf: Uint8Array): Promise<void> {
  if (index < 0n || index >= size) {
    throw new ReceiptError(`entry ${index} is not in a tree of ${size} entries`);
  }
  checkHashLengths(proof, "inclusion");
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) {
      throw new ReceiptError("the inclusion proof is too long");
    }
    if ((fn & 1n) === 1n || fn === sn) {
      r = await node(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await node(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !equal(r, root)) {
    throw new ReceiptError(`the inclusion proof of entry ${index} does not lead to the checkpoint's root`);
  }
}

/** Verifies an RFC 6962 (RFC 9162 §2.1.4.2) consistency proof between two tree heads. */
export async function checkConsistency(proof: Uint8Array[], oldSize: bigint, oldRoot: Uint8Array, newSize: bigint, newRoot: Uint8Array): Promise<void> {
  if (oldSize > newSize) {
    throw new ReceiptError(`a tree of ${newSize} entries cannot extend one of ${oldSize}`);
  }
  if (oldSize === newSize) {
    if (proof.length > 0 || !equal(oldRoot, newRoot)) {
      throw new ReceiptError(`two roots for ${oldSize} entries: the log was rewritten`);
    }
    return;
  }
  if (oldSize === 0n) {
    return;
  }
  if (proof.length === 0) {
    throw new ReceiptError("an empty consistency proof");
  }
  // A power of two: the old root is the first node of the path.
  const path = (oldSize & (oldSize - 1n)) === 0n ? [oldRoot, ...proof] : proof;
  let fn = oldSize - 1n;
  let sn = newSize - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  checkHashLengths(path, "consistency");
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0n) {
      throw new ReceiptError("the consistency proof is too long");
    }
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await node(c, fr);
      sr = await node(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await node(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !equal(fr, oldRoot) || !equal(sr, newRoot)) {
    throw new ReceiptError(`the log of ${newSize} entries does not extend the one of ${oldSize} entries this client verified`);
  }
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Standard base64 (with padding), refusing anything else. */
export function base64(s: string): Uint8Array<ArrayBuffer> {
  if (!/^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) {
    throw new Error(`not base64: ${JSON.stringify(s.slice(0, 40))}`);
  }
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
