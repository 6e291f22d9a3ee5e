"""Streams on a store on etcd answer as on LMDB: the same operations on an LMDB store and on a store on the
module's 3-member etcd cluster (same settable clock) give the same events, cursors, pages, txs, infos and
errors (code, message, details), and the same tx log, hash chain and ``head()``.

Also: the etcd key layout of streams (docs/design.md, "Streams on etcd"), history export/import of stream
txs both ways (LMDB -> etcd -> LMDB keeps ``head()``), random histories of publishes, drops, creations and
key writes (hypothesis, modest), and the HTTP stream routes through the in-process app on both stores.
Each test writes a fresh prefix of the module's one cluster.
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import ormsgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Store, errors, export_history, import_history
from engine.idempotency import Claim, Replay
from server.app import create_app
from tests.engine.clock import Clock
from tests.server.conftest import Client

from .cluster import EtcdCluster

_prefixes = itertools.count()


def _open_etcd(cluster: EtcdCluster, clock: Clock) -> Store:
    return Store.open(cluster.store_url(f"streams/{next(_prefixes)}"), clock=clock)


@pytest.fixture
def both(etcd_cluster: EtcdCluster, tmp_path: Path, clock: Clock) -> Iterator[tuple[Store, Store]]:
    """``(lmdb, etcd)``: two empty stores reading one clock."""
    with Store.open(tmp_path / "lmdb", clock=clock) as lmdb, _open_etcd(etcd_cluster, clock) as etcd:
        yield lmdb, etcd


def shown(value: Any) -> Any:
    """A comparable form of an answer (a log entry's class differs between backends, not its fields)."""
    if hasattr(value, "operations") and hasattr(value, "hash"):
        return ("tx", value.tx, value.time_us, value.note, value.operations, value.hash)
    if isinstance(value, list):
        return [shown(v) for v in value]
    return value


def answer(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", shown(call()))
    except errors.EngineError as exc:
        return ("error", type(exc).__name__, exc.code, exc.message, exc.details)
    except Replay as replay:
        return ("replay", replay.answer)


def run_on(store: Store, steps: list[Callable[[Store], Any]]) -> list[Any]:
    return [answer(lambda step=step: step(store)) for step in steps]


def _claim(key: str, request: Any) -> Claim:
    fingerprint = hashlib.sha256(repr(request).encode()).digest()
    return Claim(key, fingerprint, lambda result, _: repr(result).encode())


def _log(store: Store) -> list[Any]:
    return [shown(store.tx_info(tx)) for tx in range(1, store.latest_tx + 1)] + [shown(store.changes())]


STEPS: list[Callable[[Store], Any]] = [
    lambda s: s.streams(),
    lambda s: s.stream("orders").read(),
    lambda s: s.stream_info("orders"),
    lambda s: s.create_stream("orders"),
    lambda s: s.create_stream("orders"),  # NAMESPACE_EXISTS
    lambda s: s.create_stream("bad/name"),  # INVALID_NAMESPACE... as LMDB words it
    lambda s: s.stream("orders").publish([{"id": 1}, b"\x00\x01", "three", None, 5], note={"by": "ana"}),
    lambda s: s.namespace("keys").put({"k": 1}),
    lambda s: s.stream("orders").publish([6]),
    lambda s: s.stream("other").publish([[1, 2], {"x": True}]),
    lambda s: s.stream("orders").publish([]),  # EMPTY_BATCH, nothing written
    lambda s: s.stream("orders").publish("one"),  # INVALID_PARAMETERS: a single value
    lambda s: s.stream("orders").publish([1, float("nan"), 2, float("inf")]),  # each bad event listed
    lambda s: s.stream("orders").publish([1], note="no"),
    lambda s: s.stream("orders").read(),
    lambda s: s.stream("orders").read(limit=2),
    lambda s: s.stream("orders").read(cursor="1:1", limit=2),
    lambda s: s.stream("orders").read(cursor="1:4", limit=2),
    lambda s: s.stream("orders").read(start_tx=1, end_tx=2),
    lambda s: s.stream("orders").read(start_tx=3),
    lambda s: s.stream("orders").read(start_tx=0, end_tx=0),
    lambda s: s.stream("orders").read(start_tx=99),  # FUTURE_TX
    lambda s: s.stream("orders").read(end_tx=99),
    lambda s: s.stream("orders").read(cursor="x"),
    lambda s: s.stream("orders").read(start_tx=1, cursor="1"),
    lambda s: s.stream("orders").read(limit=0),
    lambda s: s.stream("orders").read(start_tx=-1),
    lambda s: s.stream("nothing").read(start_tx=2),
    lambda s: s.streams(),
    lambda s: s.stream("orders").info(),
    lambda s: s.stream("orders").publish([7, 8, 9], idempotency=_claim("p-1", "p-1")),
    lambda s: s.stream("orders").publish([7, 8, 9], idempotency=_claim("p-1", "p-1")),  # a replay: no tx
    lambda s: s.stream("orders").publish([7], idempotency=_claim("p-1", "other")),  # IDEMPOTENCY_KEY_REUSED
    lambda s: s.latest_tx,
    lambda s: s.drop_stream("orders", note={"why": "done"}),  # a tx of its own
    lambda s: s.drop_stream("orders"),  # NAMESPACE_NOT_FOUND
    lambda s: s.stream("orders").read(start_tx=0),  # dropped: empty
    lambda s: s.stream_info("orders"),
    lambda s: s.create_stream("empty"),
    lambda s: s.drop_stream("empty", note={"n": 1}),  # no events: no tx, the latest tx returned
    lambda s: s.create_stream("empty", idempotency=_claim("c-1", "c-1")),
    lambda s: s.create_stream("empty", idempotency=_claim("c-1", "c-1")),
    lambda s: s.stream("orders").publish([10]),  # back after the drop: only the new events
    lambda s: s.stream("orders").read(start_tx=0),
    lambda s: s.stream("orders").read(cursor="5:0"),
    lambda s: s.stream_info("orders"),
    lambda s: s.drop_stream("orders", idempotency=_claim("d-1", "d-1")),
    lambda s: s.drop_stream("orders", idempotency=_claim("d-1", "d-1")),
    lambda s: s.drop_stream("missing", idempotency=_claim("d-2", "d-2")),
    lambda s: s.streams(),
    lambda s: list(s.stream("other").follow(start_tx=0, timeout=0)),
    lambda s: list(s.stream("other").follow(cursor="4:0", timeout=0)),
    lambda s: s.stream("other").publish([b"z"] * 3),
    lambda s: s.stream("other").read(start_tx=0, limit=1),
    lambda s: s.stream("other").read(cursor="4:0", limit=2),
    lambda s: s.head(),
]


def test_every_stream_answer_is_lmdbs(both: tuple[Store, Store], clock: Clock) -> None:
    lmdb, etcd = both
    answers = []
    for store in (lmdb, etcd):
        clock.now = 1_800_000_000.0
        got = []
        for step in STEPS:
            got.append(answer(lambda step=step, store=store: step(store)))
            clock.now += 1.5
        answers.append(got)
    for i, (want, got) in enumerate(zip(*answers, strict=True)):
        assert (i, got) == (i, want)
    assert _log(etcd) == _log(lmdb)
    assert (etcd.head(), etcd.verify().ok) == (lmdb.head(), True)


def test_the_etcd_keys_of_a_stream_are_as_documented(both: tuple[Store, Store], clock: Clock,
                                                     etcd_cluster: EtcdCluster) -> None:
    _, store = both
    prefix = store.url.prefix.encode()  # type: ignore[attr-defined]
    store.create_stream("s")  # created at T0
    clock.now += 1
    assert store.stream("s").publish([1, b"\x02"], note={"n": 1}) == 1
    clock.now += 1
    assert store.drop_stream("s") == 2
    client = store.storage().client  # type: ignore[attr-defined]
    kvs = {kv.key: kv.value for kv in client.range(prefix + b"/s/", prefix + b"/s0").kvs}
    t0 = round(1_800_000_000 * 1e6)
    assert {k: ormsgpack.unpackb(v) for k, v in kvs.items()} == {prefix + b"/s/s": [t0, t0 + 2_000_000, 2, 0, 0,
                                                                                      True, 2, 0, 0]}
    kvs = {kv.key: kv.value for kv in client.range(prefix + b"/e/", prefix + b"/e0").kvs}
    assert kvs == {prefix + b"/e/s/0000000000000001": bytes.fromhex("92 03 92 c4 01 01 c4 03 c4 01 02"),
                   prefix + b"/e/s/0000000000000002": bytes.fromhex("92 04 90")}  # [op, [record, ...]]
    logged = [msgpack.unpackb(kv.value, raw=False)[2] for kv in client.range(prefix + b"/tx/", prefix + b"/tx0").kvs]
    assert sorted(logged) == [[["s", 3, 2, 1]], [["s", 4, 0, 2]]]


def test_the_clock_stepping_back_and_many_events_chain_as_on_lmdb(both: tuple[Store, Store], clock: Clock) -> None:
    heads = []
    for store in both:
        clock.now = 1_800_000_000.0
        store.stream("big").publish(list(range(1000)))
        clock.now -= 5  # the commit time is clamped to the previous tx's
        store.stream("big").publish([{"i": i} for i in range(300)])
        page = store.stream("big").read(cursor="1:997", limit=5)
        heads.append((store.head(), page, store.stream_info("big"), shown(store.tx_info(2))))
    assert heads[1] == heads[0]


def test_a_history_of_streams_goes_lmdb_to_etcd_to_lmdb_keeping_head(both: tuple[Store, Store], clock: Clock,
                                                                      tmp_path: Path) -> None:
    lmdb, etcd = both
    lmdb.stream("a").publish([1, b"\x00", {"x": [1]}], note={"n": 1})
    clock.now += 1
    lmdb.namespace("ns").put({"k": 1})
    lmdb.create_stream("created")
    lmdb.stream("b").publish(["b"])
    clock.now += 1
    lmdb.drop_stream("a", note={"drop": 1})
    lmdb.stream("a").publish([2])
    lmdb.create_stream("gone")
    lmdb.drop_stream("gone")
    rows = list(export_history(lmdb))
    assert rows[0]["streams"] == ["a", "b", "created"]
    clock.now += 10  # the imports create "created" now, on both
    with Store.open(tmp_path / "copy", clock=clock) as copy:
        reports = [import_history(s, rows) for s in (copy, etcd)]
        assert [(r.first_tx, r.last_tx, r.txs, r.items) for r in reports] == [(1, 5, 5, 6)] * 2
        assert (etcd.head(), etcd.verify().ok) == (lmdb.head(), True)
        assert etcd.streams() == copy.streams()
        for name in ("a", "b", "created", "gone"):
            assert etcd.stream(name).read(start_tx=0) == lmdb.stream(name).read(start_tx=0)
    back = list(export_history(etcd))
    assert back == rows
    with Store.open(tmp_path / "back", clock=clock) as again:
        import_history(again, back)
        assert again.head() == lmdb.head()
        assert [i.name for i in again.streams()] == ["a", "b", "created"]


def test_a_renumbered_import_of_stream_txs_and_a_bad_one(both: tuple[Store, Store], clock: Clock,
                                                         tmp_path: Path) -> None:
    lmdb, etcd = both
    lmdb.stream("a").publish([1, 2])
    lmdb.namespace("ns").put({"k": 1})
    rows = list(export_history(lmdb))
    etcd.namespace("mine").put({"m": 1})
    with Store.open(tmp_path / "other", clock=clock) as other:
        other.namespace("mine").put({"m": 1})
        reports = [import_history(s, rows, renumber=True) for s in (other, etcd)]
        assert [(r.first_tx, r.last_tx, r.txs, r.items) for r in reports] == [(2, 3, 2, 3)] * 2
        assert etcd.stream("a").read() == other.stream("a").read()
        bad = [rows[0], {**rows[1], "ops": [{"stream": "a", "op": "publish", "events": [{"nodata": 1}]}]}]
        refusals = [answer(lambda s=s: import_history(s, bad, renumber=True)) for s in (other, etcd)]
        assert refusals[1] == refusals[0]
        assert etcd.latest_tx == 3


# -- random histories -------------------------------------------------------------------------------

values = st.one_of(st.integers(-3, 3), st.text(max_size=3), st.binary(max_size=3), st.none(),
                   st.lists(st.integers(0, 2), max_size=2))
STREAMS = ["s", "t"]
ops = st.one_of(
    st.tuples(st.just("publish"), st.sampled_from(STREAMS), st.lists(values, min_size=1, max_size=4)),
    st.tuples(st.just("publish"), st.sampled_from(STREAMS), st.lists(values, min_size=1, max_size=4)),
    st.tuples(st.just("drop"), st.sampled_from(STREAMS), st.just([])),
    st.tuples(st.just("create"), st.sampled_from(STREAMS), st.just([])),
    st.tuples(st.just("put"), st.just("ns"), st.lists(values, min_size=1, max_size=2)),
)


def _apply(store: Store, op: tuple[str, str, list[Any]]) -> Any:
    kind, name, data = op
    if kind == "publish":
        return store.stream(name).publish(data)
    if kind == "drop":
        return store.drop_stream(name)
    if kind == "create":
        return store.create_stream(name)
    return store.namespace(name).put({f"k{i}": v for i, v in enumerate(data)})


def _pages(store: Store, limit: int) -> list[Any]:
    out: list[Any] = [store.streams()]
    for name in STREAMS:
        for start in range(store.latest_tx + 1):
            page = store.stream(name).read(start_tx=start, limit=limit)
            out.append(page)
            while page.more:
                page = store.stream(name).read(cursor=page.cursor, limit=limit)
                out.append(page)
    return out


def _same_answers(etcd_cluster: EtcdCluster, history: list[Any], limit: int) -> None:
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "lmdb", clock=clock) as lmdb, \
            _open_etcd(etcd_cluster, clock) as etcd:
        for op in history:
            assert answer(lambda op=op: _apply(etcd, op)) == answer(lambda op=op: _apply(lmdb, op))
            clock.now += 1
        assert _pages(etcd, limit) == _pages(lmdb, limit)
        assert _log(etcd) == _log(lmdb)
        assert etcd.head() == lmdb.head()


_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}


