"""The change feed of a namespace: a JSON page (``changes``) and a live Server-Sent Events stream.

Both deliver the same event per committed tx that touched the namespace::

    {"tx": 7, "time": "2026-11-23T07:31:47.857615Z", "note": {"by": "alice"}, "hash": "<sha-256 hex>",
     "operations": [{"key": "a", "op": "put", "value": 1, "binary": false},
                    {"key": "b", "op": "clear"}, {"key": "c", "op": "delete"}]}

Values are read at that tx (a put's value as it was written), binary ones as base64. Other
namespaces' operations are left out. ``GET /v4/storage/{storage}/sse`` sends each as
``id: <tx>`` + ``data: <json>``: a client that reconnects with ``Last-Event-ID`` resumes right
after the last event it got, without gaps, whichever worker it reaches (the feed is read from the
tx log on disk, not from memory). New txs from any process are noticed by the per-process
:class:`server.watch.TxWatch`.
"""

from __future__ import annotations

import os
import re
import time
from base64 import b64encode
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import orjson

from engine import errors
from server.http import Request, Response, duration, json_response
from server.problems import INVALID_PARAMETERS, TOO_MANY_STREAMS, HTTPProblem, bad_request, from_engine_error
from server.sse import SSE_HEADERS, STREAM_TICK, EventStream, client_left, open_stream
from server.validation import MAX_TX, check_storage, query_int, query_tx_param

if TYPE_CHECKING:
    from engine import Record, Store, TxInfo
    from server.app import App

_CHANGES_QUERY = frozenset({"since", "limit", "wait"})
#: The longest ``changes?wait=`` may hold a request, in seconds.
MAX_WAIT = 60.0
_SECONDS = re.compile(r"\d{1,2}(\.\d{1,6})?")
_SSE_QUERY = frozenset({"start_tx"})
CHANGES_LIMIT_DEFAULT = 100
CHANGES_LIMIT_MAX = 1000
STREAM_PAGE = 100  # txs read per step of a stream


def tx_event(store: Store, name: str, info: TxInfo) -> dict[str, Any]:
    """The feed event of one tx: its log entry with the values its puts stored (read at that tx)."""
    puts = [op.key for op in info.operations if op.op == "put"]
    records: dict[str, Record] = {}
    step = store.limits.max_read_keys
    ns = store.namespace(name)
    for start in range(0, len(puts), step):
        for found in ns.read(puts[start:start + step], tx=info.tx).records:
            records[found.key] = found
    operations: list[dict[str, Any]] = []
    for op in info.operations:
        rec = records.get(op.key) if op.op == "put" else None
        if rec is None or rec.tx != info.tx:
            operations.append({"key": op.key, "op": op.op})
        elif rec.binary:
            operations.append({"key": op.key, "op": "put", "value": b64encode(rec.value).decode("ascii"),
                               "binary": True})
        else:
            operations.append({"key": op.key, "op": "put", "value": rec.value, "binary": False})
    return {"tx": info.tx, "time": info.time, "note": info.note, "hash": info.hash, "operations": operations}


def feed_page(store: Store, name: str, since: int, limit: int) -> tuple[list[TxInfo], int, bool]:
    """The txs touching ``name`` after ``since`` (at most ``limit``), the cursor to continue from,
    and whether more may follow right away.

    When the page is not full, every tx up to the latest (read *before* the page) has been seen,
    so the cursor moves past txs of other namespaces too and a quiet namespace is not rescanned.
    """
    latest = int(store.latest_tx)
    infos = store.changes(since, limit=limit, namespace=name)
    if len(infos) == limit:
        return infos, infos[-1].tx, True
    return infos, max(since, latest, infos[-1].tx if infos else 0), False


def changes(app: App, req: Request) -> Response:
    """``GET /v4/storage/{storage}/changes?since=TX&limit=N[&wait=S]``: txs after ``since`` touching it.

    ``cursor`` is where the next call continues (``since=cursor``); ``more`` says whether another
    page is waiting now (false: poll later, or use ``/sse``). ``wait`` (a long poll, 0 to 60 s): when
    no such tx exists yet, answer as soon as one is committed, or with an empty page after ``wait``
    seconds (see :func:`_long_poll`).
    """
    name = check_storage(req.params["storage"])
    query = req.query(_CHANGES_QUERY)
    since = query_tx_param(query.get("since"), "since") or 0
    limit = query_int(query.get("limit"), "limit", 1, CHANGES_LIMIT_MAX, CHANGES_LIMIT_DEFAULT)
    wait = _wait_seconds(query.get("wait"))
    store = app.store
    _check_not_future(store, since, "query.since")
    try:
        infos, cursor, more = feed_page(store, name, since, limit)
        if not infos and wait > 0:
            infos, cursor, more = _long_poll(app, name, cursor, limit, wait)
        data = [tx_event(store, name, i) for i in infos]
    except errors.TxCompacted as exc:  # a put's value below the horizon: since asked for it
        problem = from_engine_error(exc)
        problem.errors = [{"location": "query.since", "message": exc.message, "value": since}]
        raise problem from None
    return json_response(200, {"data": data, "count": len(infos), "cursor": cursor, "more": more,
                               "duration": duration(req.t0)})


def _wait_seconds(text: str | None) -> float:
    """The ``wait`` query parameter: seconds from 0 to :data:`MAX_WAIT` (default 0: answer at once)."""
    if text is None:
        return 0.0
    wait = float(text) if _SECONDS.fullmatch(text) else -1.0
    if not 0 <= wait <= MAX_WAIT:
        raise bad_request(INVALID_PARAMETERS, f"wait must be a number of seconds from 0 to {MAX_WAIT:g}",
                          "query.wait", text[:200])
    return wait


