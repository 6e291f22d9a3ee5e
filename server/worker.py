"""The gunicorn worker ``strata serve`` runs: gthread's event loop, answering small requests on its own thread.

Why not gunicorn's plain gthread worker: py-lmdb releases the GIL around every cursor call, about
200 of them in a 100-key read. When several threads of one process run requests, each release
hands the GIL to another thread, and the call that released it then waits to get it back. On 2
cores with 8 concurrent clients on one worker, 16 gthread threads answered 390 reads of 100 keys
per second where a single thread answered 1,300. The GIL runs one thread of Python at a time
anyway, so answering small requests one at a time per process loses nothing: parallelism comes
from processes (``--workers``).

Why not the sync worker: it closes the connection after every answer (a TCP handshake per
request, about a fifth of the cost of a 100-key read over loopback), and an SSE stream would
hold its only thread for as long as the client listens.

Contract of :class:`StrataWorker`: nothing a client does or fails to do blocks the event loop,
which answers the cheap requests and feeds gunicorn's ``--timeout`` watchdog.

- **Heads are read by the loop.** A connection stays in the poller, its bytes read without
  blocking and kept, until the whole head of a request has arrived (and, for a request the loop
  may answer, its small body). A head not complete :attr:`StrataWorker.header_timeout` seconds
  after the connection opened (or after the first byte of a kept-alive connection's next request)
  gets a 408 ``REQUEST_TIMEOUT`` and the connection is closed; a head over :data:`MAX_HEAD_BYTES`
  gets a 431. No thread waits for a head.
- **The loop answers only bounded work.** A request whose head and ``Content-Length`` body have
  arrived, at most :data:`PEEK_BYTES` in all, without a chunked body or a ``Content-Length`` the
  loop cannot read for sure, and that the app's ``long_running(method, path, body)`` does not
  claim (from the method and path, and once the body is whole, a cheap look at its bytes: a read
  asking for proofs is long), is answered on the loop, one at a time, and the connection is kept alive.
- **Small writes go to the write batcher** (:mod:`server.write_batch`): a whole, buffered request
  on a route of :data:`server.routes.BATCHED` (``write``, ``delete``, a key's ``PUT`` and
  ``DELETE``) on an LMDB store is run by one thread of the worker, in a greenlet, and the writes
  that arrive together are committed together (one commit, one flush), answered once durable.
- **Everything else goes to gthread's thread pool** (``--threads``): other writes (so concurrent
  writes of one process reach the engine together, and one waiting for the store's write lock
  holds a thread, not the loop), SSE streams, whole-store work, answers whose size a limit or the data
  sets, reads with proofs (whole log entries), large or chunked bodies, TLS. A pool request is not
  killed by the watchdog. Its body must arrive within :attr:`StrataWorker.body_timeout` seconds of
  its head (else the app answers 408).
- **Answers never block the loop.** An answer made on the loop is collected in memory, then sent
  without blocking; what the client does not take at once is sent from the poller as the socket
  drains. Every answer, from the loop or a pool thread, must be taken within :data:`SEND_TIMEOUT`
  seconds plus one second per :data:`MIN_SEND_RATE` bytes, or the connection is closed.
- **Closing never blocks the loop.** A closed connection lingers in the poller (write side shut,
  unread input drained) for at most :data:`LINGER_TIMEOUT` seconds, so the client gets the whole
  answer and no reset.
- **Connections are bounded.** A worker holds at most ``worker_connections`` (gunicorn's setting,
  1,000 by default), lowered to fit the process's open-file limit, which the worker first raises
  to its hard limit. At the bound it stops accepting: new connections wait in the listen backlog
  (or go to another worker) until deadlines free slots.
- **Well-formed requests skip gunicorn's HTTP code.** A request whose whole head and body are
  buffered and that :func:`server.fast_http.parse` accepts (strict HTTP/1.1, no ambiguous framing)
  is answered by :mod:`server.fast_http` instead of gunicorn's parser and ``Response``, on the loop
  or on the pool as above, with the same environ, the same answer bytes and the same keep-alive
  bookkeeping; the bytes after it are the next request's, as on gunicorn's path. Everything else
  goes to gunicorn's parser. Off with TLS, HTTP/2, an access log, PROXY protocol or request hooks.
- A connection is closed after :data:`MAX_REQUESTS_PER_CONNECTION` requests, with
  ``Connection: close`` on the last answer. Keep-alive connections opened in a burst can all land
  on one worker; as clients reconnect, the worker that polls first accepts, which is the less
  busy one (a worker accepts only between requests), so the load spreads over the workers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import resource
import selectors
import socket
import threading
import time
from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

from gunicorn.http.wsgi import WSGIErrorsWrapper
from gunicorn.workers.gthread import DEFAULT_WORKER_DATA_TIMEOUT, STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from server import fast_http
from server.arbiter import SignalsAfterHandlers
from server.problems import REQUEST_TIMEOUT, HTTPProblem
from server.write_batch import WriteBatcher

MAX_REQUESTS_PER_CONNECTION = 100
PEEK_BYTES = 64 * 1024  # the largest request (head and body) the loop answers itself
MAX_HEAD_BYTES = 64 * 1024  # a longer head gets 431 (nginx's default limit is 32 KiB)
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 60.0
SEND_TIMEOUT = 10.0
MIN_SEND_RATE = 64 * 1024  # bytes per second an answer may take beyond SEND_TIMEOUT
LINGER_TIMEOUT = 2.0  # gunicorn's own graceful-close linger
_RESERVED_FDS = 64  # files a worker keeps for LMDB, logs, pipes, beyond its connections
SWEEP_EVERY = 0.1  # seconds between two sweeps of the loop's deadlines (they are seconds long)
NOTIFY_EVERY = 0.5  # seconds between two heartbeats to the master (its --timeout watchdog), at most

# What the loop is doing with a connection it holds (``conn.state``); see StrataWorker's "Poller" notes.
_IDLE = 0  # kept alive, waiting for the first byte of its next request (deadline: keep-alive timeout)
_HEAD = 1  # reading a request's head (and small body) (deadline: the header timeout)
_SEND = 2  # sending the rest of an answer (deadline: the send deadline)
_LINGER = 3  # closing: write side shut, input drained (deadline: LINGER_TIMEOUT)
_BUSY = 4  # a thread (the write batcher, the pool) has it; no deadline of the loop's
_CLOSED = 5

_MAX_METHOD = 16  # a longer method goes to the pool
_REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) (/[^ ?#]*)[^ ]* HTTP/1\.[01]\r\n")
_CONTENT_LENGTH = re.compile(rb"\r\n[ \t]*content-length[ \t]*:([^\r\n]*)", re.IGNORECASE)
_PLAIN_LENGTH = re.compile(rb"[ \t]*(\d{1,15})[ \t]*")
_CHUNKED = re.compile(rb"\r\n[ \t]*transfer-encoding[ \t]*:", re.IGNORECASE)
_FIXED_LENGTH = re.compile(rb"\r\ncontent-length:", re.IGNORECASE)  # as gunicorn writes an answer's head
_INCOMPLETE = -2
POOL = -1


def request_size(data: bytes, long_running: Any = None) -> int:
    """How many bytes of ``data`` (a connection's input, from the start of a request) the loop needs
    to answer that request itself; :data:`POOL` when the loop must not answer it (it goes to the
    thread pool, whose parser judges it), ``-2`` while the head is incomplete.

    The loop answers a request only when it can prove its length: an HTTP/1.x request line with an
    origin-form path, at most one ``Content-Length``, of 1 to 15 plain digits, no
    ``Transfer-Encoding``, head and body within :data:`PEEK_BYTES`, and ``long_running(method,
    path, body)`` false, where ``body`` is the request's body once ``data`` holds all of it and
    None before (so a request the app judges long from its body, such as a read with proofs, needs
    its size until the body is whole, then :data:`POOL`). Anything else, however odd, goes to the pool."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return _INCOMPLETE
    head = data[: end + 2]
    line = _REQUEST_LINE.match(head)
    if line is None or _CHUNKED.search(head):
        return POOL
    lengths = _CONTENT_LENGTH.findall(head)
    body = 0
    if lengths:
        plain = _PLAIN_LENGTH.fullmatch(lengths[0]) if len(lengths) == 1 else None
        if plain is None:
            return POOL
        body = int(plain.group(1))
    size = end + 4 + body
    if size > PEEK_BYTES:
        return POOL
    if long_running is not None:
        method, path = line.group(1).decode(), unquote_to_bytes(line.group(2)).decode("latin-1")
        # Once the whole body is here the app judges it too (a read asking for proofs is long); before,
        # the method and path alone: the loop keeps reading and asks again with the body.
        if long_running(method, path, data[end + 4:size] if size <= len(data) else None):
            return POOL
    return size


def pooled(req: fast_http.FastRequest, long_running: Any = None) -> bool:
    """Whether the loop must leave ``req`` (accepted by :func:`fast_http.parse`, so wholly buffered)
    to the pool: :func:`request_size` of its bytes is :data:`POOL` exactly when this is true."""
    return (req.size > PEEK_BYTES or len(req.method) > _MAX_METHOD
            or (long_running is not None and bool(long_running(req.method, req.path_info, req.body))))


def answerable_now(data: bytes, long_running: Any = None) -> bool:
    """Whether ``data`` starts with a whole request the loop may answer right away (see
    :func:`request_size`)."""
    size = request_size(data, long_running)
    return 0 <= size <= len(data)


class ConnSocket:
    """A connection's socket as gunicorn's parser and response see it.

    On the loop (``outbox`` set) sends are collected in ``outbox`` and the socket stays
    non-blocking. On a pool thread, reads end at ``read_deadline`` (``TimeoutError``) and each send
    must finish within :data:`SEND_TIMEOUT` plus one second per :data:`MIN_SEND_RATE` bytes. There,
    the head of an answer with a ``Content-Length`` is held until its body is sent, and both go in
    one ``sendmsg``: gunicorn writes them apart, and each loopback send costs the server about as
    much as it costs the client to receive. :meth:`flush` sends a head still held (an answer without
    a body). Everything else is the socket's own."""

    __slots__ = ("held", "outbox", "read_deadline", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.outbox: bytearray | None = None
        self.read_deadline: float | None = None
        self.held: bytes | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        if self.outbox is None:
            self.sock.setblocking(flag)

    def settimeout(self, value: float | None) -> None:
        if self.outbox is None:
            self.sock.settimeout(value)

    def recv(self, size: int, flags: int = 0) -> bytes:
        deadline = self.read_deadline
        if self.outbox is not None or deadline is None or flags:
            return self.sock.recv(size, flags)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(errno.ETIMEDOUT, "the request did not arrive in time")
        self.sock.settimeout(remaining)
        return self.sock.recv(size)

    def send(self, data: Any) -> int:
        self.sendall(data)
        return len(data)

    def sendall(self, data: Any) -> None:
        if self.outbox is not None:
            self.outbox += data
            return
        held = self.held
        if held is None:
            if data[:7] == b"HTTP/1." and _FIXED_LENGTH.search(data) is not None:
                self.held = bytes(data)  # a head whose body follows: send them together
                return
            return self._send([memoryview(data).cast("B")])
        self.held = None
        self._send([memoryview(held), memoryview(data).cast("B")])

    def send_parts(self, parts: list[bytes]) -> None:
        """Send ``parts`` in order (a fast-path answer: its head with its first body bytes), in one
        ``sendmsg`` on a pool thread, into ``outbox`` on the loop."""
        outbox = self.outbox
        if outbox is not None:
            for part in parts:
                outbox += part
            return
        self._send([memoryview(part) for part in parts])

    def flush(self) -> None:
        """Send the head still held, if any (on a pool thread, once the answer is complete)."""
        held, self.held = self.held, None
        if held is not None:
            self._send([memoryview(held)])

    def _send(self, views: list[memoryview]) -> None:
        """Send ``views`` in order, blocking, within the send deadline."""
        deadline = time.monotonic() + SEND_TIMEOUT + sum(map(len, views)) / MIN_SEND_RATE
        while views:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(errno.ETIMEDOUT, "the client did not take its answer in time")
            self.sock.settimeout(remaining)
            sent = self.sock.sendmsg(views) if len(views) > 1 else self.sock.send(views[0])
            while views and sent >= len(views[0]):
                sent -= len(views.pop(0))
            if views:
                views[0] = views[0][sent:]


def _recv_now(conn: TConn) -> bytes | None:
    """What has arrived on a non-blocking connection: None when nothing has yet, b"" when the
    client closed or the socket failed (both end the connection)."""
    try:
        return conn.sock.sock.recv(PEEK_BYTES)
    except BlockingIOError:
        return None
    except OSError:
        return b""


class StrataWorker(SignalsAfterHandlers, ThreadWorker):  # type: ignore[misc]
    """gthread with heads read and small requests answered on the event loop; see the module docstring.

    ``header_timeout`` and ``body_timeout`` are seconds (``strata serve --header-timeout`` and
    ``--body-timeout`` set them on a subclass, see :meth:`configured`).

    Poller (without TLS or HTTP/2): a connection the loop holds is registered in the poller once,
    by its file descriptor, with one callback made when it was accepted, and stays registered from
    request to request; only a change of what it waits for (readable, writable) modifies it. What
    the loop does when it fires, and what happens at its deadline, follow ``conn.state``. While the
    write batcher has it (``_BUSY``), it stays registered for reading: a closed-loop client sends
    nothing until answered, so nothing fires; if something does (pipelined bytes, a close), the
    loop unregisters it then, and registers it again once the answer is sent. The batcher hands a
    connection back without waking the loop when its answer went out whole, kept alive (see
    :meth:`_deliver`): the loop takes it back when it next fires or at the next sweep, from which
    its keep-alive deadline runs. A connection handed
    to the pool is unregistered first (a pool thread may read it, block on it, or close it).
    Deadlines are attributes of the connection, swept every :data:`SWEEP_EVERY` seconds at most
    (gthread's select wakes at least once a second), not kept in a structure per request. A second
    of gthread's keep-alive bookkeeping (its deque, per-request timer and registrations) is not used
    for these connections: ``_idle`` counts the kept-alive ones for its ``max_keepalived`` bound.
    """

    header_timeout = HEADER_TIMEOUT
    body_timeout = BODY_TIMEOUT

    @classmethod
    def configured(cls, header_timeout: float, body_timeout: float) -> type[StrataWorker]:
        """This worker class with other deadlines (a class: gunicorn builds the workers)."""
        return type(cls.__name__, (cls,), {"header_timeout": header_timeout, "body_timeout": body_timeout,
                                           "__module__": cls.__module__})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inline = not self.cfg.is_ssl and getattr(self.cfg, "http2_cleartext", None) not in (
            "prior-knowledge", "both")
        self._long_running: Any = None
        self._fast: dict[str, Any] | None = None  # the fast path's settings, once the app is loaded
        self._fast_limits: dict[str, Any] | None = None  # its parser's limits (None: no fast path)
        self._batcher: WriteBatcher | None = None  # answers small writes, once the app is loaded
        self._batched: Any = None  # the app's ``batched(method, path)``
        self._conns: set[TConn] = set()  # the connections of the inline path, until closed
        self._handback = threading.Lock()  # the write batcher's hand-back of a connection (see _deliver)
        self._idle = 0  # how many of them are kept alive, waiting for a request (state _IDLE)
        self._next_sweep = 0.0
        self._next_notify = 0.0
        self._next_parent_check = 0.0
        self._keepalive = 0.0  # cfg.keepalive, read once (gunicorn's Config looks a setting up on each read)

    def init_process(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                soft = hard
            except (ValueError, OSError):
                pass
        if soft != resource.RLIM_INFINITY:
            self.worker_connections = max(1, min(self.worker_connections, soft - _RESERVED_FDS))
        self.max_keepalived = self.worker_connections - self.cfg.threads
        self._keepalive = float(self.cfg.keepalive or 0)
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self._long_running = getattr(self.wsgi, "long_running", None)  # the Strata app's; None: any app
        self._fast = self._fast_path_config()
        self._fast_limits = self._fast["limits"] if self._fast is not None else None
        self._batched = getattr(self.wsgi, "batched", None) if self._fast is not None else None
        if self._batched is not None:
            self._batcher = WriteBatcher(lambda: self.wsgi.store, self._answer_collected, self._deliver)

    def _fast_path_config(self) -> dict[str, Any] | None:
        """The fast path's settings (see :mod:`server.fast_http`), or None when gunicorn must serve every
        request: TLS or HTTP/2, an access log (its line is gunicorn's), PROXY protocol, uwsgi,
        request hooks, a ``SCRIPT_NAME``."""
        cfg = self.cfg
        settings = cfg.settings
        hooks_default = all(settings[name].value is settings[name].default for name in ("pre_request", "post_request"))
        logged = (cfg.accesslog or cfg.logconfig or getattr(cfg, "logconfig_dict", None)
                  or getattr(cfg, "logconfig_json", None) or cfg.syslog)
        if (not self._inline or logged or not hooks_default or cfg.proxy_protocol != "off"
                or getattr(cfg, "protocol", "http") != "http" or os.environ.get("SCRIPT_NAME")):
            return None
        line = cfg.limit_request_line
        fields = cfg.limit_request_fields
        field_size = cfg.limit_request_field_size
        return {
            "base": fast_http.base_environ(WSGIErrorsWrapper(cfg), cfg.workers > 1),
            "limits": {
                "max_line": 8190 if line <= 0 or line > 8190 else line,
                "max_fields": min(fast_http.MAX_FIELDS, fields if fields > 0 else fast_http.MAX_FIELDS),
                "max_field_size": field_size if field_size > 0 else 8190,
                "scheme_headers": frozenset(cfg.secure_scheme_headers),
            },
        }

    # -- accepting and reading heads ---------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self.log.warning("cannot accept a connection: %s; holding %d", exc.strerror, self.nr_conns)
                self.worker_connections = max(1, self.nr_conns)  # stop accepting instead of spinning
                return
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, ConnSocket(sock), addr, listener.getsockname())  # non-blocking until served
        if not self._inline:  # TLS or HTTP/2: gthread's path, the pool waits for the first bytes
            conn.timeout = time.monotonic() + DEFAULT_WORKER_DATA_TIMEOUT + self.cfg.keepalive
            self.pending_conns.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))
            return
        conn.fd = sock.fileno()
        conn.polled = 0  # the events it is registered for in the poller (0: not registered)
        conn.on_event = partial(self._on_event, conn)
        conn.delivery = None  # an answer of the write batcher's, for the loop to finish sending
        self._conns.add(conn)
        conn.head = bytearray()
        conn.state, conn.deadline = _HEAD, time.monotonic() + self.header_timeout
        self._read_head(conn)

    def enqueue_req(self, conn: TConn) -> None:
        """A kept-alive connection became readable, or bytes of its next request are already read."""
        if not self._inline or conn.is_http2:
            return super().enqueue_req(conn)
        unreader = conn.parser.unreader if conn.parser is not None else None
        conn.head = bytearray(unreader.take_buffered() if unreader is not None and unreader.buf.tell() else b"")
        conn.state, conn.deadline = _HEAD, time.monotonic() + self.header_timeout
        conn.sock.read_deadline = None
        self._read_head(conn)

    def _on_event(self, conn: TConn, _fd: int) -> None:
        """The poller fired for ``conn``: do what its state waits for."""
        state = conn.state
        if state == _HEAD:
            self._read_head(conn)
        elif state == _IDLE:
            self._idle -= 1
            self.enqueue_req(conn)
        elif state == _SEND:
            self._send(conn, conn.send_view, conn.send_keepalive, conn.deadline)
        elif state == _LINGER:
            self._drain(conn)
        else:
            with self._handback:  # the batcher sets a delivery, then looks whether the loop unregistered it
                if conn.delivery is None:  # a thread has it (bytes pipelined behind a batched write, or a
                    return self._unpoll(conn)  # close): not the loop's yet; the batcher wakes the loop for it
            self._take_delivery(conn, time.monotonic())  # its answer is out; the client sent more (or closed)
            if conn.state == _IDLE:
                self._on_event(conn, _fd)

    def _read_head(self, conn: TConn) -> None:
        """Read what has arrived; answer, hand to the pool, or wait in the poller for more.

        A request :func:`fast_http.parse` accepts is judged from what it parsed (the same judgement
        :func:`request_size` makes of its bytes, without reading them twice); anything else by
        :func:`request_size`."""
        head: bytearray = conn.head
        limits = self._fast_limits if type(conn.client) is tuple and type(conn.server) is tuple else None
        while True:
            if head:
                if limits is not None and (req := fast_http.parse(head, **limits)) is not None:
                    return self._dispatch_fast(conn, head, req)
                size = request_size(head, self._long_running)
                if size != _INCOMPLETE and len(head) >= size:
                    break
                if len(head) > MAX_HEAD_BYTES:
                    return self._refuse(conn, b"431 Request Header Fields Too Large")
            chunk = _recv_now(conn)
            if chunk is None:
                return self._poll(conn, selectors.EVENT_READ)
            if not chunk:  # the client closed (or failed) before sending a whole request
                return self._close(conn)
            head += chunk
        self._start(conn)
        conn.parser.unreader.unread(bytes(head))
        if size == POOL:
            conn.sock.read_deadline = time.monotonic() + self.body_timeout
            self._to_pool(conn)
            return super().enqueue_req(conn)
        self._answer(conn, None)

    def _start(self, conn: TConn) -> None:
        """A whole request (or a head for the pool) has been read: gthread's per-connection setup."""
        conn.head = None
        conn.data_ready = True
        if conn.parser is None:
            conn.init()

    def _dispatch_fast(self, conn: TConn, head: bytearray, req: fast_http.FastRequest) -> None:
        """Answer ``req`` (wholly buffered, parsed by the fast path) on the loop, or hand it to the write
        batcher or the pool: as :func:`request_size` would judge its bytes (see there)."""
        self._start(conn)
        if req.size < len(head):  # pipelined bytes: the next request's, read as today
            conn.parser.unreader.unread(bytes(head[req.size:]))
        if pooled(req, self._long_running):
            return self._submit(conn, req)
        self._answer(conn, req)

    def _head_expired(self, conn: TConn) -> None:
        body = HTTPProblem(408, REQUEST_TIMEOUT, f"the request head did not arrive within {self.header_timeout:g} s"
                           ).body()
        self._refuse(conn, b"408 Request Timeout", body)

    def _refuse(self, conn: TConn, status: bytes, body: bytes = b"") -> None:
        """Answer without the app (best effort, never blocking) and close."""
        kind = b"application/problem+json" if body else b"text/plain"
        answer = (b"HTTP/1.1 %s\r\nConnection: close\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                  % (status, kind, len(body), body))
        with contextlib.suppress(OSError):
            conn.sock.sock.send(answer)
        self._linger(conn)

    # -- answering on the loop ----------------------------------------------------------------

    def _answer(self, conn: TConn, req: fast_http.FastRequest | None) -> None:
        """Answer on the loop: ``req`` by the fast path, or (None) the request gunicorn's parser reads."""
        sock: ConnSocket = conn.sock
        sock.outbox = out = bytearray()
        _nonblocking(sock.sock)  # a read past the buffered request fails instead of waiting
        try:
            keepalive = self._answer_fast(req, conn) if req is not None else self.handle(conn)
        finally:
            sock.outbox = None
        self._send(conn, memoryview(out), keepalive, time.monotonic() + SEND_TIMEOUT + len(out) / MIN_SEND_RATE)

    def _send(self, conn: TConn, view: memoryview, keepalive: bool, deadline: float) -> None:
        """Send what the socket takes now; wait in the poller to send the rest, until ``deadline``."""
        try:
            while view:
                view = view[conn.sock.sock.send(view):]
        except BlockingIOError:
            pass
        except OSError:
            return self._close(conn)
        if not view:
            return self._done(conn, keepalive)
        conn.state, conn.deadline, conn.send_view, conn.send_keepalive = _SEND, deadline, view, keepalive
        self._poll(conn, selectors.EVENT_WRITE)

    def _answer_collected(self, conn: TConn, req: fast_http.FastRequest) -> tuple[bytearray, bool]:
        """Answer ``req`` (on the write batcher's thread) with its answer collected in memory, as
        :meth:`_answer` does on the loop; the bytes and whether to keep the connection."""
        sock: ConnSocket = conn.sock
        sock.outbox = out = bytearray()
        try:
            return out, self._answer_fast(req, conn)
        finally:
            sock.outbox = None

    def _deliver(self, answers: list[tuple[TConn, bytearray, bool]]) -> None:
        """From the write batcher's thread: send what each socket takes at once (the client has its
        answer without waiting for the loop to wake), then hand each connection back to the loop.
        Until the loop takes one back, the loop does not touch it (if it fires in the poller
        meanwhile, the loop takes its answer then, or unregisters it while the batcher still has it).

        A connection whose answer went out whole, kept alive, with no bytes of a next request read
        and still registered in the poller (the usual case) is handed back *quietly*: the loop is
        not woken for it (a wake-up is a pipe write, the loop's wake-up and a hand-off of the GIL,
        per batch). The loop takes it back when it next fires (the client's next request, or its
        close), or at its next sweep (then it is kept alive, waiting, as any other). The others
        are sent to the loop at once, through gthread's method queue."""
        left = []
        handback = self._handback
        for conn, out, keepalive in answers:
            view = memoryview(out)
            sock = conn.sock.sock
            try:
                _nonblocking(sock)
                view = view[sock.send(view):] if view else view
            except BlockingIOError:
                pass
            except OSError:
                keepalive = False  # the client is gone: the loop closes the connection
                view = view[len(view):]
            quiet = keepalive and not view and not _buffered(conn)
            with handback:  # against the loop unregistering it meanwhile (see _on_event)
                conn.delivery = (view, keepalive)
                if not (quiet and conn.polled):
                    left.append(conn)
        if left:
            self.method_queue.defer(self._send_all, left)

    def _send_all(self, conns: list[TConn]) -> None:
        now = time.monotonic()
        for conn in conns:
            self._take_delivery(conn, now)

    def _take_delivery(self, conn: TConn, now: float) -> None:
        """Send the rest of the batcher's answer on ``conn`` (once: the poller may have taken it first)."""
        delivery = conn.delivery
        if delivery is None:
            return
        conn.delivery = None
        view, keepalive = delivery
        self._send(conn, view, keepalive, now + SEND_TIMEOUT + len(view) / MIN_SEND_RATE)

    def _submit(self, conn: TConn, req: fast_http.FastRequest) -> None:
        """Answer ``req`` off the loop: a small write by the write batcher, anything else on a pool
        thread (gthread's ``enqueue_req`` with the fast path's handler)."""
        if self._batcher is not None and self._batched(req.method, req.path):
            conn.state, conn.deadline = _BUSY, None  # stays registered: see "Poller" in the class docstring
            return self._batcher.submit(conn, req)
        self._to_pool(conn)
        fs = self.tpool.submit(self._answer_fast, req, conn)
        fs.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    def _answer_fast(self, req: fast_http.FastRequest, conn: TConn) -> bool:
        """Answer a request :func:`fast_http.parse` accepted; whether to keep the connection. The
        bookkeeping is gthread's ``handle_request``'s (``max_requests``, keep-alive bounds) and ours
        (:data:`MAX_REQUESTS_PER_CONNECTION`)."""
        conn.requests = getattr(conn, "requests", 0) + 1
        close = conn.requests >= MAX_REQUESTS_PER_CONNECTION
        self.nr += 1
        if self.nr >= self.max_requests:
            if self.alive:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            close = True
        if not self.alive or not self._keepalive or self._idle >= self.max_keepalived:
            close = True
        sock: ConnSocket = conn.sock
        resp = fast_http.FastResponse(req, sock.send_parts, close)
        env = fast_http.environ(req, sock, conn.client, conn.server, self._fast["base"])  # type: ignore[index]
        env["wsgi.early_hints"] = fast_http.early_hints(req, sock, resp)
        try:
            return resp.answer(self.wsgi, env)
        except OSError:
            return False  # the client left or did not take its answer in time
        except Exception:
            self.log.exception("Error handling request")  # after the head was sent: close
            return False

    def handle(self, conn: TConn) -> Any:
        try:
            return super().handle(conn)
        finally:  # gunicorn's error answers (a 400 from its parser, a 500) are written after handle_request
            with contextlib.suppress(OSError):
                conn.sock.flush()

    def handle_request(self, req: Any, conn: TConn) -> Any:
        conn.requests = getattr(conn, "requests", 0) + 1
        if conn.requests >= MAX_REQUESTS_PER_CONNECTION or (self._inline and self._idle >= self.max_keepalived):
            req.must_close = True  # answered with "Connection: close" (gthread's own bound counts its deque)
        try:
            keepalive = super().handle_request(req, conn)
        finally:
            conn.sock.flush()
        deadline = conn.sock.read_deadline
        if deadline is not None and time.monotonic() >= deadline:
            return False  # its body did not arrive in time: no draining the rest, close
        return keepalive

    # -- closing ------------------------------------------------------------------------------

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """A pool thread is done with ``conn`` (on the loop, from gthread's method queue)."""
        if not self._inline or conn.is_http2:
            return super().finish_request(conn, fs)
        try:
            result = fs.result() if not fs.cancelled() else False
        except Exception:
            result = False
        self._done(conn, bool(result))

    def _done(self, conn: TConn, keepalive: bool) -> None:
        """An answer is wholly sent: keep the connection for its next request, or close it."""
        if not keepalive:
            return self._linger(conn)
        _nonblocking(conn.sock.sock)
        parser = conn.parser
        if parser is not None and parser.unreader.buf.tell():  # the next request's bytes, already read
            return self.enqueue_req(conn)
        now = time.monotonic()
        deadline = now + self._keepalive
        if not self.alive:  # stopping: a request arriving meanwhile is answered with "Connection: close"
            deadline = min(deadline, now + STOP_KEEPALIVE_LINGER)
        conn.state, conn.deadline = _IDLE, deadline
        self._idle += 1
        self._poll(conn, selectors.EVENT_READ)

    # -- closing ------------------------------------------------------------------------------

    def _linger(self, conn: TConn) -> None:
        """Close after the client has had the whole answer: shut the write side, drain and drop its
        input until it closes or :data:`LINGER_TIMEOUT` passes (gunicorn does this blocking)."""
        try:
            conn.sock.sock.shutdown(socket.SHUT_WR)
            _nonblocking(conn.sock.sock)
        except OSError:
            return self._close(conn)
        conn.drained = 0
        conn.state, conn.deadline = _LINGER, time.monotonic() + LINGER_TIMEOUT
        self._poll(conn, selectors.EVENT_READ)

    def _drain(self, conn: TConn) -> None:
        data = _recv_now(conn)
        if data is None:
            return
        conn.drained += len(data)
        if not data or conn.drained > PEEK_BYTES:
            self._close(conn)

    def _close(self, conn: TConn) -> None:
        if conn.state == _CLOSED:
            return
        if conn.state == _IDLE:
            self._idle -= 1
        self._unpoll(conn)
        conn.state, conn.deadline = _CLOSED, None
        self._conns.discard(conn)
        self.nr_conns -= 1
        conn.close()

    # -- the poller and deadlines ---------------------------------------------------------------

    def _poll(self, conn: TConn, events: int) -> None:
        """Have the poller watch ``conn`` for ``events`` (registered once, modified on a change)."""
        polled = conn.polled
        if polled == events:
            return
        if polled:
            self.poller.modify(conn.fd, events, conn.on_event)
        else:
            self.poller.register(conn.fd, events, conn.on_event)
        conn.polled = events

    def _unpoll(self, conn: TConn) -> None:
        if conn.polled:
            conn.polled = 0
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.fd)

    def _to_pool(self, conn: TConn) -> None:
        """Hand ``conn`` to a pool thread: out of the poller, no deadline of the loop's."""
        self._unpoll(conn)
        conn.state, conn.deadline = _BUSY, None

    def murder_pending(self) -> None:
        """gthread's sweep of expired connections (each loop turn, at least once a second), and ours
        (at most every :data:`SWEEP_EVERY` seconds while serving)."""
        super().murder_pending()
        now = time.monotonic()
        if now < self._next_sweep and self.alive:
            return
        self._next_sweep = now + SWEEP_EVERY
        for conn in [conn for conn in self._conns if (conn.deadline is not None and conn.deadline <= now)
                     or conn.delivery is not None]:
            if conn.delivery is not None:  # handed back quietly by the write batcher: kept alive from now
                self._take_delivery(conn, now)
            elif conn.state == _HEAD:
                self._head_expired(conn)
            else:
                self._close(conn)

    def _cap_keepalive(self, deadline: float) -> None:
        """Stopping: kept-alive connections close by ``deadline`` at the latest (gthread's, and ours)."""
        super()._cap_keepalive(deadline)
        for conn in self._conns:
            if conn.state == _IDLE:
                conn.deadline = min(conn.deadline, deadline)

    def notify(self) -> None:
        """The heartbeat gunicorn's master watches (a file's time set, each loop turn in gthread): at
        most every :data:`NOTIFY_EVERY` seconds, or a quarter of the worker's timeout if shorter."""
        now = time.monotonic()
        if now >= self._next_notify:
            self._next_notify = now + min(NOTIFY_EVERY, self.timeout / 4)
            super().notify()

    def is_parent_alive(self) -> bool:
        """gthread asks each loop turn (a system call); the answer is the same for a while."""
        now = time.monotonic()
        if now < self._next_parent_check:
            return True
        self._next_parent_check = now + min(NOTIFY_EVERY, self.timeout / 4)
        return bool(super().is_parent_alive())


def _buffered(conn: TConn) -> bool:
    """Whether bytes of ``conn``'s next request were already read (pipelined behind the last one)."""
    parser = conn.parser
    return parser is not None and bool(parser.unreader.buf.tell())


def _nonblocking(sock: socket.socket) -> None:
    """Make ``sock`` non-blocking, without a system call when it already is (``setblocking`` always
    makes one)."""
    if sock.gettimeout() != 0.0:
        sock.setblocking(False)
