"""Raw etcd figures through engine.etcd on a fresh 3-member loopback cluster: the baseline a Strata-on-etcd
row will be compared with (issue targets: Strata's 100-key read at a past tx within 1.5x, its durable
1-item writes at least 0.7x of these).

    python -m tests.etcd.baseline [--seconds 5] [--keys 1000]

Figures, each over ``--seconds`` of wall time (after a 1 s warm-up):

* ``put1``: txns of one 100-byte put (the durable 1-item write), at 1 and 16 client threads sharing one
  client, in txns/s;
* ``put1_once``: the same put through ``commit_once`` (the guard compare and the request-key put a
  retry-safe Strata commit adds), at 1 and 16 threads;
* ``read100_past``: one txn of 100 range requests at a past revision (random keys of ``--keys``), one
  client thread, in microseconds per read (median and p90).

and the Strata-on-etcd rows beside them, same cluster, same run (:class:`engine.etcd.storage.EtcdStorage`):

* ``strata_put1``: ``storage.put(ns, {key: value})`` of one value that packs to 100 bytes (a Strata tx:
  the raw put plus the request key, the log index, the namespace keys and the housekeeping range),
  at 1 and 16 threads, in txs/s;
* ``strata_put1_sealed``: ``strata_put1`` at 16 threads while a background sealer
  (:mod:`engine.etcd.sealer`) seals the hash chain behind them, in txs/s; ``sealed_backlog_txs``: how
  many txs were not sealed yet when the writers stopped, and ``sealed_catch_up_ms``: how long the sealer
  then took to seal them;
* ``strata_read100_past``: ``storage.read(ns, 100 keys, tx=past)`` (random keys of ``--keys``, three
  versions each, read at the second: one txn, decoded into records), in microseconds (median, p90).

Prints one JSON line with the figures, the machine's load average before and after, and etcd's version.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.etcd import EtcdClient, Put, Range, commit_once
from engine.etcd.chain import sealed_head
from engine.etcd.sealer import Sealer
from engine.etcd.storage import EtcdStorage

from .cluster import EtcdCluster

VALUE = b"v" * 100


def rate(threads: int, seconds: float, op: Callable[[int, int], None]) -> float:
    """Calls of ``op(thread, i)`` per second over ``seconds``, ``threads`` threads, after a 1 s warm-up."""
    counts = [0] * threads
    measuring = threading.Event()
    stop = threading.Event()

    def run(n: int) -> None:
        i = 0
        while not stop.is_set():
            op(n, i)
            i += 1
            if measuring.is_set():
                counts[n] += 1

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    time.sleep(1.0)
    measuring.set()
    start = time.perf_counter()
    time.sleep(seconds)
    done, elapsed = sum(counts), time.perf_counter() - start
    stop.set()
    for t in pool:
        t.join()
    return done / elapsed


def writes(client: EtcdClient, seconds: float) -> dict[str, float]:
    """put1 and put1_once at 1 and 16 threads, txns/s."""
    out: dict[str, float] = {}
    for threads in (1, 16):
        def plain(n: int, i: int, t: int = threads) -> None:
            client.txn((), [Put(b"w/%02d/%02d/%08d" % (t, n, i), VALUE)])

        def once(n: int, i: int, t: int = threads) -> None:
            name = b"%02d/%02d/%08d" % (t, n, i)
            commit_once(client, b"req/" + name, b"r", (), [Put(b"o/" + name, VALUE)])

        out[f"put1_t{threads}_txn_per_s"] = rate(threads, seconds, plain)
        out[f"put1_once_t{threads}_txn_per_s"] = rate(threads, seconds, once)
    return out


def reads(client: EtcdClient, nkeys: int, seconds: float) -> dict[str, float]:
    """read100_past: one txn of 100 ranges at a past revision, microseconds (median, p90)."""
    keys = [b"k/%06d" % i for i in range(nkeys)]
    past = 0
    for version in range(3):  # three versions of every key; read at the second
        for start in range(0, len(keys), 100):
            batch = keys[start : start + 100]
            rev = client.txn((), [Put(k, b"%d:%s" % (version, VALUE)) for k in batch]).revision
        past = rev if version == 1 else past
    rng = random.Random(7)
    samples = []
    for _ in range(int(seconds * 200)):
        batch = rng.sample(keys, 100)
        t0 = time.perf_counter()
        result = client.txn((), [Range(k, revision=past) for k in batch])
        samples.append((time.perf_counter() - t0) * 1e6)
        assert all(r.kvs[0].value.startswith(b"1:") for r in result.responses)  # type: ignore[union-attr]
    samples.sort()
    p90 = samples[len(samples) * 9 // 10]
    return {"read100_past_us_median": statistics.median(samples), "read100_past_us_p90": p90}


def strata_writes(client: EtcdClient, seconds: float) -> dict[str, float]:
    """strata_put1 at 1 and 16 threads, txs/s."""
    storage = EtcdStorage.open(client, "bench/w")
    value = "v" * 97  # msgpack: 2 bytes of header + 97 = 99 bytes, the raw rows' 100-byte value
    out: dict[str, float] = {}
    for threads in (1, 16):
        def put(n: int, i: int, t: int = threads) -> None:
            storage.put("ns", {f"{t:02d}/{n:02d}/{i:08d}": value})

        out[f"strata_put1_t{threads}_tx_per_s"] = rate(threads, seconds, put)
    return out


def strata_sealed_writes(client: EtcdClient, seconds: float) -> dict[str, float]:
    """strata_put1_sealed at 16 threads with a background sealer, and the sealer's backlog at the end."""
    storage = EtcdStorage.open(client, "bench/s")
    sealer = Sealer(storage.timeline).start()
    value = "v" * 97
    try:
        def put(n: int, i: int) -> None:
            storage.put("ns", {f"{n:02d}/{i:08d}": value})

        out = {"strata_put1_sealed_t16_tx_per_s": rate(16, seconds, put)}
        latest = storage.latest_tx
        t0 = time.perf_counter()
        out["sealed_backlog_txs"] = latest - sealed_head(storage.timeline)[0].tx
        while sealed_head(storage.timeline)[0].tx < latest:
            time.sleep(0.005)
        out["sealed_catch_up_ms"] = (time.perf_counter() - t0) * 1000
    finally:
        sealer.close()
    return out


