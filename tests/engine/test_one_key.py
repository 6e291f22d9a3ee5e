"""The one-key write path (engine/one_key.py) against the general one: the same writes, made both
ways into two stores on the same clock, give the same answers (txs or errors) and the same bytes in
every database, hence the same chain hashes and Merkle roots."""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import EngineError, Limits, Store, one_key
from tests.conftest import fingerprint
from tests.engine.clock import T0, Clock

ROOT = Path(__file__).resolve().parents[2]

KEYS = st.sampled_from(["a", "b", "a\x00b", "é", "k" * 497, "k" * 498, "x" * 512, "x" * 513, "", "\ud800"])
VALUES = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1), st.text(max_size=8), st.binary(max_size=8),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.lists(st.booleans(), max_size=2),
    st.floats(allow_nan=False), st.none(),
    st.sampled_from([math.nan, math.inf, (1, 2), 2**70, {1: 2}, [b"x"], {"a": math.nan}, "x" * 40]),
)
OPS = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(["ns", "other"]), KEYS, VALUES),
    st.tuples(st.just("clear"), st.sampled_from(["ns", "other"]), KEYS, st.none()),
    st.tuples(st.just("delete"), st.sampled_from(["ns", "other"]), KEYS, st.none()),
    st.tuples(st.just("txn_put"), st.sampled_from(["ns", "other"]), KEYS, VALUES),
    st.tuples(st.just("noted_put"), st.just("ns"), KEYS, VALUES),
    st.tuples(st.just("ttl_put"), st.just("ns"), KEYS, VALUES),  # an expiry the next puts' sweep records
    st.tuples(st.just("clock"), st.just(""), st.just(""), st.integers(min_value=-5, max_value=5)),
)


@contextmanager
def general_path(general: bool) -> Iterator[None]:
    before = one_key.ENABLED
    one_key.ENABLED = not general
    try:
        yield
    finally:
        one_key.ENABLED = before


