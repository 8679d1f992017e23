"""Match calls from the Python SDK, as fast as one client sends them one after the other, for
the Go benchmark in sdkbench_test.go.

    match.py ADDR PKI_DIR QUERIES SECONDS

QUERIES holds one batch a line (PDQ hashes in hex, separated by commas), sent in turn. Prints
{"calls": N, "hashes": H, "seconds": S, "matched": M} as JSON."""

import json
import sys
import time

from concord.sdk import Client
from concord.v1 import types_pb2


def main() -> None:
    addr, pki, queries, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    with open(queries) as f:
        batches = [[types_pb2.Hash(kind=types_pb2.HASH_KIND_PDQ, value=bytes.fromhex(h), quality=100)
                    for h in line.strip().split(",")] for line in f if line.strip()]
    with Client.dev(addr, "videoshare", pki) as c:
        c.match(batches[0])  # the channel's handshake, outside the measurement
        calls = hashes = matched = 0
        start = time.perf_counter()
        while True:
            batch = batches[calls % len(batches)]
            resp = c.match(batch)
            calls += 1
            hashes += len(batch)
            matched += sum(1 for r in resp.results if r.matches)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
    print(json.dumps({"calls": calls, "hashes": hashes, "seconds": elapsed, "matched": matched}))


if __name__ == "__main__":
    main()
