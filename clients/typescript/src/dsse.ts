// DSSE envelopes as Concord signs statements: Ed25519 over PAE(payload_type, payload), the
// payload the statement's binary serialization (fields in number order, as Go's and Python's
// deterministic serializations write them). This file runs alike in node and in browsers: the
// key is a StatementSigner, made by webCryptoSigner here or by nodeSigner (dsse-node.ts).
import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { EnvelopeSchema, SignatureSchema, type Envelope } from "./gen/concord/v1/types_pb.js";
import { concat, hex, sha256 } from "./tlog.js";

/** The payload type's kind of each statement message, by its name. */
const payloadKinds: Record<string, string> = {
  Notice: "notice",
  Endorsement: "endorsement",
  Objection: "objection",
  Withdrawal: "withdrawal",
  ActionReport: "action-report",
  RegistryChange: "registry-change",
};

/** A partner's statement-signing key: Ed25519, whatever holds it. */
export interface StatementSigner {
  /** Lower-case hex of the first 16 bytes of SHA-256 of the raw public key. */
  readonly keyId: string;
  /** The Ed25519 signature of message. */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

const utf8 = new TextEncoder();

/** DSSE's pre-authentication encoding. */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = utf8.encode(payloadType);
  return concat(utf8.encode(`DSSEv1 ${type.length} `), type, utf8.encode(` ${payload.length} `), payload);
}

/** The payload type of a statement message, e.g. application/vnd.concord.notice.v1+protobuf. */
export function payloadTypeOf(schema: DescMessage): string {
  const kind = payloadKinds[schema.name];
  if (!kind) {
    throw new Error(`${schema.typeName} is not a statement`);
  }
  return `application/vnd.concord.${kind}.v1+protobuf`;
}

/** Signs a statement message into an envelope. */
export async function signStatement<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>, signer: StatementSigner): Promise<Envelope> {
  const payloadType = payloadTypeOf(schema);
  const payload = toBinary(schema, message);
  const sig = await signer.sign(pae(payloadType, payload));
  return create(EnvelopeSchema, { payload, payloadType, signatures: [create(SignatureSchema, { keyid: signer.keyId, sig })] });
}

/** The key id of a raw 32-byte Ed25519 public key. */
export async function keyIdOf(rawPublicKey: Uint8Array): Promise<string> {
  return hex((await sha256(rawPublicKey)).subarray(0, 16));
}

/**
 * A signer over WebCrypto's Ed25519: from the partner's signing key as PKCS#8 (PEM text or DER
 * bytes; imported non-extractable), or from a CryptoKeyPair (e.g. one kept in IndexedDB), whose
 * public key must be extractable.
 */
export async function webCryptoSigner(key: string | Uint8Array | CryptoKeyPair): Promise<StatementSigner> {
  const subtle = globalThis.crypto.subtle;
  let privateKey: CryptoKey;
  let raw: Uint8Array;
  if (typeof key === "string" || key instanceof Uint8Array) {
    const der = typeof key === "string" ? pemBody(key, "PRIVATE KEY") : new Uint8Array(key);
    // WebCrypto cannot derive the public key from a private one: read it from the JWK export of
    // a throwaway extractable copy, and sign with a non-extractable one.
    const jwk = await subtle.exportKey("jwk", await subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]));
    if (jwk.crv !== "Ed25519" || !jwk.x) {
      throw new Error("not an Ed25519 key");
    }
    raw = base64url(jwk.x);
    privateKey = await subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
  } else {
    privateKey = key.privateKey;
    raw = new Uint8Array(await subtle.exportKey("raw", key.publicKey));
  }
  const keyId = await keyIdOf(raw);
  return {
    keyId,
    async sign(message: Uint8Array): Promise<Uint8Array> {
      return new Uint8Array(await subtle.sign({ name: "Ed25519" }, privateKey, new Uint8Array(message)));
    },
  };
}

/** The DER bytes of a PEM block of the given label. */
export function pemBody(pem: string, label: string): Uint8Array<ArrayBuffer> {
  const m = new RegExp(`-----BEGIN ${label}-----([^-]*)-----END ${label}-----`).exec(pem);
  if (!m) {
    throw new Error(`no PEM block "${label}"`);
  }
  return Uint8Array.from(atob(m[1]!.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
}

function base64url(s: string): Uint8Array {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}