def strata_reads(client: EtcdClient, nkeys: int, seconds: float) -> dict[str, float]:
    """strata_read100_past: storage.read of 100 keys at a past tx, microseconds (median, p90)."""
    storage = EtcdStorage.open(client, "bench/r")
    keys = [f"k/{i:06d}" for i in range(nkeys)]
    past = 0
    for version in range(3):
        for start in range(0, len(keys), 100):
            tx = storage.put("ns", {k: f"{version}:" + "v" * 95 for k in keys[start:start + 100]})
        past = tx if version == 1 else past
    rng = random.Random(7)
    samples = []
    for _ in range(int(seconds * 200)):
        batch = rng.sample(keys, 100)
        t0 = time.perf_counter()
        result = storage.read("ns", batch, tx=past)
        samples.append((time.perf_counter() - t0) * 1e6)
        assert len(result.records) == 100 and all(r.value.startswith("1:") for r in result.records)
    samples.sort()
    return {"strata_read100_past_us_median": statistics.median(samples),
            "strata_read100_past_us_p90": samples[len(samples) * 9 // 10]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--keys", type=int, default=1000)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="etcd-baseline-") as tmp:
        cluster = EtcdCluster.start(Path(tmp), 3)
        try:
            with EtcdClient(cluster.endpoints, pool_size=40) as client:
                figures = {**writes(client, args.seconds), **strata_writes(client, args.seconds),
                           **strata_sealed_writes(client, args.seconds),
                           **reads(client, args.keys, args.seconds), **strata_reads(client, args.keys, args.seconds)}
                version = client.status().version
        finally:
            cluster.stop()
    print(json.dumps({
        "etcd": version, "members": 3, "seconds": args.seconds, "keys": args.keys,
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
        **{k: round(v, 1) for k, v in figures.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