@settings(max_examples=6, **_SETTINGS)  # type: ignore[arg-type]
@given(history=st.lists(ops, min_size=1, max_size=8), limit=st.integers(1, 3))
def test_random_stream_histories_answer_as_on_lmdb(etcd_cluster: EtcdCluster, history: list[Any],
                                                   limit: int) -> None:
    _same_answers(etcd_cluster, history, limit)


@pytest.mark.long
@settings(max_examples=150, **_SETTINGS)  # type: ignore[arg-type]
@given(history=st.lists(ops, min_size=1, max_size=20), limit=st.integers(1, 3))
def test_random_stream_histories_answer_as_on_lmdb_at_length(etcd_cluster: EtcdCluster, history: list[Any],
                                                             limit: int) -> None:
    _same_answers(etcd_cluster, history, limit)


# -- HTTP ----------------------------------------------------------------------------------------------

REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v4/namespace/stream", {}),
    ("POST", "/v4/namespace/stream", {"json": {"namespace": "s"}}),
    ("POST", "/v4/namespace/stream", {"json": {"namespace": "s"}}),
    ("GET", "/v4/namespace/stream/s", {}),
    ("POST", "/v4/stream/s/write", {"json": [{"data": {"a": 1}}, {"data": "AAE=", "binary": True}]}),
    ("POST", "/v4/stream/s/write", {"json": [{"data": 3}], "headers": {"Idempotency-Key": "w-1"}}),
    ("POST", "/v4/stream/s/write", {"json": [{"data": 3}], "headers": {"Idempotency-Key": "w-1"}}),
    ("POST", "/v4/stream/s/write", {"json": [{"data": 1}, {"nope": 2}, {"data": "!", "binary": True}]}),
    ("POST", "/v4/stream/s/write", {"json": []}),
    ("GET", "/v4/stream/s", {}),
    ("GET", "/v4/stream/s", {"query": {"limit": "1"}}),
    ("GET", "/v4/stream/s", {"query": {"cursor": "1:0", "limit": "1"}}),
    ("GET", "/v4/stream/s", {"query": {"start_tx": "1", "end_tx": "2"}}),
    ("GET", "/v4/stream/s", {"query": {"start_tx": "9"}}),
    ("GET", "/v4/stream/s", {"query": {"cursor": "zz"}}),
    ("GET", "/v4/namespace/stream", {}),
    ("GET", "/v4/namespace/stream/s", {}),
    ("DELETE", "/v4/namespace/stream/s", {}),
    ("DELETE", "/v4/namespace/stream/s", {}),
    ("GET", "/v4/namespace/stream/s", {}),
    ("GET", "/v4/stream/s", {"query": {"start_tx": "0"}}),
    ("GET", "/v4/stream/s/sse", {"query": {"start_tx": "99"}}),
]


