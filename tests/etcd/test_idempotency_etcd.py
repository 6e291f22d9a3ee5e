"""Idempotency keys on a store on etcd (engine/etcd/idempotency.py) answer as on LMDB.

One module-scoped 3-member cluster; each test has its own store prefix. The same claim sequences run on
an LMDB store and an etcd store with settable clocks: every result, replayed answer, error and the
latest tx must be equal. Concurrent attempts from threads commit once, and the answer names the tx that
holds the write. One HTTP check with the ``Idempotency-Key`` header through the in-process app.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Store, errors
from engine.idempotency import Claim, Replay
from server.app import create_app
from tests.engine.clock import Clock
from tests.server.conftest import Client

from .cluster import EtcdCluster

TTL = 60.0



@pytest.fixture
def url(etcd_cluster: EtcdCluster, request: pytest.FixtureRequest) -> str:
    return etcd_cluster.store_url("idem/" + request.node.name)


@pytest.fixture
def on_etcd(url: str, clock: Clock) -> Iterator[Store]:
    with Store.open(url, clock=clock, idempotency_ttl=TTL) as store:
        yield store


@pytest.fixture
def on_lmdb(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "lmdb", clock=clock, idempotency_ttl=TTL) as store:
        yield store


def _answer(result: Any, error: errors.EngineError | None) -> bytes:
    return repr((result, None if error is None else error.to_dict())).encode()


def claim(key: str, request: str, recorded: tuple[type[errors.EngineError], ...] = (errors.Conflict,)) -> Claim:
    return Claim(key, hashlib.sha256(request.encode()).digest(), _answer, "scope", recorded)


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", call())
    except Replay as replay:
        return ("replay", replay.answer)
    except errors.EngineError as exc:
        return ("error", exc.to_dict())


def _transaction(store: Store, c: Claim) -> int | None:
    with store.transaction(note={"t": 1}, idempotency=c) as t:
        t.put("a", "t", 1)
        t.delete("b", "gone")
    return t.tx


def _sequence(store: Store, clock: Clock) -> list[Any]:
    """The same claim sequence on either store: what each call answered, and the latest tx after it."""
    ns = store.namespace("a")
    steps: list[Callable[[], Any]] = [
        lambda: ns.put({"k": 1}, idempotency=claim("p", "put k=1")),
        lambda: ns.put({"k": 1}, idempotency=claim("p", "put k=1")),  # a retry: replayed, nothing written
        lambda: ns.put({"k": 2}, idempotency=claim("p", "put k=2")),  # another request: IDEMPOTENCY_KEY_REUSED
        lambda: ns.put({"k": 3}, expect={"k": 99}, idempotency=claim("c", "conflict")),  # recorded refusal
        lambda: ns.put({"k": 3}, expect={"k": 99}, idempotency=claim("c", "conflict")),
        lambda: ns.put({"k": 4}, expect={"k": 1}, idempotency=claim("c", "holds")),  # another request: reused
        lambda: ns.put({"x": 1}, ttl=5, idempotency=claim("x", "expiring")),
        lambda: setattr(clock, "now", clock.now + 10),  # x is due: the next write sweeps it first
        lambda: ns.put({"x": 1}, ttl=5, idempotency=claim("x", "expiring")),  # a replay sweeps nothing
        lambda: ns.delete(["absent"], idempotency=claim("n", "no-op")),  # no tx; the claim is still stored
        lambda: ns.delete(["absent"], idempotency=claim("n", "no-op")),
        lambda: ns.clear(["k"], idempotency=claim("cl", "clear")),
        lambda: ns.clear(["k"], idempotency=claim("cl", "clear")),
        lambda: _transaction(store, claim("t", "txn")),
        lambda: _transaction(store, claim("t", "txn")),
        lambda: store.create_namespace("b", idempotency=claim("cr", "create b")),
        lambda: store.create_namespace("b", idempotency=claim("cr", "create b")),
        lambda: store.create_namespace("b", idempotency=claim("cr2", "create b", (errors.NamespaceExists,))),
        lambda: store.create_namespace("b", idempotency=claim("cr2", "create b", (errors.NamespaceExists,))),
        lambda: store.drop_namespace("b", idempotency=claim("d1", "drop empty b")),  # no tx
        lambda: store.drop_namespace("b", idempotency=claim("d1", "drop empty b")),
        lambda: store.drop_namespace("a", idempotency=claim("d2", "drop a")),
        lambda: store.drop_namespace("a", idempotency=claim("d2", "drop a")),
        lambda: store.drop_namespace("a", idempotency=claim("d3", "drop a", (errors.NamespaceNotFound,))),
        lambda: store.drop_namespace("a", idempotency=claim("d3", "drop a", (errors.NamespaceNotFound,))),
        lambda: store.create_namespace("a", idempotency=claim("cr3", "create a again")),  # keeps a's last tx
        lambda: store.create_namespace("a", idempotency=claim("cr3", "create a again")),
        lambda: setattr(clock, "now", clock.now + TTL),  # every claim so far has expired
        lambda: ns.put({"k": 1}, idempotency=claim("p", "put k=2")),  # an expired claim counts as absent
        lambda: ns.put({"k": 1}, idempotency=claim("p", "put k=2")),
        lambda: ns.put({"k": 5}, expect={"k": 7}, idempotency=claim("c", "holds at 7")),  # "c" expired too
    ]
    out = []
    for step in steps:
        out.append((outcome(step), store.latest_tx))
        clock.now += 0.5
    return out


def test_claim_sequences_answer_as_on_lmdb(on_etcd: Store, on_lmdb: Store, clock: Clock) -> None:
    start = clock.now
    expected = _sequence(on_lmdb, clock)
    clock.now = start
    assert _sequence(on_etcd, clock) == expected
    # What the sequence must show, so that equality is not equality of two wrong answers:
    assert [o[0] for o, _ in expected[:6]] == ["ok", "replay", "error", "error", "replay", "error"]
    assert expected[0] == (("ok", 1), 1) and expected[1] == (("replay", b"(1, None)"), 1)
    assert expected[2][0][1]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert expected[8] == (("replay", b"(2, None)"), 2)  # x is due, but a replay sweeps nothing
    assert expected[9] == (("ok", 3), 3) and expected[10] == (("replay", b"(3, None)"), 3)  # 3: the sweep's tx
    assert expected[-3:] == [(("ok", 7), 7), (("replay", b"(7, None)"), 7), (("ok", 8), 8)]
    logged = [[(c.tx, c.note, c.time_us) for c in store.changes()] for store in (on_etcd, on_lmdb)]
    assert logged[0] == logged[1]


def test_concurrent_attempts_commit_once_and_the_answer_names_their_tx(on_etcd: Store) -> None:
    ns = on_etcd.namespace("a")
    barrier = threading.Barrier(8)
    results: list[tuple[Any, ...]] = []

    def idempotent() -> None:
        barrier.wait()
        results.append(outcome(lambda: ns.put({"once": 1}, idempotency=claim("race", "put once"))))

    def plain(i: int) -> None:
        barrier.wait()
        ns.put({f"plain:{i}": i})

    threads = [threading.Thread(target=idempotent) for _ in range(4)]
    threads += [threading.Thread(target=plain, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    committed = [r for r in results if r[0] == "ok"]
    assert len(committed) == 1 and len(results) == 4
    tx = committed[0][1]
    assert sorted(r for r in results if r[0] == "replay") == [("replay", repr((tx, None)).encode())] * 3
    assert on_etcd.latest_tx == 5  # four plain txs and one idempotent one
    entry = on_etcd.tx_info(tx)
    assert entry is not None and [op.key for op in entry.operations] == ["once"]


def test_an_expired_claim_is_replaced_by_the_next_write(on_etcd: Store, clock: Clock) -> None:
    ns = on_etcd.namespace("a")
    assert ns.put({"k": 1}, idempotency=claim("e", "first")) == 1
    clock.now += TTL - 1
    assert outcome(lambda: ns.put({"k": 2}, idempotency=claim("e", "second")))[1]["code"] == "IDEMPOTENCY_KEY_REUSED"
    clock.now += 1  # exactly the expiry: absent
    assert ns.put({"k": 2}, idempotency=claim("e", "second")) == 2
    assert outcome(lambda: ns.put({"k": 2}, idempotency=claim("e", "second"))) == ("replay", b"(2, None)")
    storage = on_etcd.storage()  # type: ignore[attr-defined]
    prefix = storage.layout.prefix + b"/i/"
    assert len(storage.client.range(prefix, prefix + b"\xff").kvs) == 1  # replaced, not added


def test_the_idempotency_key_header_replays_over_http_on_etcd(url: str) -> None:
    app = create_app(url)
    try:
        client = Client(app)
        write = {"json": [{"key": "k", "value": 1}], "headers": {"Idempotency-Key": "h-1"}}
        first = client.request("POST", "/v4/storage/a/write", **write)
        again = client.request("POST", "/v4/storage/a/write", **write)
        assert (first.status, first.json()["tx"], again.status, again.body) == (200, 1, 200, first.body)
        assert (again.headers["idempotent-replayed"], "idempotent-replayed" in first.headers) == ("true", False)
        other = client.request("POST", "/v4/storage/a/write", json=[{"key": "k", "value": 2}],
                               headers={"Idempotency-Key": "h-1"})
        assert (other.status, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
        assert app.store.latest_tx == 1
    finally:
        app.close()


def test_idempotent_writers_under_contention_each_commit_once_with_their_own_tx(on_etcd: Store) -> None:
    ns = on_etcd.namespace("a")
    barrier = threading.Barrier(8)
    answers: dict[str, Any] = {}

    def idempotent(w: int) -> None:
        barrier.wait()
        for i in range(5):
            key = f"w{w}:{i}"
            answers[key] = outcome(lambda key=key: ns.put({key: 1}, idempotency=claim(key, "put")))

    def plain(w: int) -> None:
        barrier.wait()
        for i in range(5):
            ns.put({f"p{w}:{i}": i})

    threads = [threading.Thread(target=idempotent, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=plain, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert on_etcd.latest_tx == 40 and len(answers) == 20
    for key, (kind, tx) in answers.items():
        entry = on_etcd.tx_info(tx)
        assert kind == "ok" and entry is not None and [op.key for op in entry.operations] == [key]


def test_concurrent_creates_and_drops_under_one_key_commit_once(on_etcd: Store) -> None:
    on_etcd.namespace("full").put({"k": 1})
    for call in (lambda: on_etcd.create_namespace("n", idempotency=claim("cr", "create n")),
                 lambda: on_etcd.drop_namespace("full", idempotency=claim("dr", "drop full"))):
        barrier = threading.Barrier(4)
        results: list[tuple[Any, ...]] = []

        def attempt(call: Callable[[], Any] = call, barrier: threading.Barrier = barrier,
                    results: list[tuple[Any, ...]] = results) -> None:
            barrier.wait()
            results.append(outcome(call))

        threads = [threading.Thread(target=attempt) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        committed = [r[1] for r in results if r[0] == "ok"]
        assert len(committed) == 1
        assert [r for r in results if r[0] != "ok"] == [("replay", repr((committed[0], None)).encode())] * 3
    assert on_etcd.latest_tx == 2 and [n.name for n in on_etcd.namespaces()] == ["n"]


def test_idempotent_drops_settle_while_other_namespaces_are_written(on_etcd: Store) -> None:
    for i in range(6):
        on_etcd.namespace(f"d{i}").put({"k": i})
    barrier = threading.Barrier(4)
    dropped: list[tuple[Any, ...]] = []

    def drops() -> None:
        barrier.wait()
        for i in range(6):
            dropped.append(outcome(lambda i=i: on_etcd.drop_namespace(f"d{i}", idempotency=claim(f"d{i}", "drop"))))

    def plain(w: int) -> None:
        barrier.wait()
        for i in range(10):
            on_etcd.namespace("busy").put({f"{w}:{i}": i})

    threads = [threading.Thread(target=drops)] + [threading.Thread(target=plain, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [kind for kind, _ in dropped] == ["ok"] * 6 and on_etcd.latest_tx == 6 + 6 + 30
    for i, (_, tx) in enumerate(dropped):
        entry = on_etcd.tx_info(tx)
        assert entry is not None and [(op.namespace, op.key) for op in entry.operations] == [(f"d{i}", "k")]
