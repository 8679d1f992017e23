// Assertions of the test scripts that typescript_test.go runs: a failed one throws, the script
// prints the error and exits 1, and the Go test shows its output.

export function ok(cond: unknown, what: string): asserts cond {
  if (!cond) {
    throw new Error(`check failed: ${what}`);
  }
}

export function eq<T>(got: T, want: T, what: string): void {
  const show = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? `${x}n` : x));
  if (show(got) !== show(want)) {
    throw new Error(`check failed: ${what}: got ${show(got)}, want ${show(want)}`);
  }
}

/** Waits for p to reject with an error of class want (by name, so that a bundle's own classes
 * count too) and returns the error. */
export async function rejects(p: Promise<unknown>, want: string, what: string): Promise<Error> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error && err.name === want) {
      return err;
    }
    throw new Error(`check failed: ${what}: want ${want}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
  throw new Error(`check failed: ${what}: want ${want}, it succeeded`);
}

/** p, or a failure naming what did not happen within ms (a deadline, not a pause). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`check failed: ${what}: nothing within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

export function fromHex(s: string): Uint8Array {
  return Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
}

/** value with the given bits flipped. */
export function flip(value: Uint8Array, bits: number[]): Uint8Array {
  const out = Uint8Array.from(value);
  for (const i of bits) {
    out[i >> 3]! ^= 1 << (i & 7);
  }
  return out;
}

/** Runs main, printing "ok" at the end or the error and exiting 1. */
export function run(name: string, main: () => Promise<void>): void {
  main().then(
    () => {
      console.log("ok");
      process.exit(0);
    },
    (err: unknown) => {
      console.error(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exit(1);
    },
  );
}
