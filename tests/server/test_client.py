"""The Python client (server.client) against a live 2-worker ``strata serve``: the engine's API, its
types and its exceptions over HTTP, paging, retries across a killed worker, idempotent writes, and
the SSE feed resumed after a dropped connection."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine import Item, Store, errors
from engine.history import Change, Version
from engine.records import ReadResult, Record
from engine.txlog import Operation
from server.client import RemoteStore, ServerError, connect, namespace
from server.client.problems import error_from_problem
from server.problems import from_engine_error
from tests.server.conftest import LiveServer


@pytest.fixture
def store(live_server: LiveServer) -> Iterator[RemoteStore]:
    with connect(f"http://127.0.0.1:{live_server.port}") as remote:
        yield remote


_names = iter(range(10**6))


def fresh(store: RemoteStore) -> Any:
    """A namespace no other test of this module writes."""
    return store.namespace(f"c{next(_names)}-{os.getpid()}")


def test_the_readme_example_prints_the_same_records_embedded_and_remote(store: RemoteStore, tmp_path: Path) -> None:
    def example(opened: Any) -> list[tuple[Any, ...]]:
        sample = opened.namespace("readme")
        tx1 = sample.put({"city:1": {"name": "Braavos"}, "logo": b"\x89PNG"})
        sample.clear(["city:1"]); sample.delete(["logo"])  # noqa: E702 - as the README writes it
        return [(r.key, r.value, r.tx - tx1) for r in sample.read(["city:1", "logo"], tx=tx1).records]

    with Store.open(tmp_path / "data") as embedded:
        assert example(store) == example(embedded) == [("city:1", {"name": "Braavos"}, 0), ("logo", b"\x89PNG", 0)]


def test_records_are_the_engines_types_and_values_round_trip_exactly(store: RemoteStore) -> None:
    ns = fresh(store)
    values = {"bytes": b"\x00\xff", "big": 2**64 - 1, "neg": -(2**63), "zero": -0.0, "float": 0.1, "null": None,
              "nested": {"b": [1, {"z": "é\U0001f600"}], "a": True}, "text": "", "k\x00 /é": 1}
    tx = ns.put(values)
    result = ns.read(list(values))
    assert isinstance(result, ReadResult) and result.tx == tx
    assert [type(r) for r in result.records] == [Record] * len(values)
    for rec in result.records:
        assert type(rec.value) is type(values[rec.key]) and repr(rec.value) == repr(values[rec.key])
        assert rec.binary == (rec.key == "bytes")
    assert list(result.records[0].value) == [0, 255]
    assert list(ns.read(["nested"]).records[0].value) == ["b", "a"]  # member order kept
    ns.clear(["text"])
    assert ns.get("text") == Record("text", None, tx + 1, False, True)
    assert ns.get("absent") is None


def test_put_options_metadata_and_fields(store: RemoteStore) -> None:
    ns = fresh(store)
    tx = ns.put([Item("a", 1, ttl=3600, metadata={"by": "me"}), Item("b", 2)], metadata="batch")
    got = ns.read(["a", "b"], metadata=True, fields=["created_at", "updated_at", "expire_time"]).records
    assert [(r.key, r.metadata) for r in got] == [("a", {"by": "me"}), ("b", "batch")]
    assert got[0].updated_at == got[0].created_at == store.tx_info(tx).time
    assert got[0].expire_time is not None and 3599 <= (got[0].expire_time - got[0].updated_at).total_seconds() <= 3600
    assert got[1].expire_time is None


def test_scans_page_with_the_cursor_at_one_tx(store: RemoteStore) -> None:
    ns = fresh(store)
    tx = ns.put({f"k{i:02}": i for i in range(25)})
    scan = ns.scan("k", page_size=4)
    ns.put({"k00": "later", "k99": "later"})  # not in the scan's snapshot
    assert scan.tx == tx
    assert [(r.key, r.value) for r in scan] == [(f"k{i:02}", i) for i in range(25)]
    assert [r.key for r in ns.scan("k", after="k20", limit=3, page_size=2)] == ["k21", "k22", "k23"]
    assert list(ns.scan("k", limit=0)) == []
    with pytest.raises(errors.FutureTx):
        ns.scan(tx=10**9)


def test_history_pages_with_the_cursor(store: RemoteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = fresh(store)
    txs = [ns.put({"h": i}) for i in range(5)]
    monkeypatch.setattr(namespace, "HISTORY_PAGE", 2)
    got = ns.history("h", limit=10)
    assert [type(v) for v in got] == [Version] * 5
    assert [(v.tx, v.value) for v in got] == [(tx, i) for i, tx in reversed(list(enumerate(txs)))]
    assert [v.tx for v in ns.history("h", order="asc", after=txs[0], limit=3)] == txs[1:4]
    assert [v.value for v in ns.iter_history("h")] == [4, 3, 2, 1, 0]


def test_history_versions_carry_note_metadata_and_expiry(store: RemoteStore) -> None:
    ns = fresh(store)
    when = datetime(2100, 1, 1, tzinfo=UTC)
    tx = ns.put([Item("m", {"v": 1}, metadata={"src": "etl"}, expiration=when.timestamp())], note={"by": "alice"})
    (version,) = ns.history("m")
    assert version == Version(tx, version.time, "put", {"v": 1}, False, {"by": "alice"}, {"src": "etl"}, when)


def test_diff_changes_and_the_tx_log(store: RemoteStore) -> None:
    ns = fresh(store)
    tx1 = ns.put({"a": 1, "b": 2})
    tx2 = ns.delete(["b"], note={"by": "ops", "why": "é"})
    assert list(ns.diff(tx1, tx2)) == [Change("b", "deleted", Record("b", 2, tx1), None)]
    changes = ns.changes(tx1 - 1)
    assert [(c.tx, c.note, c.operations) for c in changes] == [
        (tx1, None, [Operation(ns.name, "a", "put"), Operation(ns.name, "b", "put")]),
        (tx2, {"by": "ops", "why": "é"}, [Operation(ns.name, "b", "delete")])]
    info = store.tx_info(tx2)
    assert info is not None and info.note == {"by": "ops", "why": "é"} and info.hash == changes[1].hash
    assert store.tx_info(10**9) is None
    assert store.tx_at(info.time) >= tx2
    latest, digest = store.head()
    report = store.verify((latest, digest))
    assert report.ok and report.head_tx >= latest


def test_namespaces_are_listed_created_and_dropped(store: RemoteStore) -> None:
    name = fresh(store).name
    info = store.create_namespace(name)
    assert (info.name, info.key_count, info.tx) == (name, 0, 0)
    with pytest.raises(errors.NamespaceExists):
        store.create_namespace(name)
    store.namespace(name).put({"x": 1})
    assert [(i.name, i.key_count) for i in store.namespaces() if i.name == name] == [(name, 1)]
    tx = store.drop_namespace(name)
    assert store.namespace_info(name) is None and store.latest_tx >= tx
    with pytest.raises(errors.NamespaceNotFound):
        store.drop_namespace(name)


def test_a_transaction_commits_one_write_with_its_conditions(store: RemoteStore) -> None:
    ns = fresh(store)
    tx1 = ns.put({"a": 1})
    with store.transaction(note={"by": "t"}) as t:
        t.put(ns.name, "a", 2)
        t.clear(ns.name, "b")
        t.expect(ns.name, "a", tx=tx1)
        t.expect(ns.name, "b", tx=0)
    assert [(r.key, r.value, r.cleared) for r in ns.read(["a", "b"]).records] == [("a", 2, False), ("b", None, True)]
    before = store.latest_tx
    with pytest.raises(errors.Conflict) as failed, store.transaction() as t:
        t.delete(ns.name, "a")
        t.expect(ns.name, "a", tx=tx1)
    assert failed.value.details["conflicts"] == [{"namespace": ns.name, "key": "a", "expected": tx1,
                                                  "actual": t.tx or tx1 + 1}]
    assert store.latest_tx == before
    with pytest.raises(errors.InvalidParameters), store.transaction() as t:
        t.put(ns.name, "a", 1)
        t.put("other", "a", 1)


def test_writes_with_one_idempotency_key_commit_once(store: RemoteStore) -> None:
    ns = fresh(store)
    tx = ns.put({"a": 1}, idempotency_key="client-test-1")
    assert ns.put({"a": 1}, idempotency_key="client-test-1") == tx
    assert store.latest_tx == tx and [v.tx for v in ns.history("a")] == [tx]
    with pytest.raises(errors.IdempotencyKeyReused):
        ns.put({"a": 2}, idempotency_key="client-test-1")


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", sorted(set(errors.BY_CODE.values()), key=lambda c: c.code), ids=lambda c: c.code)
def test_every_engine_error_the_server_answers_raises_the_same_class(cls: type[errors.EngineError]) -> None:
    items = [{"index": 1, "key": "k", "code": cls.code, "message": "bad item"}]
    problem = from_engine_error(cls("what went wrong", errors=items, tx=7))
    exc = error_from_problem(problem.status, "application/problem+json", problem.body("/v4/storage/x/write"))
    assert type(exc) is cls
    assert (exc.code, exc.message, exc.details["tx"], exc.status) == (cls.code, "what went wrong", 7, problem.status)
    assert [(e["index"], e["key"], e["code"], e["message"]) for e in exc.details["errors"]] == [
        (1, "k", cls.code, "bad item")]


def _raw_write(store: RemoteStore, ns: str, body: bytes) -> Any:
    return store._http.json("POST", f"/v4/storage/{ns}/write", raw=body)


@pytest.mark.parametrize("case", [
    ("FUTURE_TX", lambda s, ns: ns.read(["a"], tx=10**12)),
    ("INVALID_PARAMETERS", lambda s, ns: ns.read(["a"], fields=["color"])),
    ("INVALID_NAMESPACE", lambda s, ns: s._http.json("POST", "/v4/storage/a%20b/read", {})),
    ("NAMESPACE_NOT_FOUND", lambda s, ns: s.drop_namespace(ns.name)),
    ("INVALID_KEY", lambda s, ns: ns.put({"": 1, "ok": 2})),
    ("KEY_TOO_LONG", lambda s, ns: ns.put({"ok": 1, "x" * 513: 2})),
    ("INVALID_VALUE", lambda s, ns: _raw_write(s, ns.name, b'[{"key": "k", "value": 1e400}]')),
    ("INVALID_EXPIRATION", lambda s, ns: ns.put({"k": 1}, expiration=1)),
    ("INVALID_EXPIRATION_TTL", lambda s, ns: ns.put({"k": 1}, ttl=0.01)),
    ("METADATA_TOO_LARGE", lambda s, ns: ns.put({"k": 1}, metadata="m" * 2000)),
    ("BATCH_TOO_LARGE", lambda s, ns: ns.put({f"k{i}": 0 for i in range(10_001)})),
    ("EMPTY_BATCH", lambda s, ns: _raw_write(s, ns.name, b"[]")),
    ("DUPLICATE_KEY", lambda s, ns: ns.put([("a", 1), ("a", 2)])),
    ("CONFLICT", lambda s, ns: ns.put({"a": 1}, expect={"a": 10**9})),
    ("NOT_FOUND", lambda s, ns: s._http.json("GET", "/v4/nowhere")),
    ("METHOD_NOT_ALLOWED", lambda s, ns: s._http.json("PUT", "/v4/head")),
    ("KEY_NOT_FOUND", lambda s, ns: s._http.json("GET", f"/v4/storage/{ns.name}/key", query={"key": "none"})),
], ids=lambda case: case[0])
def test_errors_over_http_raise_the_class_of_their_code(store: RemoteStore, case: Any) -> None:
    code, call = case
    ns = fresh(store)
    before = store.latest_tx
    with pytest.raises(errors.EngineError) as raised:
        call(store, ns)
    assert raised.value.code == code
    assert type(raised.value) is errors.BY_CODE.get(code, ServerError)
    assert store.latest_tx == before


def test_item_errors_name_every_bad_item(store: RemoteStore) -> None:
    with pytest.raises(errors.InvalidKey) as raised:
        fresh(store).put([("", 1), ("ok", 2), ("x" * 513, 3)])
    assert [(e["index"], e["code"]) for e in raised.value.details["errors"]] == [(0, "INVALID_KEY"),
                                                                               (2, "KEY_TOO_LONG")]


def test_what_json_cannot_carry_is_refused_before_sending(store: RemoteStore) -> None:
    before = store.latest_tx
    with pytest.raises(errors.InvalidKey) as raised:
        fresh(store).put({"ok": 1, "\ud800": 2, "nan": float("nan")})
    assert [(e["index"], e["code"]) for e in raised.value.details["errors"]] == [(1, "INVALID_KEY"),
                                                                               (2, "INVALID_VALUE")]
    with pytest.raises(errors.InvalidValue):
        store.stream("s").publish([2**64])
    assert store.latest_tx == before


# -- a worker killed mid-session, and the feed ---------------------------------------------------


def _workers(live: LiveServer) -> list[int]:
    text = Path(f"/proc/{live.proc.pid}/task/{live.proc.pid}/children").read_text()
    return [int(pid) for pid in text.split()]


def _server_socket(live: LiveServer, local_port: int) -> tuple[str, int]:
    """The inode of the server's end of the client connection from ``local_port``, and the bytes
    queued on it that no worker has read yet (from /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == live.port and int(fields[2].split(":")[1], 16) == local_port:
            return fields[9], int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no server socket for client port {local_port}")


def _worker_serving(live: LiveServer, local_port: int) -> int:
    """The gunicorn worker that holds the client's connection from ``local_port``."""
    inode = _server_socket(live, local_port)[0]
    for pid in _workers(live):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
    raise AssertionError("no worker holds the connection")


def _killed_mid_request(live: LiveServer, store: RemoteStore, call: Callable[[], Any]) -> Any:
    """``call()``, with the worker holding the client's pooled connection killed while the request
    waits in it: the worker is stopped, the request sent, and once its bytes sit unread in the
    worker's socket, the worker is killed (gunicorn starts another)."""
    local_port = store._http.pool.pool.queue[-1].sock.getsockname()[1]
    pid = _worker_serving(live, local_port)
    os.kill(pid, signal.SIGSTOP)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    deadline = time.monotonic() + 30  # bounds a hang only
    while _server_socket(live, local_port)[1] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    assert result, "the call failed"
    return result[0]


def test_reads_and_keyed_writes_survive_a_worker_killed_mid_request(live_server: LiveServer) -> None:
    store = connect(f"http://127.0.0.1:{live_server.port}", maxsize=1)
    ns = fresh(store)
    tx = ns.put({"a": 1})
    assert _killed_mid_request(live_server, store, lambda: ns.get("a")) == Record("a", 1, tx)
    assert store._http.retried == 1  # the connection was reset: the read went again
    tx2 = _killed_mid_request(live_server, store, lambda: ns.put({"a": 2}))  # keyed by the client: retried
    assert store._http.retried == 2
    assert [v.tx for v in ns.history("a")] == [tx2, tx]  # landed once
    store.close()


def test_follow_resumes_after_a_dropped_connection_without_gaps(live_server: LiveServer) -> None:
    store = connect(f"http://127.0.0.1:{live_server.port}")
    ns = fresh(store)
    tx1 = ns.put({"a": 1})
    feed = ns.follow(tx1 - 1, read_timeout=30)
    assert next(feed).tx == tx1
    for pid in _workers(live_server):  # drops the feed's connection, whichever worker held it
        os.kill(pid, signal.SIGKILL)
    tx2 = ns.put({"a": 2})
    tx3 = ns.delete(["a"])
    got = [next(feed), next(feed)]
    assert [(i.tx, [(o.key, o.op) for o in i.operations]) for i in got] == [(tx2, [("a", "put")]),
                                                                          (tx3, [("a", "delete")])]
    feed.close()
    events = store.stream(ns.name)
    first = events.publish([1, b"\x01"])
    follower = events.follow(first - 1)
    assert [(e.tx, e.index, e.data) for e in (next(follower), next(follower))] == [(first, 0, 1), (first, 1, b"\x01")]
    follower.close()
    store.close()


def test_problems_that_are_not_json_are_server_errors() -> None:
    exc = error_from_problem(502, "text/html", b"<html>Bad Gateway</html>")
    assert type(exc) is ServerError and exc.code == "INTERNAL_ERROR" and exc.status == 502
    doc = orjson.dumps({"status": 401, "code": "UNAUTHORIZED", "detail": "no key", "errors": []})
    exc = error_from_problem(401, "application/problem+json", doc)
    assert (type(exc), exc.code, exc.message) == (ServerError, "UNAUTHORIZED", "no key")


def test_connect_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_URL", "http://example.invalid:9")
    monkeypatch.setenv("STRATA_KEY", "secret")
    remote = connect()
    assert remote.url == "http://example.invalid:9"
    assert remote._http.headers["Authorization"] == "Bearer secret"
    with pytest.raises(ValueError):
        connect("ftp://x")


def test_revert_and_its_dry_run(store: RemoteStore) -> None:
    ns = fresh(store)
    tx1 = ns.put({"a": 1, "b": b"\x01"}, metadata={"v": 1})
    ns.put({"a": 2, "c": 3})
    ns.clear(["b"])
    plan = ns.revert(tx1, dry_run=True)
    assert (plan.tx, plan.committed, [(c.key, c.kind) for c in plan.changes]) == (
        store.latest_tx, False, [("a", "changed"), ("b", "changed"), ("c", "deleted")])
    done = ns.revert(tx1, note={"by": "ops"})
    assert done.committed and done.tx == store.latest_tx
    assert done.changes == plan.changes
    assert [(r.key, r.value, r.metadata) for r in ns.read(["a", "b", "c"], metadata=True).records] == [
        ("a", 1, {"v": 1}), ("b", b"\x01", {"v": 1})]
    assert store.tx_info(done.tx).note == {"by": "ops", "revert": {"to_tx": tx1}}
    again = ns.revert(tx1)
    assert (again.tx, again.committed, again.changes) == (done.tx, False, [])


def test_a_long_poll_answers_when_a_tx_commits(store: RemoteStore) -> None:
    ns = fresh(store)
    since = ns.put({"a": 1})
    assert ns.changes(since, wait=0.05) == []
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(ns.changes(since, wait=30)))
    thread.start()
    tx = ns.put({"a": 2})
    thread.join(60)
    assert [i.tx for i in result[0]] == [tx]