def _strip(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: _strip(v) for k, v in body.items() if k not in ("duration", "instance")}
    if isinstance(body, list):
        return [_strip(v) for v in body]
    return body


def test_the_http_stream_routes_on_etcd_answer_as_on_lmdb(etcd_cluster: EtcdCluster, tmp_path: Path,
                                                          clock: Clock) -> None:
    answers = []
    for data in (str(tmp_path / "lmdb"), etcd_cluster.store_url(f"streams/{next(_prefixes)}")):
        clock.now = 1_800_000_000.0
        app = create_app(data, store_options={"clock": clock})
        try:
            client = Client(app)
            got = []
            for method, path, options in REQUESTS:
                response = client.request(method, path, **options)
                got.append((method, path, response.status, _strip(response.json())))
                clock.now += 1
            answers.append(got)
        finally:
            app.close()
    for want, got in zip(*answers, strict=True):
        assert got == want
    assert [a[2] for a in answers[1]] == [200, 201, 409, 200, 200, 200, 200, 400, 400, 200, 200, 200, 200, 400, 400,
                                          200, 200, 200, 404, 404, 200, 400]


# -- etcd's own limits and concurrent writers ------------------------------------------------------


def test_a_publish_over_one_etcd_request_is_batch_too_large_and_writes_nothing(both: tuple[Store, Store]) -> None:
    _, etcd = both
    events = [b"x" * (900 * 1024), b"y" * (900 * 1024)]  # each fits a request, the two do not (1.5 MiB)
    with pytest.raises(errors.BatchTooLarge) as raised:
        etcd.stream("s").publish(events)
    assert raised.value.details["limit"] == 3 * 512 * 1024 and raised.value.details["count"] == 2
    assert (etcd.latest_tx, etcd.streams()) == (0, [])
    assert etcd.stream("s").publish(events[:1]) == 1


