"""Time travel and audit : history, tx_at and the cost of the tx log, as ratios
measured in one run.

Three parts, each on fresh stores opened ``Store.open(path, sync=False)`` (no flush at all: these
figures are CPU cost, not disk) in its own directory, removed afterwards:

- ``history``: one hot key written ``V`` times (one tiny tx per version; 100,000 in full mode, 5,000
  in ``--quick``) into a store that also holds 10,000 ordinary keys x 2 versions. Measured
  interleaved on that one store: ``ns.history(hot, limit=100)`` (the 100 newest versions),
  ``ns.history(hot, before=<random past tx>, limit=100)`` (a page from the middle of the history), and
  ``ns.read(100 random keys, tx=<random past tx>)``. Target: newest-100 history <= 2x the read.
- ``tx_at``: one store per size N (10k, 100k, 1M txs in full mode, about a minute to build; 1k, 10k in
  quick), each built with one tiny put per tx; ``store.tx_at(t)`` is then timed on all of them
  interleaved, for times drawn uniformly over each store's commit-time range (pre-drawn; one
  correctness check per store). Target: < 50 µs per call at the largest N, flat in N.
- ``txlog``: ``ns.put`` of 100 items per tx (also 1 and 10,000 in full mode) on two identically loaded
  10,000-key stores, "with" the tx log and hash chain (the engine as shipped) and "without", where
  ``engine.txlog.append`` is replaced by a no-op for the duration of each call (the module attribute:
  ``engine.txn`` calls ``txlog.append``). The engine has no such switch; the "without" variant exists
  only for this measurement and its store has no log entries, so it does not verify. Target: with /
  without <= 1.25x, in process CPU time (see ``_wall_and_cpu``). Both variants go through the same
  wrapper, which also times the call to ``append`` itself: the "with" row's time inside ``append``
  over the rest of its put is a second, low-noise estimate of the overhead, measured within the same
  calls.

Contract: ``run_audit(plan, cfg, workdir, progress, log)`` returns a list of ``AuditPoint``; with no
engine it returns one skipped point per part.
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .datasets import Dataset, key
from .measure import Config, Op, measure_interleaved
from .targets import cycle
from .targets.strata_embedded import engine_skip_reason, open_store

NAMESPACE = "bench"
POOL = 256  # pre-drawn arguments per op


@dataclass
class AuditPlan:
    history_versions: int = 100_000
    history_keys: int = 10_000
    tx_at_txs: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    txlog_batches: tuple[int, ...] = (1, 100, 10_000)
    txlog_keys: int = 10_000


QUICK_AUDIT = AuditPlan(history_versions=5_000, tx_at_txs=(1_000, 10_000), txlog_batches=(100,))


@dataclass
class AuditPoint:
    part: str  # "history" | "tx_at" | "txlog"
    x: int  # versions of the hot key | txs in the store | items per put
    op: str
    per_op_s: float | None
    per_item_s: float | None
    items: int = 1
    samples_s: list[float] | None = None
    number: int = 0
    setup_s: float | None = None  # untimed build of the store
    cpu_per_op_s: float | None = None  # txlog part only: median process CPU time (user + sys) per op
    cpu_samples_s: list[float] | None = None
    append_s: float | None = None  # txlog part only: mean wall time inside txlog.append per put
    notes: str = ""
    skip: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _points(part: str, x: int, jobs: list[tuple[str, Op]], cfg: Config, setup_s: float) -> list[AuditPoint]:
    out = []
    for m in measure_interleaved(jobs, cfg):
        out.append(
            AuditPoint(
                part,
                x,
                m.op,
                m.median_s,
                m.per_item_s,
                m.items,
                m.samples_s,
                m.number,
                setup_s=setup_s,
                notes=m.notes,
                skip=m.skip,
            )
        )
    return out


# ------------------------------------------------------------------------------------------ history
def history_part(plan: AuditPlan, cfg: Config, workdir: Path) -> list[AuditPoint]:
    v = plan.history_versions
    ds = Dataset(plan.history_keys, 2, load_batch=1_000)
    hot_i = ds.n_keys  # the hot key is key n_keys: same 16-byte shape, ~100-byte values like the rest
    hot = key(hot_i)
    t0 = time.perf_counter()
    store = open_store(workdir / "strata", sync=False)
    try:
        ns = store.namespace(NAMESPACE)
        for _, batch in ds.batches():
            ns.put(dict(batch), sync=False)
        first = ds.total_txs + 1
        for ver in range(v):
            last = ns.put({hot: ds.value(hot_i, ver)}, sync=False)
        setup_s = time.perf_counter() - t0
        rng = random.Random(11)
        n = ds.n_keys
        hundreds = cycle([[key(j) for j in rng.sample(range(n), 100)] for _ in range(POOL)])
        # Past txs anywhere after the second load round: every ordinary key exists there.
        past = cycle([rng.randint(ds.total_txs, last - 1) for _ in range(POOL)])
        # Middle pages: a random point at least 100 versions into the hot key's history.
        mid = cycle([rng.randint(first + 100, last) for _ in range(POOL)])
        newest = ns.history(hot, limit=100)
        assert len(newest) == 100 and newest[0].tx == last, "history did not return the 100 newest versions"

        def read100() -> object:
            return [r.value for r in ns.read(hundreds(), tx=past()).records]

        def hist_newest() -> object:
            return [h.value for h in ns.history(hot, limit=100)]

        def hist_mid() -> object:
            return [h.value for h in ns.history(hot, before=mid(), limit=100)]

        jobs = [
            ("strata", Op("history100_newest", 100, hist_newest, notes=f"key with {v:,} versions")),
            ("strata", Op("history100_before", 100, hist_mid, notes="before= a random tx of the key's history")),
            ("strata", Op("read100_past", 100, read100, notes=f"{n:,} keys x 2 versions, random past tx")),
        ]
        return _points("history", v, jobs, cfg, setup_s)
    finally:
        store.close()


# ------------------------------------------------------------------------------------------- tx_at
def tx_at_part(plan: AuditPlan, cfg: Config, workdir: Path, progress=None) -> list[AuditPoint]:
    """One store per size, each built with one tiny put per tx; then all sizes measured interleaved
    (so background load hits every size alike and the curve's shape is not drift)."""
    stores, jobs, built = [], [], []
    rng = random.Random(13)
    try:
        for n in sorted(plan.tx_at_txs):
            t0 = time.perf_counter()
            store = open_store(workdir / f"txs-{n}", sync=False)
            stores.append(store)
            put = store.namespace(NAMESPACE).put
            for i in range(n):
                put({f"t{i % 1000:03d}": i}, sync=False)  # one tiny put per tx
            built.append(time.perf_counter() - t0)
            first_ts, last_ts = store.tx_info(1).time.timestamp(), store.tx_info(n).time.timestamp()
            stamps = [rng.uniform(first_ts, last_ts) for _ in range(POOL)]
            # Correctness, untimed: the answer is the latest tx at or before the time (the engine
            # compares in whole microseconds, rounding epoch seconds to the nearest one).
            s = stamps[0]
            tx, us = store.tx_at(s), round(s * 1_000_000)
            assert 1 <= tx <= n and store.tx_info(tx).time_us <= us, (s, tx)
            assert tx == n or store.tx_info(tx + 1).time_us > us, (s, tx)
            assert store.tx_at(last_ts + 1) == n
            nxt, tx_at = cycle(stamps), store.tx_at
            note = f"{n:,} txs; epoch seconds, uniform over the store's txs"
            jobs.append(("strata", Op("tx_at", 1, lambda nxt=nxt, tx_at=tx_at: tx_at(nxt()), notes=note)))
            if progress is not None:
                progress.update(1)
        out = []
        for n, setup_s, p in zip(sorted(plan.tx_at_txs), built, _points("tx_at", 0, jobs, cfg, 0.0), strict=True):
            p.x, p.setup_s = n, setup_s
            out.append(p)
        return out
    finally:
        for store in stores:
            store.close()


# ------------------------------------------------------------------------------------------- txlog
def _wall_and_cpu(part: str, x: int, ops: list[Op], cfg: Config, setup_s: float) -> list[AuditPoint]:
    """Like ``measure_interleaved``, but each sample also records the process's CPU time (user +
    sys), and three times as many samples are taken.

    Why: a with/without difference of ~10-20% is smaller than the swing of wall-clock put timings on
    the shared 2-core machine (the same pair measured 0.8x to 1.2x across runs with 11 samples). With
    no fsync involved (the stores are opened sync=False) a put is pure CPU plus page-cache copies, so
    its CPU time is the cost we want and it does not count the time spent waiting for a core.
    """
    numbers = []
    for op in ops:
        assert op.fn is not None
        for _ in range(cfg.warmup_calls):
            op.fn()
        one = []
        for _ in range(3):  # median of 3 single calls: one descheduled call must not set the sample size
            t0 = time.perf_counter()
            op.fn()
            one.append(time.perf_counter() - t0)
        numbers.append(int(min(cfg.max_number, max(1, cfg.min_time / max(statistics.median(one), 1e-7)))))
    wall: list[list[float]] = [[] for _ in ops]
    cpu: list[list[float]] = [[] for _ in ops]
    spent = [0.0] * len(ops)
    for _ in range(3 * cfg.repeats):
        for i, (op, number) in enumerate(zip(ops, numbers, strict=True)):
            if len(wall[i]) >= 3 and spent[i] > 2 * cfg.max_seconds_per_op:
                continue
            fn = op.fn
            assert fn is not None
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(number):
                fn()
            c1, w1 = time.process_time(), time.perf_counter()
            wall[i].append((w1 - w0) / number)
            cpu[i].append((c1 - c0) / number)
            spent[i] += w1 - w0
    out = []
    for i, op in enumerate(ops):
        med = statistics.median(wall[i])
        out.append(
            AuditPoint(
                part,
                x,
                op.op,
                med,
                med / op.items,
                op.items,
                wall[i],
                numbers[i],
                setup_s=setup_s,
                cpu_per_op_s=statistics.median(cpu[i]),
                cpu_samples_s=cpu[i],
                notes=op.notes,
            )
        )
    return out


def _no_append(txn, dbs, tx, time_us, note, runs, records) -> bytes:
    """Stand-in for ``engine.txlog.append``: writes no log entry, computes no hash (measurement only)."""
    return b"\x00" * 32


def txlog_part(plan: AuditPlan, cfg: Config, workdir: Path) -> list[AuditPoint]:
    from engine import txlog

    real_append = txlog.append
    ds = Dataset(plan.txlog_keys, 1)
    rng = random.Random(17)
    t0 = time.perf_counter()
    stores = {}
    inside: dict[str, list] = {}  # op -> [seconds inside txlog.append, calls], over every call made
    try:
        for variant in ("with", "without"):
            stores[variant] = open_store(workdir / variant, sync=False)
            ns = stores[variant].namespace(NAMESPACE)
            for _, batch in ds.batches():  # loaded normally (with the log) in both stores
                ns.put(dict(batch), sync=False)
        setup_s = time.perf_counter() - t0
        jobs = []
        for size in plan.txlog_batches:
            batches = []
            for b in range(4):
                idx = rng.sample(range(ds.n_keys), min(size, ds.n_keys))
                batches.append({key(i): ds.value(i, 1_000_000 + b) for i in idx})
            for variant, append in (("with", real_append), ("without", _no_append)):
                ns, nxt = stores[variant].namespace(NAMESPACE), cycle(batches)
                acc = inside[f"put{size}_{variant}_log"] = [0.0, 0]

                def timed(*args, append=append, acc=acc) -> bytes:
                    t0 = time.perf_counter()
                    try:
                        return append(*args)
                    finally:
                        acc[0] += time.perf_counter() - t0
                        acc[1] += 1

                def put(ns=ns, nxt=nxt, timed=timed) -> int:
                    txlog.append = timed  # the same swap for both variants; restored after every call
                    try:
                        return ns.put(nxt(), sync=False)
                    finally:
                        txlog.append = real_append

                note = "tx log + hash chain (as shipped)" if variant == "with" else "txlog.append patched to a no-op"
                jobs.append(("strata", Op(f"put{size}_{variant}_log", size, put, notes=note)))
        out = []
        for size in plan.txlog_batches:  # one interleaved pair per size: with and without side by side
            pair = [op for _, op in jobs if op.op.startswith(f"put{size}_")]
            out += _wall_and_cpu("txlog", size, pair, cfg, setup_s)
        for pt in out:
            total, calls = inside[pt.op]
            pt.append_s = total / calls if calls else None
        return out
    finally:
        txlog.append = real_append
        for s in stores.values():
            s.close()


def run_audit(plan: AuditPlan, cfg: Config, workdir: Path, progress=None, log=print) -> list[AuditPoint]:
    skip = engine_skip_reason()
    if skip:
        log(f"  audit: skipped: {skip}")
        return [AuditPoint(p, 0, p, None, None, skip=skip) for p in ("history", "tx_at", "txlog")]
    out: list[AuditPoint] = []
    for i, (name, fn) in enumerate(
        (
            ("history", lambda d: history_part(plan, cfg, d)),
            ("tx_at", lambda d: tx_at_part(plan, cfg, d, progress)),
            ("txlog", lambda d: txlog_part(plan, cfg, d)),
        )
    ):
        d = workdir / f"audit-{i}"
        t0 = time.perf_counter()
        try:
            out += fn(d)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        log(f"  audit {name}: {time.perf_counter() - t0:.1f} s")
        if progress is not None and name != "tx_at":
            progress.update(1)
    return out
