"""Timing primitives: every published figure is the median of repeated, warmed-up timed runs.

Contract:
- An ``Op`` is one named operation of one target: a zero-argument callable doing one whole operation
  (e.g. "read 100 keys"), how many items that operation touches, and its durability setting. A target
  that cannot do an operation returns an ``Op`` with ``fn=None`` and a ``skip`` reason instead, so the
  report can print "skipped: ..." rather than silently dropping a row.
- ``measure(system, op, cfg)`` warms up (so caches are warm and lazily-built state exists), calibrates how many
  calls make one sample last ``cfg.min_time``, then takes ``cfg.repeats`` samples and returns the median
  per-operation time. Medians, not means: the machine is shared (2 cores, other engineers' test runs),
  and a median is robust against the occasional descheduled sample.
- ``measure_interleaved(jobs, cfg)`` does the same for many ops at once, taking their samples
  round-robin so every system is measured under the same background load (see its docstring).
- Ops draw their arguments from pre-drawn pools (see ``datasets.Workload``) so no RNG work is timed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

# Canonical operation ids, shared by every target so rows line up across systems. The mapping to the
# floor operation decides which floor figure a row's ratio is computed against (same run, same data).
OPS: dict[str, tuple[str, str | None]] = {
    # op id: (human label, floor op id or None when the floor has no equivalent)
    "get_latest": ("get 1 key, latest", "get_latest"),
    "get_past": ("get 1 key, random past tx", "get_latest"),
    "read100_latest": ("read 100 keys, latest", "read100_latest"),
    "read100_past": ("read 100 keys, random past tx", "read100_latest"),
    "read100_latest_msgpack": ("read 100 keys, latest, decoded with msgpack-python (floor only)", "read100_latest"),
    "scan1000": ("scan 1,000 keys, latest", "scan1000"),
    "scan1000_past": ("scan 1,000 keys, random past tx", "scan1000"),
    "history": ("history of 1 key (all versions)", None),
    "tx_at": ("tx_at(timestamp)", None),
    "put1_sync": ("put batch of 1, sync", "put1_sync"),
    "put100_sync": ("put batch of 100, sync", "put100_sync"),
    "put10000_sync": ("put batch of 10,000, sync", "put10000_sync"),
    "put1_nosync": ("put batch of 1, no sync", "put1_nosync"),
    "put100_nosync": ("put batch of 100, no sync", "put100_nosync"),
    "put10000_nosync": ("put batch of 10,000, no sync", "put10000_nosync"),
}

READ_DURABILITY = "n/a (read, warm cache)"


@dataclass
class Op:
    op: str
    items: int
    fn: Callable[[], object] | None
    durability: str = READ_DURABILITY
    notes: str = ""
    skip: str = ""


@dataclass
class Config:
    repeats: int = 7
    min_time: float = 0.05  # seconds per sample
    max_number: int = 10_000  # cap on calls per sample
    warmup_calls: int = 3
    max_seconds_per_op: float = 8.0  # hard budget: fewer repeats rather than a run that never ends


@dataclass
class Measurement:
    system: str
    op: str
    label: str
    items: int
    durability: str
    median_s: float | None  # per operation
    per_item_s: float | None
    samples_s: list[float] = field(default_factory=list)  # per-operation time of each sample
    number: int = 0  # calls per sample
    ratio: float | None = None  # per-item time / floor per-item time, same run
    notes: str = ""
    skip: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def calibrate(op: Op, cfg: Config) -> int:
    """Warm up (caches, lazily-built state), then pick how many calls make one sample last min_time."""
    assert op.fn is not None
    for _ in range(cfg.warmup_calls):
        op.fn()
    t0 = time.perf_counter()
    op.fn()
    one = max(time.perf_counter() - t0, 1e-7)
    return int(min(cfg.max_number, max(1, cfg.min_time / one)))


def sample(op: Op, number: int) -> float:
    """One sample: ``number`` back-to-back calls; returns seconds per call."""
    fn = op.fn
    assert fn is not None
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def _result(system: str, op: Op, samples: list[float], number: int) -> Measurement:
    label = OPS.get(op.op, (op.op, None))[0]
    if op.fn is None or not samples:
        return Measurement(
            system, op.op, label, op.items, op.durability, None, None, notes=op.notes, skip=op.skip or "not implemented"
        )
    med = statistics.median(samples)
    return Measurement(
        system,
        op.op,
        label,
        op.items,
        op.durability,
        med,
        med / op.items,
        samples_s=samples,
        number=number,
        notes=op.notes,
    )


def measure(system: str, op: Op, cfg: Config) -> Measurement:
    """Measure one op on its own: warm-up, calibration, then ``cfg.repeats`` samples (median)."""
    if op.fn is None:
        return _result(system, op, [], 0)
    deadline = time.perf_counter() + cfg.max_seconds_per_op
    number = calibrate(op, cfg)
    samples: list[float] = []
    for _ in range(cfg.repeats):
        samples.append(sample(op, number))
        # At least 3 samples for a meaningful median, then respect the per-op budget.
        if len(samples) >= 3 and time.perf_counter() > deadline:
            break
    return _result(system, op, samples, number)


def measure_interleaved(jobs: list[tuple[str, Op]], cfg: Config, on_sample=None) -> list[Measurement]:
    """Measure many ops round-robin: round r takes one sample of every op, then round r + 1.

    Why: the machine is shared, and load from elsewhere comes and goes over seconds. Measuring the
    floor's ops minutes apart from Strata's would let that drift into the ratios; interleaving puts
    every system's samples side by side in time, so drift hits all of them alike and the medians
    compare like with like. Ops of one system must not depend on each other's order (reads and
    writes are therefore measured in separate calls).
    """
    live = [(i, system, op, calibrate(op, cfg)) for i, (system, op) in enumerate(jobs) if op.fn is not None]
    samples: dict[int, list[float]] = {i: [] for i in range(len(jobs))}
    spent: dict[int, float] = dict.fromkeys(range(len(jobs)), 0.0)
    for _ in range(cfg.repeats):
        for i, _system, op, number in live:
            if len(samples[i]) >= 3 and spent[i] > cfg.max_seconds_per_op:
                continue  # budget spent: keep the samples we have (at least 3)
            t0 = time.perf_counter()
            samples[i].append(sample(op, number))
            spent[i] += time.perf_counter() - t0
            if on_sample is not None:
                on_sample()
    numbers = {i: number for i, _, _, number in live}
    return [_result(system, op, samples[i], numbers.get(i, 0)) for i, (system, op) in enumerate(jobs)]


def attach_ratios(results: list[Measurement], floor_system: str) -> None:
    """Fill ``ratio`` = per-item time / floor per-item time, for rows whose op has a floor equivalent."""
    floor = {m.op: m for m in results if m.system == floor_system and m.per_item_s}
    for m in results:
        floor_op = OPS.get(m.op, (m.op, None))[1]
        f = floor.get(floor_op) if floor_op else None
        if m.per_item_s and f and f.per_item_s:
            m.ratio = m.per_item_s / f.per_item_s
