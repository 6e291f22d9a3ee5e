"""A small Server-Sent Events client for the live tests and the latency script (not a test module).

:class:`Subscriber` opens ``GET .../sse`` on a real server and parses the stream on a thread:
``events`` receives ``{"id", "data", "at"}`` (``at`` = ``time.perf_counter()`` on arrival),
``comments`` the comment lines (the first names the worker that serves the stream: ``pid``).
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


class Subscriber:
    """One open SSE connection to ``127.0.0.1:port``."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
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
            self._opened.wait(30)
        else:
            self.body = self.resp.read()
            self.ended.set()

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
                event["id"] = int(value)
            elif name == "data":
                event["data"] = orjson.loads(value)
        if "data" in event:
            event["at"] = time.perf_counter()
            self.events.put(event)

    def next_event(self, timeout: float = 15) -> dict[str, Any]:
        """The next event; raises ``queue.Empty`` after ``timeout`` seconds (a hang guard only)."""
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.conn.sock is not None:
                self.conn.sock.shutdown(2)
        self.conn.close()
        self.ended.wait(5)


def subscribers_on_two_workers(port: int, path: str, attempts: int = 40) -> list[Subscriber]:
    """Open streams until two are served by different worker processes; close the rest."""
    found: dict[int, Subscriber] = {}
    for _ in range(attempts):
        sub = Subscriber(port, path)
        assert sub.status == 200 and sub.pid is not None
        if sub.pid in found:
            sub.close()
        else:
            found[sub.pid] = sub
        if len(found) == 2:
            return list(found.values())
        time.sleep(0.02)
    for sub in found.values():
        sub.close()
    raise AssertionError(f"every stream landed on the same worker in {attempts} attempts")
