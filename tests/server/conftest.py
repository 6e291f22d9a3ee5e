"""Fixtures for the server tests: an in-process WSGI client and a real gunicorn server.

``client`` calls the WSGI app directly with environ dicts (fast; most tests use it).
``live_server`` starts ``python -m server serve`` with 2 gunicorn workers on a free loopback port
(once per module that asks for it) and gives its base address.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from server import create_app
from server.app import App

REPO = Path(__file__).resolve().parents[2]


class Response:
    """What the app answered: status code, headers (dict, last wins), body bytes."""

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = int(status.split()[0])
        self.status_line = status
        self.header_list = headers
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def code(self) -> str | None:
        """The problem ``code`` (None for a non-problem answer)."""
        if self.headers.get("content-type") != "application/problem+json":
            return None
        return self.json()["code"]

    def __repr__(self) -> str:
        return f"<Response {self.status_line} {self.body[:300]!r}>"


class NoReadInput(io.RawIOBase):
    """A wsgi.input that fails the test if the app reads from it."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the app read the body")

    readline = read


class Client:
    """Calls a WSGI app in-process. ``json=`` sends a JSON body; ``body=`` raw bytes."""

    def __init__(self, app: App, token: str | None = None) -> None:
        self.app = app
        self.token = token

    def request(self, method: str, path: str, *, json: Any = ..., body: bytes | None = None,
                query: dict[str, str] | str | None = None, content_type: str | None = None,
                headers: dict[str, str] | None = None, environ: dict[str, Any] | None = None,
                token: str | None = None) -> Response:
        if json is not ...:
            body = orjson.dumps(json)
            content_type = content_type or "application/json"
        if isinstance(query, dict):
            query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())
        env: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query or "",
            "SERVER_NAME": "test",
            "SERVER_PORT": "80",
            "wsgi.input": io.BytesIO(body or b""),
            "wsgi.url_scheme": "http",
        }
        if body is not None:
            env["CONTENT_LENGTH"] = str(len(body))
        if content_type is not None:
            env["CONTENT_TYPE"] = content_type
        token = token or self.token
        if token is not None:
            env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        for name, value in (headers or {}).items():
            env["HTTP_" + name.upper().replace("-", "_")] = value
        env.update(environ or {})
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"], captured["headers"] = status, headers

        chunks = self.app(env, start_response)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return Response(captured["status"], captured["headers"], data)

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Response:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)

    # Shorthands for the storage API of namespace ``ns``.
    def write(self, ns: str, items: list[dict[str, Any]], **kw: Any) -> Response:
        return self.post(f"/v4/storage/{ns}/write", json=items, **kw)

    def read(self, ns: str, keys: list[str] | None = None, tx: int | None = None, **kw: Any) -> Response:
        body: dict[str, Any] = {}
        if keys is not None:
            body["keys"] = keys
        if tx is not None:
            body["tx"] = tx
        return self.post(f"/v4/storage/{ns}/read", json=body, **kw)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    application = create_app(tmp_path / "data", sync=False)
    yield application
    application.close()


@pytest.fixture
def client(app: App) -> Client:
    return Client(app)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request over a fresh connection (gunicorn's sync workers close after each answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class LiveServer:
    """A running ``strata serve``: ``port``, ``data`` and ``request(...)``."""

    def __init__(self, port: int, data: Path, proc: subprocess.Popen[bytes]) -> None:
        self.port, self.data, self.proc = port, data, proc

    def request(self, method: str, path: str, json: Any = ..., body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = dict(headers or {})
        if json is not ...:
            body = orjson.dumps(json)
            headers.setdefault("Content-Type", "application/json")
        return http_request(self.port, method, path, body, headers)


def start_server(tmp: Path, *extra: str, workers: int = 2) -> LiveServer:
    port = free_port()
    data = tmp / "data"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    env.pop("STRATA_KEYS_FILE", None)
    with open(tmp / "server.log", "wb") as log:  # the server writes to its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--data", str(data), "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), "--no-sync", *extra],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    # Wait until it answers (a start-up guard, not a timing assertion: it only bounds a hang).
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {(tmp / 'server.log').read_text()}")
        with contextlib.suppress(OSError):
            if http_request(port, "GET", "/healthz")[0] == 200:
                return LiveServer(port, data, proc)
        if time.monotonic() > deadline:
            stop_server(proc)
            raise AssertionError(f"server did not start: {(tmp / 'server.log').read_text()}")
        time.sleep(0.05)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("live"))
    yield server
    stop_server(server.proc)


def raw(port: int, method: str, path: str, headers: dict[str, str], body: bytes, *, shutdown: bool = True,
        trickle: float = 0.0) -> tuple[int, dict[str, str], bytes]:
    """Send a request byte for byte (headers as given, no Content-Length fix-up); ``trickle``
    sends the body one byte at a time with that pause; ``shutdown`` half-closes after the body."""
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        if trickle:
            for i in range(len(body)):
                sock.sendall(body[i:i + 1])
                time.sleep(trickle)
        else:
            sock.sendall(body)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_bytes, _, payload = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    hdrs = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), hdrs, payload
