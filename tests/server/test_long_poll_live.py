"""Long polls of ``changes?wait=`` and a revert against a live 2-worker ``strata serve``: the
poll answers at once when a tx exists, wakes when another client (maybe through the other worker)
writes, and answers an empty page at its deadline."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from server import create_app
from tests.server.conftest import Client, LiveServer, start_server, stop_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("long-poll"), "--threads", "4")
    yield server
    stop_server(server.proc)


def _changes(live: LiveServer, ns: str, query: str) -> tuple[int, Any]:
    status, _, body = live.request("GET", f"/v4/storage/{ns}/changes?{query}")
    return status, orjson.loads(body)


def _latest(live: LiveServer) -> int:
    return int(orjson.loads(live.request("GET", "/v4/head")[2])["tx"])


def test_a_long_poll_answers_at_once_when_a_tx_exists(live: LiveServer) -> None:
    status, _, body = live.request("POST", "/v4/storage/now/write", json=[{"key": "a", "value": 1}])
    tx = orjson.loads(body)["tx"]
    status, page = _changes(live, "now", f"since={tx - 1}&wait=60")
    assert status == 200 and [e["tx"] for e in page["data"]] == [tx] and page["cursor"] == tx


def test_a_long_poll_ends_when_another_client_writes(live: LiveServer) -> None:
    since = _latest(live)
    answers: list[tuple[int, Any]] = []
    poll = threading.Thread(target=lambda: answers.append(_changes(live, "wake", f"since={since}&wait=60")))
    poll.start()
    for _ in range(3):  # let the poll reach its worker first (the answer is the same either way)
        live.request("GET", "/healthz")
    live.request("POST", "/v4/storage/other/write", json=[{"key": "x", "value": 0}])  # not this namespace
    status, _, body = live.request("POST", "/v4/storage/wake/write", json=[{"key": "k", "value": "v"}],
                                   headers={"X-Strata-Note": '{"by": "writer"}'})
    tx = orjson.loads(body)["tx"]
    poll.join(60)
    assert not poll.is_alive()
    status, page = answers[0]
    assert status == 200
    assert [(e["tx"], e["note"], e["operations"]) for e in page["data"]] == [
        (tx, {"by": "writer"}, [{"key": "k", "op": "put", "value": "v", "binary": False}])]
    assert (page["count"], page["cursor"], page["more"]) == (1, tx, False)


def test_a_long_poll_answers_an_empty_page_at_its_deadline(live: LiveServer) -> None:
    latest = _latest(live)
    status, page = _changes(live, "quiet", f"since={latest}&wait=1")
    assert status == 200
    assert {k: v for k, v in page.items() if k != "duration"} == {"data": [], "count": 0, "cursor": latest,
                                                                  "more": False}


def test_a_revert_over_two_workers(live: LiveServer) -> None:
    first = orjson.loads(live.request("POST", "/v4/storage/rv/write", json=[{"key": "a", "value": 1}])[2])["tx"]
    live.request("POST", "/v4/storage/rv/write", json=[{"key": "a", "value": 2}, {"key": "b", "value": 3}])
    status, _, body = live.request("POST", "/v4/storage/rv/revert", json={"to_tx": first})
    answer = orjson.loads(body)
    assert status == 200 and answer["count"] == 2 and answer["tx"] == _latest(live)
    read = orjson.loads(live.request("POST", "/v4/storage/rv/read", json={"keys": ["a", "b"]})[2])
    assert [(r["key"], r["value"], r["tx"]) for r in read["data"]] == [("a", 1, answer["tx"])]


# -- in-process: the parameter's checks and the per-worker cap -------------------------------------

@pytest.mark.parametrize("wait", ["61", "-1", "abc", "1e3", "nan", " 1", "60.0000001"])
def test_wait_outside_0_to_60_seconds_is_a_400(client: Client, wait: str) -> None:
    r = client.get("/v4/storage/s/changes", query={"since": "0", "wait": wait})
    doc = r.json()
    assert (r.status, doc["code"], doc["detail"], doc["errors"]) == (
        400, "INVALID_PARAMETERS", "wait must be a number of seconds from 0 to 60",
        [{"location": "query.wait", "message": "wait must be a number of seconds from 0 to 60", "value": wait}])


def test_a_long_poll_takes_a_stream_slot_and_is_503_when_none_is_free(tmp_path: Path) -> None:
    app = create_app(tmp_path / "data", sync=False, max_streams=0)
    try:
        client = Client(app)
        r = client.get("/v4/storage/s/changes", query={"since": "0", "wait": "5"})
        assert (r.status, r.code, r.headers["retry-after"]) == (503, "TOO_MANY_STREAMS", "1")
        client.write("s", [{"key": "a", "value": 1}])  # a page that exists needs no wait, and no slot
        r = client.get("/v4/storage/s/changes", query={"since": "0", "wait": "5"})
        assert r.status == 200 and r.json()["count"] == 1
        assert app.stream_slots.open == 0
    finally:
        app.close()
