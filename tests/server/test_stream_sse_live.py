"""Stream SSE over real HTTP: ``strata serve`` with 2 gunicorn workers.

A publish through either worker reaches subscribers on both (new txs are seen through the store's
tx counter, not in memory), and ``Last-Event-ID`` resumes inside a publish on any worker.
Timeouts only guard against hangs (see ``tests/server/sse_client.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from tests.server.conftest import LiveServer, start_server, stop_server
from tests.server.sse_client import open_stream, subscribers_on_two_workers

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("stream-sse"), "--heartbeat", "0.3")
    yield live
    stop_server(live.proc)


def _publish(server: LiveServer, stream: str, data: list[object]) -> int:
    status, _, body = server.request("POST", f"/v4/stream/{stream}/write", json=[{"data": d} for d in data])
    assert status == 200, body
    return int(orjson.loads(body)["tx"])


def test_publishes_reach_subscribers_on_both_workers_and_resume_by_event_id(server: LiveServer) -> None:
    subs = subscribers_on_two_workers(server.port, "/v4/stream/cross/sse")
    try:
        first = _publish(server, "cross", ["a", "b"])
        server.request("POST", "/v4/storage/cross/write", json=[{"key": "k", "value": 1}])  # storage: not an event
        second = _publish(server, "cross", [{"n": 3}])
        for sub in subs:
            events = [sub.next_event() for _ in range(3)]
            assert [e["id"] for e in events] == [f"{first}:0", first, second], sub.pid
            assert [e["data"] for e in events] == [{"tx": first, "index": 0, "data": "a", "binary": False},
                                                   {"tx": first, "index": 1, "data": "b", "binary": False},
                                                   {"tx": second, "index": 0, "data": {"n": 3}, "binary": False}]
            assert sub.events.empty()
    finally:
        for sub in subs:
            sub.close()
    resumed = open_stream(server.port, "/v4/stream/cross/sse", headers={"Last-Event-ID": f"{first}:0"})
    try:
        assert [resumed.next_event()["id"] for _ in range(2)] == [first, second]
    finally:
        resumed.close()
