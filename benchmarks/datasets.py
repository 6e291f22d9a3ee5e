"""Deterministic data sets shared by every target, so all systems store exactly the same bytes.

Contract:
- ``Dataset(n_keys, versions, seed)`` describes N keys of exactly 16 ASCII bytes and, for each key,
  ``versions`` JSON-compatible values of about 100 bytes when serialised as JSON.
- ``key(i)`` and ``value(i, v)`` are pure functions of (seed, i, v): two runs, or two targets in one
  run, see identical data without storing it. Values are plain dicts (str/int/list), so msgpack, JSON
  and the engine all accept them.
- The load order is "rounds": round v writes version v of every key, in batches of ``load_batch``
  keys. Every target that has a notion of transactions loads in the same order, so "tx t" means
  the same logical state everywhere (see ``round_of_tx``).
- ``Workload`` draws the random arguments for the measured operations (keys, past txs) up front from
  its own seeded RNG, so the timed loop does no random-number work and every target gets the same
  draws.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

KEY_BYTES = 16
# Twelve short words: values look like real documents (repeated field names, short strings), which
# matters because msgpack/JSON sizes and compressibility depend on the shape, not just the length.
_WORDS = (
    "amber",
    "basalt",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "granite",
    "harbor",
    "indigo",
    "juniper",
    "krypton",
    "lumen",
)


def key(i: int) -> str:
    """Key number ``i``: ``"k:"`` + 14 zero-padded digits = 16 bytes; lexicographic = numeric order,
    so a prefix scan and a range scan cover contiguous key numbers on every target."""
    return f"k:{i:014d}"


def value(seed: int, i: int, v: int) -> dict[str, object]:
    """Version ``v`` of key ``i``: a ~100-byte JSON document, deterministic in (seed, i, v)."""
    # A tiny LCG keyed on (seed, i, v): much faster than constructing a random.Random per value,
    # which matters when a growth point generates a million values.
    h = (seed * 1_000_003 + i * 7_919 + v * 104_729) & 0xFFFFFFFF
    h = (h * 1_103_515_245 + 12_345) & 0x7FFFFFFF
    w1, w2, w3 = _WORDS[h % 12], _WORDS[(h >> 4) % 12], _WORDS[(h >> 8) % 12]
    return {
        "id": i,
        "version": v,
        "name": f"{w1} {w2}",
        "score": h % 100_000,
        "tags": [w3, w1[:4]],
        "active": bool(h & 1),
    }


@dataclass(frozen=True)
class Dataset:
    n_keys: int
    versions: int
    seed: int = 42
    load_batch: int = 10_000

    def keys(self) -> list[str]:
        return [key(i) for i in range(self.n_keys)]

    def value(self, i: int, v: int) -> dict[str, object]:
        return value(self.seed, i, v)

    def batches(self) -> Iterator[tuple[int, list[tuple[str, dict[str, object]]]]]:
        """Yield (round, [(key, value), ...]) in load order: one batch = one write transaction."""
        for v in range(self.versions):
            for start in range(0, self.n_keys, self.load_batch):
                stop = min(start + self.load_batch, self.n_keys)
                yield v, [(key(i), self.value(i, v)) for i in range(start, stop)]

    @property
    def batches_per_round(self) -> int:
        return -(-self.n_keys // self.load_batch)

    @property
    def total_txs(self) -> int:
        return self.batches_per_round * self.versions

    def latest(self) -> Iterator[tuple[str, dict[str, object]]]:
        """The newest version of every key: what an unversioned store (the floor, diskcache) holds."""
        last = self.versions - 1
        for i in range(self.n_keys):
            yield key(i), self.value(i, last)


@dataclass
class Workload:
    """Pre-drawn random arguments for the timed operations.

    ``past_txs`` are 1-based transaction numbers in [1, total_txs] (tx 1 = first load batch), used by
    the versioned targets; each target maps them onto its own numbering (etcd revisions, SQLite tx).
    """

    dataset: Dataset
    pool: int = 256
    seed: int = 7
    singles: list[str] = field(init=False)
    hundreds: list[list[str]] = field(init=False)
    past_txs: list[int] = field(init=False)
    scan_starts: list[int] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        n = self.dataset.n_keys
        self.singles = [key(rng.randrange(n)) for _ in range(self.pool)]
        # 100 distinct random keys per read, as a client fetching a page of unrelated records would.
        self.hundreds = [[key(j) for j in rng.sample(range(n), min(100, n))] for _ in range(self.pool)]
        # Past txs from the first full round onwards, so every key exists at the read tx.
        lo = self.dataset.batches_per_round
        hi = max(lo, self.dataset.total_txs - 1)
        self.past_txs = [rng.randint(lo, hi) for _ in range(self.pool)]
        self.scan_starts = [rng.randrange(max(1, n - 1000)) for _ in range(self.pool)]

    def write_batches(self, size: int, count: int, version_base: int = 1_000_000) -> list[list[tuple[str, dict]]]:
        """``count`` batches of ``size`` distinct existing keys with fresh values (new versions)."""
        rng = random.Random(self.seed + size)
        n = self.dataset.n_keys
        out = []
        for b in range(count):
            idx = rng.sample(range(n), min(size, n))
            out.append([(key(i), self.dataset.value(i, version_base + b)) for i in idx])
        return out
