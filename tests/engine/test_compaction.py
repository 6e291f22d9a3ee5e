"""Compaction: what it frees and keeps, the horizon, chunks, concurrency, kill -9 and resume."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest

from engine import Store, errors
from engine.codec import is_delete
from engine.encoding import tx_of

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["a", "b", "c", "x\x00y", "é", "L" * 505, "L" * 505 + "z"]  # the last two are long keys


def versions(store: Store) -> list[tuple[bytes, bytes]]:
    backend = store._backend
    return backend.read(lambda txn: [(bytes(k), bytes(v)) for k, v in txn.cursor(db=backend.versions)])


def expected_after(before: list[tuple[bytes, bytes]], horizon: int) -> list[tuple[bytes, bytes]]:
    """The rule, applied to a plain list of versions (newest first within each keypart)."""
    out = []
    for _, group in groupby(before, key=lambda kv: kv[0][:-8]):
        seen_at_horizon = False  # the version a read at the horizon sees has been met
        for k, v in group:
            if tx_of(k) >= horizon:
                out.append((k, v))
                seen_at_horizon = tx_of(k) == horizon
            elif not seen_at_horizon:
                seen_at_horizon = True
                if not is_delete(v):
                    out.append((k, v))
    return out


def random_history(store: Store, seed: int, txs: int = 120) -> None:
    rng = random.Random(seed)
    namespaces = [store.namespace("n1"), store.namespace("n2")]
    for i in range(txs):
        ns = rng.choice(namespaces)
        keys = rng.sample(KEYS, rng.randint(1, 3))
        kind = rng.random()
        if kind < 0.6:
            ns.put({k: rng.choice([i, f"v{i}", None, b"\x00" * (i % 5), {"i": i}]) for k in keys})
        elif kind < 0.8:
            ns.delete(keys)
        elif kind < 0.95:
            ns.clear(keys)
        else:
            with store.transaction(note={"i": i}) as t:
                t.put("n1", keys[0], i)
                t.delete("n2", keys[0])
    store.drop_namespace("n2")  # a big delete tx; n2 comes back later
    store.namespace("n2").put({"a": "back"})


def snapshot(store: Store, tx: int) -> list[list[Any]]:
    return [list(store.namespace(n).scan(tx=tx)) for n in ("n1", "n2")] + [
        store.namespace(n).read(KEYS, tx=tx).records for n in ("n1", "n2")]


@pytest.mark.parametrize("seed", range(6))
def test_compaction_keeps_exactly_what_reads_at_or_after_the_horizon_see(store: Store, seed: int) -> None:
    random_history(store, seed)
    latest = store.latest_tx
    horizon = random.Random(seed).randint(1, latest)
    states = {tx: snapshot(store, tx) for tx in range(horizon, latest + 1)}
    before = versions(store)
    report = store.compact(horizon, chunk_keys=random.Random(seed).choice([1, 3, 1000]))
    assert report.horizon == horizon and not report.pending
    assert versions(store) == expected_after(before, horizon)
    assert report.freed == len(before) - len(versions(store))
    for tx in range(horizon, latest + 1):
        assert snapshot(store, tx) == states[tx], tx
    for tx in (0, horizon - 1):
        if tx < horizon:
            with pytest.raises(errors.TxCompacted) as exc:
                store.namespace("n1").read(["a"], tx=tx)
            assert exc.value.code == "TX_COMPACTED" and exc.value.details["horizon"] == horizon
    report_v = store.verify()
    assert report_v.ok, report_v
    assert report_v.horizon == horizon and report_v.head_tx == latest


def test_moving_the_horizon_in_steps_frees_what_one_step_would(tmp_path: Path) -> None:
    results = []
    for steps in ([70], [10, 30, 31, 70]):
        with Store.open(tmp_path / f"s{len(steps)}", sync=False) as store:
            random_history(store, 42)
            before = versions(store)
            for h in steps:
                store.compact(h)
            assert versions(store) == expected_after(before, 70)
            assert store.verify().ok
            results.append(store.compaction_status())
    assert results[0]["freed_versions"] == results[1]["freed_versions"]


def test_a_second_step_frees_the_tombstone_kept_exactly_at_the_earlier_horizon(store: Store) -> None:
    """A delete at exactly the old horizon is kept by the first step (a read there sees it) and
    is freeable by the next: the next step's window must start at the old horizon, not after it."""
    ns = store.namespace("t")
    ns.put({"k": 1, "other": 1})  # tx 1
    ns.delete(["k"])              # tx 2: exactly the first horizon
    for tx in (3, 4, 5):
        ns.put({"other": tx})
    before = versions(store)
    assert len(before) == 6
    first = store.compact(2)
    assert first.freed == 1  # k@1; the tombstone k@2 is what a read at 2 sees
    assert [tx_of(k) for k, _ in versions(store)] == [2, 5, 4, 3, 1]  # k first: "k" < "other"
    second = store.compact(4)
    assert second.freed == 3  # the tombstone k@2, other@3, other@1
    assert [tx_of(k) for k, _ in versions(store)] == [5, 4]
    assert versions(store) == expected_after(before, 4)
    assert store.compaction_status()["freed_versions"] == 4
    assert ns.get("k", tx=4) is None and ns.get("other", tx=4) is not None
    assert store.verify().ok


