#!/usr/bin/env python3
"""FAISS on the same hashes and queries as mihbench, for a side-by-side table.

mihbench -faiss writes the stored hashes and the queries (32 bytes each, the same byte order
for both: Hamming distances do not depend on it) and runs this script, which builds the
indexes Meta's Hasher-Matcher-Actioner uses or could use, times one range query at a time at
radius 31 (FAISS counts distances below its radius, so 32), and measures recall against an
exact flat scan. It prints one JSON object a line, one per index.

Needs Debian's python3-faiss (FAISS 1.7) and numpy; `make faiss` installs them.
"""
import argparse
import json
import gc
import time

import faiss
import numpy as np


def load(path):
    a = np.fromfile(path, dtype=np.uint8)
    return a.reshape(-1, 32)


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def truth_of(stored, queries, radius):
    flat = faiss.IndexBinaryFlat(256)
    flat.add(stored)
    lims, _, ids = flat.range_search(queries, radius + 1)
    return [set(ids[lims[i]:lims[i + 1]].tolist()) for i in range(len(queries))]


def measure(name, index, queries, truth, radius):
    lat = []
    found = 0
    want = 0
    for i in range(len(queries)):
        q = queries[i:i + 1]
        t = time.perf_counter_ns()
        lims, _, ids = index.range_search(q, radius + 1)
        lat.append(time.perf_counter_ns() - t)
        got = set(ids[lims[0]:lims[1]].tolist())
        found += len(got & truth[i])
        want += len(truth[i])
    lat.sort()
    return {
        "index": name,
        "p50_us": lat[len(lat) // 2] / 1000,
        "p99_us": lat[len(lat) * 99 // 100] / 1000,
        "recall": found / want if want else 1.0,
        "hits": want,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stored", required=True, help="stored hashes, 32 bytes each")
    ap.add_argument("--queries", required=True, help="query hashes, 32 bytes each")
    ap.add_argument("--radius", type=int, default=31)
    ap.add_argument("--hash-bits", type=int, default=0,
                    help="IndexBinaryHash's key bits (default: about log2 of the stored count)")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)  # one query at a time on one core, as mihbench times Concord
    stored, queries = load(args.stored), load(args.queries)
    truth = truth_of(stored, queries, args.radius)
    n = len(stored)
    b = args.hash_bits or max(10, min(24, n.bit_length() - 2))
    for name, make in [
        ("IndexBinaryMultiHash(256,16,16)", lambda: faiss.IndexBinaryMultiHash(256, 16, 16)),
        ("IndexBinaryHash(256,%d) nflip=2" % b, lambda: faiss.IndexBinaryHash(256, b)),
    ]:
        gc.collect()
        rss0 = rss()
        t = time.perf_counter()
        index = make()
        if isinstance(index, faiss.IndexBinaryHash):
            index.nflip = 2
        index.add(stored)
        build = time.perf_counter() - t
        grown = rss() - rss0
        r = measure(name, index, queries, truth, args.radius)
        r["build_s"] = build
        r["rss_b_per_hash"] = grown / n  # the index's memory beyond the stored array
        print(json.dumps(r), flush=True)
        del index


if __name__ == "__main__":
    main()
