"""History, as-of-time reads, diffs and the change feed."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import Record, Store, errors
from tests.engine.clock import T0, Clock


def test_history_pages_in_both_orders(store: Store) -> None:
    ns = store.namespace("n")
    for i in range(1, 8):
        ns.put({"k": i, "other": i})
    ns.clear(["k"])
    ns.delete(["k"])
    newest = ns.history("k", limit=3)
    assert [(v.tx, v.op, v.value) for v in newest] == [(9, "delete", None), (8, "clear", None), (7, "put", 7)]
    assert newest[0].deleted and newest[1].cleared
    assert [v.tx for v in ns.history("k", before=7, limit=3)] == [6, 5, 4]
    assert [v.tx for v in ns.history("k", order="asc", limit=3)] == [1, 2, 3]
    assert [v.tx for v in ns.history("k", order="asc", after=3, before=6)] == [4, 5]
    assert ns.history("missing") == [] and store.namespace("nope").history("k") == []
    ns.put({"k": "signed"}, note={"by": "alice"})
    assert ns.history("k", limit=1)[0].note == {"by": "alice"} and newest[0].note is None
    times = [v.time for v in ns.history("k", order="asc")]
    assert times == sorted(times) and times[0] == store.tx_info(1).time  # type: ignore[union-attr]


def test_history_rejects_bad_arguments(store: Store) -> None:
    ns = store.namespace("n")
    for kwargs, message in (({"order": "sideways"}, "order must be 'asc' or 'desc', not 'sideways'"),
                            ({"limit": -1}, "limit must be an integer from 0 to 10000, not -1"),
                            ({"before": -2}, "before must be a non-negative integer, not -2"),
                            ({"limit": 10_001}, "limit must be an integer from 0 to 10000, not 10001")):
        with pytest.raises(errors.InvalidParameters, match=message) as info:
            ns.history("k", **kwargs)  # type: ignore[arg-type]
        assert info.value.code == "INVALID_PARAMETERS"


def test_tx_at_finds_the_last_tx_at_or_before_a_time(tmp_path: Path) -> None:
    clock = Clock()
    with Store.open(tmp_path / "s", sync=False, clock=clock) as store:
        ns = store.namespace("n")
        stamps = []
        for i in range(5):
            clock.now = T0 + i  # tx i + 1 commits at T0 + i: one tx per time, so each answer is exact
            ns.put({"k": i})
            stamps.append(store.tx_info(i + 1).time)  # type: ignore[union-attr]
        assert stamps[3] == datetime.fromtimestamp(T0 + 3, UTC)
        assert store.tx_at(stamps[0] - timedelta(seconds=1)) == 0
        assert store.tx_at(stamps[0] - timedelta(microseconds=1)) == 0
        for i, stamp in enumerate(stamps):
            assert store.tx_at(stamp) == i + 1
            assert store.tx_at(stamp.timestamp()) == i + 1
            assert store.tx_at(stamp - timedelta(microseconds=1)) == i  # the tx before it
            assert store.tx_at(stamp + timedelta(seconds=0.5)) == i + 1
        assert store.tx_at(T0 + 1000) == 5
        assert ns.get("k", at=stamps[2]) == Record("k", 2, 3)
        assert ns.get("k", at=stamps[2] - timedelta(microseconds=1)) == Record("k", 1, 2)
        assert ns.read(["k"], at=stamps[0] - timedelta(seconds=1)).tx == 0
        assert store.tx_at(datetime(1960, 1, 1, tzinfo=UTC)) == 0  # before the epoch: nothing yet
        ns.put({"k": 5})  # tx 6 at the same time as tx 5: the last tx at that time wins
        assert store.tx_at(stamps[4]) == 6 and store.tx_at(stamps[4] - timedelta(microseconds=1)) == 4
        with pytest.raises(errors.InvalidParameters, match="at must carry a time zone"):
            store.tx_at(datetime(2026, 1, 1))  # naive: ambiguous
        with pytest.raises(errors.InvalidParameters, match="give tx or at, not both"):
            ns.read(["k"], tx=1, at=stamps[0])


def test_commit_times_never_go_backwards(tmp_path: Path) -> None:
    clock = Clock()
    with Store.open(tmp_path / "s", sync=False, clock=clock) as store:
        ns = store.namespace("n")
        ns.put({"k": 1})
        clock.now = T0 - 3600  # the clock steps back an hour
        ns.put({"k": 2})
        first, second = store.tx_info(1), store.tx_info(2)
        assert first is not None and second is not None
        assert first.time_us == second.time_us == clock.us + 3600 * 10**6  # clamped to the previous tx's time
        assert store.tx_at(first.time) == 2  # both txs share the clamped time
        clock.now = T0 + 1
        ns.put({"k": 3})
        third = store.tx_info(3)
        assert third is not None and third.time_us == clock.us  # the clock is followed again once ahead
        assert store.verify().ok


def test_diff_reports_only_what_changed(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"same": 1, "changes": 1, "cleared": 1, "deleted": 1, "back": 1})
    base = store.latest_tx
    ns.put({"changes": 2, "added": 1, "back": 2})
    ns.put({"back": 1})  # changed and changed back: no content difference
    ns.clear(["cleared"])
    ns.delete(["deleted"])
    store.namespace("elsewhere").put({"changes": 9})
    got = {c.key: c.kind for c in ns.diff(base, store.latest_tx)}
    assert got == {"added": "added", "changes": "changed", "cleared": "cleared", "deleted": "deleted"}
    assert list(ns.diff(3, 3)) == []
    change = next(c for c in ns.diff(base, store.latest_tx) if c.key == "changes")
    assert change.before.value == 1 and change.after.value == 2  # type: ignore[union-attr]
    with pytest.raises(errors.InvalidParameters, match=r"from_tx \(3\) is after to_tx \(2\)"):
        list(ns.diff(3, 2))
    with pytest.raises(errors.FutureTx, match="tx 99 is in the future: the latest committed tx is 6"):
        list(ns.diff(0, 99))


def test_changes_feed_in_tx_order(store: Store) -> None:
    a, b = store.namespace("a"), store.namespace("b")
    a.put({"x": 1}, note={"by": "me"})
    b.put({"y": 1})
    a.delete(["x"])
    feed = store.changes(0)
    assert [c.tx for c in feed] == [1, 2, 3]
    assert feed[0].note == {"by": "me"} and feed[2].operations[0].op == "delete"
    assert [c.tx for c in store.changes(1, limit=1)] == [2]
    only_a = store.changes(0, namespace="a")
    assert [c.tx for c in only_a] == [1, 3] and all(op.namespace == "a" for c in only_a for op in c.operations)
    assert store.changes(3) == []


def _write_later(path: str) -> None:
    time.sleep(0.3)
    with Store.open(path, sync=False) as store:
        store.namespace("n").put({"from": "another process"})


def test_wait_for_sees_a_commit_from_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with Store.open(path, sync=False) as store:
        assert store.wait_for(0, timeout=0)
        assert not store.wait_for(1, timeout=0.05)
        proc = mp.get_context("spawn").Process(target=_write_later, args=(path,))
        proc.start()
        assert store.wait_for(1, timeout=60)
        proc.join(timeout=60)
        assert store.namespace("n").get("from").value == "another process"  # type: ignore[union-attr]


def test_the_fast_version_constructor_builds_the_same_frozen_version() -> None:
    # history() builds Versions without the dataclass __init__; a field added to Version must be
    # added there too, which this catches.
    import dataclasses

    from engine.history import Version, _new_version

    names = ["tx", "time", "op", "value", "binary", "note", "metadata", "expire_time"]
    assert [f.name for f in dataclasses.fields(Version)] == names
    values = (7, datetime(2026, 1, 2, tzinfo=UTC), "put", {"a": [1]}, False, {"by": "x"}, {"m": 1},
              datetime(2026, 2, 3, tzinfo=UTC))
    fast = _new_version(*values)
    assert fast == Version(*values) and repr(fast) == repr(Version(*values))
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'tx'"):
        fast.tx = 8  # type: ignore[misc]
