"""Group commit: durable 1-item puts from many threads of one process vs from one thread.

Each thread count gets a fresh store opened with the defaults (``sync=True``: every put returns
only after its data is flushed, power-loss safe), in its own directory under the run's workdir.
One sample is ``seconds`` of every thread calling ``ns.put({unique key: small value})`` in a loop
(closed loop, no think time); the figure is writes per second over all threads. Samples of the
thread counts are interleaved round by round (the shared machine drifts), each figure is the median
of its rounds, and the ratio to one thread is taken between those medians. The store's counters
(``Store.stats()``: ``writes``, ``commits``, ``syncs``) give commits and flushes per write. The same
loop on a second store per thread count opened ``sync=False`` (no flush at all, sampled in the same
rounds) gives the *ceiling*: what the threads reach when flushing costs nothing, so the most any way
of sharing flushes could give them. With ``strace`` installed, one extra run of the largest thread
count in a child process under ``strace -f -c -e trace=fdatasync,fsync,msync`` counts the flush
system calls per acknowledged write (LMDB makes two per commit: data pages at commit, meta page at
``env.sync``).

Contract: ``run_groups(plan, workdir, progress, log)`` returns a list of :class:`GroupPoint`, one
per thread count; with no engine, one skipped point. ``python -m benchmarks.group_commit STORE
THREADS SECONDS`` is the child the strace count runs (prints the number of writes it made).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .targets.strata_embedded import engine_skip_reason, open_store

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class GroupPlan:
    threads: tuple[int, ...] = (1, 16)
    seconds: float = 2.0  # per sample
    rounds: int = 5


QUICK_GROUPS = GroupPlan(seconds=0.3, rounds=1)


@dataclass
class GroupPoint:
    threads: int
    writes_s: float | None = None  # median over rounds
    samples: list[float] = field(default_factory=list)
    ratio: float | None = None  # writes_s / writes_s of one thread
    commits_per_write: float | None = None
    syncs_per_write: float | None = None
    fdatasyncs_per_write: float | None = None  # strace-counted; largest thread count only
    ceiling_s: float | None = None  # median puts/s of the same loop on a store that never flushes
    ceiling_samples: list[float] = field(default_factory=list)
    ceiling_ratio: float | None = None  # ceiling_s / writes_s of one thread (durable)
    skip: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def put_loop(store, threads: int, seconds: float, tag: str) -> int:  # store: engine.Store
    """Every thread puts one new key per call for ``seconds``; the number of writes made."""
    ns = store.namespace("groups")
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    stop = [0.0]

    def work(t: int) -> None:
        put, n = ns.put, 0
        barrier.wait()
        while time.perf_counter() < stop[0]:
            put({f"{tag}-{t}-{n}": n})
            n += 1
        counts[t] = n

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    stop[0] = time.perf_counter() + seconds
    barrier.wait()
    for th in pool:
        th.join()
    return sum(counts)


def _sample(store, threads: int, seconds: float, tag: str) -> tuple[float, int, int, int]:
    before = store.stats()
    t0 = time.perf_counter()
    writes = put_loop(store, threads, seconds, tag)
    elapsed = time.perf_counter() - t0
    after = store.stats()
    return writes / elapsed, writes, after["commits"] - before["commits"], after["syncs"] - before["syncs"]


def count_fdatasyncs(threads: int, seconds: float, workdir: Path) -> float | None:
    """Flush system calls per write of ``threads`` threads, counted by strace (None without it)."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    path = Path(tempfile.mkdtemp(prefix="strace-", dir=workdir))
    summary = path / "strace.txt"
    try:
        out = subprocess.run(
            [strace, "-f", "-c", "-o", str(summary), "-e", "trace=fdatasync,fsync,msync", sys.executable, "-m",
             "benchmarks.group_commit", str(path / "store"), str(threads), str(seconds)],
            cwd=ROOT, capture_output=True, text=True, timeout=120 + seconds,
        )
        if out.returncode != 0:
            return None
        writes = int(out.stdout.split()[-1])
        calls = sum(int(m.group(1)) for m in re.finditer(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?\w*sync\s*$",
                                                          summary.read_text(), re.M))
        return calls / writes if writes else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_groups(plan: GroupPlan, workdir: Path, progress, log: Callable[[str], None]) -> list[GroupPoint]:
    skip = engine_skip_reason()
    if skip:
        return [GroupPoint(0, skip=skip)]
    points = {n: GroupPoint(n) for n in plan.threads}
    stores = {n: open_store(workdir / f"groups-{n}") for n in plan.threads}  # sync=True: durable puts
    ceilings = {n: open_store(workdir / f"groups-{n}-nosync", sync=False) for n in plan.threads}
    totals = {n: [0, 0, 0] for n in plan.threads}
    try:
        for n, store in [*stores.items(), *ceilings.items()]:
            put_loop(store, n, min(plan.seconds, 0.2), "warm")
        for r in range(plan.rounds):
            for n, store in stores.items():
                rate, writes, commits, syncs = _sample(store, n, plan.seconds, f"r{r}")
                points[n].samples.append(rate)
                for i, v in enumerate((writes, commits, syncs)):
                    totals[n][i] += v
                points[n].ceiling_samples.append(_sample(ceilings[n], n, plan.seconds, f"r{r}")[0])
                progress(1)
    finally:
        for store in [*stores.values(), *ceilings.values()]:
            store.close()
    for n, p in points.items():
        writes, commits, syncs = totals[n]
        p.writes_s = statistics.median(p.samples)
        p.ceiling_s = statistics.median(p.ceiling_samples)
        p.commits_per_write, p.syncs_per_write = commits / writes, syncs / writes
    one = points.get(1)
    for p in points.values():
        p.ratio = p.writes_s / one.writes_s if one and one.writes_s else None
        p.ceiling_ratio = p.ceiling_s / one.writes_s if one and one.writes_s and p.ceiling_s else None
    most = max(plan.threads)
    points[most].fdatasyncs_per_write = count_fdatasyncs(most, plan.seconds, workdir)
    for p in points.values():
        fd = "" if p.fdatasyncs_per_write is None else f", {p.fdatasyncs_per_write:.2f} fdatasyncs/write"
        log(f"groups: {p.threads} thread(s): {p.writes_s:,.0f} durable puts/s, "
            f"{p.commits_per_write:.2f} commits/write{fd}; {p.ceiling_s:,.0f} puts/s with no flush")
    return list(points.values())


def main() -> None:
    """The strace child: ``STORE THREADS SECONDS``; prints how many writes it made."""
    path, threads, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    store = open_store(path)
    try:
        print(put_loop(store, threads, seconds, "s"))
    finally:
        store.close()


if __name__ == "__main__":
    main()
