"""The write batcher (server/write_batch.py): a worker's small writes, run in greenlets on one
thread, committed together, answered only once durable.

In process, on a real store: requests handed over together are answered from one commit and
one flush, each with its own tx or error; a request that writes twice, a failing request and a
request whose handler raises are answered without holding up the others. Live: ``strata serve``
as deployed (sync on, 2 workers) under concurrent writers, every acknowledged write read back.
The order of flush and acknowledgement under a system-call trace is
tests/reliability/test_flush_order.py's ``parked`` case.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import greenlet
import orjson
import pytest

from engine import Store
from engine.errors import EngineError
from server.write_batch import MAX_BATCH, WriteBatcher
from tests.reliability.helpers import start_synced_server
from tests.server.conftest import http_request, stop_server


class Batch:
    """A batcher over ``store`` whose requests are callables (``req()`` gives the answer's
    content); ``send(reqs)`` hands them over at once and returns {conn: (content, keep-alive)}."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.answers: dict[Any, tuple[bytes, bool]] = {}
        self._all = threading.Condition()
        self.batcher = WriteBatcher(lambda: store, self._answer, self._deliver)

    @staticmethod
    def _answer(conn: Any, req: Callable[[], Any]) -> tuple[bytearray, bool]:
        try:
            result = req()
        except EngineError as exc:
            return bytearray(exc.code.encode()), True
        return bytearray(orjson.dumps(result)), True

    def _deliver(self, answers: list[tuple[Any, bytearray, bool]]) -> None:
        with self._all:
            for conn, out, keepalive in answers:
                self.answers[conn] = (bytes(out), keepalive)
            self._all.notify_all()

    def send(self, reqs: list[Callable[[], Any]]) -> dict[Any, tuple[bytes, bool]]:
        """Hand ``reqs`` over while the batcher runs a request (the gate) that waits until all of
        them are queued: the gate's batch was taken before they arrived, so they are taken
        together, in the next batch."""
        first = len(self.answers)
        started, queued = threading.Event(), threading.Event()

        def gate() -> None:
            started.set()
            queued.wait(30)

        self.batcher.submit(("gate", first), gate)
        started.wait(30)
        for i, req in enumerate(reqs):
            self.batcher.submit(first + i, req)
        queued.set()
        with self._all:
            self._all.wait_for(lambda: len(self.answers) == first + len(reqs) + 1, timeout=60)
        return {conn: self.answers[conn] for conn in range(first, first + len(reqs))}


@pytest.fixture
def batch(tmp_path: Path) -> Any:
    store = Store.open(tmp_path / "db")
    store.create_namespace("n")
    b = Batch(store)
    yield b
    b.batcher.stop(timeout=30)
    store.close()


def test_requests_handed_over_together_share_one_commit_and_one_flush(batch: Batch) -> None:
    ns = batch.store.namespace("n")
    before = batch.store.stats()
    answers = batch.send([lambda i=i: ns.put({f"k{i}": i}) for i in range(10)])
    assert [answers[i][0] for i in range(10)] == [str(tx).encode() for tx in range(1, 11)]
    after = batch.store.stats()
    assert (after["writes"] - before["writes"], after["commits"] - before["commits"],
            after["syncs"] - before["syncs"]) == (10, 1, 1)
    assert (batch.batcher.commits, batch.batcher.requests) == (1, 11)  # the gate wrote nothing
    assert [ns.get(f"k{i}").tx for i in range(10)] == list(range(1, 11))


def test_requests_arriving_while_a_commit_waits_for_the_store_join_it(batch: Batch) -> None:
    """A commit waiting for its turn (here another thread's write holds the store, as another
    worker's commit and flush would) takes the requests that arrived meanwhile once it has the
    store: one commit for all, each with its own tx, answered together."""
    store, batcher = batch.store, batch.batcher
    ns = store.namespace("n")
    inside, release = threading.Event(), threading.Event()

    def hold(txn: Any) -> str:
        inside.set()
        release.wait(30)
        return "held"

    holder = threading.Thread(target=lambda: store._backend.write(hold, cost=1))
    holder.start()
    inside.wait(30)
    before = store.stats()
    batcher.submit(0, lambda: ns.put({"a": 0}))
    while batcher.commits == 0:  # its write parked and its commit waits for the held one
        threading.Event().wait(0.001)
    for i in (1, 2):
        batcher.submit(i, lambda i=i: ns.put({f"late{i}": i}))
    release.set()
    holder.join()
    with batch._all:
        batch._all.wait_for(lambda: len(batch.answers) == 3, timeout=60)
    assert {conn: batch.answers[conn] for conn in range(3)} == {0: (b"1", True), 1: (b"2", True), 2: (b"3", True)}
    after = store.stats()
    assert (batcher.commits, batcher.requests) == (1, 3)
    # the held write and its commit, then one commit for the three requests
    assert (after["writes"] - before["writes"], after["commits"] - before["commits"]) == (4, 2)
    assert [ns.get(k).tx for k in ("a", "late1", "late2")] == [1, 2, 3] and store.verify().ok


