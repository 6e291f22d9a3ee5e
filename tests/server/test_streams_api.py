"""Litebase's stream routes in-process: publish, read back, SSE framing and resumption, stream
namespaces. Real HTTP with two gunicorn workers is in ``test_stream_sse_live.py``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from server import create_app
from server.app import App
from tests.conftest import fingerprint
from tests.server.conftest import Client


def _publish(client: Client, stream: str, items: Any, **kw: Any) -> Any:
    return client.post(f"/v4/stream/{stream}/write", json=items, **kw)


def test_a_write_is_one_tx_and_reads_back_exactly(client: Client) -> None:
    r = _publish(client, "orders", [{"data": {"id": 1}}, {"data": "AAE=", "binary": True}, {"data": None}])
    assert r.status == 200 and r.json() | {"duration": ""} == {"tx": 1, "count": 3, "duration": ""}
    big = b'[{"data": 18446744073709551615}, {"data": -0.0}, {"data": 1.5e300}]'
    assert client.post("/v4/stream/orders/write", body=big, content_type="application/json").json()["tx"] == 2
    page = client.get("/v4/stream/orders", query={"start_tx": "0"})
    assert page.status == 200
    assert b'"data":18446744073709551615' in page.body and b'"data":-0.0' in page.body
    body = page.json()
    assert body["data"][:3] == [{"tx": 1, "index": 0, "data": {"id": 1}, "binary": False},
                                {"tx": 1, "index": 1, "data": "AAE=", "binary": True},
                                {"tx": 1, "index": 2, "data": None, "binary": False}]
    assert (body["count"], body["cursor"], body["more"], body["tx"]) == (6, "2", False, 2)
    # The storage namespace of the same name is another thing.
    assert client.read("orders", ["id"]).json()["data"] == []


def test_pages_continue_from_the_cursor_and_bounds_apply(client: Client) -> None:
    _publish(client, "s", [{"data": i} for i in range(3)])
    client.write("n", [{"key": "k", "value": 1}])
    _publish(client, "s", [{"data": "x"}])
    first = client.get("/v4/stream/s", query={"limit": "2"}).json()
    assert [e["data"] for e in first["data"]] == [0, 1] and (first["cursor"], first["more"]) == ("1:1", True)
    rest = client.get("/v4/stream/s", query={"cursor": first["cursor"]}).json()
    assert [(e["tx"], e["index"]) for e in rest["data"]] == [(1, 2), (3, 0)] and rest["cursor"] == "3"
    assert [e["tx"] for e in client.get("/v4/stream/s", query={"start_tx": "1"}).json()["data"]] == [3]
    assert client.get("/v4/stream/s", query={"end_tx": "2"}).json()["count"] == 3
    assert client.get("/v4/stream/never").json()["data"] == []


@pytest.mark.parametrize(("query", "status", "code", "location"), [
    ({"start_tx": "9"}, 400, "FUTURE_TX", "query.start_tx"),
    ({"end_tx": "9"}, 400, "FUTURE_TX", "query.end_tx"),
    ({"cursor": "1:"}, 400, "INVALID_PARAMETERS", "query.cursor"),
    ({"cursor": "1", "start_tx": "0"}, 400, "INVALID_PARAMETERS", "query.cursor"),
    ({"limit": "1001"}, 400, "INVALID_PARAMETERS", "query.limit"),
    ({"start_tx": "0"}, 410, "TX_COMPACTED", "query.start_tx"),
    ({"other": "1"}, 400, "INVALID_PARAMETERS", "query.other"),
])
def test_bad_reads_are_problems(client: Client, query: dict[str, str], status: int, code: str, location: str) -> None:
    for _ in range(3):
        _publish(client, "s", [{"data": 1}])
    client.app.store.compact(3)
    r = client.get("/v4/stream/s", query=query)
    assert (r.status, r.code) == (status, code), r.body
    assert r.json()["errors"][0]["location"] == location


def test_a_bad_write_lists_every_bad_event_and_writes_nothing(client: Client) -> None:
    _publish(client, "s", [{"data": 0}])
    before = fingerprint(client.app.store)
    body = (b'[{"data": 1}, 5, {"data": "%%%", "binary": true}, {"value": 1}, {"data": 1, "extra": 2},'
            b' {"data": 1e400}, {"data": {"n": 18446744073709551616}}, {"data": 1, "binary": "yes"}]')
    r = client.post("/v4/stream/s/write", body=body, content_type="application/json")
    assert r.status == 400 and r.code == "INVALID_PARAMETERS"
    assert [(e["index"], e["code"], e["location"]) for e in r.json()["errors"]] == [
        (1, "INVALID_PARAMETERS", "/1"),
        (2, "INVALID_VALUE", "/2/data"),
        (3, "INVALID_PARAMETERS", "/3/value"),
        (4, "INVALID_PARAMETERS", "/4/extra"),
        (5, "INVALID_VALUE", "/5/data"),
        (6, "INVALID_VALUE", "/6/data/n"),
        (7, "INVALID_PARAMETERS", "/7/binary"),
    ]
    assert r.json()["errors"][4]["value"] == "1e400"
    empty = _publish(client, "s", [])
    assert (empty.status, empty.code) == (400, "EMPTY_BATCH")
    not_array = _publish(client, "s", {"data": 1})
    assert (not_array.status, not_array.code) == (400, "INVALID_PARAMETERS")
    bad_name = _publish(client, "a b", [{"data": 1}])
    assert (bad_name.status, bad_name.code) == (400, "INVALID_NAMESPACE")
    assert fingerprint(client.app.store) == before


def test_the_engine_refusals_are_listed_with_the_servers(tmp_path: Path) -> None:
    app = create_app(tmp_path / "data", sync=False)
    try:
        app.store  # noqa: B018 - opened with the default limits; shrink the value limit for the test
        object.__setattr__(app.store, "limits", type(app.store.limits)(max_value_bytes=8))
        r = _publish(Client(app), "s", [{"data": "a" * 20}, {"data": 1, "binary": 1}, {"data": "ok"}])
        assert [(e["index"], e["code"]) for e in r.json()["errors"]] == [(0, "VALUE_TOO_LARGE"),
                                                                         (1, "INVALID_PARAMETERS")]
        assert app.store.latest_tx == 0
    finally:
        app.close()


def test_stream_namespaces_are_shaped_as_storage_namespaces(client: Client) -> None:
    created = client.post("/v4/namespace/stream", json={"namespace": "events"})
    assert created.status == 201
    data = created.json()["data"]
    assert data | {"created_at": "", "updated_at": ""} == {"name": "events", "created_at": "", "updated_at": "",
                                                           "tx": 0, "stat": {"event_count": 0, "size_bytes": 0}}
    assert client.post("/v4/namespace/stream", json={"namespace": "events"}).code == "NAMESPACE_EXISTS"
    _publish(client, "events", [{"data": 1}, {"data": 2}])
    got = client.get("/v4/namespace/stream/events").json()["data"]
    assert (got["tx"], got["stat"]) == (1, {"event_count": 2, "size_bytes": 34})
    assert [s["name"] for s in client.get("/v4/namespace/stream").json()["data"]] == ["events"]
    assert client.get("/v4/namespace/storage").json()["data"] == []
    dropped = client.delete("/v4/namespace/stream/events", headers={"X-Strata-Note": '{"by": "ops"}'})
    assert dropped.status == 200 and dropped.json()["tx"] == 2
    assert client.app.store.tx_info(2).note == {"by": "ops"}  # type: ignore[union-attr]
    missing = client.get("/v4/namespace/stream/events")
    assert (missing.status, missing.code) == (404, "NAMESPACE_NOT_FOUND")
    assert client.delete("/v4/namespace/stream/events").status == 404
    assert client.get("/v4/stream/events", query={"start_tx": "0"}).json()["data"] == []


# -- SSE, in-process ---------------------------------------------------------------------------------


class Subscription:
    """An SSE response of the WSGI app, read message by message (the generator blocks between)."""

    def __init__(self, app: App, stream: str, query: str = "", headers: dict[str, str] | None = None) -> None:
        env: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/v4/stream/{stream}/sse", "QUERY_STRING": query,
                               "wsgi.input": io.BytesIO(b""), "SERVER_NAME": "t", "SERVER_PORT": "80"}
        for name, value in (headers or {}).items():
            env["HTTP_" + name.upper().replace("-", "_")] = value
        captured: dict[str, Any] = {}
        self.body = app(env, lambda status, hdrs, exc_info=None: captured.update(status=status))
        self.status = int(captured["status"].split()[0])
        self._chunks: Iterator[bytes] = iter(self.body)
        self.buffer = b""

    def block(self) -> str:
        while b"\n\n" not in self.buffer:
            self.buffer += next(self._chunks)
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        return block.decode()

    def events(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        out = []
        while len(out) < count:
            fields = dict(line.partition(": ")[::2] for line in self.block().split("\n"))
            if "data" in fields:
                out.append((fields["id"], orjson.loads(fields["data"])))
        return out

    def close(self) -> None:
        self.body.close()  # type: ignore[attr-defined]


@pytest.fixture
def fast_app(tmp_path: Path) -> Iterator[App]:
    application = create_app(tmp_path / "data", sync=False, heartbeat=0.05, max_streams=2)
    yield application
    application.close()


def test_sse_replays_then_follows_with_resumable_ids(fast_app: App) -> None:
    client = Client(fast_app)
    _publish(client, "s", [{"data": "a"}, {"data": "b"}, {"data": "c"}])
    client.write("n", [{"key": "k", "value": 1}])
    sub = Subscription(fast_app, "s", "start_tx=0")
    try:
        assert sub.status == 200
        assert [i for i, _ in sub.events(3)] == ["1:0", "1:1", "1"]
        _publish(client, "s", [{"data": "AAE=", "binary": True}])
        assert sub.events(1) == [("3", {"tx": 3, "index": 0, "data": "AAE=", "binary": True})]
        assert sub.block() == ": heartbeat"
    finally:
        sub.close()
    assert fast_app.stream_slots.open == 0
    resumed = Subscription(fast_app, "s", "start_tx=3", headers={"Last-Event-ID": "1:0"})  # the header wins
    try:
        assert [(i, e["data"]) for i, e in resumed.events(3)] == [("1:1", "b"), ("1", "c"), ("3", "AAE=")]
    finally:
        resumed.close()
    new_only = Subscription(fast_app, "s")
    try:
        assert new_only.block().startswith(": strata stream s after 3")
        _publish(client, "s", [{"data": "new"}])
        assert new_only.events(1) == [("4", {"tx": 4, "index": 0, "data": "new", "binary": False})]
    finally:
        new_only.close()


@pytest.mark.parametrize(("query", "headers", "status", "code"), [
    ("start_tx=9", {}, 400, "FUTURE_TX"),
    ("", {"Last-Event-ID": "1:x"}, 400, "INVALID_PARAMETERS"),
    ("", {"Last-Event-ID": "99"}, 400, "FUTURE_TX"),
    ("start_tx=0", {}, 410, "TX_COMPACTED"),
])
def test_sse_refusals_come_before_the_stream(fast_app: App, query: str, headers: dict[str, str], status: int,
                                             code: str) -> None:
    client = Client(fast_app)
    for _ in range(3):
        _publish(client, "s", [{"data": 1}])
    fast_app.store.compact(3)
    r = client.get("/v4/stream/s/sse", query=query, headers=headers)
    assert (r.status, r.code) == (status, code)
    assert fast_app.stream_slots.open == 0
