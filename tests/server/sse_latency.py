"""Measure how fast a write reaches SSE subscribers on *other* gunicorn workers (not a test).

    python -m tests.server.sse_latency [--writes 50] [--workers 2]

Starts ``strata serve`` (2 workers), opens subscribers until two different workers serve one,
then makes ``--writes`` writes over HTTP, one at a time with a random pause, and times each event's
arrival at each subscriber. The write lands on one of the two workers, so for every write at
least one subscriber is on the other worker: the figure reported is, per write, the *slower* of
the two subscribers (an upper bound for the cross-worker case), measured from the moment the write's
HTTP response arrived (the tx is committed by then) and, for reference, from just before the
request was sent.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.server.conftest import start_server, stop_server
from tests.server.sse_client import subscribers_on_two_workers


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    server = start_server(Path(tempfile.mkdtemp(prefix="strata-sse-")), workers=args.workers)
    try:
        subs = subscribers_on_two_workers(server.port, "/v4/storage/lat/sse")
        after_commit: list[float] = []
        after_send: list[float] = []
        for i in range(args.writes):
            time.sleep(random.uniform(0.02, 0.08))  # writes one at a time, subscribers idle in between
            sent = time.perf_counter()
            status, _, _ = server.request("POST", "/v4/storage/lat/write", json=[{"key": f"k{i}", "value": i}])
            answered = time.perf_counter()
            assert status == 200
            arrivals = [sub.next_event(timeout=10)["at"] for sub in subs]
            after_commit.append((max(arrivals) - answered) * 1000)
            after_send.append((max(arrivals) - sent) * 1000)
        for sub in subs:
            sub.close()
    finally:
        stop_server(server.proc)
    for label, values in (("after the write's response", after_commit), ("after the write was sent", after_send)):
        print(f"{label:28}: median {statistics.median(values):6.2f} ms  p99 {_pct(values, 99):6.2f} ms  "
              f"max {max(values):6.2f} ms  (n={len(values)}, slower of subscribers on {len(subs)} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
