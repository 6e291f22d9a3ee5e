"""Following a Server-Sent Events feed across dropped connections.

:func:`follow` yields ``(id, data)`` for each message of a feed (the namespace change feed or a
stream's events). When the connection drops, times out (no byte, not even a heartbeat comment, for
``read_timeout`` seconds) or the server ends it (a worker restarting), it reconnects, with backoff,
sending ``Last-Event-ID`` with the id of the last message it yielded, so the server resumes right
after it: nothing is missed and nothing is repeated. Before the first message, the resume point is
where the server said the feed starts (its opening comment ``after tx N``), so a feed of "new txs
only" does not skip txs committed while it reconnects.

An ``event: error`` message (a compaction overtook the feed) raises its problem as an engine error.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from urllib3.exceptions import HTTPError

from .problems import ServerUnavailable, error_from_problem
from .transport import Transport

_START = re.compile(rb"^: strata .* after (?:tx )?(\d+(?::\d+)?) ")


def _messages(resp: Any) -> Iterator[tuple[bytes | None, bytes | None, bytes]]:
    """``(event type, id, data)`` of each message of an open SSE response; comments as
    ``(b":", None, text)``. Ends when the server closes the stream."""
    buffer = b""
    event: bytes | None = None
    ident: bytes | None = None
    data: list[bytes] = []
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                if data:
                    yield event, ident, b"\n".join(data)
                event, ident, data = None, None, []
                continue
            if line.startswith(b":"):
                yield b":", None, line
                continue
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"data":
                data.append(value)
            elif name == b"id":
                ident = value
            elif name == b"event":
                event = value


def follow(http: Transport, path: str, query: Mapping[str, Any] | None, read_timeout: float,
           ) -> Iterator[tuple[str, Any]]:
    """Each message of the SSE feed at ``path`` as ``(id, decoded JSON data)``, across reconnects."""
    last_id: str | None = None
    attempt = 0
    while True:
        headers = {} if last_id is None else {"Last-Event-ID": last_id}
        url = http.path(path, None if last_id is not None else query)
        try:
            resp = http.stream(url, headers, read_timeout)
        except (HTTPError, OSError, ServerUnavailable) as exc:
            attempt = _pause(http, attempt, exc)
            continue
        except Exception as exc:
            if getattr(exc, "status", 0) in (502, 503, 504):  # a worker restarting, or too many streams
                attempt = _pause(http, attempt, exc)
                continue
            raise
        try:
            for event, ident, data in _messages(resp):
                if event == b":":
                    start = _START.match(data)
                    if start is not None and last_id is None:
                        last_id = start.group(1).decode()
                    attempt = 0
                    continue
                if event == b"error":
                    problem = orjson.loads(data)
                    raise error_from_problem(int(problem.get("status", 500)), "application/problem+json", data)
                doc = orjson.loads(data)
                if ident is not None:
                    last_id = ident.decode()
                attempt = 0
                yield last_id or "", doc
        except (HTTPError, OSError) as exc:
            attempt = _pause(http, attempt, exc)
        else:  # the server ended the feed (a worker stopping): reconnect after a pause
            attempt = _pause(http, attempt, None)
        finally:  # never hand a half-read stream back to the pool
            resp.close()
            resp.release_conn()


def _pause(http: Transport, attempt: int, exc: BaseException | None) -> int:
    """Back off before reconnecting (a feed is retried without end: it is meant to run for days,
    but never faster than the backoff allows)."""
    pause = min(http.max_backoff, http.backoff * (2 ** min(attempt, 16))) * (0.5 + random.random() / 2)
    time.sleep(pause)
    http.retried += 1
    return attempt + 1