def test_concurrent_publishes_each_take_a_tx_and_lose_no_event(both: tuple[Store, Store]) -> None:
    _, etcd = both
    from concurrent.futures import ThreadPoolExecutor

    def publish(i: int) -> tuple[int, int]:
        return etcd.stream("s" if i % 3 else "t").publish([i, {"i": i}]), i

    with ThreadPoolExecutor(4) as pool:
        done = dict(pool.map(publish, range(24)))  # tx -> i
    assert sorted(done) == list(range(1, 25))
    for name in ("s", "t"):
        page = etcd.stream(name).read(limit=1000)
        want = [(tx, j, data) for tx, i in sorted(done.items()) if ("s" if i % 3 else "t") == name
                for j, data in enumerate([i, {"i": i}])]
        assert [(e.tx, e.index, e.data) for e in page.events] == want
    last_s, last_t = (max(tx for tx, i in done.items() if bool(i % 3) == is_s) for is_s in (True, False))
    assert [(i.name, i.event_count, i.tx) for i in etcd.streams()] == [("s", 32, last_s), ("t", 16, last_t)]
    assert etcd.verify().ok


def _report(report: Any) -> Any:
    """A compaction report but for ``seconds`` and ``chunks`` (how the work was split: one call on etcd)."""
    return (report.horizon, report.freed, report.txs, report.pending)


