// whoami calls Concord's RegistryService over gRPC with mutual TLS, from code generated from the
// same .proto files as the server: WhoAmI (who the server says you are, from your certificate),
// then every page of ListPartners (each partner with its public signing keys). It prints one line
// of JSON: {"partnerId", "roles", "partners"}.
//
//   CONCORD_GRPC_ADDR  host:port of the gRPC port, e.g. 127.0.0.1:7443
//   CONCORD_CA         PEM file of the CA that issued the server's certificate
//   CONCORD_CERT       PEM file of your partner certificate
//   CONCORD_KEY        PEM file of its private key
import { readFileSync } from "node:fs";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { RegistryService } from "./gen/concord/v1/registry_pb.js";
import { Role } from "./gen/concord/v1/types_pb.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`set ${name} (see the top of src/whoami.ts)`);
  }
  return value;
}

async function main(): Promise<void> {
  const addr = env("CONCORD_GRPC_ADDR");
  const transport = createGrpcTransport({
    baseUrl: `https://${addr}`,
    nodeOptions: {
      ca: readFileSync(env("CONCORD_CA")),
      cert: readFileSync(env("CONCORD_CERT")),
      key: readFileSync(env("CONCORD_KEY")),
    },
  });
  const registry = createClient(RegistryService, transport);
  const options = { timeoutMs: 10_000 };

  const me = await registry.whoAmI({}, options);
  const partners: string[] = [];
  let pageToken = "";
  do {
    const page = await registry.listPartners({ pageToken }, options);
    partners.push(...page.partners.map((p) => p.id));
    pageToken = page.nextPageToken;
  } while (pageToken !== "");

  console.log(
    JSON.stringify({
      partnerId: me.partner?.id ?? "",
      roles: (me.partner?.roles ?? []).map((r) => `ROLE_${Role[r]}`),
      partners,
    }),
  );
}

main().catch((err: unknown) => {
  if (err instanceof ConnectError) {
    console.error(`concord whoami: ${Code[err.code]}: ${err.rawMessage}`);
  } else {
    console.error(`concord whoami: ${err instanceof Error ? err.message : String(err)}`);
  }
  process.exit(1);
});