def _long_poll(app: App, name: str, cursor: int, limit: int, wait: float) -> tuple[list[TxInfo], int, bool]:
    """Wait up to ``wait`` seconds for a tx after ``cursor`` touching ``name``; its page, or an empty
    one at the deadline (or when the worker stops).

    The wait holds this pool thread (a WSGI handler answers by returning), so it takes one of the
    worker's stream slots, as an SSE stream does: when all are in use the answer is 503
    ``TOO_MANY_STREAMS`` with ``Retry-After``, and threads are left for other requests. Waiting costs
    no polling of its own: the worker's one :class:`~server.watch.TxWatch` wakes it.
    """
    slots = app.stream_slots
    if not slots.acquire():
        raise HTTPProblem(503, TOO_MANY_STREAMS, f"this worker already holds {slots.limit} streams and long polls "
                          "(the most it may while keeping threads for other requests); retry, poll without wait, "
                          "or raise --threads/--max-streams", headers=[("Retry-After", "1")],
                          extra={"limit": slots.limit})
    try:
        store, watch = app.store, app.watch
        deadline = time.monotonic() + wait
        infos: list[TxInfo] = []
        more = False
        while app.serving:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if watch.wait(cursor, min(left, STREAM_TICK)) > cursor:
                infos, cursor, more = feed_page(store, name, cursor, limit)
                if infos:
                    break
        return infos, cursor, more
    finally:
        slots.release()


def _check_not_future(store: Store, tx: int, location: str) -> None:
    latest = int(store.latest_tx)
    if tx > latest:
        exc = errors.FutureTx(f"tx {tx} is in the future: the latest committed tx is {latest}", tx=tx,
                              latest_tx=latest)
        raise from_engine_error(exc, tx_location=location)


def _check_not_compacted(store: Store, after: int, location: str) -> None:
    """Events carry the values puts stored, which compaction frees below the horizon: a stream
    starting below it is a 410 before any byte is sent (EventSource clients then stop retrying)."""
    horizon = int(store.horizon)
    if after + 1 < horizon:
        exc = errors.TxCompacted(f"tx {after + 1} was compacted away: the oldest readable tx is {horizon}; "
                                 f"read a snapshot at tx {horizon} and stream from there", tx=after + 1,
                                 horizon=horizon)
        raise from_engine_error(exc, tx_location=location)


def sse(app: App, req: Request) -> Response:
    """``GET /v4/storage/{storage}/sse[?start_tx=N]``: one event per tx touching the namespace.

    Where it starts: after the tx in ``Last-Event-ID`` (a reconnect), else after ``start_tx``
    (``start_tx=0`` replays everything), else after the latest tx (only new txs). A comment line
    is sent every ``heartbeat`` seconds while nothing happens, so proxies and clients see the
    connection is alive and the server notices clients that left.
    """
    name = check_storage(req.params["storage"])
    start = query_tx_param(req.query(_SSE_QUERY).get("start_tx"), "start_tx")
    last_id = req.environ.get("HTTP_LAST_EVENT_ID")
    store = app.store
    if last_id is not None and last_id.strip():
        last_id = last_id.strip()
        if not last_id.isdigit() or not last_id.isascii() or int(last_id) > MAX_TX:
            raise bad_request(INVALID_PARAMETERS, "Last-Event-ID must be a tx (the id of the last event received)",
                              "header.Last-Event-ID", last_id[:200])
        after = int(last_id)
        _check_not_future(store, after, "header.Last-Event-ID")
    elif start is not None:
        after = start
        _check_not_future(store, after, "query.start_tx")
    else:
        after = int(store.latest_tx)
    _check_not_compacted(store, after, "header.Last-Event-ID" if last_id else "query.start_tx")
    sock = open_stream(app, req)
    return 200, SSE_HEADERS, ChangeEvents(app, name, after, sock)


class ChangeEvents(EventStream):
    """The body of a namespace's SSE response: one event per tx touching it (see :func:`sse`)."""

    def _run(self) -> Generator[bytes, None, None]:
        app, name = self.app, self.name
        heartbeat = app.heartbeat
        yield (f": strata changes of {name} after tx {self.after} (worker {os.getpid()})\n"
               f"retry: 2000\n\n").encode()
        if not app.serving:  # closed while the first bytes were out (app.store would reopen it)
            return
        store, watch = app.store, app.watch
        beat_at = time.monotonic() + heartbeat
        while app.serving:
            try:
                infos, cursor, more = feed_page(store, name, self.after, STREAM_PAGE)
                events = b"".join(b"id: %d\ndata: %s\n\n" % (i.tx, orjson.dumps(tx_event(store, name, i),
                                                                                  option=orjson.OPT_UTC_Z))
                                  for i in infos)
            except errors.TxCompacted as exc:  # a compaction overtook this stream: say so and end it
                problem = from_engine_error(exc).document()
                yield b"event: error\ndata: %s\n\n" % orjson.dumps(problem)
                return
            if infos:
                yield events
                beat_at = time.monotonic() + heartbeat
            self.after = cursor
            if more:
                continue
            left = beat_at - time.monotonic()
            if left > 0 and watch.wait(cursor, min(left, STREAM_TICK)) <= cursor and client_left(self.sock):
                return
            if time.monotonic() >= beat_at:
                yield b": heartbeat\n\n"
                beat_at = time.monotonic() + heartbeat