def outcome(store: Store, op: str, ns: str, key: Any, value: Any) -> Any:
    try:
        if op == "put":
            return store.namespace(ns).put({key: value}, sync=False)
        if op == "ttl_put":
            return store.namespace(ns).put({key: value}, ttl=2)
        if op == "noted_put":
            return store.namespace(ns).put({key: value}, note={"by": "test"})
        if op == "clear":
            return store.namespace(ns).clear([key])
        if op == "delete":
            return store.namespace(ns).delete([key])
        with store.transaction() as t:
            t.put(ns, key, value)
        return t.tx
    except EngineError as exc:
        return type(exc).__name__, exc.code, exc.message, exc.details


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=14))
def test_one_key_path_writes_what_the_general_path_writes(ops: list[tuple[str, str, Any, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clocks = [Clock(), Clock()]
        stores = [Store.open(Path(tmp) / name, sync=False, clock=clock)
                  for name, clock in zip("fg", clocks, strict=True)]
        try:
            for op, ns, key, value in ops:
                if op == "clock":  # steps back too: the commit time is clamped to the previous tx's
                    for clock in clocks:
                        clock.now += value
                    continue
                got = []
                for general, store in enumerate(stores):
                    with general_path(bool(general)):
                        got.append(outcome(store, op, ns, key, value))
                assert got[0] == got[1], (op, key, value)
            fast, slow = stores
            assert fingerprint(fast) == fingerprint(slow)
            assert fast.head() == slow.head()
            assert fast.verify().ok
        finally:
            for store in stores:
                store.close()


def test_one_key_path_is_taken(tmp_path: Path) -> None:
    """The differential test above compares two paths, not one with itself."""
    calls: list[int] = []
    real = one_key.apply

    def counting(*args: Any) -> int:
        calls.append(1)
        return real(*args)

    store = Store.open(tmp_path / "s", sync=False, clock=Clock(T0))
    try:
        one_key.apply = counting  # type: ignore[assignment]
        assert store.namespace("ns").put({"a": 1}) == 1
        with general_path(True):
            assert store.namespace("ns").put({"a": 2}) == 2
        assert store.namespace("ns").put({"a\x00": 3}) == 3  # escaped keypart: the general path
        assert store.namespace("ns").clear(["a"]) == 4
    finally:
        one_key.apply = real  # type: ignore[assignment]
        store.close()
    assert len(calls) == 2


def test_a_store_that_allows_no_item_refuses_the_one_item_put(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s", sync=False, limits=Limits(max_batch=0))
    try:
        with pytest.raises(EngineError) as info:
            store.namespace("ns").put({"a": 1})
        assert info.value.code == "BATCH_TOO_LARGE"
        assert store.latest_tx == 0
    finally:
        store.close()


_OTHER_PROCESS = """
import sys
from engine import Store
with Store.open(sys.argv[1], sync=False) as store:
    print(store.namespace("ns").put({"b": 2}), store.namespace("ns").put({"c": 3}, ttl=1))
"""


def test_a_put_after_another_process_wrote_reads_what_that_process_wrote(tmp_path: Path) -> None:
    """A put skips reading what the previous put of this process wrote (the latest tx, its time,
    hash and Merkle entry, the namespace's counts, the expiry index) only while no one else wrote:
    another process's commits are read, and an expiry it indexed is swept when due."""
    clock = Clock(T0)
    store = Store.open(tmp_path / "s", sync=False, clock=clock)
    try:
        ns = store.namespace("ns")
        assert [ns.put({"a": 1}), ns.put({"a": 2})] == [1, 2]
        other = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(tmp_path / "s")], cwd=ROOT,
                               capture_output=True, text=True, check=True, timeout=120)
        assert other.stdout.split() == ["3", "4"]
        clock.now = 4e9  # past the other process's expiry of "c" (its wall clock plus 1 s)
        assert ns.put({"a": 3}) == 6  # tx 5 records the expiry of "c"
        assert store.tx_info(5).note == {"expired": True}
        assert [(op.key, op.op) for op in store.tx_info(5).operations] == [("c", "delete")]
        assert [(r.key, r.value, r.tx) for r in ns.read(["a", "b", "c"]).records] == [("a", 3, 6), ("b", 2, 3)]
        info = store.namespace_info("ns")
        # two keys of 7-byte keyparts and 1-byte records
        assert info is not None and (info.key_count, info.size_bytes, info.tx) == (2, 16, 6)
        assert store.verify().ok
        head = store.head()
        assert head.tx == 6 and head.root is not None
    finally:
        store.close()
    with Store.open(tmp_path / "s", sync=False) as again:  # chain and Merkle root recomputed from disk
        assert again.verify().ok and again.head() == head


def test_grouped_one_key_puts_write_what_they_write_one_at_a_time(tmp_path: Path) -> None:
    """In a group commit each put reads what the member before it wrote, also across a general
    write, a failing member (the group then runs again, each member in a nested transaction) and
    the next group."""
    from tests.engine.test_parked_writes import Scheduler

    stores = [Store.open(tmp_path / name, sync=False, clock=Clock(T0)) for name in ("grouped", "alone")]
    try:
        def writes(store: Store, round: int) -> list[Any]:
            ns, other = store.namespace("ns"), store.namespace("other")
            return [lambda: ns.put({"a": round}), lambda: ns.put({"b": 2}), lambda: other.put({"c": 3}),
                    lambda: ns.put({"a": 4}, expect={"a": 99}), lambda: ns.put({"d": 5}, ttl=5),
                    lambda: ns.put({"a": 6}), lambda: other.put({"e": 7}), lambda: ns.put({"a\x00": 8})]

        def outcomes(results: list[Any]) -> list[Any]:
            return [(type(r).__name__, r.code) if isinstance(r, EngineError) else r for r in results]

        grouped, alone = stores
        scheduler = Scheduler(grouped)
        for round in range(2):
            got = outcomes(scheduler.run(writes(grouped, round)))
            want = outcomes([_call(write) for write in writes(alone, round)])
            assert got == want == [1 + 7 * round, 2 + 7 * round, 3 + 7 * round, ("Conflict", "CONFLICT"),
                                   *range(4 + 7 * round, 8 + 7 * round)]
        assert grouped.stats()["commits"] == 2  # each round one group, one commit
        assert fingerprint(grouped) == fingerprint(alone)
        assert grouped.head() == alone.head()
        assert grouped.verify().ok
    finally:
        for store in stores:
            store.close()


def _call(write: Any) -> Any:
    try:
        return write()
    except EngineError as exc:
        return exc
