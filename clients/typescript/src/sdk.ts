// What both entries (index.ts for node, browser.ts for browsers) export besides their Client:
// the errors, the log checks, statement signing, and the API's messages and enums.
export type { CallOptions, ClientOptions, Connection, Dialer, MatchOptions, WatchOptions, Written } from "./client.js";
export * from "./errors.js";
export { NoteKey, checkConsistency, checkInclusion, leafHash, openCheckpoint, type VerifiedCheckpoint } from "./tlog.js";
export { keyIdOf, pae, payloadTypeOf, signStatement, webCryptoSigner, type StatementSigner } from "./dsse.js";
export { newStatementId } from "./ids.js";
export * from "./gen/concord/v1/types_pb.js";
export * from "./gen/concord/v1/notice_pb.js";
export * from "./gen/concord/v1/match_pb.js";
export * from "./gen/concord/v1/action_pb.js";
export * from "./gen/concord/v1/log_pb.js";
export * from "./gen/concord/v1/registry_pb.js";
// The message helpers, for code that has only the bundle.
export { create, equals, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
