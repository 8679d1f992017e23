// Statement signing with node:crypto: the partner's key from its PKCS#8 PEM file, synchronous
// signing (signMessage) and verification, and nodeSigner, the SDK's StatementSigner in node.
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { EnvelopeSchema, SignatureSchema, type Envelope } from "./gen/concord/v1/types_pb.js";
import { pae, payloadTypeOf, type StatementSigner } from "./dsse.js";

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

/** The SDK's signer over a node:crypto key. */
export function nodeSigner(key: KeyObject): StatementSigner {
  return {
    keyId: keyId(key),
    sign: async (message) => new Uint8Array(sign(null, message, key)),
  };
}

/** Signs a statement message into an envelope. */
export function signMessage<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>, key: KeyObject): Envelope {
  const payloadType = payloadTypeOf(schema);
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
