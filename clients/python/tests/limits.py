"""The SDK against a node with a tight rate limit (CONCORD_ADDR, CONCORD_PKI; run by
python_test.go's TestPythonWaitsOutRateLimits): calls over the limit wait out the delay the hub
gives and succeed; a client told not to wait gets ResourceExhausted with that delay."""

import os
import random
import sys

from concord.sdk import Client, ResourceExhausted
from concord.v1 import notice_pb2, types_pb2

ADDR, PKI = os.environ["CONCORD_ADDR"], os.environ["CONCORD_PKI"]
CALLS = int(sys.argv[1])


def main() -> None:
    h = [types_pb2.Hash(kind=types_pb2.HASH_KIND_SHA256, value=bytes(32))]
    with Client.dev(ADDR, "videoshare", PKI) as platform:
        for _ in range(CALLS):
            platform.match(h)
    with Client.dev(ADDR, "fr-pharos", PKI) as authority:
        for _ in range(CALLS):
            authority.submit_notice(notice_pb2.Notice(
                legal_basis="fr.cp.421-2-5", categories=[types_pb2.CATEGORY_GLORIFICATION],
                hashes=[types_pb2.Hash(kind=types_pb2.HASH_KIND_SHA256, value=random.randbytes(32))]))
    with Client.dev(ADDR, "videoshare", PKI, max_limit_wait=0) as impatient:
        try:
            for _ in range(CALLS):
                impatient.match(h)
        except ResourceExhausted as err:
            assert err.retry_after is not None and 0 < err.retry_after <= 5, err.retry_after
            print(f"refused: retry after {err.retry_after:.3f}s: {err.message}")
        else:
            raise AssertionError(f"{CALLS} calls at once were all let through")
    print(f"{CALLS} matches and {CALLS} writes over the limit waited and succeeded")


if __name__ == "__main__":
    main()
