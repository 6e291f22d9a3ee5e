"""Parked writes (``Store.parking`` / ``Store.commit_parked``): many writes of one thread, each in a
greenlet, committed together with the same outcomes as one at a time.

Each test runs its writes in greenlets, as the server's write batcher does: a write parks (its
greenlet switches back to the test, the scheduler), the test commits every parked write in one
call, then resumes each greenlet with its outcome. The backend's counters (``Store.stats()``)
say how many commits and flushes that took.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest
from greenlet import getcurrent, greenlet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Store
from engine.errors import Conflict, EngineError, StoreClosed


class Scheduler:
    """Runs calls in greenlets whose writes park; ``run(calls, defer_flush=)`` returns each call's
    result or exception, in order, and what ``commit_parked`` returned for each commit."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hub = getcurrent()
        self.parked: list[tuple[Any, Any]] = []
        self.commits: list[Any] = []

    def park(self, write: Any) -> bool:
        current = getcurrent()
        if current is self.hub:
            return False
        self.parked.append((current, write))
        self.hub.switch()
        return True

    def run(self, calls: list[Callable[[], Any]], defer_flush: bool = False,
            before_resume: Callable[[], None] | None = None) -> list[Any]:
        results: list[Any] = [None] * len(calls)

        def body(i: int) -> None:
            try:
                results[i] = calls[i]()
            except Exception as exc:  # the test inspects it
                results[i] = exc

        with self.store.parking(self.park):
            for i in range(len(calls)):
                greenlet(body).switch(i)
            while self.parked:
                group = self.parked[:]
                self.parked.clear()
                finish = self.store.commit_parked([write for _, write in group], defer_flush=defer_flush)
                self.commits.append(finish)
                if before_resume is not None:
                    before_resume()
                if finish is not None:
                    finish()
                for waiting, _ in group:
                    waiting.switch()
        return results


def counters(store: Store) -> tuple[int, int, int]:
    stats = store.stats()
    return stats["writes"], stats["commits"], stats["syncs"]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store.open(tmp_path / "db")
    yield s
    s.close()


def test_parked_writes_share_one_commit_and_one_flush_each_with_its_own_tx(store: Store) -> None:
    store.create_namespace("n")
    ns = store.namespace("n")
    ns.put({"before": 0})
    before = counters(store)
    results = Scheduler(store).run([lambda i=i: ns.put({f"k{i}": i}) for i in range(5)])
    assert results == [2, 3, 4, 5, 6]  # in parking order, gapless
    assert counters(store) == (before[0] + 5, before[1] + 1, before[2] + 1)
    assert {k: ns.get(k).value for k in ("k0", "k4")} == {"k0": 0, "k4": 4}
    assert [ns.get(f"k{i}").tx for i in range(5)] == [2, 3, 4, 5, 6]
    assert store.verify().ok


def test_a_failing_parked_write_rolls_back_alone(store: Store) -> None:
    store.create_namespace("n")
    ns = store.namespace("n")
    ns.put({"a": 1})
    results = Scheduler(store).run([
        lambda: ns.put({"b": 2}),
        lambda: ns.put({"c": 3, "a": 9}, expect={"a": 7}),  # a's tx is 1: refused, nothing of it written
        lambda: ns.put({"d": 4}),
    ])
    assert results[0] == 2 and results[2] == 3
    assert isinstance(results[1], Conflict) and results[1].code == "CONFLICT"
    assert ns.get("c") is None and ns.get("a").value == 1
    assert store.latest_tx == 3
    assert store.verify().ok


def test_a_parked_write_sees_the_ones_before_it_in_its_commit(store: Store) -> None:
    store.create_namespace("n")
    ns = store.namespace("n")
    results = Scheduler(store).run([
        lambda: ns.put({"a": 1}),
        lambda: ns.put({"a": 2}, expect={"a": 1}),  # holds: the first write of the same commit made a's tx 1
        lambda: ns.put({"a": 3}, expect={"a": 1}),  # fails: a's tx is 2 by now
    ])
    assert results[:2] == [1, 2]
    assert isinstance(results[2], Conflict)
    assert [r.value for r in ns.history("a")] == [2, 1]


def test_with_defer_flush_outcomes_wait_for_the_returned_flush(store: Store) -> None:
    store.create_namespace("n")
    ns = store.namespace("n")
    seen: list[tuple[int, int, int]] = []
    before = counters(store)
    scheduler = Scheduler(store)
    results = scheduler.run([lambda i=i: ns.put({f"k{i}": i}) for i in range(3)], defer_flush=True,
                            before_resume=lambda: seen.append(counters(store)))
    assert results == [1, 2, 3]
    assert callable(scheduler.commits[0])
    assert seen == [(before[0] + 3, before[1] + 1, before[2])]  # committed, not yet flushed
    assert counters(store)[2] == before[2] + 1  # the returned function flushed