def test_a_batch_takes_at_most_max_batch_requests(batch: Batch) -> None:
    ns = batch.store.namespace("n")
    answers = batch.send([lambda i=i: ns.put({f"k{i}": i}) for i in range(MAX_BATCH + 1)])
    assert [int(answers[i][0]) for i in range(MAX_BATCH + 1)] == list(range(1, MAX_BATCH + 2))
    assert batch.batcher.commits == 2 and batch.store.verify().ok


def test_each_request_keeps_its_own_error_and_the_others_commit(batch: Batch) -> None:
    ns = batch.store.namespace("n")

    def broken() -> Any:
        raise RuntimeError("a bug in a handler")

    answers = batch.send([
        lambda: ns.put({"a": 1}),
        lambda: ns.put({"b": 1}, expect={"b": 5}),  # b was never written: CONFLICT
        broken,
        lambda: ns.put({"c": 1}),
    ])
    assert answers[0] == (b"1", True)
    assert answers[1] == (b"CONFLICT", True)
    assert answers[2] == (b"", False)  # no answer to give: the connection is closed
    assert answers[3] == (b"2", True)
    assert ns.get("b") is None and batch.store.latest_tx == 2


def test_a_request_writing_twice_is_answered_after_its_second_commit(batch: Batch) -> None:
    ns = batch.store.namespace("n")
    answers = batch.send([lambda: [ns.put({"x": 1}), ns.put({"x": 2})], lambda: ns.put({"y": 1})])
    assert answers[0][0] == b"[1,3]" and answers[1][0] == b"2"
    assert ns.get("x").value == 2 and batch.store.verify().ok


def test_greenlets_done_with_a_request_take_the_next_ones(batch: Batch) -> None:
    """A request's greenlet, once its answer is built (after a commit, or after an error), runs a
    later request instead of a new greenlet being made: each request still has one to itself."""
    ns = batch.store.namespace("n")
    ran: dict[int, Any] = {}

    def put(i: int) -> Any:
        ran[i] = greenlet.getcurrent()
        return ns.put({f"k{i}": i})

    def broken() -> Any:
        ran[-1] = greenlet.getcurrent()
        raise RuntimeError("a bug in a handler")

    first = batch.send([lambda i=i: put(i) for i in range(4)] + [broken])
    assert [first[i][0] for i in range(4)] == [b"1", b"2", b"3", b"4"] and first[4] == (b"", False)
    earlier = {id(g) for g in ran.values()}
    assert len(earlier) == 5  # one greenlet per request of a batch
    ran.clear()
    second = batch.send([lambda i=i: put(i) for i in range(4, 8)])
    assert [answer for answer, _ in second.values()] == [b"5", b"6", b"7", b"8"]
    assert len({id(g) for g in ran.values()}) == 4 and {id(g) for g in ran.values()} <= earlier
    assert [ns.get(f"k{i}").tx for i in range(8)] == list(range(1, 9)) and batch.store.verify().ok


def test_concurrent_http_writes_through_the_batcher_are_all_durable_and_exact(tmp_path: Path) -> None:
    server = start_synced_server(tmp_path)
    try:
        def client(c: int) -> list[tuple[int, str, float]]:
            done = []
            for i in range(10):
                key, value = f"c{c}-{i}", c + i / 8  # an exact binary fraction
                status, _, body = http_request(server.port, "POST", "/v4/storage/n/write",
                                               orjson.dumps([{"key": key, "value": value}]),
                                               {"Content-Type": "application/json"})
                assert status == 200, body
                done.append((orjson.loads(body)["tx"], key, value))
            return done

        with ThreadPoolExecutor(8) as pool:
            acked = [w for ws in pool.map(client, range(8)) for w in ws]
        txs = sorted(tx for tx, _, _ in acked)
        assert txs == list(range(txs[0], txs[0] + len(acked)))  # one tx each, gapless
        status, _, body = http_request(server.port, "POST", "/v4/storage/n/read",
                                       orjson.dumps({"keys": [k for _, k, _ in acked]}),
                                       {"Content-Type": "application/json"})
        assert status == 200
        got = {r["key"]: (r["tx"], r["value"]) for r in orjson.loads(body)["data"]}
        assert got == {k: (tx, v) for tx, k, v in acked}
    finally:
        stop_server(server.proc)