def test_reads_below_the_horizon_and_the_audit_api(store: Store) -> None:
    ns = store.namespace("t")
    for i in range(1, 11):
        ns.put({"k": i, f"only{i}": i})
    ns.delete(["k"])  # tx 11
    store.compact(6)
    assert store.horizon == 6
    with pytest.raises(errors.TxCompacted, match="tx 5 was compacted away: the oldest readable tx is 6"):
        ns.get("k", tx=5)
    with pytest.raises(errors.TxCompacted, match="tx 3 was compacted away: the oldest readable tx is 6"):
        list(ns.scan(tx=3))
    with pytest.raises(errors.TxCompacted, match="tx 0 was compacted away: the oldest readable tx is 6"):
        ns.read(["k"], at=0)  # a time before the horizon's tx
    with pytest.raises(errors.TxCompacted, match="tx 2 was compacted away: the oldest readable tx is 6"):
        list(ns.diff(2, 8))
    assert [c.key for c in ns.diff(6, 11)] == ["k", "only10", "only7", "only8", "only9"]
    # History keeps what survives: every version >= the horizon and the one visible at it.
    assert [v.tx for v in ns.history("k")] == [11, 10, 9, 8, 7, 6]  # 6 is what a read at 6 sees
    assert [v.tx for v in ns.history("only2")] == [2]  # still the value at the horizon
    # The tx log is kept whole: tx info, the change feed and tx_at work at every tx.
    info = store.tx_info(1)
    assert info is not None and [op.key for op in info.operations] == ["k", "only1"]
    assert [c.tx for c in store.changes(0, limit=3)] == [1, 2, 3]
    assert store.tx_at(info.time) == 1
    with pytest.raises(errors.FutureTx, match="cannot compact before tx 12: the latest committed tx is 11"):
        store.compact(store.latest_tx + 1)
    assert store.compact(3).freed == 0 and store.horizon == 6  # the horizon never moves back
    assert store.compact(store.latest_tx).horizon == 11  # compact everything but the latest state
    assert ns.read(["k", "only1"]).records[0].key == "only1"
    assert store.verify().ok


def test_a_scan_started_before_a_compaction_refuses_to_half_answer(store: Store) -> None:
    ns = store.namespace("t")
    ns.put({f"k{i:04}": i for i in range(2000)})
    ns.put({f"k{i:04}": -i for i in range(2000)})
    scan = iter(ns.scan(tx=1))
    assert next(scan).key == "k0000"
    store.compact(2)
    with pytest.raises(errors.TxCompacted, match="tx 1 was compacted away: the oldest readable tx is 2"):
        list(scan)


