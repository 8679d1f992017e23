// DSSE envelopes as Concord signs statements: Ed25519 over PAE(payload_type, payload), the
// payload the statement's binary serialization (fields in number order, as Go's and Python's
// deterministic serializations write them), with the partner's key (PKCS#8 PEM).
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { EnvelopeSchema, SignatureSchema, type Envelope } from "./gen/concord/v1/types_pb.js";

/** The payload type of each statement message, by its name. */
const payloadTypes: Record<string, string> = {
  Notice: "notice",
  Endorsement: "endorsement",
  Objection: "objection",
  Withdrawal: "withdrawal",
  ActionReport: "action-report",
  RegistryChange: "registry-change",
};

/** DSSE's pre-authentication encoding. */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), Buffer.from(payload)]);
}

/** The raw 32-byte Ed25519 public key of a key object. */
function rawPublicKey(key: KeyObject): Buffer {
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return spki.subarray(spki.length - 32);
}

/** Lower-case hex of the first 16 bytes of SHA-256 of the raw public key. */
export function keyId(key: KeyObject): string {
  return createHash("sha256").update(rawPublicKey(key)).digest().subarray(0, 16).toString("hex");
}

/** Reads a partner's statement-signing key (PKCS#8 PEM). */
export function loadSigningKey(pem: string | Buffer): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== "ed25519") {
    throw new Error(`not an Ed25519 key: ${key.asymmetricKeyType}`);
  }
  return key;
}

/** Signs a statement message into an envelope. */
export function signMessage<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>, key: KeyObject): Envelope {
  const kind = payloadTypes[schema.name];
  if (!kind) {
    throw new Error(`${schema.typeName} is not a statement`);
  }
  const payloadType = `application/vnd.concord.${kind}.v1+protobuf`;
  const payload = toBinary(schema, message);
  const sig = sign(null, pae(payloadType, payload), key);
  return create(EnvelopeSchema, { payload, payloadType, signatures: [create(SignatureSchema, { keyid: keyId(key), sig })] });
}

/** Verifies an envelope's signature by the public half of key. */
export function verifyEnvelope(envelope: Envelope, key: KeyObject): boolean {
  const want = keyId(key);
  const s = envelope.signatures.find((x) => x.keyid === want);
  return s !== undefined && verify(null, pae(envelope.payloadType, envelope.payload), createPublicKey(key), s.sig);
}
