"""Malformed chunked bodies over a real gunicorn: 400 ``INVALID_PARAMETERS``, no traceback, no change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.server.conftest import LiveServer, raw, start_server, stop_server

WRITE = "/v4/storage/chunky/write"
GOOD = b'[{"key": "k", "value": 1}]'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("chunked"))
    yield live
    stop_server(live.proc)


def send_chunked(port: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """POST ``body`` (already chunk-framed, byte for byte) and read the answer to the end."""
    return raw(port, "POST", WRITE, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}, body)


def head(server: LiveServer) -> tuple[int, str]:
    doc = orjson.loads(server.request("GET", "/v4/head")[2])
    return doc["tx"], doc["hash"]


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


MALFORMED = {
    "bad-chunk-size": b"zz\r\n" + GOOD + b"\r\n0\r\n\r\n",
    "chunk-size-too-long": b"1" * 40 + b"\r\n" + GOOD + b"\r\n0\r\n\r\n",
    "no-crlf-after-data": f"{len(GOOD):x}\r\n".encode() + GOOD + b"XX0\r\n\r\n",
    "bad-chunk-extension": f"{len(GOOD):x};\x01bad\r\n".encode() + GOOD + b"\r\n0\r\n\r\n",
    "bare-cr-in-extension": f"{len(GOOD):x};a=b\rc\r\n".encode() + GOOD + b"\r\n0\r\n\r\n",
    "ends-before-last-chunk": chunk(GOOD[:10]),
}


def test_a_well_formed_chunked_body_is_written(server: LiveServer) -> None:
    status, _, body = send_chunked(server.port, chunk(GOOD[:10]) + chunk(GOOD[10:]) + b"0\r\n\r\n")
    assert status == 200, body
    assert orjson.loads(body)["count"] == 1


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_chunked_body_is_a_400_without_a_traceback(server: LiveServer, name: str) -> None:
    before = head(server)
    log = Path(server.data).parent / "server.log"
    log_size = log.stat().st_size
    status, headers, body = send_chunked(server.port, MALFORMED[name])
    assert (status, headers.get("content-type")) == (400, "application/problem+json"), body
    doc = orjson.loads(body)
    assert doc["code"] == "INVALID_PARAMETERS" and doc["errors"][0]["location"] == "body"
    assert "request body" in doc["detail"]
    assert head(server) == before  # nothing written
    with log.open("rb") as f:
        f.seek(log_size)
        logged = f.read().decode("utf-8", "replace")
    assert "Traceback" not in logged and "INTERNAL_ERROR" not in logged and "unexpected error" not in logged
    assert server.request("GET", "/healthz")[0] == 200
