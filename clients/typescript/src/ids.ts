// Statement ids: ULIDs whose characters 11 to 16 are the signer's tag, as the hub requires
// (WhoAmI returns the tag).

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A new statement id (notice_id, report_id, ...) carrying tag, a partner's statement id tag. */
export function newStatementId(tag: string, now: number = Date.now()): string {
  if (!/^[0-9A-HJKMNP-TV-Z]{6}$/.test(tag)) {
    throw new Error(`${JSON.stringify(tag)} is not a statement id tag`);
  }
  const random = globalThis.crypto.getRandomValues(new Uint8Array(10));
  let value = BigInt(now) << 80n;
  for (const [i, b] of random.entries()) {
    value |= BigInt(b) << BigInt(8 * (9 - i));
  }
  let ulid = "";
  for (let i = 0; i < 26; i++) {
    ulid = alphabet[Number(value & 31n)] + ulid;
    value >>= 5n;
  }
  return ulid.slice(0, 10) + tag + ulid.slice(16);
}
