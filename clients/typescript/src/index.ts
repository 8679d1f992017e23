// Concord's TypeScript SDK for node: a partner's client of the hub over gRPC with mutual TLS
// (@connectrpc/connect-node), statements signed with node:crypto. See README.md.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { Client as ClientCore, type ClientOptions, type Dialer } from "./client.js";
import { loadSigningKey, nodeSigner } from "./dsse-node.js";
import { NoteKey } from "./tlog.js";

export * from "./sdk.js";
export { keyId, loadSigningKey, nodeSigner, signMessage, verifyEnvelope } from "./dsse-node.js";

/** The files of a partner (PEM paths): the hub's CA, the partner's certificate and key, its
 * statement-signing key and the hub's log key (both needed to write). */
export interface ClientFiles {
  ca: string;
  cert: string;
  key: string;
  signingKey?: string;
  logKey?: string;
}

export class Client extends ClientCore {
  /**
   * A client of the node at address (host:port of its gRPC port) as the partner whose files
   * are given. Reads are sent again after an attempt that got no answer; so are writes, whose
   * re-sent envelope the hub answers with the original result.
   */
  static async connect(address: string, files: ClientFiles, options: Omit<ClientOptions, "signer" | "logKey"> = {}): Promise<Client> {
    const [ca, cert, key] = await Promise.all([readFile(files.ca), readFile(files.cert), readFile(files.key)]);
    const signer = files.signingKey ? nodeSigner(loadSigningKey(await readFile(files.signingKey))) : undefined;
    const logKey = files.logKey ? await NoteKey.parse(await readFile(files.logKey, "utf8")) : undefined;
    return new Client(grpcDialer(address, { ca, cert, key }), { ...options, signer, logKey });
  }

  /** A client with the files `concord dev` writes for partnerId in pkiDir. */
  static dev(address: string, partnerId: string, pkiDir = ".concord/certs", options: Omit<ClientOptions, "signer" | "logKey"> = {}): Promise<Client> {
    const p = join(pkiDir, "partners", partnerId);
    return Client.connect(
      address,
      {
        ca: join(pkiDir, "ca.pem"),
        cert: join(p, "client.pem"),
        key: join(p, "client.key"),
        signingKey: join(p, "signing.key"),
        logKey: join(pkiDir, "log.pub"),
      },
      options,
    );
  }
}

/**
 * Dials gRPC over HTTP/2 with mutual TLS. Each connection pings its node every 30 s while calls
 * are open, and drops it after 10 s without an answer.
 */
function grpcDialer(address: string, tls: { ca: Buffer; cert: Buffer; key: Buffer }): Dialer {
  const baseUrl = address.includes("://") ? address : `https://${address}`;
  return () => {
    const sessionManager = new Http2SessionManager(baseUrl, { pingIntervalMs: 30_000, pingTimeoutMs: 10_000 }, tls);
    return { transport: createGrpcTransport({ baseUrl, sessionManager }), close: () => sessionManager.abort() };
  };
}
