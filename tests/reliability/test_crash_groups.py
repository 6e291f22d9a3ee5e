"""Crash safety of group commit: SIGKILL a process whose threads write durably in groups.

A child (:mod:`tests.reliability.group_writer`) runs 8 threads, each committing one-tx writes
over two namespaces (three keys) with ``sync=True``, some refused with CONFLICT inside their
group; each thread acknowledges a write on the pipe only after the engine call returned. The
parent kills the child with SIGKILL at a random moment (usually a few milliseconds after a random
number of acks, so groups are mid-commit or mid-flush; sometimes during start-up), then opens the
store and checks:

* every acknowledged write is present at the tx it was acknowledged with;
* txs are gapless, and every tx since the previous kill holds exactly one whole write: its three
  keys and nothing else, each readable at that tx (acknowledged or in flight, never partial);
* no write was committed twice (a group rerun never duplicates a member) and no refused write
  committed anything;
* ``verify()`` passes;
* over the run, groups of more than one write formed (the child's ``writes`` > ``commits``).

Both ways a process groups its writes are killed: threads in the engine's group commit, and
the server's write batcher (writes parked in greenlets, committed together, flushed on their own
thread while the next batch commits). Default: 25 kills each (50 in all). ``-m long``: 400 and 200.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from engine import Store
from tests.reliability.group_writer import SHARED, write_keys
from tests.reliability.helpers import kill_at_random, spawn

THREADS = 8


class GroupCrashRun:
    def __init__(self, path: Path, seed: int, mode: str = "threads") -> None:
        self.path = path
        self.mode = ["parked"] if mode == "parked" else []
        self.rng = random.Random(seed)
        self.tx_of: dict[tuple[int, int, int], int] = {}  # (generation, thread, index) -> its tx
        self.checked = 0  # txs up to this one were checked one by one
        self.stats = {"kills": 0, "acked": 0, "conflicts": 0, "unacked_committed": 0, "early_kills": 0,
                      "writes": 0, "commits": 0}

    def cycle(self, generation: int) -> None:
        proc = spawn("group_writer", str(self.path), str(generation), str(THREADS), *self.mode)
        acks = kill_at_random(proc, self.rng, self.stats, max_acks=60, settle=0.005)
        with Store.open(self.path) as store:
            self.check(store, generation, acks)

    def check(self, store: Store, generation: int, acks: list[Any]) -> None:
        latest = store.latest_tx
        assert store.tx_info(latest + 1) is None
        for tx in range(self.checked + 1, latest + 1):  # gapless, each tx one whole write
            self.check_tx(store, tx)
        self.checked = latest
        last_counts = (0, 0)
        for _, t, i, tx, writes, commits in acks:
            last_counts = max(last_counts, (writes, commits))
            if tx is None:
                assert i % 7 == 6, f"write {t}.{i} was refused"
                assert (generation, t, i) not in self.tx_of, f"refused write {t}.{i} committed"
                self.stats["conflicts"] += 1
                continue
            assert self.tx_of.get((generation, t, i)) == tx, f"acknowledged write {t}.{i} (tx {tx}) is missing"
            self.stats["acked"] += 1
        self.stats["writes"] += last_counts[0]
        self.stats["commits"] += last_counts[1]
        report = store.verify()
        assert report.ok, report

    def check_tx(self, store: Store, tx: int) -> None:
        info = store.tx_info(tx)
        assert info is not None, f"tx {tx} is missing below the latest tx"
        shared = [op.key for op in info.operations if op.namespace == SHARED]
        assert len(shared) == 1, f"tx {tx} is not one write: {info.operations}"
        generation, thread, index = (int(part.lstrip("g")) for part in shared[0].split("."))
        ident = (generation, thread, index)
        assert ident not in self.tx_of, f"write {ident} committed twice: txs {self.tx_of[ident]} and {tx}"
        assert index % 7 != 6, f"tx {tx}: a write whose expectation fails committed"
        expected = sorted((ns, key, "put") for ns, keys in write_keys(*ident).items() for key in keys)
        assert sorted((op.namespace, op.key, op.op) for op in info.operations) == expected, f"tx {tx} is partial"
        assert info.note == {"t": thread, "i": index}
        for ns, keys in write_keys(*ident).items():
            records = store.namespace(ns).read(keys, tx=tx).records
            assert [(r.tx, r.value) for r in records] == [(tx, [generation, thread, index])] * len(keys)
        self.tx_of[ident] = tx


def run_crashes(tmp_path: Path, kills: int, mode: str = "threads") -> dict[str, int]:
    seed = int(os.environ.get("STRATA_SEED", random.randrange(1 << 32)))
    print(f"group crash test seed: {seed} (rerun with STRATA_SEED={seed})")
    run = GroupCrashRun(tmp_path / "store", seed, mode)
    for generation in range(kills):
        run.cycle(generation)
    acked_txs = len(run.tx_of)
    run.stats["unacked_committed"] = acked_txs - run.stats["acked"]
    print(f"group crash test: {run.stats}")
    return run.stats


@pytest.mark.parametrize("mode", ["threads", "parked"])
def test_sigkill_during_group_commits_loses_no_acknowledged_write(tmp_path: Path, mode: str) -> None:
    stats = run_crashes(tmp_path, kills=25, mode=mode)
    assert stats["kills"] == 25
    assert stats["acked"] > 120  # the kills did land among writes
    assert stats["writes"] > stats["commits"]  # and groups of several writes formed


@pytest.mark.long
@pytest.mark.parametrize(("mode", "kills"), [("threads", 400), ("parked", 200)])
def test_sigkill_during_group_commits_long(tmp_path: Path, mode: str, kills: int) -> None:
    assert run_crashes(tmp_path, kills=kills, mode=mode)["kills"] == kills
