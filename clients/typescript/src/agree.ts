// Cross-language agreement, run by typescript_test.go: builds the canonical notice (the one the
// Go test and clients/python/tests/agree.py build), signs it with the key in argv[2], writes the
// envelope to argv[4], and checks the Go envelope in argv[3]: the same payload, a valid signature.
// The browser's signer (WebCrypto) must give the same envelope as node's, byte for byte.
import { readFileSync, writeFileSync } from "node:fs";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { CounterNarrativeSchema, NoticeSchema } from "./gen/concord/v1/notice_pb.js";
import { Category, EnvelopeSchema, HashKind, HashSchema, TLP } from "./gen/concord/v1/types_pb.js";
import { loadSigningKey, signMessage, verifyEnvelope } from "./dsse-node.js";
import { signStatement, webCryptoSigner } from "./dsse.js";

const bytes = (from: number) => Uint8Array.from({ length: 32 }, (_, i) => from + i);

const notice = create(NoticeSchema, {
  noticeId: "01JD5Z3Y5JXY5S42V2W0X9Y8Z7", issuer: "fr-pharos", jurisdiction: "FR", legalBasis: "fr.cp.421-2-5",
  categories: [Category.GLORIFICATION, Category.ATTACK_FOOTAGE],
  hashes: [create(HashSchema, { kind: HashKind.PDQ, value: bytes(0), quality: 92 }), create(HashSchema, { kind: HashKind.SHA256, value: bytes(32) })],
  context: "Glorification de l'attentat — reposted with new captions ✓", tlp: TLP.TLP_AMBER,
  sharingGroup: ["DE", "videoshare"], removalDeadline: durationFromMs(3600_000), preservationRequested: true,
  counterNarratives: [create(CounterNarrativeSchema, { url: "https://example.org/cn", language: "fr", title: "Réponse" })],
  createdAt: timestampFromMs(1764806400_123),
});

const pem = readFileSync(process.argv[2], "utf8");
const key = loadSigningKey(pem);
const mine = signMessage(NoticeSchema, notice, key);
const web = await signStatement(NoticeSchema, notice, await webCryptoSigner(pem));
if (Buffer.compare(Buffer.from(toBinary(EnvelopeSchema, web)), Buffer.from(toBinary(EnvelopeSchema, mine))) !== 0) {
  console.error("the WebCrypto signer's envelope differs from node:crypto's");
  process.exit(1);
}
writeFileSync(process.argv[4], toBinary(EnvelopeSchema, mine));
const theirs = fromBinary(EnvelopeSchema, readFileSync(process.argv[3]));
if (Buffer.compare(Buffer.from(theirs.payload), Buffer.from(mine.payload)) !== 0 || theirs.payloadType !== mine.payloadType) {
  console.error(`the Go payload differs from TypeScript's:\n go         ${Buffer.from(theirs.payload).toString("hex")}\n typescript ${Buffer.from(mine.payload).toString("hex")}`);
  process.exit(1);
}
if (!verifyEnvelope(theirs, key)) {
  console.error("the Go signature does not verify in TypeScript");
  process.exit(1);
}
console.log(`agreed: ${mine.payload.length} payload bytes (node:crypto and WebCrypto)`);