def test_a_request_writing_twice_parks_twice(store: Store) -> None:
    store.create_namespace("n")
    ns = store.namespace("n")

    def twice() -> tuple[int, int]:
        return ns.put({"x": 1}), ns.put({"x": 2})

    scheduler = Scheduler(store)
    results = scheduler.run([twice, lambda: ns.put({"y": 1})])
    assert results == [(1, 3), 2]
    assert len(scheduler.commits) == 2


def test_park_returning_false_lets_the_write_wait_as_usual(store: Store) -> None:
    store.create_namespace("n")
    ns = store.namespace("n")
    with store.parking(lambda write: False):
        assert ns.put({"a": 1}) == 1
    assert counters(store)[1] >= 1


def test_parked_writes_commit_after_another_threads_group(store: Store) -> None:
    store.create_namespace("n")
    ns = store.namespace("n")
    inside, release = threading.Event(), threading.Event()
    other: list[Any] = []

    def hold(txn: Any) -> str:
        inside.set()
        release.wait()
        return "held"

    thread = threading.Thread(target=lambda: other.append(store._backend.write(hold, cost=1)))
    thread.start()
    inside.wait()
    threading.Timer(0.05, release.set).start()  # the parked writes queue behind the held write
    results = Scheduler(store).run([lambda i=i: ns.put({f"k{i}": i}) for i in range(3)])
    thread.join()
    assert other == ["held"]
    assert results == [1, 2, 3]
    assert store.verify().ok


def test_commit_parked_on_a_closed_store_fails_every_write(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "db")
    store.create_namespace("n")
    ns = store.namespace("n")
    scheduler = Scheduler(store)

    def put_then_close() -> Any:
        return ns.put({"a": 1})

    with store.parking(scheduler.park):
        box: list[Any] = []
        g = greenlet(lambda: box.append(_catch(put_then_close)))
        g.switch()
        store.close()
        store.commit_parked([write for _, write in scheduler.parked])
        g.switch()
    assert isinstance(box[0], StoreClosed)


