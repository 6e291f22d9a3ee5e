"""The change feed in-process: ``/changes`` pages and the ``/sse`` stream's framing and errors.

Real HTTP with several gunicorn workers is in ``test_sse_live.py``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from server import create_app
from server.app import App
from tests.server.conftest import Client


def _changes(client: Client, ns: str, **query: str) -> Any:
    return client.get(f"/v4/storage/{ns}/changes", query=query)


@pytest.fixture
def feed(client: Client) -> Client:
    """tx 1 s: put a, b(binary); tx 2 o: put x; tx 3 s+o: clear a, put x; tx 4 s: delete b (noted)."""
    client.write("s", [{"key": "a", "value": {"n": 1}}, {"key": "b", "value": "AAE=", "binary": True}])
    client.write("o", [{"key": "x", "value": 1}])
    with client.app.store.transaction() as t:
        t.clear("s", "a")
        t.put("o", "x", 2)
    client.post("/v4/storage/s/delete", json=["b"], headers={"X-Strata-Note": '{"by": "carol"}'})
    return client


def test_changes_lists_the_namespace_txs_with_values(feed: Client) -> None:
    body = _changes(feed, "s").json()
    assert [e["tx"] for e in body["data"]] == [1, 3, 4] and body["count"] == 3
    assert body["cursor"] == 4 and body["more"] is False
    first = body["data"][0]
    assert first["operations"] == [{"key": "a", "op": "put", "value": {"n": 1}, "binary": False},
                                   {"key": "b", "op": "put", "value": "AAE=", "binary": True}]
    assert first["note"] is None and len(first["hash"]) == 64 and first["time"].endswith("Z")
    assert first["hash"] == feed.get("/v4/tx/1").json()["hash"]
    assert body["data"][1]["operations"] == [{"key": "a", "op": "clear"}]  # o's put is left out
    assert body["data"][2] == body["data"][2] | {"note": {"by": "carol"},
                                                 "operations": [{"key": "b", "op": "delete"}]}
    other = _changes(feed, "o").json()
    assert [e["tx"] for e in other["data"]] == [2, 3]
    assert other["data"][1]["operations"] == [{"key": "x", "op": "put", "value": 2, "binary": False}]


def test_changes_pages_with_the_cursor(feed: Client) -> None:
    page = _changes(feed, "s", limit="2").json()
    assert [e["tx"] for e in page["data"]] == [1, 3] and page["cursor"] == 3 and page["more"] is True
    page = _changes(feed, "s", limit="2", since=str(page["cursor"])).json()
    assert [e["tx"] for e in page["data"]] == [4] and page["cursor"] == 4 and page["more"] is False
    # a quiet namespace: the cursor still moves past other namespaces' txs
    feed.write("o", [{"key": "y", "value": 1}])
    page = _changes(feed, "s", since="4").json()
    assert page["data"] == [] and page["cursor"] == 5
    assert _changes(feed, "never").json()["cursor"] == 5


@pytest.mark.parametrize(("query", "code", "location"), [
    ({"since": "99"}, "FUTURE_TX", "query.since"),
    ({"since": "-1"}, "INVALID_PARAMETERS", "query.since"),
    ({"limit": "0"}, "INVALID_PARAMETERS", "query.limit"),
    ({"limit": "1001"}, "INVALID_PARAMETERS", "query.limit"),
    ({"start_tx": "1"}, "INVALID_PARAMETERS", "query.start_tx"),
])
def test_changes_rejects_bad_parameters(feed: Client, query: dict[str, str], code: str, location: str) -> None:
    r = _changes(feed, "s", **query)
    assert r.status == 400 and r.code == code and r.json()["errors"][0]["location"] == location


# -- SSE, in-process ---------------------------------------------------------------------------------


class Stream:
    """An SSE response from the WSGI app, read chunk by chunk (the app's generator blocks between)."""

    def __init__(self, app: App, ns: str, query: str = "", headers: dict[str, str] | None = None) -> None:
        env: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/v4/storage/{ns}/sse", "QUERY_STRING": query,
                               "wsgi.input": io.BytesIO(b""), "SERVER_NAME": "t", "SERVER_PORT": "80"}
        for name, value in (headers or {}).items():
            env["HTTP_" + name.upper().replace("-", "_")] = value
        captured: dict[str, Any] = {}

        def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"], captured["headers"] = status, dict(hdrs)

        self.body = app(env, start_response)
        self.status = int(captured["status"].split()[0])
        self.headers = captured["headers"]
        self._chunks: Iterator[bytes] = iter(self.body)
        self.buffer = b""

    def events(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` events as ``{"id", "data", "comments"}``."""
        out: list[dict[str, Any]] = []
        comments: list[str] = []
        while len(out) < count:
            while b"\n\n" not in self.buffer:
                self.buffer += next(self._chunks)
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            fields = [line.partition(": ") for line in block.decode().split("\n")]
            comments += [value for name, _, value in fields if name == ""]
            data = [value for name, _, value in fields if name == "data"]
            if data:
                ids = [value for name, _, value in fields if name == "id"]
                out.append({"id": int(ids[0]), "data": orjson.loads(data[0]), "comments": comments})
                comments = []
        return out

    def comment(self) -> str:
        """The next comment-only block (a heartbeat)."""
        while b"\n\n" not in self.buffer:
            self.buffer += next(self._chunks)
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        return block.decode()

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()


@pytest.fixture
def fast_app(tmp_path: Path) -> Iterator[App]:
    application = create_app(tmp_path / "data", sync=False, heartbeat=0.05, max_streams=2)
    yield application
    application.close()


def test_sse_replays_from_start_tx_then_follows(fast_app: App) -> None:
    client = Client(fast_app)
    client.write("s", [{"key": "a", "value": 1}])
    client.write("o", [{"key": "z", "value": 1}])
    client.write("s", [{"key": "a", "value": 2}])
    stream = Stream(fast_app, "s", "start_tx=0")
    try:
        assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["Cache-Control"] == "no-cache"
        first, second = stream.events(2)
        assert first["comments"][0].startswith("strata changes of s after tx 0")
        assert (first["id"], second["id"]) == (1, 3)
        assert first["data"]["operations"] == [{"key": "a", "op": "put", "value": 1, "binary": False}]
        assert second["data"] == _changes(client, "s", since="1").json()["data"][0]  # the same event shape
        client.write("s", [{"key": "b"}])
        (third,) = stream.events(1)
        assert third["id"] == 4 and third["data"]["operations"] == [{"key": "b", "op": "clear"}]
        assert stream.comment() == ": heartbeat"
    finally:
        stream.close()
    assert fast_app.stream_slots.open == 0


def test_sse_without_start_tx_sends_only_new_txs_and_last_event_id_wins(fast_app: App) -> None:
    client = Client(fast_app)
    for i in range(3):
        client.write("s", [{"key": "a", "value": i}])
    stream = Stream(fast_app, "s")
    try:
        assert stream.comment().startswith(": strata changes of s after tx 3")
        client.write("s", [{"key": "a", "value": "new"}])
        assert [e["id"] for e in stream.events(1)] == [4]
    finally:
        stream.close()
    resumed = Stream(fast_app, "s", "start_tx=0", headers={"Last-Event-ID": "2"})
    try:
        assert [e["id"] for e in resumed.events(2)] == [3, 4]
    finally:
        resumed.close()


def test_sse_limits_open_streams_per_process(fast_app: App) -> None:
    streams = [Stream(fast_app, "s"), Stream(fast_app, "s")]
    refused = Client(fast_app).get("/v4/storage/s/sse")
    assert refused.status == 503 and refused.code == "TOO_MANY_STREAMS" and refused.headers["retry-after"] == "5"
    streams[0].close()
    streams[0].close()  # closing twice gives back one slot only
    third = Stream(fast_app, "s")  # never read: closing it still frees its slot
    assert third.status == 200 and fast_app.stream_slots.open == 2
    for s in (streams[1], third):
        s.close()
    assert fast_app.stream_slots.open == 0


def test_streams_end_when_the_app_closes(fast_app: App) -> None:
    stream = Stream(fast_app, "s")
    stream.comment()
    fast_app.close()
    with pytest.raises(StopIteration):
        stream.comment()
    stream.close()


@pytest.mark.parametrize(("query", "headers", "code", "location"), [
    ("start_tx=9", {}, "FUTURE_TX", "query.start_tx"),
    ("start_tx=x", {}, "INVALID_PARAMETERS", "query.start_tx"),
    ("", {"Last-Event-ID": "abc"}, "INVALID_PARAMETERS", "header.Last-Event-ID"),
    ("", {"Last-Event-ID": "9"}, "FUTURE_TX", "header.Last-Event-ID"),
    ("since=0", {}, "INVALID_PARAMETERS", "query.since"),
])
def test_sse_rejects_bad_starts(fast_app: App, query: str, headers: dict[str, str], code: str,
                                location: str) -> None:
    r = Client(fast_app).get("/v4/storage/s/sse", query=query, headers=headers)
    assert r.status == 400 and r.code == code and r.json()["errors"][0]["location"] == location
    assert fast_app.stream_slots.open == 0
