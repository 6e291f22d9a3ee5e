"""Growth curves: do Strata's costs stay flat (or logarithmic) as history and key count grow?

Three curves, each point measured on a fresh store in its own directory (removed afterwards):

- ``versions``: 16 hot keys, each written V times (one tx per version, sync=False bulk load). We time
  ``get`` of one key at the latest tx (``get_newest``: no tx given, one ``get`` on the latest-version
  index), at the key's *oldest* tx (``get_oldest``: ``tx=1``, one seek in the tree of every version)
  and at the latest tx given explicitly (``get_newest_past``: ``tx=V``, the same seek as the oldest,
  landing on the newest version), plus the floor's ``get`` on a 16-key LMDB. The V = 1,000 point
  gives two ratios: "oldest / newest <= 1.2x", which compares the past-read path with the
  latest-read path, and "oldest / newest, both at an explicit tx", which compares a read deep in a
  key's history with one at its head on the same path.
- ``keys``: N keys with one version each; ``read`` of 100 random keys, Strata vs the floor holding the
  same N keys (per key).
- ``batch``: write throughput (items/s) of ``put`` batches of 1..10,000 items, sync on and off, Strata
  vs the floor, on a 10,000-key store.

Contract: ``run_growth(points, cfg, workdir, progress)`` returns a list of ``GrowthPoint``; when the
engine is missing it returns floor-only points and one skip line.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import lmdb
import msgpack

from .datasets import Dataset, Workload, key
from .measure import Config, Op, measure_interleaved
from .targets import cycle, decode
from .targets.lmdb_floor import MAP_SIZE
from .targets.strata_embedded import engine_skip_reason, open_store

HOT_KEYS = 16


@dataclass
class GrowthPoint:
    curve: str  # "versions" | "keys" | "batch"
    x: int  # versions per key | number of keys | batch size
    system: str
    op: str
    per_op_s: float | None
    per_item_s: float | None
    items_per_s: float | None = None
    skip: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class GrowthPlan:
    versions: tuple[int, ...] = (1, 10, 100, 1_000, 10_000)
    keys: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    batches: tuple[int, ...] = (1, 10, 100, 1_000, 10_000)


def _points(curve: str, x: int, jobs: list[tuple[str, Op]], cfg: Config) -> list[GrowthPoint]:
    """Measure a point's ops interleaved (so e.g. oldest vs newest see the same background load)."""
    out = []
    for m in measure_interleaved(jobs, cfg):
        ips = m.items / m.median_s if m.median_s else None
        out.append(GrowthPoint(curve, x, m.system, m.op, m.median_s, m.per_item_s, ips, m.skip))
    return out


def _floor_env(path: Path, items: list[tuple[str, object]]) -> lmdb.Environment:
    path.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=MAP_SIZE, sync=False, max_dbs=1)
    for start in range(0, len(items), 10_000):
        with env.begin(write=True) as txn:
            for k, v in items[start : start + 10_000]:
                txn.put(k.encode(), msgpack.packb(v))
    return env


def _floor_get(env: lmdb.Environment, keys: list[str]) -> Op:
    nxt, unpackb = cycle([k.encode() for k in keys]), decode

    def get() -> object:
        with env.begin() as txn:
            return unpackb(txn.get(nxt()))

    return Op("get_latest", 1, get)


