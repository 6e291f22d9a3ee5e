"""Puts, before and after: two checkouts of the engine in one process, against the raw-LMDB floor.

``python -m benchmarks.puts --base DIR [--rounds R] [--keys N] [--versions V] [--only OPS]``
loads the engine of this checkout as ``engine`` and the one in ``DIR/engine`` (another checkout,
e.g. ``git worktree add /tmp/base <commit>``) as the package ``engine_base``, and times the harness's
put operations on both, round-robin with the floor (and SQLite for the durable put) in the same
process. On a shared machine whose load moves by 2-3x over minutes, only figures taken side by side
compare: each ratio is taken within one round, then the median over the rounds is reported.

Operations (the harness's, same data, same batches; see :mod:`.targets.lmdb_floor`):

- ``put1``: one-item put without fsync (stores opened ``sync=False``), process CPU time;
- ``sync1``: durable one-item put: Strata stores opened with the defaults, the floor's environment
  with LMDB's synced commit, SQLite's versioned table with ``synchronous=FULL``; wall and CPU time;
- ``put10k``: put of 10,000 items into a store of N keys, one version each (a fresh store);
- ``put10k_big``: put of 10,000 items into a store of N keys x V versions (the harness's store:
  1,000,000 versions by default), built once with the base engine and copied (the engine under test
  migrates a store of an older layout when it opens it).

The engine's stores and the floor hold the same N keys; the floor keeps the newest value only.
The floor encodes with ``msgpack.packb`` (the harness's floor); for the 10,000-item puts a second
floor, ``floor_orm``, encodes the same values to the same bytes with ``ormsgpack.packb``, the engine's
encoder, and each engine's CPU is also reported against it (``cpu x floor_orm``): a faster encoder is
then not mistaken for a faster engine, as the read floor decodes with the engine's decoder.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import lmdb
import msgpack
import ormsgpack

from .datasets import Dataset, Workload
from .targets import cycle
from .targets.lmdb_floor import MAP_SIZE

OPS = ("put1", "sync1", "put10k", "put10k_big")
#: calls per sample of each operation
CALLS = {"put1": 300, "sync1": 30, "put10k": 2, "put10k_big": 2}


def load_engine(root: Path, name: str) -> ModuleType:
    """The ``engine`` package of the checkout at ``root``, imported under ``name`` (its imports are relative)."""
    spec = importlib.util.spec_from_file_location(name, root / "engine" / "__init__.py",
                                                  submodule_search_locations=[str(root / "engine")])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Bench:
    """The stores of one run and the timed operations on them."""

    def __init__(self, engines: dict[str, ModuleType], keys: int, versions: int, work: Path) -> None:
        self.engines, self.work = engines, work
        self.one = Dataset(keys, 1)
        self.big = Dataset(keys, versions)
        self.wl = Workload(self.big)
        self._floors: dict[bool, Any] = {}

    def _load(self, store: Any, ds: Dataset) -> Any:
        ns = store.namespace("bench")
        for _, batch in ds.batches():
            ns.put(dict(batch), sync=False)
        return ns

    def floor(self, sync: bool) -> Any:
        if sync not in self._floors:
            path = self.work / f"floor-{sync}"
            path.mkdir()
            env = lmdb.open(str(path), map_size=MAP_SIZE, sync=sync, max_dbs=1)
            latest = list(self.one.latest())
            for start in range(0, len(latest), 10_000):
                with env.begin(write=True) as txn:
                    for k, v in latest[start:start + 10_000]:
                        txn.put(k.encode(), msgpack.packb(v))
            env.sync(True)
            self._floors[sync] = env
        return self._floors[sync]

    def floor_put(self, size: int, sync: bool, packb: Callable[[Any], bytes] = msgpack.packb) -> Callable[[], object]:
        env = self.floor(sync)
        batches = cycle([[(k.encode(), v) for k, v in b] for b in self.wl.write_batches(size, 4)])

        def put() -> None:
            with env.begin(write=True) as txn:
                for k, v in batches():
                    txn.put(k, packb(v))
        return put

    def engine_put(self, ns: Any, size: int, sync: bool | None) -> Callable[[], object]:
        batches = cycle([dict(b) for b in self.wl.write_batches(size, 4)])
        if sync is None:
            return lambda: ns.put(batches())
        return lambda: ns.put(batches(), sync=sync)

    def sqlite_put(self) -> Callable[[], object]:
        """SQLite's versioned table (as :mod:`.targets.sqlite_versioned`), synchronous=FULL."""
        db = sqlite3.connect(str(self.work / "kv.sqlite3"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE kv (key TEXT, tx INTEGER, value BLOB, PRIMARY KEY (key, tx)) WITHOUT ROWID")
        db.execute("CREATE TABLE txlog (tx INTEGER PRIMARY KEY, ts REAL)")
        state = {"tx": 0}

        def write(batch: list[tuple[str, object]]) -> None:
            tx = state["tx"] + 1
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO kv VALUES (?, ?, ?)", [(k, tx, msgpack.packb(v)) for k, v in batch])
            db.execute("INSERT INTO txlog VALUES (?, ?)", (tx, time.time()))
            db.execute("COMMIT")
            state["tx"] = tx

        for _, batch in self.one.batches():
            write(batch)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA synchronous=FULL")
        batches = cycle(self.wl.write_batches(1, 4))
        return lambda: write(batches())

    def ops(self, only: list[str]) -> dict[str, dict[str, Callable[[], object]]]:
        """op -> system -> one call. Systems: ``floor``, ``sqlite`` (sync1 only) and each engine."""
        out: dict[str, dict[str, Callable[[], object]]] = {}
        names = list(self.engines)
        if "put1" in only or "put10k" in only:
            fresh = {n: self._load(e.Store.open(str(self.work / f"{n}-fresh"), sync=False), self.one)
                     for n, e in self.engines.items()}
            if "put1" in only:
                out["put1"] = {"floor": self.floor_put(1, False)} | {n: self.engine_put(fresh[n], 1, False)
                                                                      for n in names}
            if "put10k" in only:
                out["put10k"] = {"floor": self.floor_put(10_000, False), "floor_orm": self.floor_put(
                    10_000, False, ormsgpack.packb)} | {
                    n: self.engine_put(fresh[n], 10_000, False) for n in names}
        if "put10k_big" in only:
            template = self.work / "big-template"
            store = self.engines[names[0]].Store.open(str(template), sync=False)
            self._load(store, self.big)
            store.close()
            big = {}
            for n, e in self.engines.items():
                shutil.copytree(template, self.work / f"{n}-big")
                big[n] = e.Store.open(str(self.work / f"{n}-big"), sync=False).namespace("bench")
            out["put10k_big"] = {"floor": self.floor_put(10_000, False), "floor_orm": self.floor_put(
                10_000, False, ormsgpack.packb)} | {
                n: self.engine_put(big[n], 10_000, False) for n in names}
        if "sync1" in only:
            durable = {n: self._load(e.Store.open(str(self.work / f"{n}-durable")), self.one)
                       for n, e in self.engines.items()}
            out["sync1"] = {"floor": self.floor_put(1, True), "sqlite": self.sqlite_put()} | {
                n: self.engine_put(durable[n], 1, None) for n in names}
        return out


def measure(ops: dict[str, dict[str, Callable[[], object]]], rounds: int) -> dict[str, dict[str, Any]]:
    """Per op and system: CPU and wall samples (us per call), systems in a rotating order each round."""
    for systems in ops.values():
        for fn in systems.values():
            for _ in range(3):
                fn()
    samples: dict[str, dict[str, dict[str, list[float]]]] = {
        op: {s: {"cpu": [], "wall": []} for s in systems} for op, systems in ops.items()}
    for r in range(rounds):
        for op, systems in ops.items():
            names = list(systems)
            names = names[r % len(names):] + names[:r % len(names)]
            for s in names:
                fn, n = systems[s], CALLS[op]
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(n):
                    fn()
                samples[op][s]["cpu"].append((time.process_time() - cpu) / n * 1e6)
                samples[op][s]["wall"].append((time.perf_counter() - wall) / n * 1e6)
    return samples


def summary(samples: dict[str, dict[str, dict[str, list[float]]]]) -> list[str]:
    med = statistics.median
    lines = []
    for op, systems in samples.items():
        floor = systems["floor"]
        for s, got in systems.items():
            if s in ("floor", "floor_orm"):
                lines.append(f"{op:10} {s:11} cpu {med(got['cpu']):10.1f} us  wall {med(got['wall']):10.1f} us")
                continue
            cpu = med([a / b for a, b in zip(got["cpu"], floor["cpu"], strict=True)])
            wall = med([a / b for a, b in zip(got["wall"], floor["wall"], strict=True)])
            line = (f"{op:10} {s:11} cpu {med(got['cpu']):10.1f} us  wall {med(got['wall']):10.1f} us  "
                    f"x floor: cpu {cpu:.2f}  wall {wall:.2f}")
            if "floor_orm" in systems and s != "sqlite":
                orm = med([a / b for a, b in zip(got["cpu"], systems["floor_orm"]["cpu"], strict=True)])
                line += f"  cpu x floor_orm {orm:.2f}"
            if "sqlite" in systems and s != "sqlite":
                vs = med([a / b for a, b in zip(got["wall"], systems["sqlite"]["wall"], strict=True)])
                line += f"  wall x sqlite {vs:.2f}"
            lines.append(line)
        if "engine_base" in systems and "engine" in systems:
            ratio = med([a / b for a, b in zip(systems["engine"]["cpu"], systems["engine_base"]["cpu"], strict=True)])
            lines.append(f"{op:10} engine / engine_base, cpu: {ratio:.3f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.puts", description=__doc__.split("\n\n")[0])
    p.add_argument("--base", type=Path, help="another checkout whose engine/ is compared with this one's")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--versions", type=int, default=10, help="versions per key of the put10k_big store")
    p.add_argument("--only", default=",".join(OPS), help=f"comma-separated, from {','.join(OPS)}")
    p.add_argument("--workdir", type=Path, help="where stores are created (default: a temp dir, removed after)")
    args = p.parse_args(argv)
    only = args.only.split(",")
    engines = {"engine": importlib.import_module("engine")}  # this checkout's (run from its root)
    if args.base is not None:
        engines = {"engine_base": load_engine(args.base.resolve(), "engine_base"), **engines}
    work = Path(tempfile.mkdtemp(prefix="strata-puts-", dir=args.workdir))
    try:
        bench = Bench(engines, args.keys, args.versions, work)
        lines = summary(measure(bench.ops(only), args.rounds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
