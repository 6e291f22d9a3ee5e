"""Reads per value shape, in CPU time: Strata's point reads against the raw-LMDB floor.

``python -m benchmarks.shapes [--keys N] [--versions V] [--rounds R]`` prints the table; the harness
runs the same measurement as its ``reads`` stage and takes the read targets from it.

For each value shape (30-byte strings, and the ~100-byte six-field dicts of :mod:`.datasets`) a
fresh floor and a fresh Strata store are loaded with the same N keys x V versions:

- the floor: raw py-lmdb holding each key's newest value only, as the msgpack bytes the engine
  stores, decoded with ``ormsgpack.unpackb`` (the engine's decoder, :mod:`engine.codec`);
- Strata: ``engine.Store`` opened ``sync=False``, every version loaded in batches of 10,000 keys (one
  tx per batch, as the harness loads), read through the public API.

Operations: a single get at the latest tx and at a random past tx, ``read([k])`` of one key, and
reads of 100 random keys at the latest tx and at a random past tx (the floor: one ``txn.get`` and
one decode per key in one read transaction). Each figure is the median, over R interleaved rounds
(every op of every shape sampled once per round), of the **process CPU time** per call
(``time.process_time`` over at least ``min_time`` of calls): on the shared machine wall-clock time
swings more than the differences measured. Ratios divide by the floor's figure of the same shape in
the same run: a get by the floor's get, a 100-key read by the floor's 100-key read.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import lmdb
import msgpack
import ormsgpack

from .datasets import Dataset, Workload, key
from .targets import cycle
from .targets.lmdb_floor import MAP_SIZE
from .targets.strata_embedded import engine_skip_reason, open_store

X = "\u00d7"  # multiplication sign for ratios

STR_BYTES = 30


def str_value(seed: int, i: int, v: int) -> str:
    """Version ``v`` of key ``i`` as a string of exactly 30 ASCII bytes, deterministic in (seed, i, v)."""
    return f"s{seed % 10}.{i:012d}.{v:08d}.".ljust(STR_BYTES, "x")


#: shape id -> (label, value function of (seed, i, v))
SHAPES: dict[str, tuple[str, Callable[[int, int, int], object]]] = {
    "str30": ("30 B strings", str_value),
    "dict": ("~100 B dicts", lambda seed, i, v: Dataset(1, 1, seed).value(i, v)),
}
#: op id -> (label, items per call, floor op it is compared with)
OPS: dict[str, tuple[str, int, str]] = {
    "get_latest": ("get(k), latest", 1, "get"),
    "get_past": ("get(k, tx=past)", 1, "get"),
    "read1_latest": ("read([k]), latest", 1, "get"),
    "read100_latest": ("read(100 keys), latest", 100, "read100"),
    "read100_past": ("read(100 keys, tx=past)", 100, "read100"),
}
FLOOR_OPS = {"get": ("floor get", 1), "read100": ("floor read 100 keys", 100)}


@dataclass
class ShapePlan:
    keys: int = 100_000
    versions: int = 10
    rounds: int = 11
    min_time: float = 0.05  # CPU seconds per sample


QUICK_SHAPES = ShapePlan(keys=5_000, versions=5, rounds=3, min_time=0.01)


@dataclass
class ShapePoint:
    shape: str
    system: str  # "lmdb floor" | "strata embedded"
    op: str
    items: int
    per_op_s: float | None  # median CPU seconds per call
    per_item_s: float | None
    ratio: float | None = None  # per item vs the floor's op of the same shape
    samples_s: list[float] | None = None
    skip: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _load(plan: ShapePlan, shape: str, workdir: Path, with_strata: bool) -> tuple[lmdb.Environment, object]:
    make = SHAPES[shape][1]
    seed = 42
    path = workdir / f"floor-{shape}"
    path.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=MAP_SIZE, sync=False, max_dbs=1)
    packb, last = msgpack.packb, plan.versions - 1
    for start in range(0, plan.keys, 10_000):
        with env.begin(write=True) as txn:
            for i in range(start, min(start + 10_000, plan.keys)):
                txn.put(key(i).encode(), packb(make(seed, i, last)))
    store = None
    if with_strata:
        store = open_store(workdir / f"strata-{shape}", sync=False)
        ns = store.namespace("bench")
        for v in range(plan.versions):
            for start in range(0, plan.keys, 10_000):
                ns.put({key(i): make(seed, i, v) for i in range(start, min(start + 10_000, plan.keys))}, sync=False)
    return env, store


def _ops(env: lmdb.Environment, store: object, wl: Workload) -> dict[tuple[str, str], Callable[[], object]]:
    decode = ormsgpack.unpackb
    single_b = cycle([k.encode() for k in wl.singles])
    hundred_b = cycle([[k.encode() for k in ks] for ks in wl.hundreds])

    def floor_get() -> object:
        with env.begin() as txn:
            return decode(txn.get(single_b()))

    def floor_read100() -> object:
        with env.begin() as txn:
            get = txn.get
            return [decode(get(k)) for k in hundred_b()]

    fns: dict[tuple[str, str], Callable[[], object]] = {
        ("lmdb floor", "get"): floor_get,
        ("lmdb floor", "read100"): floor_read100,
    }
    if store is None:
        return fns
    ns = store.namespace("bench")  # type: ignore[attr-defined]
    single, hundred, past = cycle(wl.singles), cycle(wl.hundreds), cycle(wl.past_txs)
    get, read = ns.get, ns.read
    fns.update({
        ("strata embedded", "get_latest"): lambda: get(single()).value,
        ("strata embedded", "get_past"): lambda: get(single(), tx=past()).value,
        ("strata embedded", "read1_latest"): lambda: [r.value for r in read([single()]).records],
        ("strata embedded", "read100_latest"): lambda: [r.value for r in read(hundred()).records],
        ("strata embedded", "read100_past"): lambda: [r.value for r in read(hundred(), tx=past()).records],
    })
    return fns


def _sample(fn: Callable[[], object], number: int) -> float:
    clock = time.process_time
    t0 = clock()
    for _ in range(number):
        fn()
    return (clock() - t0) / number


def _calibrate(fn: Callable[[], object], min_time: float) -> int:
    for _ in range(3):
        fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 >= min_time / 4 or n >= 1 << 20:
            spent = max(time.perf_counter() - t0, 1e-7)
            return max(1, int(n * min_time / spent))
        n *= 4


def run_shapes(plan: ShapePlan, workdir: Path, progress: Callable[[], None] | None = None,
               log: Callable[[str], None] = print) -> list[ShapePoint]:
    """Load both shapes, then measure every op of every shape in ``plan.rounds`` interleaved rounds."""
    skip = engine_skip_reason()
    wl = Workload(Dataset(plan.keys, plan.versions, load_batch=min(10_000, plan.keys)))
    loaded: dict[str, tuple[lmdb.Environment, object]] = {}
    jobs: list[tuple[str, str, str, Callable[[], object], int]] = []
    try:
        for shape in SHAPES:
            t0 = time.perf_counter()
            loaded[shape] = _load(plan, shape, workdir, skip is None)
            log(f"  reads {shape}: loaded {plan.keys:,} keys x {plan.versions} versions in "
                f"{time.perf_counter() - t0:.1f} s")
            for (system, op), fn in _ops(*loaded[shape], wl).items():
                jobs.append((shape, system, op, fn, _calibrate(fn, plan.min_time)))
        samples: dict[int, list[float]] = {i: [] for i in range(len(jobs))}
        for _ in range(plan.rounds):
            for i, (_, _, _, fn, number) in enumerate(jobs):
                samples[i].append(_sample(fn, number))
            if progress is not None:
                progress()
    finally:
        for env, store in loaded.values():
            env.close()
            if store is not None:
                store.close()  # type: ignore[attr-defined]
    return _points(jobs, samples, skip)


def _points(jobs: list[tuple[str, str, str, Callable[[], object], int]], samples: dict[int, list[float]],
            skip: str | None) -> list[ShapePoint]:
    out: list[ShapePoint] = []
    floor: dict[tuple[str, str], float] = {}
    for i, (shape, system, op, _, _) in enumerate(jobs):
        med = statistics.median(samples[i])
        items = FLOOR_OPS[op][1] if system == "lmdb floor" else OPS[op][1]
        out.append(ShapePoint(shape, system, op, items, med, med / items, samples_s=samples[i]))
        if system == "lmdb floor":
            floor[(shape, op)] = med / items
    for p in out:
        if p.system != "lmdb floor":
            base = floor.get((p.shape, OPS[p.op][2]))
            p.ratio = p.per_item_s / base if base and p.per_item_s else None
    if skip:
        out += [ShapePoint(shape, "strata embedded", op, OPS[op][1], None, None, skip=skip)
                for shape in SHAPES for op in OPS]
    return out


def table(points: list[ShapePoint | dict]) -> list[str]:
    """A Markdown table: one row per op, one column per shape (µs per key, ratio to the floor)."""
    pts = [p if isinstance(p, dict) else p.to_dict() for p in points]
    by = {(p["shape"], p["system"], p["op"]): p for p in pts}
    shapes = [s for s in SHAPES if any(p["shape"] == s for p in pts)]
    lines = ["| operation | " + " | ".join(f"{SHAPES[s][0]}: µs per key ({X} floor)" for s in shapes) + " |",
             "|---|" + "---:|" * len(shapes)]
    rows = [("lmdb floor", op, label) for op, (label, _) in FLOOR_OPS.items()]
    rows += [("strata embedded", op, label) for op, (label, _, _) in OPS.items()]
    for system, op, label in rows:
        cells = []
        for s in shapes:
            p = by.get((s, system, op))
            if p is None or p.get("skip") or p["per_item_s"] is None:
                cells.append("skipped" if p and p.get("skip") else "")
                continue
            ratio = f" ({p['ratio']:.2f}{X})" if p.get("ratio") else ""
            cells.append(f"{p['per_item_s'] * 1e6:.2f}{ratio}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.shapes", description=__doc__.split("\n")[0])
    p.add_argument("--keys", type=int, default=ShapePlan.keys)
    p.add_argument("--versions", type=int, default=ShapePlan.versions)
    p.add_argument("--rounds", type=int, default=ShapePlan.rounds)
    p.add_argument("--min-time", type=float, default=ShapePlan.min_time)
    args = p.parse_args(argv)
    plan = ShapePlan(args.keys, args.versions, args.rounds, args.min_time)
    work = Path(tempfile.mkdtemp(prefix="strata-shapes-"))
    try:
        points = run_shapes(plan, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{plan.keys:,} keys x {plan.versions} versions, median CPU time of {plan.rounds} interleaved rounds")
    print("\n".join(table(points)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
