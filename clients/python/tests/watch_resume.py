"""Run by python_test.go: follows the feed as videoshare (CONCORD_ADDR, CONCORD_PKI) from the
start and prints each event's notice id, a line each, until it has printed argv[1] of them. The
node is restarted meanwhile: the watch must resume by itself, losing nothing."""

import os
import sys

from concord.sdk import Client

want = int(sys.argv[1])
with Client.dev(os.environ["CONCORD_ADDR"], "videoshare", os.environ["CONCORD_PKI"]) as platform:
    for n, event in enumerate(platform.watch(from_start=True, heartbeat_seconds=1, reconnect_delay=0.2), start=1):
        print(event.notice_id, event.cursor, flush=True)
        if n == want:
            break
