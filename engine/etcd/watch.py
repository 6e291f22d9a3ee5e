"""A watch on an etcd key range that survives the loss of the member it streams from.

``Watch`` is an iterator of :class:`~engine.etcd.kv.Revision`: every event of one write txn, revisions in
increasing order, each exactly once. It streams ``POST /v3/watch`` (the gateway answers one JSON object
per line, ``{"result": {...}}``) from one member; when the stream ends or breaks (the member was killed,
restarted, or said nothing for ``idle_timeout`` seconds) it opens a new one on the next member that
accepts, starting at the revision after the last one it yielded, so nothing is skipped or repeated.
etcd never splits one revision's events over two answers, so "the last revision yielded" is always a
whole one.

Errors: ``TX_COMPACTED`` (``details["compact_revision"]``: the oldest revision still there) when the
revision to resume from was compacted away; ``STORAGE_UNAVAILABLE`` when no member accepts a stream
within the client's ``retry_timeout``, or when streams keep ending before any answer on every member
(two rounds). ``close()`` (from any thread) ends the iteration.

A member cut off from the others keeps an open watch silent rather than failing it (the gateway has no
"require leader" switch); with ``idle_timeout`` set the watch asks for progress notifications and treats
a silence longer than ``idle_timeout`` as a broken stream. etcd sends a progress notification on an idle
watch every 10 minutes by default (``--experimental-watch-progress-notify-interval``), so ``idle_timeout``
must be longer than that interval.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import orjson
from urllib3.exceptions import HTTPError

from .. import errors
from .kv import Event, Revision, b64, show_key
from .transport import Transport, unavailable


class Watch(Iterator[Revision]):
    """Follows ``[key, range_end)`` from ``start_revision`` (0: every change after the revision the store
    has when the constructor returns; the stream is opened before it returns).

    ``next_revision`` is where it would resume;
    ``endpoint`` is the member it streams from; ``reconnects`` counts the streams opened after the first."""

    def __init__(
        self,
        transport: Transport,
        key: bytes,
        range_end: bytes | None,
        start_revision: int,
        *,
        prev_kv: bool = False,
        idle_timeout: float | None = None,
    ) -> None:
        if start_revision < 0:
            raise errors.InvalidParameters("start_revision must be >= 0", start_revision=start_revision)
        self._transport = transport
        self._key, self._range_end, self._prev_kv = key, range_end, prev_kv
        self._idle_timeout = idle_timeout
        self.next_revision = start_revision
        self.endpoint: str | None = None
        self.reconnects = -1
        self._resp: Any = None
        self._buffer = b""
        self._pending: deque[Revision] = deque()
        self._closed = False
        self._answered = False
        self._barren: dict[str, str] = {}  # member -> why, for streams that ended before any answer
        self._barren_streams = 0
        if not start_revision:  # "from now": from the revision etcd has when the stream is created
            while not self.next_revision:
                self._fill()

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> Revision:
        while not self._pending:
            if self._closed:
                raise StopIteration
            self._fill()
        item = self._pending.popleft()
        self.next_revision = item.revision + 1
        return item

    def close(self) -> None:
        """Stop following; a blocked ``next()`` in another thread returns (StopIteration)."""
        self._closed = True
        resp = self._resp
        if resp is not None:
            resp.shutdown()  # wakes a reader blocked in recv (urllib3 >= 2.3)
            self._drop()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the stream ------------------------------------------------------------------------------

    def _open(self) -> None:
        request: dict[str, Any] = {"key": b64(self._key)}
        if self._range_end is not None:
            request["range_end"] = b64(self._range_end)
        start = self._pending[-1].revision + 1 if self._pending else self.next_revision
        if start:
            request["start_revision"] = str(start)
        if self._prev_kv:
            request["prev_kv"] = True
        if self._idle_timeout is not None:
            request["progress_notify"] = True
        self.endpoint, self._resp = self._transport.open_stream(
            "/v3/watch", {"create_request": request}, self._idle_timeout
        )
        self._buffer = b""
        self._answered = False
        self.reconnects += 1

    def _drop(self) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            resp.close()
            resp.release_conn()

    def _fill(self) -> None:
        """Read one answer line (opening a stream first if there is none) and queue its revisions."""
        if self._resp is None:
            self._open()
        line = self._read_line()
        if line is None:  # the stream ended or broke: resume elsewhere from next_revision
            self._broken("the stream ended")
            return
        message = orjson.loads(line)
        if "error" in message:  # the gateway reports a broken gRPC stream in-band
            self._broken(f"the stream failed: {message['error']}")
            return
        self._answered, self._barren, self._barren_streams = True, {}, 0
        self._take(message.get("result", {}))

    def _broken(self, why: str) -> None:
        """Drop the stream and let the next ``_fill`` resume on another member. Streams that keep
        ending before any answer (a proxy that cuts them, a member refusing watches) are not reopened
        forever: after two rounds over the members, ``STORAGE_UNAVAILABLE`` names each one."""
        endpoint, answered = self.endpoint, self._answered
        self._drop()
        if self._closed or endpoint is None:
            return
        self._transport.mark_failed(endpoint)
        if answered:
            return
        self._barren[endpoint] = why
        self._barren_streams += 1
        if self._barren_streams >= 2 * len(self._transport.endpoints):
            tried, self._barren, self._barren_streams = self._barren, {}, 0
            self.close()
            raise unavailable("/v3/watch", tried, None)
        time.sleep(min(0.05 * self._barren_streams, 0.5))  # no hot loop against a member that cuts streams

    def _read_line(self) -> bytes | None:
        while b"\n" not in self._buffer:
            try:
                chunk = self._resp.read1(65536)
            except (HTTPError, OSError, ValueError, AttributeError):  # reset, timeout, shut down by close()
                return None
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _take(self, result: dict[str, Any]) -> None:
        if result.get("canceled"):
            compacted = int(result.get("compact_revision", 0))
            if compacted:
                self.close()
                raise errors.TxCompacted(
                    f"cannot watch {show_key(self._key)!r} from revision {self.next_revision}: etcd compacted "
                    f"it (oldest revision left: {compacted})",
                    revision=self.next_revision, compact_revision=compacted)  # fmt: skip
            self._drop()  # cancelled for another reason (the member is stopping): resume elsewhere
            return
        if result.get("created") and not self.next_revision:
            self.next_revision = int(result.get("header", {}).get("revision", 0)) + 1
        # One answer holds whole revisions, in order; after a resume nothing at or below what is queued
        # can come again, but skip it anyway rather than yield a revision twice.
        floor = self._pending[-1].revision if self._pending else self.next_revision - 1
        grouped: dict[int, list[Event]] = {}
        for ev in result.get("events", ()):
            event = Event.from_json(ev)
            if event.revision > floor:
                grouped.setdefault(event.revision, []).append(event)
        self._pending.extend(Revision(rev, events) for rev, events in grouped.items())
