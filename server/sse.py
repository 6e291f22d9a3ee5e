"""Server-Sent Events plumbing shared by the change feed and the streams.

:func:`open_stream` is the one way a handler starts an SSE response: it takes one of the worker's
stream slots (503 ``TOO_MANY_STREAMS`` with ``Retry-After`` when all are in use, so long-lived
connections never take every thread; see ``docs/http-api.md``, "Change streams and threads") and
turns off Nagle's algorithm on the socket, so small events do not wait for the peer's delayed ACK.
:class:`EventStream` is the body of such a response: it gives the slot back when the WSGI server
closes it, whether or not a byte was sent. :func:`client_left` is the idle check that frees a
slot within a tick of the client leaving.
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from server.problems import TOO_MANY_STREAMS, HTTPProblem

if TYPE_CHECKING:
    from server.app import App
    from server.http import Request

STREAM_TICK = 1.0  # the longest a stream waits before rechecking that the worker is still serving
SSE_HEADERS = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache"),
               ("X-Accel-Buffering", "no")]


def open_stream(app: App, req: Request) -> Any:
    """Take a stream slot for ``req`` (or raise the 503 problem) and set its socket up for small
    events; return the socket (None outside gunicorn). The caller hands both to an
    :class:`EventStream`, whose ``close()`` gives the slot back."""
    slots = app.stream_slots
    if not slots.acquire():
        raise HTTPProblem(503, TOO_MANY_STREAMS, f"this worker already serves {slots.limit} streams (the most it "
                          "may while keeping threads for other requests); retry, or raise --threads/--max-streams",
                          headers=[("Retry-After", "5")], extra={"limit": slots.limit})
    sock = req.environ.get("gunicorn.socket")
    if sock is not None:  # small events must not wait for the peer's delayed ACK (Nagle)
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def client_left(sock: Any) -> bool:
    """Whether the client closed its end (a readable socket with nothing to read): checked while
    a stream is idle, so a slot is freed within a tick instead of at the next heartbeat's failed write."""
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


class EventStream:
    """The body of an SSE response opened by :func:`open_stream`; a subclass's ``_run`` yields its
    bytes, from the position ``after`` on. ``close()`` (called by the WSGI server when the client
    leaves or the stream ends) gives the stream slot back, even if no byte was ever sent."""

    def __init__(self, app: App, name: str, after: Any, sock: Any = None) -> None:
        self.app, self.name, self.after, self.sock = app, name, after, sock
        self._events = self._run()
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._events.close()
            self.app.stream_slots.release()

    def _run(self) -> Generator[bytes, None, None]:
        raise NotImplementedError
