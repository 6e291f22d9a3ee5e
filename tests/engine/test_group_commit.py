"""Group commit: concurrent writes of one process share one LMDB commit and one flush.

Grouping is made certain, not likely: :class:`Gathering` holds the committing thread inside a
write until the writers under test have queued behind it, one at a time (so their queue order is
known); released, they are committed as one group. The backend's counters (``Store.stats()``:
``writes``, ``commits``, ``syncs``) say how many commits and flushes that took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest

from engine import Store
from engine.errors import Conflict, StorageError, ValueTooLarge
from engine.group_commit import MAX_GROUP_COST


def counters(store: Store) -> tuple[int, int, int]:
    stats = store.stats()
    return stats["writes"], stats["commits"], stats["syncs"]


class Gathering:
    """Writers queued behind a held write, released together: ``with Gathering(store) as g:``.

    ``g.add(name, call)`` starts ``call()`` in a thread and returns once it waits in the queue;
    after the block, ``g.results[name]`` is its return value or the exception it raised.
    """

    def __init__(self, store: Store) -> None:
        self.backend = store._backend
        self.results: dict[str, Any] = {}
        self._entered = threading.Event()
        self._release = threading.Event()
        self._threads: list[threading.Thread] = []

    def _start(self, name: str, call: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                self.results[name] = call()
            except BaseException as exc:  # the test inspects it
                self.results[name] = exc
        thread = threading.Thread(target=run)
        self._threads.append(thread)
        thread.start()

    def _queued(self) -> int:
        return len(self.backend._groups._queue)

    def __enter__(self) -> Gathering:
        def hold(txn: Any) -> str:
            self._entered.set()
            self._release.wait()
            return "held"
        self._start("hold", lambda: self.backend.write(hold, sync=False))
        self._entered.wait()
        return self

    def add(self, name: str, call: Callable[[], Any]) -> None:
        before = self._queued()
        self._start(name, call)
        while self._queued() == before:  # a count, not a guess: the writer is in the queue
            time.sleep(0.0005)

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        for thread in self._threads:
            thread.join()


@pytest.fixture
def durable(tmp_path: Path) -> Any:
    with Store.open(tmp_path / "s") as store:  # sync=True: flushes are what is counted
        yield store


def test_queued_writes_share_one_commit_and_one_flush(durable: Store) -> None:
    ns = durable.namespace("n")
    ns.put({"seed": 0})
    before = counters(durable)
    with Gathering(durable) as g:
        for i in range(15):
            g.add(f"w{i}", lambda i=i: ns.put({f"k{i}": i}))
    writes, commits, syncs = (a - b for a, b in zip(counters(durable), before, strict=True))
    # The held write (alone, sync=False, nothing written) and then one group of 15.
    assert (writes, commits, syncs) == (16, 2, 1)
    txs = [g.results[f"w{i}"] for i in range(15)]
    assert txs == list(range(2, 17))  # gapless, in queue order
    for i, tx in enumerate(txs):
        info = durable.tx_info(tx)
        assert info is not None and [(o.key, o.op) for o in info.operations] == [(f"k{i}", "put")]
        assert ns.get(f"k{i}").tx == tx  # type: ignore[union-attr]
    assert durable.verify().ok


def test_writes_queued_while_a_group_runs_join_its_commit(durable: Store) -> None:
    """Before committing, the leader takes the writes that queued while its members ran: no
    timer, just what is waiting by then."""
    ns = durable.namespace("n")
    backend = durable._backend
    entered, release = threading.Event(), threading.Event()

    def small_held_write(txn: Any) -> int:  # one operation: the queue can join its group
        entered.set()
        release.wait()
        return 0

    first = threading.Thread(target=backend.write, args=(small_held_write,), kwargs={"cost": 1})
    first.start()
    entered.wait()
    results: dict[str, Any] = {}

    def put(i: int) -> None:
        results[f"w{i}"] = ns.put({f"k{i}": i})

    threads = []
    for i in range(5):
        before = len(backend._groups._queue)
        threads.append(threading.Thread(target=put, args=(i,)))
        threads[-1].start()
        while len(backend._groups._queue) == before:
            time.sleep(0.0005)
    release.set()
    for th in [first, *threads]:
        th.join()
    assert counters(durable) == (6, 1, 1)  # the held write and the five queued: one commit, one flush
    assert [results[f"w{i}"] for i in range(5)] == [1, 2, 3, 4, 5]
    assert durable.verify().ok


def test_members_see_each_other_in_queue_order(durable: Store) -> None:
    """The chain hash and latest_tx are read and written inside each member: later members see
    earlier ones, so expects, counters and the chain come out as if written one by one."""
    ns = durable.namespace("n")
    tx0 = ns.put({"k": 0})
    with Gathering(durable) as g:
        def bump(expected: int, value: int) -> Callable[[], Any]:
            def run() -> int:
                with durable.transaction() as t:
                    t.expect("n", "k", tx=expected)
                    t.put("n", "k", value)
                return t.tx  # type: ignore[return-value]
            return run
        g.add("a", bump(tx0, 1))
        g.add("b", bump(tx0 + 1, 2))  # expects what "a" wrote, in the same group
        g.add("c", bump(tx0 + 2, 3))
    assert [g.results[n] for n in "abc"] == [tx0 + 1, tx0 + 2, tx0 + 3]
    assert ns.get("k").value == 3  # type: ignore[union-attr]
    assert ns.info().key_count == 1  # type: ignore[union-attr]
    assert durable.verify().ok


def test_a_failing_member_rolls_back_alone(durable: Store) -> None:
    ns = durable.namespace("n")
    tx0 = ns.put({"k": 0})
    backend = durable._backend

    def raising(txn: Any) -> None:
        txn.put(b"junk", b"written, then a bug", db=backend.meta)
        raise ZeroDivisionError("a bug in fn")

    def lmdb_refuses(txn: Any) -> None:
        txn.put(b"junk2", b"x", db=backend.meta)
        txn.put(b"", b"x", db=backend.meta)  # LMDB refuses an empty key

    def conflicting() -> int:
        with durable.transaction() as t:
            t.expect("n", "k", tx=tx0 + 99)
            t.put("n", "k", "never")
        return 0

    before = counters(durable)
    with Gathering(durable) as g:
        g.add("ok1", lambda: ns.put({"a": 1}))
        g.add("bug", lambda: backend.write(raising, cost=1))
        g.add("ok2", lambda: ns.put({"b": 2}))
        g.add("conflict", conflicting)
        g.add("lmdb", lambda: backend.write(lmdb_refuses, cost=1))
        g.add("ok3", lambda: ns.put({"c": 3}))
    _, commits, syncs = (a - b for a, b in zip(counters(durable), before, strict=True))
    assert (commits, syncs) == (2, 1)
    assert [g.results[n] for n in ("ok1", "ok2", "ok3")] == [tx0 + 1, tx0 + 2, tx0 + 3]
    assert type(g.results["bug"]) is ZeroDivisionError  # its own exception, not wrapped
    assert isinstance(g.results["conflict"], Conflict)
    assert isinstance(g.results["lmdb"], StorageError)
    assert backend.read(lambda txn: (txn.get(b"junk", db=backend.meta), txn.get(b"junk2", db=backend.meta))) == (
        None, None)
    assert ns.get("k").value == 0  # type: ignore[union-attr]
    assert durable.latest_tx == tx0 + 3 and durable.verify().ok


def test_a_rejected_write_never_joins_a_group(durable: Store) -> None:
    with Store.open(durable.path + "-limits", limits=type(durable.limits)(max_value_bytes=10)) as limited:
        with pytest.raises(ValueTooLarge, match="value is 102 bytes encoded; the limit is 10"):
            limited.namespace("n").put({"k": "x" * 100})
        assert counters(limited) == (0, 0, 0)


def test_full_map_in_the_middle_of_a_group_reruns_it(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", map_size=1 << 20) as store:
        ns = store.namespace("n")
        blob = b"x" * 100_000
        with Gathering(store) as g:
            for i in range(20):  # 2 MB in one group, into a 1 MiB map
                g.add(f"w{i}", lambda i=i: ns.put({f"k{i}": blob}))
        assert [g.results[f"w{i}"] for i in range(20)] == list(range(1, 21))
        assert store.stats()["map_size"] >= 2 << 20
        assert all(ns.get(f"k{i}").value == blob for i in range(20))  # type: ignore[union-attr]
        assert store.stats()["commits"] == 2 and store.verify().ok


def test_new_namespaces_in_a_group_rerun_after_growth(tmp_path: Path) -> None:
    """A member reads a namespace an earlier member of its group created; the group is rolled
    back for growth and rerun: the namespace ids the store cached from the discarded attempt are
    forgotten, and every namespace reads back what was written to it."""
    with Store.open(tmp_path / "s", map_size=1 << 20) as store:
        blob = b"y" * 120_000
        with Gathering(store) as g:
            for i in range(12):
                g.add(f"w{i}", lambda i=i: store.namespace(f"ns{i % 4}").put({f"k{i}": blob}))
        for i in range(12):
            assert store.namespace(f"ns{i % 4}").get(f"k{i}").value == blob  # type: ignore[union-attr]
        assert sorted(n.name for n in store.namespaces()) == ["ns0", "ns1", "ns2", "ns3"]
        assert store.verify().ok


def test_sync_and_no_sync_writes_share_a_group(durable: Store) -> None:
    ns = durable.namespace("n")
    before = counters(durable)
    with Gathering(durable) as g:
        g.add("a", lambda: ns.put({"a": 1}, sync=False))
        g.add("b", lambda: ns.put({"b": 1}))
    assert tuple(a - b for a, b in zip(counters(durable), before, strict=True)) == (3, 2, 1)
    before = counters(durable)
    with Gathering(durable) as g:
        g.add("a", lambda: ns.put({"a": 2}, sync=False))
        g.add("b", lambda: ns.put({"b": 2}, sync=False))
    assert tuple(a - b for a, b in zip(counters(durable), before, strict=True)) == (3, 2, 0)


def test_a_lone_write_is_a_group_of_one(durable: Store) -> None:
    ns = durable.namespace("n")
    for i in range(5):
        ns.put({"k": i})
    ns.put({"k": 9}, sync=False)
    assert counters(durable) == (6, 6, 5)


def test_group_size_is_bounded_by_operations(durable: Store) -> None:
    ns = durable.namespace("n")
    durable.namespace("other").put({"k": 1})
    half = MAX_GROUP_COST // 2 + 1
    before = counters(durable)
    with Gathering(durable) as g:
        g.add("a", lambda: ns.put({f"a{i}": i for i in range(half)}))
        g.add("b", lambda: ns.put({f"b{i}": i for i in range(half)}))  # a and b do not fit together
        g.add("c", lambda: ns.put({"c": 1}))
        g.add("drop", lambda: durable.drop_namespace("other"))  # unknown cost: alone
        g.add("d", lambda: ns.put({"d": 1}))
    _, commits, _ = (a - b for a, b in zip(counters(durable), before, strict=True))
    assert commits == 5  # held, [a], [b, c], [drop], [d]
    assert [g.results[n] for n in ("a", "b", "c", "drop", "d")] == [2, 3, 4, 5, 6]


def test_expects_count_in_the_cost_that_bounds_a_group(durable: Store) -> None:
    """A write costs the items it stores plus the expects it reads: a transaction of one put and
    ``half - 1`` expects does not fit in a group beside a put of ``half`` items."""
    ns = durable.namespace("n")
    half = MAX_GROUP_COST // 2 + 1

    def guarded() -> int | None:
        with durable.transaction() as t:
            t.put("n", "t", 1)
            for i in range(half - 1):
                t.expect("n", f"e{i}", tx=0)
        return t.tx

    before = counters(durable)
    with Gathering(durable) as g:
        g.add("a", lambda: ns.put({f"a{i}": i for i in range(half)}))
        g.add("t", guarded)
    _, commits, _ = (a - b for a, b in zip(counters(durable), before, strict=True))
    assert commits == 3  # held, [a], [t]
    assert [g.results[n] for n in ("a", "t")] == [1, 2]


def test_every_run_of_a_transaction_counts_in_its_cost(durable: Store) -> None:
    """A transaction of several runs (here one put in ``x``, then ``half - 1`` in ``n``) costs the
    items of all of them, not of its first: it does not fit in a group beside a put of ``half`` items."""
    ns = durable.namespace("n")
    half = MAX_GROUP_COST // 2 + 1

    def two_runs() -> int | None:
        with durable.transaction() as t:
            t.put("x", "first", 1)
            for i in range(half - 1):
                t.put("n", f"t{i}", i)
        return t.tx

    before = counters(durable)
    with Gathering(durable) as g:
        g.add("a", lambda: ns.put({f"a{i}": i for i in range(half)}))
        g.add("t", two_runs)
    _, commits, _ = (a - b for a, b in zip(counters(durable), before, strict=True))
    assert commits == 3  # held, [a], [t]
    assert [g.results[n] for n in ("a", "t")] == [1, 2]


def test_a_write_inside_a_write_is_refused(durable: Store) -> None:
    backend = durable._backend
    with pytest.raises(RuntimeError, match="must not start another write"):
        backend.write(lambda txn: backend.write(lambda inner: None))
    assert durable.namespace("n").put({"k": 1}) == 1


def test_an_interrupt_in_the_committing_thread_strands_no_one(durable: Store) -> None:
    class Interrupt(BaseException):
        pass

    def interrupted(txn: Any) -> None:
        raise Interrupt

    ns = durable.namespace("n")
    with Gathering(durable) as g:
        g.add("a", lambda: ns.put({"a": 1}))
        g.add("boom", lambda: durable._backend.write(interrupted, cost=1))
        g.add("b", lambda: ns.put({"b": 1}))
    # The committing thread is "a"'s: the interrupt is raised there; the others are told.
    assert isinstance(g.results["a"], Interrupt)
    assert isinstance(g.results["boom"], RuntimeError) and isinstance(g.results["b"], RuntimeError)
    assert durable.latest_tx == 0
    assert ns.put({"c": 1}) == 1 and durable.verify().ok


def test_a_closed_store_fails_the_queued_writes(durable: Store) -> None:
    ns = durable.namespace("n")
    closer = threading.Thread(target=durable.close)
    with Gathering(durable) as g:
        g.add("a", lambda: ns.put({"a": 1}))
        closer.start()
        while not durable._backend._closed:
            time.sleep(0.0005)
    closer.join()
    assert g.results["a"].code == "STORE_CLOSED"


def test_many_threads_many_writes(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s") as store:
        threads, per = 16, 25
        barrier = threading.Barrier(threads)
        got: dict[int, list[int]] = {}

        def writer(t: int) -> None:
            ns = store.namespace(f"t{t % 3}")
            barrier.wait()
            got[t] = [ns.put({f"{t}-{i}": i}, sync=i % 3 != 0) for i in range(per)]

        pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        txs = sorted(tx for seq in got.values() for tx in seq)
        assert txs == list(range(1, threads * per + 1))
        for t, seq in got.items():
            assert seq == sorted(seq)  # one thread's writes commit in its order
            for i, tx in enumerate(seq):
                assert store.namespace(f"t{t % 3}").get(f"{t}-{i}").tx == tx  # type: ignore[union-attr]
        writes, commits, _ = counters(store)
        assert writes == threads * per and commits < writes  # groups of more than one formed
        assert store.verify().ok


def test_nested_transactions_are_allowed_by_the_environment(tmp_path: Path) -> None:
    """Group commit needs nested write transactions, which LMDB refuses with MDB_WRITEMAP."""
    with Store.open(tmp_path / "s") as store:
        env = store._backend.env
        assert not env.flags()["writemap"]
        with env.begin(write=True) as parent:
            child = env.begin(write=True, parent=parent)
            child.abort()
    with pytest.raises(lmdb.Error, match="MDB_BAD_TXN"):
        other = lmdb.open(str(tmp_path / "w"), writemap=True)
        with other.begin(write=True) as parent:
            other.begin(write=True, parent=parent)


def test_a_resize_waits_for_a_group_that_rolls_a_member_back(durable: Store) -> None:
    """Rolling back a member waits until the committing thread is alone in the gate. A thread
    waiting to resize the map (adopting another process's growth) must not get in meanwhile: it
    would find the group's write transaction open. It resizes after the group, and the group's
    outcomes are as if it had not waited. The failing write runs twice (directly in the group's
    transaction, then in a nested one after that attempt is rolled back), each time with a resize
    waiting for it: the first resize gets in between the attempts, the second after the commit."""
    ns = durable.namespace("n")
    backend = durable._backend
    resizer: list[threading.Thread] = []
    errors: list[BaseException] = []

    def grow() -> None:
        try:
            backend._grow()
        except BaseException as exc:
            errors.append(exc)

    def failing_while_a_resize_waits(txn: Any) -> None:
        resizer.append(threading.Thread(target=grow))
        resizer[-1].start()
        while not backend._gate._resizing:  # the resize now waits for this group to leave
            time.sleep(0.0005)
        raise ZeroDivisionError("fails, so its transaction is rolled back")

    map_size = durable.stats()["map_size"]
    with Gathering(durable) as g:
        g.add("a", lambda: ns.put({"a": 1}))
        g.add("bad", lambda: backend.write(failing_while_a_resize_waits, cost=1))
        g.add("b", lambda: ns.put({"b": 1}))
    for thread in resizer:
        thread.join()
    assert errors == [] and len(resizer) == 2
    assert (g.results["a"], g.results["b"]) == (1, 2)
    assert type(g.results["bad"]) is ZeroDivisionError
    assert durable.stats()["map_size"] == 4 * map_size
    assert ns.get("a").tx == 1 and ns.get("b").tx == 2 and durable.verify().ok  # type: ignore[union-attr]