def test_verify_still_catches_tampering_above_and_at_the_horizon(store: Store) -> None:
    ns = store.namespace("t")
    for i in range(10):
        ns.put({"k": i})
    receipt = store.head()
    store.compact(5)
    assert store.verify(receipt).ok
    backend = store._backend

    def tamper(txn: Any) -> None:
        cur = txn.cursor(db=backend.versions)
        cur.first()
        txn.put(cur.key(), b"\x07", db=backend.versions)  # the newest version of k (tx 10)

    backend.write(tamper)
    report = store.verify()
    assert not report.ok and report.bad_tx == 10


def test_compaction_with_concurrent_writers_and_readers(store: Store) -> None:
    ns = store.namespace("t")
    for i in range(300):
        ns.put({f"k{j}": i for j in range(i % 10, i % 10 + 20)})
    horizon = 200
    want = {tx: ns.read([f"k{j}" for j in range(30)], tx=tx) for tx in range(horizon, 301, 10)}
    stop = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        i = 0
        while not stop.is_set():
            ns.put({f"w{i % 50}": i, "k0": i})
            i += 1

    def read() -> None:
        try:
            while not stop.is_set():
                for tx, result in want.items():
                    assert ns.read([f"k{j}" for j in range(30)], tx=tx) == result
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    try:
        report = store.compact(horizon, chunk_keys=5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not failures, failures
    assert report.chunks > 10 and report.freed > 0
    assert store.verify().ok


KILLED_CHILD = """
import sys, time
from engine import Store
store = Store.open(sys.argv[1], sync=False)
def progress(done, total):
    print(done, total, flush=True)
    time.sleep(0.02)
store.compact(int(sys.argv[2]), chunk_keys=20, progress=progress)
print("finished", flush=True)
"""


def test_compaction_killed_midway_leaves_a_consistent_store_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store.open(path, sync=False) as store:
        ns = store.namespace("t")
        for i in range(800):  # every key is written twice, in txs 400 apart
            ns.put({f"k{j}": {"i": i} for j in range(i % 400 * 10, i % 400 * 10 + 10)})
        ns.delete([f"k{j}" for j in range(0, 4000, 7)])
        latest = store.latest_tx
        horizon = 600
        keys = [f"k{j}" for j in range(0, 4000, 13)]
        states = {tx: ns.read(keys, tx=tx) for tx in range(horizon, latest + 1)}
        before = versions(store)
        store.sync()
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(path), str(horizon)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for _ in range(4):  # a few chunks committed, then SIGKILL in the middle of the walk
        assert child.stdout.readline().strip() not in ("", "finished")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    with Store.open(path, sync=False) as store:
        ns = store.namespace("t")
        status = store.compaction_status()
        assert status["horizon"] == horizon and status["pending"] is not None  # stopped midway
        assert 0 < status["freed_versions"] < len(before) - len(expected_after(before, horizon))
        for tx in range(horizon, latest + 1):
            assert ns.read(keys, tx=tx) == states[tx]
        with pytest.raises(errors.TxCompacted, match=f"tx {horizon - 1} was compacted away"):
            ns.read(keys, tx=horizon - 1)
        assert store.verify().ok
        report = store.compact()  # resume
        assert not report.pending and store.compaction_status()["pending"] is None
        assert versions(store) == expected_after(before, horizon)
        for tx in range(horizon, latest + 1):
            assert ns.read(keys, tx=tx) == states[tx]
        assert store.verify().ok


def test_a_key_with_many_versions_is_freed_a_bounded_amount_per_chunk(store: Store) -> None:
    ns = store.namespace("t")
    for i in range(300):
        ns.put({"hot": i})
    ns.delete(["hot"])  # tx 301: the tombstone goes last, after every older version
    ns.put({"other": 1})
    before = versions(store)
    report = store.compact(302, chunk_keys=2)  # at most 16 versions freed per chunk
    assert report.chunks >= 300 // 16 and report.freed == 301
    assert versions(store) == expected_after(before, 302)
    assert ns.get("hot") is None and store.verify().ok
