"""Server-Sent Events over real HTTP: ``strata serve`` with 2 gunicorn workers.

Subscribers are opened until two are served by different worker processes (each stream's first
comment names its worker), so every write, whichever worker takes it, must cross to the other
worker's subscriber. Timeouts here only guard against hangs (generous ones: a busy machine may not
schedule a worker for seconds, see ``tests/server/sse_client.py``); speed is measured by
``tests/server/sse_latency.py``, not asserted.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Iterator

import orjson
import pytest

from tests.reliability.helpers import children_of
from tests.server.conftest import LiveServer, http_request, start_server, stop_server
from tests.server.sse_client import HANG_GUARD, Subscriber, open_stream, subscribers_on_two_workers

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("sse"), "--heartbeat", "0.3")
    yield live
    stop_server(live.proc)


def _write(server: LiveServer, ns: str, items: list[dict[str, object]], note: str | None = None) -> int:
    headers = {"X-Strata-Note": note} if note else None
    status, _, body = server.request("POST", f"/v4/storage/{ns}/write", json=items, headers=headers)
    assert status == 200, body
    return int(orjson.loads(body)["tx"])


def test_writes_reach_subscribers_on_both_workers(server: LiveServer) -> None:
    subs = subscribers_on_two_workers(server.port, "/v4/storage/cross/sse")
    try:
        assert len({s.pid for s in subs}) == 2
        txs = [_write(server, "cross", [{"key": f"k{i}", "value": i}], note=f'{{"n": {i}}}') for i in range(8)]
        _write(server, "elsewhere", [{"key": "x", "value": 0}])  # another namespace: not delivered
        last = _write(server, "cross", [{"key": "end"}])
        for sub in subs:
            events = [sub.next_event() for _ in range(9)]
            assert [e["id"] for e in events] == [*txs, last], sub.pid
            assert [e["data"]["tx"] for e in events] == [*txs, last]
            assert events[3]["data"]["note"] == {"n": 3}
            assert events[3]["data"]["operations"] == [{"key": "k3", "op": "put", "value": 3, "binary": False}]
            assert events[-1]["data"]["operations"] == [{"key": "end", "op": "clear"}]
            assert sub.events.empty()
    finally:
        for sub in subs:
            sub.close()


def test_two_workers_are_found_while_one_is_not_scheduled(server: LiveServer) -> None:
    """What a busy machine does to the stream tests: one worker gets no CPU for a while, the other
    accepts every connection, and the streams closed meanwhile hold its slots until its next tick.
    The search must wait that out (refusals included) instead of failing."""
    deadline = time.monotonic() + HANG_GUARD  # /healthz answered: the second worker may still be booting
    while len(workers := children_of(server.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGSTOP)
    resume = threading.Timer(2.0, os.kill, (workers[0], signal.SIGCONT))
    resume.start()
    try:
        subs = subscribers_on_two_workers(server.port, "/v4/storage/frozen/sse")
    finally:
        resume.join()
        os.kill(workers[0], signal.SIGCONT)  # idempotent; also if the timer never ran
    try:
        assert sorted(s.pid for s in subs) == workers
        tx = _write(server, "frozen", [{"key": "a", "value": 1}])
        assert [s.next_event()["id"] for s in subs] == [tx, tx]
    finally:
        for sub in subs:
            sub.close()


def test_last_event_id_resumes_without_gaps_or_repeats(server: LiveServer) -> None:
    first = open_stream(server.port, "/v4/storage/resume/sse")
    txs = [_write(server, "resume", [{"key": "a", "value": i}]) for i in range(3)]
    assert [first.next_event()["id"] for _ in range(3)] == txs
    first.close()
    last = txs[-1]
    # reconnects land on either worker: each must continue right after the last id it got, with the
    # txs written while nobody listened (some of them to other namespaces) and then live ones
    for round_ in range(4):
        missed = [_write(server, "resume", [{"key": "a", "value": round_}]), _write(server, "noise", [{"key": "z"}]),
                  _write(server, "resume", [{"key": "b", "value": "m"}])]
        again = open_stream(server.port, "/v4/storage/resume/sse?start_tx=0", headers={"Last-Event-ID": str(last)})
        try:
            got = [again.next_event() for _ in range(2)]
            assert [e["id"] for e in got] == [missed[0], missed[2]]
            assert got[0]["data"]["operations"] == [{"key": "a", "op": "put", "value": round_, "binary": False}]
            live = _write(server, "resume", [{"key": "c", "value": round_}])
            assert again.next_event()["id"] == live
            assert again.events.empty()
        finally:
            again.close()
        last = live


def test_start_tx_replays_then_follows_and_heartbeats_flow(server: LiveServer) -> None:
    base = orjson.loads(http_request(server.port, "GET", "/healthz")[2])["tx"]
    mine = [_write(server, "replay", [{"key": "r", "value": i}]) for i in range(5)]
    sub = open_stream(server.port, f"/v4/storage/replay/sse?start_tx={mine[1]}")
    try:
        assert [sub.next_event()["id"] for _ in range(3)] == mine[2:]
        # nothing new: heartbeat comments keep coming (every 0.3 s on this server)
        comments: list[str] = []
        while "heartbeat" not in comments:
            comments.append(sub.comments.get(timeout=HANG_GUARD))
        follow = _write(server, "replay", [{"key": "r", "value": "next"}])
        assert sub.next_event()["id"] == follow
    finally:
        sub.close()
    everything = open_stream(server.port, "/v4/storage/replay/sse?start_tx=0")
    try:
        assert [everything.next_event()["id"] for _ in range(6)] == [*mine, follow]
        assert all(tx > base for tx in mine)
    finally:
        everything.close()


def test_streams_never_take_every_thread(tmp_path_factory: pytest.TempPathFactory) -> None:
    """--threads 4: each worker holds at most 2 streams (half its threads); more are refused with 503
    while ordinary requests are still answered."""
    live = start_server(tmp_path_factory.mktemp("threads"), "--threads", "4", "--heartbeat", "0.3")
    subs: list[Subscriber] = []
    try:
        for _ in range(6):
            subs.append(Subscriber(live.port, "/v4/storage/t/sse"))
        opened = [s for s in subs if s.status == 200]
        refused = [s for s in subs if s.status == 503]
        assert len(opened) <= 4 and len(opened) + len(refused) == 6 and refused
        assert orjson.loads(refused[0].body)["code"] == "TOO_MANY_STREAMS"
        # with every stream slot taken, reads and writes are still served (in parallel, too)
        results: queue.Queue[int] = queue.Queue()

        def call() -> None:
            results.put(live.request("POST", "/v4/storage/t/write", json=[{"key": "a", "value": 1}])[0])

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_GUARD)
        assert [results.get_nowait() for _ in range(4)] == [200] * 4
        assert http_request(live.port, "GET", "/healthz")[0] == 200
        for sub in opened:
            assert [sub.next_event()["id"] for _ in range(4)] == [1, 2, 3, 4]
    finally:
        for sub in subs:
            sub.close()
        stop_server(live.proc)
