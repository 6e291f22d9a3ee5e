"""Soak: a mixed read/write load on loopback against ``strata serve`` (2 workers, sync on).

Four client threads loop over: batch writes of 10 keys (fresh and overwritten), reads of 20 keys
at the latest tx and at a random past tx, scans of 100, single-key GETs and POSTs. Every answer
must be a 2xx (or the 404 of a key that was never written). The resident memory of the workers
is sampled after a warm-up, at the middle and at the end, as total RSS (which includes the pages of
LMDB's memory map the workers touched, so it follows the size of the data) and as anonymous RSS
(the processes' own heap, what a leak grows). The heap must level off: at the end it is within
1.5x the middle plus 32 MiB (a generous bound that a per-request leak would still break), and no
worker was replaced. CI: 10 s. ``-m long``: 10 min.

Each client also does at least :data:`MIN_OPS` operations, however long that takes on a busy
machine, so the load is asserted as a count (every one of them answered), never as a rate.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.reliability.helpers import children_of, rss_kib, start_synced_server
from tests.server.conftest import LiveServer, stop_server

#: Operations each client does at least, even past the deadline (a machine too busy to do them in
#: time makes the soak longer, not red).
MIN_OPS = 250


def client(server: LiveServer, ident: int, deadline: float, out: dict[str, Any]) -> None:
    rng = random.Random(ident)
    ops = errors = 0
    i = 0
    while ops < MIN_OPS or time.monotonic() < deadline:
        i += 1
        pick = rng.random()
        if pick < 0.35:
            items = [{"key": f"c{ident}:{rng.randrange(5000)}", "value": {"i": i, "s": "x" * rng.randrange(500)}}
                     for _ in range(10)]
            items = list({it["key"]: it for it in items}.values())
            status = server.request("POST", "/v4/storage/soak/write", json=items)[0]
        elif pick < 0.6:
            keys = [f"c{rng.randrange(4)}:{rng.randrange(5000)}" for _ in range(20)]
            status, _, body = server.request("POST", "/v4/storage/soak/read", json={"keys": keys})
            if status == 200 and rng.random() < 0.5:
                tx = rng.randrange(orjson.loads(body)["tx"] + 1)
                status = server.request("POST", "/v4/storage/soak/read", json={"keys": keys, "tx": tx})[0]
        elif pick < 0.75:
            status = server.request("POST", "/v4/storage/soak/scan",
                                    json={"prefix": f"c{rng.randrange(4)}:", "limit": 100})[0]
        elif pick < 0.9:
            status = server.request("GET", f"/v4/storage/soak/key?key=c{ident}:{rng.randrange(5000)}")[0]
            status = 200 if status == 404 else status
        else:
            status = server.request("POST", f"/v4/storage/soak/key?key=single{ident}", body=b"raw",
                                    headers={"Content-Type": "application/octet-stream"})[0]
        ops += 1
        errors += status >= 300
    out[ident] = (ops, errors)


def soak(tmp: Path, seconds: float) -> dict[str, Any]:
    server = start_synced_server(tmp)
    try:
        for _ in range(200):  # healthz answered: wait for the second worker too (bounded)
            workers = children_of(server.proc.pid)
            if len(workers) == 2:
                break
            time.sleep(0.05)
        deadline = time.monotonic() + seconds
        results: dict[int, tuple[int, int]] = {}
        threads = [threading.Thread(target=client, args=(server, n, deadline, results)) for n in range(4)]
        for t in threads:
            t.start()
        samples = []
        for at in (min(3.0, seconds / 10), seconds / 2, seconds - 1):
            time.sleep(max(0.0, at - (seconds - (deadline - time.monotonic()))))
            samples.append((sum(rss_kib(p) for p in workers), sum(rss_kib(p, "RssAnon") for p in workers)))
        for t in threads:
            t.join(timeout=120)
        assert children_of(server.proc.pid) == workers, "a worker died or was replaced"
    finally:
        stop_server(server.proc)
    ops = sum(o for o, _ in results.values())
    errors = sum(e for _, e in results.values())
    stats = {"seconds": seconds, "ops": ops, "errors": errors,
             "rss_kib_start_mid_end": [s[0] for s in samples], "anon_kib_start_mid_end": [s[1] for s in samples]}
    print(f"soak: {stats}")
    assert sorted(results) == [0, 1, 2, 3] and errors == 0  # every client finished its MIN_OPS or more
    _, mid, end = stats["anon_kib_start_mid_end"]
    assert end <= mid * 1.5 + 32 * 1024, f"worker heap keeps growing: {samples} KiB"
    return stats


def test_soak(tmp_path: Path) -> None:
    soak(tmp_path, 10)


@pytest.mark.long
def test_soak_long(tmp_path: Path) -> None:
    soak(tmp_path, 600)
