"""Lifecycle figures for docs/lifecycle.md: import throughput and compaction speed.

    python -m benchmarks.lifecycle [N]        (N items, default 1,000,000)

1. Import of N items, 100 per tx, ``sync=False`` (``engine.import_snapshot``), against raw
   py-lmdb puts of the same keys and msgpack values, committed every 100 puts, in the same run.
2. Compaction of ~N superseded versions (N items over N/100 keys: every key has 100 versions;
   ``compact(latest)`` frees 99 of each), in versions/s, with the read latency (p50/p99) of point
   reads in another process while it runs, against the same reads with no compaction.

Figures depend on the machine and its load: the script prints the load average with them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import lmdb
import msgpack

import engine
from engine import Store

PER_TX = 100


def rows(n: int, keys: int) -> list[dict[str, Any]]:
    return [{"key": f"key:{i % keys:08}", "value": {"i": i, "name": f"item {i}"}} for i in range(n)]


def bench_import(n: int, tmp: str) -> tuple[float, float]:
    data = rows(n, n)
    t0 = time.perf_counter()
    with Store.open(os.path.join(tmp, "import"), sync=False, map_size=1 << 31) as store:
        report = engine.import_snapshot(store, data, namespace="bench", batch=PER_TX, sync=False)
    strata = n / (time.perf_counter() - t0)
    assert report.items == n and report.txs == n // PER_TX
    env = lmdb.open(os.path.join(tmp, "raw"), map_size=1 << 31, sync=False, metasync=False, max_dbs=2)
    db = env.open_db(b"versions")
    packb = msgpack.packb
    t0 = time.perf_counter()
    for start in range(0, n, PER_TX):
        with env.begin(write=True, db=db) as txn:
            for row in data[start:start + PER_TX]:
                txn.put(row["key"].encode(), packb(row["value"]))
    raw = n / (time.perf_counter() - t0)
    env.close()
    return strata, raw


def reader(path: str, keys: int, stop: Any, out: Any) -> None:
    lat = []
    with Store.open(path, sync=False) as store:
        ns = store.namespace("bench")
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            ns.get(f"key:{(i * 7919) % keys:08}")
            lat.append(time.perf_counter() - t0)
            i += 1
            if i % 64 == 0:
                time.sleep(0.0005)  # a steady read load, not a busy loop starving the compactor
    out.put(lat)


def latencies(path: str, keys: int, seconds: float | None, work: Any = None) -> tuple[float, float, Any]:
    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=reader, args=(path, keys, stop, out))
    proc.start()
    time.sleep(1.0)  # the reader is up
    result = work() if work is not None else time.sleep(seconds or 1.0)
    stop.set()
    lat = out.get(timeout=120)
    proc.join()
    q = statistics.quantiles(lat, n=100)
    return q[49] * 1e6, q[98] * 1e6, result


def bench_compaction(n: int, tmp: str) -> None:
    keys = max(1, n // PER_TX)
    path = os.path.join(tmp, "compact")
    total = n + keys  # every key gets 101 versions: 100 of them superseded
    with Store.open(path, sync=False, map_size=1 << 31) as store:
        engine.import_snapshot(store, rows(total, keys), namespace="bench", batch=PER_TX, sync=False)
        store.sync()
        p50, p99, _ = latencies(path, keys, 3.0)
        print(f"point reads, idle store:        p50 {p50:7.1f} us   p99 {p99:7.1f} us")
        before = store.compaction_status()["freed_versions"]
        p50, p99, report = latencies(path, keys, None, lambda: store.compact(store.latest_tx))
        freed = store.compaction_status()["freed_versions"] - before
        print(f"compaction: {freed:,} versions freed in {report.seconds:.2f} s = {freed / report.seconds:,.0f} "
              f"versions/s ({report.chunks} chunks)")
        print(f"point reads during compaction:  p50 {p50:7.1f} us   p99 {p99:7.1f} us")
        assert store.verify().ok


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(f"N = {n:,}; load average before: {os.getloadavg()}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="strata-bench-") as tmp:
        strata, raw = bench_import(n, tmp)
        print(f"import, {PER_TX} items/tx, sync=False: {strata:,.0f} items/s; raw py-lmdb puts: {raw:,.0f} items/s "
              f"(ratio {strata / raw:.2f})")
        bench_compaction(n, tmp)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