def _catch(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:
        return exc


OPS = st.lists(st.tuples(st.sampled_from(["put", "delete", "expect_put"]), st.sampled_from("abcd"),
                         st.integers(0, 5)), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_parked_writes_answer_as_the_same_writes_one_at_a_time(tmp_path_factory: Any, ops: list[Any]) -> None:
    """Differential: the same writes parked and committed together, or made one at a time on
    another store, give the same tx or error code each, and the same state at every tx."""
    base = tmp_path_factory.mktemp("parked")
    together, alone = Store.open(base / "together"), Store.open(base / "alone")
    try:
        for s in (together, alone):
            s.create_namespace("n")
            s.namespace("n").put({"a": 0})

        def call(s: Store, op: tuple[str, str, int]) -> Callable[[], Any]:
            kind, key, n = op
            ns = s.namespace("n")
            if kind == "put":
                return lambda: ns.put({key: n})
            if kind == "delete":
                return lambda: ns.delete([key])
            return lambda: ns.put({key: n}, expect={key: n})  # holds only when key's tx is n (0: absent)

        got = Scheduler(together).run([call(together, op) for op in ops])
        want = [_catch(call(alone, op)) for op in ops]
        assert [_outcome(r) for r in got] == [_outcome(r) for r in want]
        assert together.latest_tx == alone.latest_tx
        for tx in range(1, alone.latest_tx + 1):
            assert _state(together, tx) == _state(alone, tx)
        assert together.verify().ok
    finally:
        together.close()
        alone.close()


def _outcome(result: Any) -> Any:
    return result.code if isinstance(result, EngineError) else result


def _state(store: Store, tx: int) -> dict[str, Any]:
    return {r.key: (r.value, r.tx) for r in store.namespace("n").scan(tx=tx)}


def commit_one_by_one(store: Store, calls: list[Callable[[], Any]]) -> list[tuple[Any, Any]]:
    """Each call in a greenlet of its own, its write parked and committed alone with
    ``defer_flush``: [(the flush to call, the greenlet to resume)], nothing flushed yet."""
    scheduler = Scheduler(store)
    out = []
    for call in calls:
        g = greenlet(lambda call=call: _catch(call))
        with store.parking(scheduler.park):
            g.switch()
            group = scheduler.parked[:]
            scheduler.parked.clear()
            out.append((store.commit_parked([w for _, w in group], defer_flush=True), g))
    return out


def test_a_commit_s_data_flush_makes_the_commits_before_it_durable(store: Store) -> None:
    """LMDB flushes a commit's data pages before writing its meta page; that flush also carries the
    meta page of every commit before it, so only the last of a run of commits needs a flush."""
    store.create_namespace("n")
    ns = store.namespace("n")
    before = counters(store)
    finishes = commit_one_by_one(store, [lambda i=i: ns.put({f"k{i}": i}) for i in range(3)])
    assert counters(store)[1:] == (before[1] + 3, before[2])  # three commits, no meta flush yet
    finishes[0][0]()  # covered by commit 2's data flush
    finishes[1][0]()  # covered by commit 3's
    assert counters(store)[2] == before[2]
    finishes[2][0]()  # the last one flushes
    assert counters(store)[1:] == (before[1] + 3, before[2] + 1)
    assert [g.switch() for _, g in finishes] == [1, 2, 3]


def test_a_commit_that_wrote_nothing_covers_nothing(store: Store) -> None:
    """A commit whose only write was refused writes no page and flushes nothing (LMDB skips an
    empty commit): the commit before it still needs its own flush."""
    store.create_namespace("n")
    ns = store.namespace("n")
    first = commit_one_by_one(store, [lambda: ns.put({"a": 1})])
    before = counters(store)
    scheduler = Scheduler(store)  # then a commit of two writes, both refused: an empty LMDB commit
    refused = scheduler.run([lambda: ns.put({"b": 1}, expect={"b": 9}), lambda: ns.put({"c": 1}, expect={"c": 9})],
                            defer_flush=True)
    assert all(isinstance(r, Conflict) for r in refused)
    assert counters(store)[1] == before[1] + 1  # it did commit (nothing)
    first[0][0]()
    assert counters(store)[2] == before[2] + 1  # the first write flushed on its own
    assert first[0][1].switch() == 1


def test_a_failed_flush_fails_its_writes(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.create_namespace("n")
    ns = store.namespace("n")
    finishes = commit_one_by_one(store, [lambda: ns.put({"a": 1})])
    backend = store._backend
    real_env, flushes = backend.env, []

    class Failing:  # the disk refuses the flush (as on EIO)
        def __getattr__(self, name: str) -> Any:
            return getattr(real_env, name)

        def sync(self, force: bool = False) -> None:
            flushes.append(force)
            raise lmdb.Error("flush failed")

    monkeypatch.setattr(backend, "env", Failing())
    finishes[0][0]()
    monkeypatch.setattr(backend, "env", real_env)
    outcome = finishes[0][1].switch()
    assert flushes == [True]
    assert isinstance(outcome, EngineError) and outcome.code == "STORAGE_ERROR"


def test_writes_parked_while_a_commit_waits_for_its_turn_join_it_late(store: Store) -> None:
    """``commit_parked(late=)``: once the commit holds the write transaction, ``late()`` returns the
    writes parked meanwhile (here: by greenlets started while another thread's group held the
    store); they join that commit, after the others, each with its own tx and outcome, and the
    parking code may read while the commit holds the transaction. ``late()`` is called once per
    attempt (two here: a refused member makes the group run again); what it returns joins, nothing else."""
    store.create_namespace("n")
    ns = store.namespace("n")
    ns.put({"seen": "before"})
    inside, release = threading.Event(), threading.Event()

    def hold(txn: Any) -> str:
        inside.set()
        release.wait(30)
        return "held"

    other: list[Any] = []
    thread = threading.Thread(target=lambda: other.append(store._backend.write(hold, cost=1)))
    thread.start()
    inside.wait(30)
    sched = Scheduler(store)
    results: dict[str, Any] = {}
    calls = 0

    def late() -> list[Any]:
        nonlocal calls
        calls += 1
        if calls > 1:  # the requests arrived once: a second attempt finds nothing new
            return []
        before = len(sched.parked)
        for name in ("x", "y"):  # requests that arrived meanwhile: each reads, then writes
            def body(name: str = name) -> None:
                seen = ns.get("seen").value
                try:
                    results[name] = ns.put({name: seen}) if name == "x" else ns.put({name: 1}, expect={"x": 99})
                except Conflict as exc:  # x is at tx 3 by then, in the same commit
                    results[name] = exc.details["conflicts"][0]["actual"]
            greenlet(body).switch()
        joined = sched.parked[before:]
        del sched.parked[before:]
        late_group.extend(joined)
        return [write for _, write in joined]

    late_group: list[tuple[Any, Any]] = []
    before = counters(store)
    with store.parking(sched.park):
        greenlet(lambda: results.setdefault("a", ns.put({"a": 1}))).switch()
        group = sched.parked[:]
        sched.parked.clear()
        threading.Timer(0.05, release.set).start()  # the commit queues behind the held write
        finish = store.commit_parked([write for _, write in group], defer_flush=True, late=late)
        assert finish is not None
        finish()
        for waiting, _ in group + late_group:
            waiting.switch()
    thread.join()
    # y's refusal aborts the group's first attempt (members run directly in its transaction); the
    # group runs again, each member nested, and late() is called again: it returns nothing new.
    assert other == ["held"] and calls == 2
    assert results == {"a": 2, "x": 3, "y": 3}
    after = counters(store)  # writes: the held one, a and x; commits: the held one's and a's with x's
    assert (after[0] - before[0], after[1] - before[1]) == (3, 2)
    assert ns.get("x").value == "before" and ns.get("y") is None and store.verify().ok
