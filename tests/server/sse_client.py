"""A small Server-Sent Events client for the live tests and the latency script (not a test module).

:class:`Subscriber` opens ``GET .../sse`` on a real server and parses the stream on a thread:
``events`` receives ``{"id", "data", "at"}`` (``at`` = ``time.perf_counter()`` on arrival),
``comments`` the comment lines (the first names the worker that serves the stream: ``pid``).

Every wait here is a hang guard with a generous deadline, never a measurement: on a busy machine
a worker may not be scheduled for seconds, and the server notices a closed stream (and frees its
slot) only at its next idle tick, so a refused stream (503 ``TOO_MANY_STREAMS``) is retried.
"""

from __future__ import annotations

import contextlib
import http.client
import queue
import re
import threading
import time
from typing import Any

import orjson

#: The longest any wait of this client lasts before the test fails: a hang guard, far above any
#: healthy wait even on a machine busy with other work.
HANG_GUARD = 60.0


class Subscriber:
    """One open SSE connection to ``127.0.0.1:port``."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.comments: queue.Queue[str] = queue.Queue()
        self.pid: int | None = None
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._opened = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
            self._opened.wait(HANG_GUARD)
        else:
            self.body = self.resp.read()
            self.conn.close()
            self.ended.set()

    @property
    def refused_for_slots(self) -> bool:
        """Whether the worker refused the stream because all its stream slots are taken."""
        return self.status == 503 and orjson.loads(self.body).get("code") == "TOO_MANY_STREAMS"

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                chunk = self.resp.read1(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    self._dispatch(block.decode())
        except Exception as exc:  # closed by close(), or the server went away
            self.error = exc
        finally:
            self.ended.set()
            self._opened.set()

    def _dispatch(self, block: str) -> None:
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                self.comments.put(value)
                m = re.search(r"\(worker (\d+)\)", value)
                if m and self.pid is None:
                    self.pid = int(m.group(1))
                    self._opened.set()
            elif name == "id":
                event["id"] = int(value) if value.isdigit() else value  # a stream event may be "TX:INDEX"
            elif name == "data":
                event["data"] = orjson.loads(value)
        if "data" in event:
            event["at"] = time.perf_counter()
            self.events.put(event)

    def next_event(self, timeout: float = HANG_GUARD) -> dict[str, Any]:
        """The next event; raises ``queue.Empty`` after ``timeout`` seconds (a hang guard only)."""
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.conn.sock is not None:
                self.conn.sock.shutdown(2)
        self.conn.close()
        self.ended.wait(5)


def open_stream(port: int, path: str, headers: dict[str, str] | None = None) -> Subscriber:
    """A stream that the server accepted: a refusal for want of slots (streams closed by earlier
    tests that the worker has not noticed yet) is retried until :data:`HANG_GUARD` passes."""
    deadline = time.monotonic() + HANG_GUARD
    while True:
        sub = Subscriber(port, path, headers)
        if not sub.refused_for_slots or time.monotonic() > deadline:
            assert sub.status == 200 and sub.pid is not None, (sub.status, getattr(sub, "body", b""))
            return sub
        time.sleep(0.1)


def subscribers_on_two_workers(port: int, path: str) -> list[Subscriber]:
    """Open streams until two are served by different worker processes; close the rest.

    Which worker accepts a connection is up to the kernel and the scheduler: on a busy machine one
    worker may take every connection for seconds. So this keeps trying (pausing a little longer
    each time, which gives the other worker a chance to run) until :data:`HANG_GUARD` passes, and
    a refusal for want of slots (the streams closed here are freed at the worker's next tick) just
    means waiting.
    """
    found: dict[int, Subscriber] = {}
    deadline = time.monotonic() + HANG_GUARD
    pause = 0.02
    while time.monotonic() < deadline:
        sub = Subscriber(port, path)
        if sub.refused_for_slots:
            time.sleep(0.1)
            continue
        assert sub.status == 200 and sub.pid is not None, (sub.status, getattr(sub, "body", b""))
        if sub.pid in found:
            sub.close()
        else:
            found[sub.pid] = sub
        if len(found) == 2:
            return list(found.values())
        time.sleep(pause)
        pause = min(pause * 1.5, 0.5)
    for sub in found.values():
        sub.close()
    raise AssertionError(f"every stream landed on the same worker for {HANG_GUARD:g} s")
