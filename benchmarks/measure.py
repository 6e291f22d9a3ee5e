"""Timing primitives: every published figure is the median of repeated, warmed-up timed runs.

Contract:
- An ``Op`` is one named operation of one target: a zero-argument callable doing one whole operation
  (e.g. "read 100 keys"), how many items that operation touches, and its durability setting. A target
  that cannot do an operation returns an ``Op`` with ``fn=None`` and a ``skip`` reason instead, so the
  report can print "skipped: ..." rather than silently dropping a row.
- ``measure(op, cfg)`` warms up (so caches are warm and lazily-built state exists), calibrates how many
  calls make one sample last ``cfg.min_time``, then takes ``cfg.repeats`` samples and returns the median
  per-operation time. Medians, not means: the machine is shared (2 cores, other engineers' test runs),
  and a median is robust against the occasional descheduled sample.
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


def measure(system: str, op: Op, cfg: Config) -> Measurement:
    label = OPS.get(op.op, (op.op, None))[0]
    if op.fn is None:
        return Measurement(
            system, op.op, label, op.items, op.durability, None, None, notes=op.notes, skip=op.skip or "not implemented"
        )
    fn = op.fn
    deadline = time.perf_counter() + cfg.max_seconds_per_op
    for _ in range(cfg.warmup_calls):
        fn()
    # Calibrate: time a single call, then pick a call count so one sample lasts about min_time.
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    number = int(min(cfg.max_number, max(1, cfg.min_time / one)))
    samples: list[float] = []
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
        # At least 3 samples for a meaningful median, then respect the per-op budget.
        if len(samples) >= 3 and time.perf_counter() > deadline:
            break
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


def attach_ratios(results: list[Measurement], floor_system: str) -> None:
    """Fill ``ratio`` = per-item time / floor per-item time, for rows whose op has a floor equivalent."""
    floor = {m.op: m for m in results if m.system == floor_system and m.per_item_s}
    for m in results:
        floor_op = OPS.get(m.op, (m.op, None))[1]
        f = floor.get(floor_op) if floor_op else None
        if m.per_item_s and f and f.per_item_s:
            m.ratio = m.per_item_s / f.per_item_s


def time_once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