def test_a_compaction_frees_events_below_the_horizon_as_on_lmdb(etcd_cluster: EtcdCluster, tmp_path: Path,
                                                                clock: Clock) -> None:
    from engine.etcd import EtcdClient

    with EtcdClient(etcd_cluster.endpoints) as client:
        client.delete_range(b"\0", b"\0")  # etcd compacts the whole cluster: the store must be alone on it
    answers = []
    for store in (Store.open(tmp_path / "lmdb", clock=clock), _open_etcd(etcd_cluster, clock)):
        clock.now = 1_800_000_000.0
        with store:
            store.stream("s").publish([1, b"\x02"])  # 1
            store.stream("u").publish(["gone"])  # 2
            store.drop_stream("u")  # 3: its event was already invisible
            store.stream("u").publish(["kept"])  # 4
            store.namespace("ns").put({"k": 1})  # 5
            store.stream("s").publish([3])  # 6
            got = [answer(lambda s=store: _report(s.compact(5)))]
            got += [answer(lambda s=store, step=step: step(s)) for step in ([
                lambda s: s.streams(),
                lambda s: s.stream("s").read(),
                lambda s: s.stream("s").read(start_tx=4),
                lambda s: s.stream("s").read(start_tx=3),  # TX_COMPACTED
                lambda s: s.stream("u").read(start_tx=4),
                lambda s: s.stream("s").publish([4]),
                lambda s: _report(s.compact(7)),
                lambda s: s.streams(),
                lambda s: s.stream("s").read(cursor="6"),
                lambda s: s.head(),
                lambda s: s.verify().ok,
            ])]
            answers.append(got)
    for want, got in zip(*answers, strict=True):
        assert got == want
    assert [(i.name, i.event_count, i.tx) for i in answers[1][1][1]] == [("s", 1, 6), ("u", 0, 4)]  # u's: freed


