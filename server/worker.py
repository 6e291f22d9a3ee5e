"""The gunicorn worker ``strata serve`` runs: gthread's event loop, answering requests on its own thread.

Why not gunicorn's plain gthread worker: py-lmdb releases the GIL around every cursor call, about
200 of them in a 100-key read. When several threads of one process run requests, each release
hands the GIL to another thread, and the call that released it then waits to get it back. On 2
cores with 8 concurrent clients on one worker, 16 gthread threads answered 390 reads of 100 keys
per second where a single thread answered 1,300. The GIL runs one thread of Python at a time
anyway, so answering one request at a time per process loses nothing: parallelism comes from
processes (``--workers``).

Why not the sync worker: it closes the connection after every answer (a TCP handshake per
request, about a fifth of the cost of a 100-key read over loopback), and an SSE stream would
hold its only thread for as long as the client listens.

Contract of :class:`StrataWorker`:

- A request whose head and body are already in the socket's receive buffer is answered on the
  event-loop thread, one at a time, and the connection is kept alive.
- Anything that may take long or have to wait goes to gthread's thread pool (``--threads``):
  SSE streams and whole-store work (the app's ``long_running(method, path)`` says which), requests
  still arriving (slow clients, bodies larger than :data:`PEEK_BYTES`, chunked bodies) and TLS.
  So a slow or stalled client never blocks the worker, and a long request is not killed by
  gunicorn's ``--timeout`` watchdog, which the event loop feeds between requests.
- New connections wait in the poller until their first bytes arrive (as long as gthread lets them
  wait, then they are closed).
- A connection is closed after :data:`MAX_REQUESTS_PER_CONNECTION` requests, with
  ``Connection: close`` on the last answer. Keep-alive connections opened in a burst can all land
  on one worker; as clients reconnect, the worker that polls first accepts, which is the less
  busy one (a worker accepts only between requests), so the load spreads over the workers.
- Sends time out after :data:`SEND_TIMEOUT` seconds without progress: a client that stops
  reading its answer gets its connection closed instead of stalling the worker until gunicorn's
  watchdog kills it.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import struct
import time
from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

from gunicorn.workers.gthread import DEFAULT_WORKER_DATA_TIMEOUT, TConn, ThreadWorker

MAX_REQUESTS_PER_CONNECTION = 100
PEEK_BYTES = 64 * 1024
SEND_TIMEOUT = 10.0

_REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) (/[^ ?#]*)[^ ]* HTTP/1\.[01]\r\n")
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d{1,15})[ \t]*(?=\r\n)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:", re.IGNORECASE)


def answerable_now(data: bytes, long_running: Any = None) -> bool:
    """Whether ``data``, peeked from a socket, starts with a whole HTTP/1.x request that can be
    answered right away: head and Content-Length body complete, no chunked body, and not long
    running (``long_running(method, path)`` true). Anything unusual says False: the thread pool,
    which can wait, takes it, and gunicorn's parser judges it there."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = data[: end + 2]
    line = _REQUEST_LINE.match(head)
    if line is None or _CHUNKED.search(head):
        return False
    lengths = _CONTENT_LENGTH.findall(head)
    if len(lengths) > 1 or len(data) < end + 4 + (int(lengths[0]) if lengths else 0):
        return False
    if long_running is not None:
        method, path = line.group(1).decode(), unquote_to_bytes(line.group(2)).decode("latin-1")
        if long_running(method, path):
            return False
    return True


class _Answered:
    """An inline request's outcome in the shape of the future gthread's ``finish_request`` takes."""

    __slots__ = ("_keepalive",)

    def __init__(self, keepalive: bool) -> None:
        self._keepalive = keepalive

    def result(self) -> bool:
        return self._keepalive

    def cancelled(self) -> bool:
        return False


class StrataWorker(ThreadWorker):  # type: ignore[misc]
    """gthread with buffered requests answered on the event-loop thread; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inline = not self.cfg.is_ssl
        self._long_running: Any = None

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self._long_running = getattr(self.wsgi, "long_running", None)  # the Strata app's; None: any app

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(SEND_TIMEOUT), 0))
        conn = TConn(self.cfg, sock, addr, listener.getsockname())  # non-blocking until it is served
        # As long as gthread gives a new connection to send its request: a thread's wait, then keep-alive.
        conn.timeout = time.monotonic() + DEFAULT_WORKER_DATA_TIMEOUT + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))

    def enqueue_req(self, conn: TConn) -> None:
        if not self._inline or conn.is_http2 or (conn.parser is not None and conn.parser.unreader.buf.getvalue()):
            return super().enqueue_req(conn)  # bytes already read ahead, or TLS/HTTP/2: gthread's path
        try:
            data = conn.sock.recv(PEEK_BYTES, socket.MSG_PEEK)
        except OSError:
            data = None
        if data is None or (data and not answerable_now(data, self._long_running)):
            return super().enqueue_req(conn)
        conn.data_ready = True  # b"" (the client closed) is answered inline too: handle() just closes
        self.finish_request(conn, _Answered(self.handle(conn)))

    def handle_request(self, req: Any, conn: TConn) -> Any:
        conn.requests = getattr(conn, "requests", 0) + 1
        if conn.requests >= MAX_REQUESTS_PER_CONNECTION:
            req.must_close = True  # answered with "Connection: close"
        return super().handle_request(req, conn)