def versions_curve(v: int, cfg: Config, workdir: Path, strata: bool) -> list[GrowthPoint]:
    ds = Dataset(HOT_KEYS, 1)
    hot = [key(i) for i in range(HOT_KEYS)]
    env = _floor_env(workdir / "floor", [(k, ds.value(i, v - 1)) for i, k in enumerate(hot)])
    jobs = [("lmdb floor", _floor_get(env, hot))]
    store = None
    if strata:
        store = open_store(workdir / "strata")
        ns = store.namespace("bench")
        for ver in range(v):  # one tx per version of all hot keys: tx 1 holds every key's oldest
            ns.put({k: ds.value(i, ver) for i, k in enumerate(hot)}, sync=False)
        newest, oldest, head = cycle(hot), cycle(hot), cycle(hot)
        jobs += [
            ("strata embedded", Op("get_newest", 1, lambda: ns.get(newest()).value)),
            ("strata embedded", Op("get_oldest", 1, lambda: ns.get(oldest(), tx=1).value)),
            # tx v is the latest (a fresh store, one tx per version): the newest version, read as a past read is
            ("strata embedded", Op("get_newest_past", 1, lambda: ns.get(head(), tx=v).value)),
        ]
    try:
        return _points("versions", v, jobs, cfg)
    finally:
        env.close()
        if store is not None:
            store.close()


def keys_curve(n: int, cfg: Config, workdir: Path, strata: bool) -> list[GrowthPoint]:
    ds = Dataset(n, 1)
    wl = Workload(ds, pool=128)
    env = _floor_env(workdir / "floor", list(ds.latest()))
    hundred, unpackb = cycle([[k.encode() for k in ks] for ks in wl.hundreds]), decode

    def floor_read() -> object:
        with env.begin() as txn:
            return [unpackb(txn.get(k)) for k in hundred()]

    jobs = [("lmdb floor", Op("read100_latest", 100, floor_read))]
    store = None
    if strata:
        store = open_store(workdir / "strata")
        ns = store.namespace("bench")
        for _, batch in ds.batches():
            ns.put(dict(batch), sync=False)
        nxt = cycle(wl.hundreds)
        jobs.append(("strata embedded", Op("read100_latest", 100, lambda: [r.value for r in ns.read(nxt()).records])))
    try:
        return _points("keys", n, jobs, cfg)
    finally:
        env.close()
        if store is not None:
            store.close()


def batch_curve(size: int, cfg: Config, workdir: Path, strata: bool) -> list[GrowthPoint]:
    ds = Dataset(10_000, 1)
    wl = Workload(ds, pool=16)
    batches = wl.write_batches(size, 4)
    env = _floor_env(workdir / "floor", list(ds.latest()))
    packb = msgpack.packb
    floor_batches = cycle([[(k.encode(), v) for k, v in b] for b in batches])

    def fput(sync: bool) -> None:
        with env.begin(write=True) as txn:
            for k, v in floor_batches():
                txn.put(k, packb(v))
        if sync:
            env.sync(True)

    jobs = [("lmdb floor", Op(f"put_{'sync' if s else 'nosync'}", size, lambda s=s: fput(s))) for s in (True, False)]
    store = None
    if strata:
        store = open_store(workdir / "strata")
        ns = store.namespace("bench")
        for _, batch in ds.batches():
            ns.put(dict(batch), sync=False)
        dict_batches = cycle([dict(b) for b in batches])
        for s in (True, False):
            op = Op(f"put_{'sync' if s else 'nosync'}", size, lambda s=s: ns.put(dict_batches(), sync=s))
            jobs.append(("strata embedded", op))
    try:
        return _points("batch", size, jobs, cfg)
    finally:
        env.close()
        if store is not None:
            store.close()


def run_growth(plan: GrowthPlan, cfg: Config, workdir: Path, progress=None, log=print) -> list[GrowthPoint]:
    skip = engine_skip_reason()
    if skip:
        log(f"  growth strata embedded: skipped: {skip} (floor points only)")
    jobs = (
        [(versions_curve, v) for v in plan.versions]
        + [(keys_curve, n) for n in plan.keys]
        + [(batch_curve, b) for b in plan.batches]
    )
    out: list[GrowthPoint] = []
    for i, (fn, x) in enumerate(jobs):
        d = workdir / f"growth-{i}"
        try:
            out += fn(x, cfg, d, strata=skip is None)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        if progress is not None:
            progress.update(1)
    return out