def test_a_publish_records_due_expiries_first_as_every_write_does(both: tuple[Store, Store], clock: Clock) -> None:
    answers = []
    for store in both:
        clock.now = 1_800_000_000.0
        store.namespace("ns").put({"a": 1, "b": 2}, ttl=1)  # 1
        clock.now += 2
        tx = store.stream("s").publish(["after the sweep"])  # 2: the sweep, 3: the publish
        answers.append((tx, _log(store), store.namespace_info("ns").key_count, store.stream("s").read()))
    assert answers[1] == answers[0]
    assert answers[1][0] == 3 and answers[1][1][1][3] == {"expired": True}


def test_streams_of_a_closed_store_are_store_closed_as_on_lmdb(both: tuple[Store, Store]) -> None:
    answers = []
    for store in both:
        stream = store.stream("s")
        store.close()
        answers.append([answer(call) for call in (
            lambda s=store: repr(s.stream("s")), lambda t=stream: t.publish([1]), lambda t=stream: t.read(),
            lambda s=store: s.streams(), lambda s=store: s.create_stream("t"), lambda s=store: s.drop_stream("s"))])
    codes = [[a[2] if a[0] == "error" else a for a in got] for got in answers]  # the backends word it apart
    assert codes[1] == codes[0] == [("ok", "Stream('s')")] + ["STORE_CLOSED"] * 5


def test_verify_names_events_rewritten_outside_strata_as_a_foreign_write(both: tuple[Store, Store]) -> None:
    """As for a key (tests/etcd/test_chain.py): etcd keeps tx 1's version, which still hashes as sealed; the
    put itself takes a revision no tx owns, which verify names."""
    lmdb, etcd = both
    for store in both:
        store.stream("s").publish([1, 2])
        store.namespace("ns").put({"k": 1})
    assert etcd.head() == lmdb.head()  # sealed
    storage = etcd.storage()  # type: ignore[attr-defined]
    revision = storage.client.put(storage.layout.stream_tx("s", 1), ormsgpack.packb([3, [b"\x01", b"\x03"]])).revision
    report = etcd.verify()
    assert (report.ok, report.checked, report.bad_tx, report.head_hash, report.problem) == (
        False, 2, 3, lmdb.head().hash, f"revision {revision} holds no tx log entry: a write to the cluster that is "
                                       "no Strata tx (the tx numbering is broken from here)")


def test_follow_on_etcd_yields_events_another_writer_publishes(both: tuple[Store, Store]) -> None:
    _, etcd = both
    import threading

    etcd.stream("s").publish(["before"])  # 1
    events = etcd.stream("s").follow(timeout=30)  # only what comes after tx 1; the timeout is a hang guard
    writer = threading.Thread(target=lambda: [etcd.stream("s").publish([i, i + 1]) for i in (10, 20)])
    writer.start()
    got = [next(events) for _ in range(4)]
    writer.join()
    events.close()  # type: ignore[attr-defined]
    assert [(e.tx, e.index, e.data) for e in got] == [(2, 0, 10), (2, 1, 11), (3, 0, 20), (3, 1, 21)]
