"""Real HTTP against ``strata serve`` with 2 gunicorn workers (started once for this module)."""

from __future__ import annotations

import base64
import http.client
import re
import socket
import threading
import time

import orjson
import pytest

from tests.server.conftest import LiveServer, http_request, start_server, stop_server

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_round_trip_over_http(live_server: LiveServer) -> None:
    raw = b"\x00\xffbinary"
    status, headers, body = live_server.request("POST", "/v4/storage/http/write", json=[
        {"key": "j", "value": {"a": [1, None]}},
        {"key": "b", "value": base64.b64encode(raw).decode(), "binary": True},
        {"key": "c"},
    ])
    assert status == 200 and headers["content-type"] == "application/json"
    tx = orjson.loads(body)["tx"]
    status, _, body = live_server.request("POST", "/v4/storage/http/read", json={"keys": ["j", "b", "c", "zz"]})
    data = orjson.loads(body)["data"]
    assert data[0] == {"key": "j", "value": {"a": [1, None]}, "tx": tx, "binary": False}
    assert base64.b64decode(data[1]["value"]) == raw and data[2] == {"key": "c", "tx": tx}
    status, _, body = live_server.request("POST", "/v4/storage/http/scan", json={"limit": 2})
    page = orjson.loads(body)
    assert [d["key"] for d in page["data"]] == ["b", "c"] and page["cursor"] == "c"
    status, headers, body = live_server.request("GET", "/v4/storage/http/key?key=nope")
    assert status == 404 and headers["content-type"] == "application/problem+json"
    assert orjson.loads(body)["code"] == "KEY_NOT_FOUND"
    status, headers, _ = live_server.request("PUT", "/v4/storage/http/read")
    assert status == 405 and headers["allow"] == "POST"
    status, _, body = live_server.request("POST", "/v4/storage/%2e%2e/read", json={})
    assert status == 400 and orjson.loads(body)["code"] == "INVALID_NAMESPACE"
    status, _, _ = live_server.request("POST", "/v4/storage/http/key?key=raw", body=raw,
                                       headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    status, _, body = live_server.request("GET", "/v4/storage/http/key?key=raw")
    assert base64.b64decode(orjson.loads(body)["value"]) == raw


def _held_request(port: int, path: str, payload: bytes) -> socket.socket:
    """Send a request but keep back the last body byte, so the worker that took it waits."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode()
    sock.sendall(head + payload[:-1])
    return sock


def _finish(sock: socket.socket, payload: bytes) -> tuple[int, bytes]:
    sock.sendall(payload[-1:])
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_write_on_one_worker_is_visible_to_a_read_on_the_other(live_server: LiveServer) -> None:
    # The held read is accepted first (the listen queue is FIFO) and its worker is then busy
    # waiting for the last byte, so the write must be served by the *other* worker. The read
    # starts only when the last byte arrives, after the write was acknowledged.
    for round_ in range(6):
        key = f"k{round_}"
        payload = orjson.dumps({"keys": [key]})
        held = _held_request(live_server.port, "/v4/storage/cross/read", payload)
        status, _, body = live_server.request("POST", "/v4/storage/cross/write",
                                              json=[{"key": key, "value": round_}])
        assert status == 200
        tx = orjson.loads(body)["tx"]
        status, body = _finish(held, payload)
        assert status == 200
        assert orjson.loads(body)["data"] == [{"key": key, "value": round_, "tx": tx, "binary": False}]


def test_declared_oversize_body_gets_413_before_it_is_sent(live_server: LiveServer) -> None:
    sock = socket.create_connection(("127.0.0.1", live_server.port), timeout=30)
    sock.sendall(b"POST /v4/storage/big/write HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 200000000\r\n\r\n[")
    # Only 1 of 200,000,000 bytes was sent: an answer proves the server did not wait for the body.
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert data.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in data
    status, _, body = live_server.request("POST", "/v4/storage/big/read", json={})
    assert status == 200 and orjson.loads(body)["tx"] >= 0


def test_chunked_request_body(live_server: LiveServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=30)
    parts = [b'[{"key":"c1",', b'"value":"chunked"}]']
    conn.request("POST", "/v4/storage/chunk/write", body=iter(parts),
                 headers={"Content-Type": "application/json"}, encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 200 and orjson.loads(resp.read())["count"] == 1
    conn.close()
    _, _, body = live_server.request("POST", "/v4/storage/chunk/read", json=["c1"])
    assert orjson.loads(body)["data"][0]["value"] == "chunked"


def test_concurrent_writers_get_distinct_consecutive_txs(live_server: LiveServer) -> None:
    start = orjson.loads(http_request(live_server.port, "GET", "/healthz")[2])["tx"]
    txs: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(5):
            status, _, body = live_server.request("POST", "/v4/storage/conc/write",
                                                  json=[{"key": f"w{n}-{i}", "value": i}])
            assert status == 200
            with lock:
                txs.append(orjson.loads(body)["tx"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(txs) == list(range(start + 1, start + 21))
    _, _, body = live_server.request("POST", "/v4/storage/conc/scan", json={})
    assert orjson.loads(body)["count"] == 20


def test_metrics_cover_both_workers(live_server: LiveServer) -> None:
    def healthz_count() -> int:
        text = http_request(live_server.port, "GET", "/metrics")[2].decode()
        m = re.search(r'strata_http_requests_total\{route="/healthz",method="GET",status="200"\} (\d+)', text)
        return int(m.group(1)) if m else 0

    before = healthz_count()
    for _ in range(20):
        assert http_request(live_server.port, "GET", "/healthz")[0] == 200
    # Whichever worker answers the scrape, it reports all 20 (counters are shared).
    assert healthz_count() == before + 20
    assert healthz_count() == before + 20


def test_every_other_endpoint_over_http(live_server: LiveServer) -> None:
    req = live_server.request
    assert req("POST", "/v4/namespace/storage", json={"namespace": "liveNs"})[0] == 201
    assert req("POST", "/v4/namespace/storage", json={"namespace": "liveNs"})[0] == 409
    assert req("POST", "/v4/storage/liveNs/write", json=[{"key": "a", "value": 1}, {"key": "b", "value": 2}])[0] == 200
    status, _, body = req("POST", "/v4/storage/liveNs/delete", json={"keys": ["a"]})
    assert status == 200 and orjson.loads(body)["count"] == 1
    assert req("DELETE", "/v4/storage/liveNs/key?key=b")[0] == 200
    assert req("GET", "/v4/storage/liveNs/key?key=b")[0] == 404
    status, _, body = req("GET", "/v4/namespace/storage/liveNs")
    assert status == 200 and orjson.loads(body)["data"]["stat"]["key_count"] == 0
    assert "liveNs" in [n["name"] for n in orjson.loads(req("GET", "/v4/namespace/storage")[2])["data"]]
    assert req("DELETE", "/v4/namespace/storage/liveNs")[0] == 200
    assert req("GET", "/v4/namespace/storage/liveNs")[0] == 404
    status, headers, body = req("GET", "/openapi.json")
    assert status == 200 and orjson.loads(body)["openapi"].startswith("3.1")
    status, headers, body = req("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain") and b"strata_latest_tx" in body
    status, _, body = req("POST", "/v4/storage/liveNs/read", body=b"{", headers={"Content-Type": "application/json"})
    assert status == 400 and orjson.loads(body)["code"] == "INVALID_JSON"
    status, _, body = req("POST", "/v4/storage/liveNs/read", body=b"x", headers={"Content-Type": "text/plain"})
    assert status == 415
    assert req("GET", "/nowhere")[0] == 404


def test_api_keys_over_http(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("secure")
    keys = tmp / "keys.json"
    keys.write_bytes(orjson.dumps({"keys": [{"name": "r", "key": "reader-secret-0123456789", "scope": "read"},
                                            {"name": "w", "key": "writer-secret-0123456789", "scope": "write"}]}))
    server = start_server(tmp, "--keys", str(keys), workers=1)
    try:
        item = [{"key": "a", "value": 1}]
        assert server.request("POST", "/v4/storage/s/write", json=item)[0] == 401
        read_only = {"Authorization": "Bearer reader-secret-0123456789"}
        status, _, body = server.request("POST", "/v4/storage/s/write", json=item, headers=read_only)
        assert status == 403 and orjson.loads(body)["code"] == "FORBIDDEN"
        writer = {"Authorization": "Bearer writer-secret-0123456789"}
        assert server.request("POST", "/v4/storage/s/write", json=item, headers=writer)[0] == 200
        assert server.request("POST", "/v4/storage/s/read", json=["a"], headers=read_only)[0] == 200
        log = (tmp / "server.log").read_text()
        assert "secret-0123456789" not in log
    finally:
        stop_server(server.proc)


def test_expired_keys_leave_the_key_count_with_nobody_writing(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``--expire-every``: one of the two workers records the due expiry as a delete in the background."""
    server = start_server(tmp_path_factory.mktemp("expire"), "--expire-every", "0.2")
    try:
        status, _, body = server.request("POST", "/v4/storage/ttl/write", json=[
            {"key": "short", "value": 1, "expiration_ttl": 1}, {"key": "long", "value": 2}])
        assert status == 200, body
        count = None
        deadline = time.monotonic() + 30  # a hang guard, not a timing assertion
        while time.monotonic() < deadline:
            status, _, body = server.request("GET", "/v4/namespace/storage/ttl")
            count = orjson.loads(body)["data"]["stat"]["key_count"]
            if count == 1:
                break
            time.sleep(0.1)
        assert count == 1
        status, _, body = server.request("GET", "/v4/storage/ttl/history?key=short")
        newest = orjson.loads(body)["data"][0]
        assert status == 200 and newest["op"] == "delete", newest
        status, _, body = server.request("GET", f"/v4/tx/{newest['tx']}")
        assert status == 200 and orjson.loads(body)["note"] == {"expired": True}, body
    finally:
        stop_server(server.proc)
