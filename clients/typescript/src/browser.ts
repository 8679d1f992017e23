// Concord's TypeScript SDK for browsers: the same client over the Connect protocol (fetch) to a
// node's HTTPS port, statements signed with WebCrypto's Ed25519. The browser presents the
// partner's client certificate (mutual TLS) from its own certificate store. It imports nothing
// of node: `npm run bundle` builds it into dist/concord.browser.js.
import { createConnectTransport } from "@connectrpc/connect-web";
import { Client as ClientCore, type ClientOptions } from "./client.js";
import { webCryptoSigner } from "./dsse.js";
import { NoteKey } from "./tlog.js";

export * from "./sdk.js";

export interface BrowserClientOptions extends Omit<ClientOptions, "signer" | "logKey"> {
  /** The node's HTTPS port, e.g. https://hub.example.org:8443. */
  baseUrl: string;
  /** The partner's statement-signing key: PKCS#8 (PEM or DER) or a WebCrypto key pair; needed to write. */
  signingKey?: string | Uint8Array | CryptoKeyPair;
  /** The hub's log verifier key (the text of log.pub); needed to write. */
  logKey?: string;
  /** The fetch to call with (default: the global one). */
  fetch?: typeof globalThis.fetch;
  /**
   * The requests' credentials mode (default "include": the client certificate is a credential,
   * and the node is usually another origin than the page's).
   */
  credentials?: RequestCredentials;
  /** Send JSON instead of the binary protobuf encoding (easier to read in developer tools). */
  json?: boolean;
}

export class Client extends ClientCore {
  static async connect(options: BrowserClientOptions): Promise<Client> {
    const { baseUrl, signingKey, logKey, fetch, credentials = "include", json, ...rest } = options;
    const signer = signingKey ? await webCryptoSigner(signingKey) : undefined;
    const key = logKey ? await NoteKey.parse(logKey) : undefined;
    const withCredentials: typeof globalThis.fetch = (input, init) => (fetch ?? globalThis.fetch)(input, { ...init, credentials });
    const dial = () => ({
      transport: createConnectTransport({ baseUrl, fetch: withCredentials, useBinaryFormat: !json }),
      close: () => {},
    });
    return new Client(dial, { ...rest, signer, logKey: key });
  }
}
