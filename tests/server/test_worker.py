"""``server.worker``: which requests the event loop answers itself, and the promises that choice keeps.

The unit tests pin down :func:`answerable_now` (a whole, buffered, non-streaming request). The live
tests run ``strata serve`` with one worker, so anything that blocked the event loop would block
every other client: a stalled client, a silent connection and an open SSE stream must each leave
the worker answering. Timeouts only guard against hangs; nothing here measures speed
(``python -m benchmarks`` does).
"""

from __future__ import annotations

import http.client
import io
import itertools
import selectors
import socket
import threading
import types
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from server import fast_http
from server.app import App
from server.handlers.storage import may_ask_for_proof
from server.worker import (
    MAX_REQUESTS_PER_CONNECTION,
    POOL,
    ConnSocket,
    StrataWorker,
    answerable_now,
    pooled,
    request_size,
)
from tests.server.conftest import LiveServer, start_server, stop_server
from tests.server.sse_client import Subscriber

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

READ = b'{"keys": ["a"]}'
POST = (b"POST /v4/storage/w/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(READ))


def _pending(sock: socket.socket) -> bytes:
    """What has arrived on ``sock`` so far, without waiting."""
    sock.setblocking(False)
    try:
        return sock.recv(1 << 16)
    except BlockingIOError:
        return b""
    finally:
        sock.setblocking(True)


@pytest.fixture
def wire() -> Iterator[tuple[ConnSocket, socket.socket]]:
    """A pool thread's view of a connection, and the client's end of it."""
    ours, peer = socket.socketpair()
    with ours, peer:
        yield ConnSocket(ours), peer


def test_a_pool_answer_head_waits_for_its_body_and_both_go_in_one_send(
        wire: tuple[ConnSocket, socket.socket]) -> None:
    conn, peer = wire
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
    conn.sendall(head)
    assert _pending(peer) == b""  # held: nothing on the wire yet
    conn.sendall(b'{"tx": 12}\n')
    assert _pending(peer) == head + b'{"tx": 12}\n'  # one read: head and body arrived together
    conn.flush()
    assert _pending(peer) == b""  # nothing was left held


def test_a_held_head_without_a_body_is_sent_by_flush(wire: tuple[ConnSocket, socket.socket]) -> None:
    conn, peer = wire
    head = b"HTTP/1.1 304 Not Modified\r\ncontent-length: 0\r\n\r\n"
    conn.sendall(head)
    assert _pending(peer) == b""
    conn.flush()
    assert _pending(peer) == head


def test_a_streamed_answer_head_is_sent_at_once(wire: tuple[ConnSocket, socket.socket]) -> None:
    """An SSE stream's head (no Content-Length) must reach the client before any event exists."""
    conn, peer = wire
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    conn.sendall(head)
    assert _pending(peer) == head


@pytest.mark.parametrize("data,expected", [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (POST + READ, True),
    (POST + READ + b"GET /healthz HTTP/1.1\r\n", True),  # a pipelined second request behind it
    (POST + READ[:-1], False),  # body still arriving
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", False),  # head still arriving
    (b"", False),
    (b"POST /v4/storage/w/write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", False),
    (b"POST /x HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", False),  # the parser judges it
    (b"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", False),  # not a length the loop can read: the pool's parser
    (b"POST /x HTTP/1.1\r\nContent-Length: 0000000000000000026\r\n\r\n", False),  # 16+ digits: never inline
    (b"POST /x HTTP/1.1\r\nContent-Length: 000000000000002\r\n\r\n{}", True),  # 15 digits, body here
    (b"POST /x HTTP/1.1\r\ncontent-length : 2\r\n\r\n{}", True),  # all here whatever the parser makes of it
    (b"POST /x HTTP/1.1\r\nContent-Length: 70000\r\n\r\n" + b"x" * 70000, False),  # over PEEK_BYTES
    (b"GET http://x/healthz HTTP/1.1\r\n\r\n", False),  # absolute form: left to the parser, on a thread
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", False),  # a TLS hello on a plain port
    (b"GET /healthz HTTP/2.0\r\n\r\n", False),
])
def test_answerable_now(data: bytes, expected: bool) -> None:
    assert answerable_now(data) is expected


def test_streams_are_left_to_the_pool_however_the_path_is_spelled(app: App) -> None:
    for path in (b"/v4/storage/feed/sse", b"/v4/storage/feed/sse?start_tx=0", b"/v4/storage/feed/%73se",
                 b"/v4/storage/%66eed/sse"):
        assert not answerable_now(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n", app.long_running), path
    assert answerable_now(b"GET /v4/storage/feed/key?key=a HTTP/1.1\r\n\r\n", app.long_running)
    assert answerable_now(b"POST /v4/storage/feed/sse HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                          app.long_running)  # a 405: answered at once


@pytest.mark.parametrize("request_line,long", [
    (b"POST /v4/admin/compact", True),
    (b"POST /v4/admin/backup", True),
    (b"GET /v4/verify", True),
    (b"POST /v4/storage/a/diff", True),
    (b"DELETE /v4/namespace/storage/a", True),
    (b"POST /v4/storage/a/read", False),
    (b"POST /v4/storage/a/write", True),  # may wait for the write lock; grouped with other writes
    (b"POST /v4/storage/a/delete", True),
    (b"POST /v4/storage/a/key", True),
    (b"DELETE /v4/storage/a/key", True),
    (b"POST /v4/namespace/storage", True),
    (b"POST /v4/storage/a/scan", True),  # its answer's size is set by its limit and the data
    (b"GET /v4/storage/a/changes", True),
    (b"GET /v4/storage/a/history", True),
    (b"GET /v4/tx/12", True),
    (b"GET /v4/storage/a/key", False),
    (b"GET /v4/head", False),
    (b"GET /v4/admin/compaction", False),
    (b"GET /nowhere", False),  # a 404, answered at once
])
def test_whole_store_work_goes_to_the_pool(app: App, request_line: bytes, long: bool) -> None:
    data = request_line + b" HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
    assert answerable_now(data, app.long_running) is not long


def _read_request(body: bytes, path: bytes = b"/v4/storage/a/read") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (path, len(body), body)


@pytest.mark.parametrize("body,long", [
    (b'{"keys": ["a", "b"]}', False),
    (b'["a", "b"]', False),
    (b'{"keys": ["a"], "tx": 3, "metadata": true, "fields": ["created_at"]}', False),
    (b'{"keys": ["a\\u00e9"]}', False),  # an escape, but not of "proof"
    (b'{"keys": ["a"], "proof": true}', True),
    (b'{"proof":true,"keys":["a"]}', True),
    (b'{"keys": ["a"], "\\u0070ro\\u006Ff": true}', True),  # JSON's other spellings of the name
    (b'{"keys": ["a"], "proof": false}', True),  # false positives: a hop to the pool, the same answer
    (b'{"keys": ["proof"]}', True),
    (b'["proof"]', True),
    (b'{"keys": ["a"], "proofs": true}', False),  # not the member (a 400 from the handler, on the loop)
])
def test_a_read_that_may_ask_for_proofs_goes_to_the_pool(app: App, body: bytes, long: bool) -> None:
    data = _read_request(body)
    assert request_size(data, app.long_running) == (POOL if long else len(data))
    assert request_size(data + b"GET /healthz HTTP/1.1\r\n\r\n", app.long_running) == (POOL if long else len(data))
    # Until its body is whole a read is judged by its path: the loop reads on, then judges the body.
    assert request_size(data[:-3], app.long_running) == len(data)
    # Only a read's body is judged: elsewhere "proof" means nothing to the loop.
    other = _read_request(body, b"/v4/storage/a/nowhere")
    assert request_size(other, app.long_running) == len(other)


def test_every_json_spelling_of_the_proof_member_is_caught() -> None:
    letters = [("p", ["\\u0070"]), ("r", ["\\u0072"]), ("o", ["\\u006f", "\\u006F"]), ("o", ["\\u006f", "\\u006F"]),
               ("f", ["\\u0066"])]
    spellings = ["".join(s) for s in itertools.product(*[[c, *escapes] for c, escapes in letters])]
    assert len(spellings) == 72
    for spelling in spellings:
        body = b'{"keys": ["a"], "%s": true}' % spelling.encode()
        assert orjson.loads(body) == {"keys": ["a"], "proof": True}, spelling
        assert may_ask_for_proof(body) and may_ask_for_proof(bytearray(body)), spelling


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("worker"), "--heartbeat", "0.3", workers=1)
    yield live
    stop_server(live.proc)


def _write(server: LiveServer, ns: str, key: str, value: object) -> int:
    status, _, body = server.request("POST", f"/v4/storage/{ns}/write", json=[{"key": key, "value": value}])
    assert status == 200, body
    return int(orjson.loads(body)["tx"])


def test_a_stalled_client_does_not_block_the_worker(one_worker: LiveServer) -> None:
    tx = _write(one_worker, "stall", "a", 1)
    stalled = socket.create_connection(("127.0.0.1", one_worker.port), timeout=30)
    silent = socket.create_connection(("127.0.0.1", one_worker.port), timeout=30)
    try:
        stalled.sendall(POST.replace(b"/w/", b"/stall/") + READ[:5])  # head and part of the body, then nothing
        for i in range(5):
            status, _, body = one_worker.request("POST", "/v4/storage/stall/read", json={"keys": ["a"]})
            assert status == 200 and orjson.loads(body)["data"] == [
                {"key": "a", "value": 1, "tx": tx, "binary": False}], i
        stalled.sendall(READ[5:])  # the rest arrives: the request is answered after all
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = stalled.recv(65536)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ") and b'"value":1' in answer
    finally:
        stalled.close()
        silent.close()


def test_keep_alive_until_the_request_cap_then_close(one_worker: LiveServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", one_worker.port, timeout=30)
    try:
        conn.connect()
        first = conn.sock
        for n in range(1, MAX_REQUESTS_PER_CONNECTION + 1):
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            if n < MAX_REQUESTS_PER_CONNECTION:
                assert conn.sock is first and (resp.getheader("Connection") or "").lower() != "close", n
        assert (resp.getheader("Connection") or "").lower() == "close"
        assert conn.sock is None  # http.client closed it, as the server asked
    finally:
        conn.close()


def test_writes_keep_alive_through_the_pool_until_the_request_cap(one_worker: LiveServer) -> None:
    """A write is answered on a pool thread and its kept-alive connection goes back to the loop:
    the next request on it is read and answered like the first, up to the cap."""
    conn = http.client.HTTPConnection("127.0.0.1", one_worker.port, timeout=30)
    try:
        conn.connect()
        first = conn.sock
        txs = []
        for n in range(1, MAX_REQUESTS_PER_CONNECTION + 1):
            conn.request("POST", "/v4/storage/kept/write", orjson.dumps([{"key": f"k{n}", "value": n}]),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body
            txs.append(orjson.loads(body)["tx"])
            if n < MAX_REQUESTS_PER_CONNECTION:
                assert conn.sock is first and (resp.getheader("Connection") or "").lower() != "close", n
        assert (resp.getheader("Connection") or "").lower() == "close"
        assert conn.sock is None
        assert txs == list(range(txs[0], txs[0] + MAX_REQUESTS_PER_CONNECTION))
    finally:
        conn.close()
    status, _, body = one_worker.request("GET", "/v4/namespace/storage/kept")
    assert status == 200 and orjson.loads(body)["data"]["stat"]["key_count"] == MAX_REQUESTS_PER_CONNECTION


def test_an_open_stream_leaves_the_worker_answering(one_worker: LiveServer) -> None:
    sub = Subscriber(one_worker.port, "/v4/storage/live/sse")
    try:
        assert sub.status == 200 and sub.pid is not None
        txs = [_write(one_worker, "live", f"k{i}", i) for i in range(3)]  # answered while the stream is open
        status, _, body = one_worker.request("POST", "/v4/storage/live/read", json={"keys": ["k0", "k2"]})
        assert status == 200 and [r["value"] for r in orjson.loads(body)["data"]] == [0, 2]
        assert [sub.next_event()["id"] for _ in txs] == txs
    finally:
        sub.close()


def test_concurrent_clients_on_one_worker_all_get_their_own_answers(one_worker: LiveServer) -> None:
    import threading

    errors: list[str] = []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", one_worker.port, timeout=30)
        try:
            for i in range(20):
                key = f"c{n}-{i}"
                conn.request("POST", "/v4/storage/conc/write", orjson.dumps([{"key": key, "value": [n, i]}]),
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                tx = orjson.loads(resp.read())["tx"]
                conn.request("POST", "/v4/storage/conc/read", orjson.dumps({"keys": [key]}),
                             {"Content-Type": "application/json"})
                got = orjson.loads(conn.getresponse().read())["data"]
                if got != [{"key": key, "value": [n, i], "tx": tx, "binary": False}]:
                    errors.append(f"{key}: {got}")
        except Exception as exc:
            errors.append(f"client {n}: {exc!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    status, _, body = one_worker.request("GET", "/v4/namespace/storage/conc")
    assert status == 200 and orjson.loads(body)["data"]["stat"]["key_count"] == 160


def _answers(sock: socket.socket) -> list[tuple[bytes, bytes]]:
    """Every answer on ``sock`` until the server closes it: (status line, body), in order."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    answers = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        fields = (line.partition(b": ") for line in lines[1:])
        length = next(int(value) for name, _, value in fields if name.lower() == b"content-length")
        answers.append((lines[0], data[:length]))
        data = data[length:]
    return answers


def test_pipelined_requests_are_answered_in_order_whichever_path_each_takes(one_worker: LiveServer) -> None:
    """The fast path (on the loop and on the pool) and gunicorn's (a chunked body, HTTP/1.0) share one
    connection: each request's leftover bytes are the next request's."""
    tx = _write(one_worker, "pipe", "a", 1)
    write = orjson.dumps([{"key": "b", "value": 2}])
    read = orjson.dumps({"keys": ["a", "b"]})
    requests = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"  # fast, on the loop
        b"POST /v4/storage/pipe/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(write), write)  # fast, on the pool
        + b"POST /v4/storage/pipe/read HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(read), read)
        + b"POST /v4/storage/pipe/read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%X\r\n%s\r\n0\r\n\r\n" % (len(read), read)  # gunicorn's parser: a chunked body
        + b"GET /healthz HTTP/1.0\r\n\r\n")  # gunicorn's parser: HTTP/1.0, which closes
    with socket.create_connection(("127.0.0.1", one_worker.port), timeout=30) as sock:
        sock.sendall(requests)
        answers = _answers(sock)
    assert [status for status, _ in answers] == [b"HTTP/1.1 200 OK"] * 4 + [b"HTTP/1.0 200 OK"]
    written = orjson.loads(answers[1][1])["tx"]
    assert written == tx + 1
    data = [{"key": "a", "value": 1, "tx": tx, "binary": False},
            {"key": "b", "value": 2, "tx": written, "binary": False}]
    assert orjson.loads(answers[2][1])["data"] == data and orjson.loads(answers[3][1])["data"] == data


def test_a_client_asking_to_close_gets_connection_close(one_worker: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", one_worker.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 ") == 1 and b"\r\nConnection: close\r\n" in data


@pytest.mark.parametrize("smuggled", [
    b"Content-Length: 4\r\nContent-Length: 0\r\n\r\n",
    b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"Content-Length : 4\r\n\r\n",
    b"X-A: b\r\n Content-Length: 4\r\n\r\n",
])
def test_an_ambiguous_length_is_refused_and_nothing_behind_it_is_answered(one_worker: LiveServer,
                                                                          smuggled: bytes) -> None:
    with socket.create_connection(("127.0.0.1", one_worker.port), timeout=30) as sock:
        sock.sendall(b"POST /v4/storage/pipe/read HTTP/1.1\r\nHost: x\r\n" + smuggled
                     + b"0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = _answers(sock)
    assert [status for status, _ in answers] == [b"HTTP/1.1 400 Bad Request"]


@pytest.mark.parametrize("setting,value", [
    (None, None),
    ("accesslog", "-"),
    ("proxy_protocol", "v1"),
    ("pre_request", lambda worker, req: None),
    ("post_request", lambda worker, req, environ, resp: None),
    ("inline", False),  # TLS or HTTP/2
])
def test_the_fast_path_is_off_where_gunicorn_must_see_every_request(setting: str | None, value: object) -> None:
    from gunicorn.config import Config

    from server.worker import StrataWorker

    worker = object.__new__(StrataWorker)
    worker.cfg = Config()
    worker._inline = True
    if setting == "inline":
        worker._inline = value
    elif setting is not None:
        worker.cfg.set(setting, value)
    fast = worker._fast_path_config()
    assert (fast is None) == (setting is not None)
    if fast is not None:
        assert fast["limits"] == {"max_line": 4094, "max_fields": 64, "max_field_size": 8190,
                                  "scheme_headers": frozenset({"X-FORWARDED-PROTOCOL", "X-FORWARDED-PROTO",
                                                               "X-FORWARDED-SSL"})}


class _Answers:
    """The answers on a socket that stays open, one at a time, read exactly."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, self.data
        self.data += chunk

    def next(self) -> tuple[bytes, bytes]:
        """The next answer: (status line, body)."""
        while b"\r\n\r\n" not in self.data:
            self._more()
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.partition(b": ")[2]) for line in lines[1:]
                      if line.lower().startswith(b"content-length:"))
        while len(self.data) < length:
            self._more()
        body, self.data = self.data[:length], self.data[length:]
        return lines[0], body


def _write_request(ns: str, key: str, value: object) -> bytes:
    body = orjson.dumps([{"key": key, "value": value}])
    return (b"POST /v4/storage/%s/write HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (ns.encode(), len(body), body))


def test_bytes_pipelined_behind_a_batched_write_are_answered_after_it_and_the_connection_lives_on(
        one_worker: LiveServer) -> None:
    """A batched write's connection stays in the worker's poller while the write batcher has it; bytes
    the client sends meanwhile (here: the next requests, sent with it) are read once it is answered."""
    with socket.create_connection(("127.0.0.1", one_worker.port), timeout=30) as sock:
        answers = _Answers(sock)
        sock.sendall(_write_request("lazy", "a", 1) + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                     + _write_request("lazy", "b", 2))
        first, healthz, second = answers.next(), answers.next(), answers.next()
        assert [first[0], healthz[0], second[0]] == [b"HTTP/1.1 200 OK"] * 3
        tx = orjson.loads(first[1])["tx"]
        assert orjson.loads(healthz[1])["tx"] >= tx and orjson.loads(second[1])["tx"] == tx + 1
        for n in range(3):  # then one request at a time, on the same connection
            sock.sendall(_write_request("lazy", f"c{n}", n))
            status, body = answers.next()
            assert status == b"HTTP/1.1 200 OK" and orjson.loads(body)["tx"] == tx + 2 + n
            assert not answers.data  # nothing the client has not asked for
        read = orjson.dumps({"keys": ["a", "b", "c2"]})
        sock.sendall(b"POST /v4/storage/lazy/read HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(read), read))
        status, body = answers.next()
        assert status == b"HTTP/1.1 200 OK"
        assert [(r["key"], r["value"]) for r in orjson.loads(body)["data"]] == [("a", 1), ("b", 2), ("c2", 2)]


def test_kept_alive_connections_left_idle_are_closed_by_the_server(one_worker: LiveServer) -> None:
    """After an answer on the loop and one from the write batcher, a connection that sends nothing
    more is closed by the worker once gunicorn's keep-alive timeout (2 s by default) has passed."""
    with socket.create_connection(("127.0.0.1", one_worker.port), timeout=30) as read_conn, \
            socket.create_connection(("127.0.0.1", one_worker.port), timeout=30) as write_conn:
        read_conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        write_conn.sendall(_write_request("idle", "a", 1))
        reads, writes = _Answers(read_conn), _Answers(write_conn)
        assert reads.next()[0] == writes.next()[0] == b"HTTP/1.1 200 OK"
        assert read_conn.recv(1) == b"" and write_conn.recv(1) == b""  # closed, with nothing more sent


@pytest.mark.parametrize("data", [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v4/storage/feed/sse HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v4/storage/feed/%73se?start_tx=0 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v4/storage/%66eed/sse HTTP/1.1\r\n\r\n",
    b"GET /v4/storage/a/key?key=%2F HTTP/1.1\r\n\r\n",
    b"POST /v4/admin/compact HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /v4/storage/a/write HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /v4/storage/a/scan HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /v4/storage/a/read HTTP/1.1\r\nContent-Length: 19\r\n\r\n{\"keys\": [\"proof\"]}",
    b"POST /v4/storage/a/read HTTP/1.1\r\nContent-Length: 10\r\n\r\n[\"a\", \"b\"]",
    b"POST /v4/storage/a/read HTTP/1.1\r\nContent-Length: 000000000000002\r\n\r\n[]",
    b"ABCDEFGHIJKLMNOP /v4/head HTTP/1.1\r\n\r\n",  # 16 letters: the loop's (a 405)
    b"ABCDEFGHIJKLMNOPQ /v4/head HTTP/1.1\r\n\r\n",  # 17: the pool's
    b"POST /x HTTP/1.1\r\nContent-Length: 65500\r\n\r\n" + b"x" * 65500,  # over PEEK_BYTES with its head
    b"POST /x HTTP/1.1\r\nContent-Length: 65400\r\n\r\n" + b"x" * 65400,
])
def test_the_fast_path_judges_a_request_as_its_bytes_are_judged(app: App, data: bytes) -> None:
    """The loop judges a request the fast parser accepted from what it parsed (:func:`pooled`), and
    any other from its bytes (:func:`request_size`): both judge alike."""
    req = fast_http.parse(data + b"GET /healthz HTTP/1.1\r\n\r\n", max_line=8190)
    assert req is not None and req.size == len(data)
    for long_running in (None, app.long_running):
        assert pooled(req, long_running) is (request_size(data, long_running) == POOL), long_running


class _Loop:
    """What :meth:`StrataWorker._deliver` uses of its worker: the hand-back lock and gthread's method
    queue, whose wake-ups of the loop are recorded here."""

    def __init__(self) -> None:
        self._handback = threading.Lock()
        self.method_queue = self
        self.woken: list[list[Any]] = []

    def defer(self, _fn: Any, conns: list[Any]) -> None:
        self.woken.append(conns)

    def _send_all(self, conns: list[Any]) -> None:  # what the woken loop runs: not run here
        raise AssertionError("the loop's part")


class _Conn:
    def __init__(self, sock: socket.socket, polled: int, buffered: bytes = b"") -> None:
        self.sock = ConnSocket(sock)
        self.polled = polled
        self.delivery: tuple[memoryview, bool] | None = None
        self.parser = types.SimpleNamespace(unreader=types.SimpleNamespace(buf=io.BytesIO(buffered)))
        if buffered:
            self.parser.unreader.buf.seek(len(buffered))


def test_the_write_batcher_wakes_the_loop_only_for_connections_it_must_finish() -> None:
    """An answer sent whole on a kept-alive connection still in the poller, with no next request
    already read, is handed back without waking the loop (it takes it back when the connection
    fires or at its sweep); a closing connection, an answer the socket did not take whole, bytes of a
    next request already read, or a connection the loop unregistered meanwhile wake the loop."""
    loop = _Loop()
    pairs = [socket.socketpair() for _ in range(6)]
    try:
        big = bytearray(b"x" * (16 << 20))  # more than a socketpair's buffers take at once
        quiet = _Conn(pairs[0][0], selectors.EVENT_READ)
        closing = _Conn(pairs[1][0], selectors.EVENT_READ)
        partial_ = _Conn(pairs[2][0], selectors.EVENT_READ)
        pipelined = _Conn(pairs[3][0], selectors.EVENT_READ, b"GET /healthz HTTP/1.1\r\n\r\n")
        unpolled = _Conn(pairs[4][0], 0)
        empty = _Conn(pairs[5][0], selectors.EVENT_READ)
        StrataWorker._deliver(loop, [(quiet, bytearray(b"answer"), True), (closing, bytearray(b"bye"), False),
                                     (partial_, big, True), (pipelined, bytearray(b"first"), True),
                                     (unpolled, bytearray(b"late"), True), (empty, bytearray(), True)])
        assert loop.woken == [[closing, partial_, pipelined, unpolled]]
        assert pairs[0][1].recv(100) == b"answer" and pairs[4][1].recv(100) == b"late"
        assert quiet.delivery is not None and (bytes(quiet.delivery[0]), quiet.delivery[1]) == (b"", True)
        assert empty.delivery is not None and (bytes(empty.delivery[0]), empty.delivery[1]) == (b"", True)
        assert closing.delivery is not None and closing.delivery[1] is False
        assert partial_.delivery is not None and 0 < len(partial_.delivery[0]) < len(big)
    finally:
        for ours, peer in pairs:
            ours.close()
            peer.close()


def test_a_client_closing_after_a_batched_answer_is_let_go(one_worker: LiveServer) -> None:
    """A connection handed back quietly by the write batcher is the loop's again when it fires: a
    client that closes after its answer gets its connection closed (a new one is then served)."""
    for n in range(3):
        with socket.create_connection(("127.0.0.1", one_worker.port), timeout=30) as sock:
            sock.sendall(_write_request("bye", f"k{n}", n))
            status, _ = _Answers(sock).next()
            assert status == b"HTTP/1.1 200 OK"
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1) == b""  # the server closed its end, with nothing more sent
    status, _, body = one_worker.request("POST", "/v4/storage/bye/read", json={"keys": ["k0", "k1", "k2"]})
    assert status == 200 and [r["value"] for r in orjson.loads(body)["data"]] == [0, 1, 2]
