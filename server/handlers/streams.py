"""Litebase's change streams: publish, read back, subscribe (SSE), and stream namespaces.

* ``POST /v4/stream/{stream}/write``: an array of ``{"data": <JSON>, "binary"?: bool}`` (base64
  when binary), one tx for the array; ``{"tx", "count", "duration"}``.
* ``GET /v4/stream/{stream}?start_tx=&end_tx=&limit=&cursor=``: a page of events
  ``{"tx", "index", "data", "binary"}`` with a ``cursor`` to continue from.
* ``GET /v4/stream/{stream}/sse?start_tx=N``: each event one SSE message, ``data:`` holding
  ``{"tx", "index", "data", "binary"}``. Its ``id`` is the event's position: ``<tx>`` for the last
  (usually the only) event of a tx, ``<tx>:<index>`` for the others, so ``Last-Event-ID`` resumes
  exactly after the last event received, also in the middle of a tx of many events.
* ``GET/POST /v4/namespace/stream``, ``GET/DELETE /v4/namespace/stream/{name}``: as the storage
  namespaces, served by :mod:`server.handlers.namespaces`.

``write`` takes ``Idempotency-Key`` (:mod:`server.idempotency`): a retry gets the first answer,
its ``tx`` included, and publishes nothing.

Streams and storage namespaces are separate: stream ``orders`` is not namespace ``orders``. API
keys apply to them as to namespaces (same scopes, the same list of allowed names).
"""

from __future__ import annotations

import os
import time
from base64 import b64encode
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import orjson

from engine import errors
from engine.events import prepare
from engine.stream import format_cursor, parse_cursor
from server.exact_json import find_out_of_range, loads
from server.http import Request, Response, duration, json_response
from server.idempotency import Idempotent
from server.problems import INVALID_PARAMETERS, HTTPProblem, bad_request, from_engine_error
from server.sse import SSE_HEADERS, STREAM_TICK, EventStream, client_left, open_stream
from server.validation import (
    MAX_TX,
    _base64,
    check_batch_size,
    check_storage,
    echo,
    note_header,
    query_int,
    query_tx_param,
)

if TYPE_CHECKING:
    from engine import Event
    from server.app import App

_NO_QUERY: frozenset[str] = frozenset()
_READ_QUERY = frozenset({"start_tx", "end_tx", "limit", "cursor"})
_SSE_QUERY = frozenset({"start_tx"})
_ITEM_FIELDS = frozenset({"data", "binary"})
READ_LIMIT_DEFAULT = 100
READ_LIMIT_MAX = 1000
SSE_PAGE = 100


def event_json(event: Event) -> dict[str, Any]:
    """The response form of one event (binary data as base64)."""
    if event.binary:
        return {"tx": event.tx, "index": event.index, "data": b64encode(event.data).decode("ascii"), "binary": True}
    return {"tx": event.tx, "index": event.index, "data": event.data, "binary": False}


def _item_error(index: int, code: str, message: str, location: str, value: Any) -> dict[str, Any]:
    return {"location": location, "message": message, "value": value, "index": index, "code": code}


def _check_items(body: Any, out_of_range: bool) -> tuple[list[Any], list[dict[str, Any]]]:
    """The events of a write body, and one error per bad item."""
    if type(body) is not list:
        raise bad_request(INVALID_PARAMETERS, 'the write body must be a JSON array of {"data", "binary"?}', "",
                          echo(body))
    out: list[Any] = []
    bad: list[dict[str, Any]] = []
    for index, item in enumerate(body):
        if type(item) is not dict:
            bad.append(_item_error(index, INVALID_PARAMETERS, "an item must be an object", f"/{index}", echo(item)))
            continue
        unknown = [name for name in item if name not in _ITEM_FIELDS]
        binary = item.get("binary", False)
        if unknown:
            bad.append(_item_error(index, INVALID_PARAMETERS, f"unknown field {unknown[0]!r}",
                                   f"/{index}/{unknown[0]}", echo(item[unknown[0]])))
        elif "data" not in item:
            bad.append(_item_error(index, INVALID_PARAMETERS, "data is required", f"/{index}/data", None))
        elif type(binary) is not bool:
            bad.append(_item_error(index, INVALID_PARAMETERS, "binary must be true or false", f"/{index}/binary",
                                   echo(binary)))
        elif binary:
            raw = _base64(item["data"])
            if raw is None:
                bad.append(_item_error(index, errors.InvalidValue.code, "binary data must be a base64 string",
                                       f"/{index}/data", echo(item["data"])))
            out.append(raw)
        else:
            found = find_out_of_range(item["data"], f"/{index}/data") if out_of_range else None
            if found is not None:
                bad.append(_item_error(index, errors.InvalidValue.code, f"data is not storable: {found[1].reason()}",
                                       found[0], echo(found[1])))
            out.append(item["data"])
            continue
        if len(out) <= index:
            out.append(None)
    return out, bad


def write(app: App, req: Request) -> Response:
    """``POST /v4/stream/{stream}/write``: publish the array's events as one tx."""
    name = check_storage(req.params["stream"], "path.stream")
    req.query(_NO_QUERY)
    raw = req.json_bytes()
    idem = Idempotent(app, req, raw)
    body, out_of_range = loads(raw)
    check_batch_size(body, app.max_batch, "events")
    store = app.store
    note = note_header(req.environ, app.max_note_bytes)
    items, bad = _check_items(body, out_of_range)
    stream = store.stream(name)
    if not bad:
        def answer(tx: Any, refusal: errors.EngineError | None) -> Response:
            return json_response(200, {"tx": tx, "count": len(items), "duration": duration(req.t0)})

        try:
            tx = stream.publish(items, note=note, idempotency=idem.claim(answer, recorded=()))
        except errors.EngineError as exc:
            if not exc.details.get("errors"):
                raise
            bad = _engine_errors(exc, items)
        else:
            return idem.answered(tx)
    else:
        bad_indexes = {e["index"] for e in bad}
        try:  # the engine's findings on the other items belong in the same list
            prepare([x if i not in bad_indexes else None for i, x in enumerate(items)], store.limits)
        except errors.EngineError as exc:
            bad += _engine_errors(exc, items)
        bad.sort(key=lambda e: int(e["index"]))
    raise HTTPProblem(400, bad[0]["code"], f"{len(bad)} of {len(body)} events are invalid; nothing was written", bad)


def _engine_errors(exc: errors.EngineError, items: list[Any]) -> list[dict[str, Any]]:
    out = []
    for entry in exc.details.get("errors") or ():
        index = entry["index"]
        value = items[index]
        shown = "binary" if type(value) is bytes else echo(value)
        out.append(_item_error(index, entry["code"], entry["message"], f"/{index}/data", shown))
    return out


def read(app: App, req: Request) -> Response:
    """``GET /v4/stream/{stream}?start_tx=&end_tx=&limit=&cursor=``: events with ``start_tx < tx <=
    end_tx``; ``cursor`` (from the previous page) continues a read."""
    name = check_storage(req.params["stream"], "path.stream")
    query = req.query(_READ_QUERY)
    start = query_tx_param(query.get("start_tx"), "start_tx")
    end = query_tx_param(query.get("end_tx"), "end_tx")
    limit = query_int(query.get("limit"), "limit", 1, READ_LIMIT_MAX, READ_LIMIT_DEFAULT)
    cursor = query.get("cursor")
    if cursor is not None:
        if start is not None:
            raise bad_request(INVALID_PARAMETERS, "give start_tx or cursor, not both", "query.cursor", cursor[:200])
        try:
            parse_cursor(cursor)
        except errors.InvalidParameters as exc:
            raise bad_request(INVALID_PARAMETERS, exc.message, "query.cursor", cursor[:200]) from None
    try:
        page = app.store.stream(name).read(start, end, limit, cursor=cursor)
    except (errors.FutureTx, errors.TxCompacted) as exc:
        location = f"query.{exc.details.get('parameter', 'cursor' if cursor is not None else 'start_tx')}"
        raise from_engine_error(exc, tx_location=location) from None
    data = [event_json(e) for e in page.events]
    return json_response(200, {"data": data, "count": len(data), "cursor": page.cursor, "more": page.more,
                               "tx": page.tx, "duration": duration(req.t0)})


def _last_event_id(text: str) -> tuple[int, int | None]:
    try:
        after = parse_cursor(text.strip(), "Last-Event-ID")
    except errors.InvalidParameters:
        raise bad_request(INVALID_PARAMETERS, "Last-Event-ID must be an event id (TX or TX:INDEX, the id of the "
                          "last event received)", "header.Last-Event-ID", text[:200]) from None
    if after[0] > MAX_TX:
        raise bad_request(INVALID_PARAMETERS, "Last-Event-ID names a tx beyond the range of txs",
                          "header.Last-Event-ID", text[:200])
    return after


def sse(app: App, req: Request) -> Response:
    """``GET /v4/stream/{stream}/sse[?start_tx=N]``: every event after the tx in ``Last-Event-ID``
    (a reconnect), else after ``start_tx`` (0 replays everything), else only new events."""
    name = check_storage(req.params["stream"], "path.stream")
    start = query_tx_param(req.query(_SSE_QUERY).get("start_tx"), "start_tx")
    last_id = req.environ.get("HTTP_LAST_EVENT_ID")
    store = app.store
    location = "query.start_tx"
    if last_id is not None and last_id.strip():
        after, location = _last_event_id(last_id), "header.Last-Event-ID"
    elif start is not None:
        after = (start, None)
    else:
        after = (int(store.latest_tx), None)
    try:
        store.stream(name).read(cursor=format_cursor(*after), limit=1)  # FUTURE_TX, TX_COMPACTED before any byte
    except (errors.FutureTx, errors.TxCompacted) as exc:
        raise from_engine_error(exc, tx_location=location) from None
    sock = open_stream(app, req)
    return 200, SSE_HEADERS, StreamEvents(app, name, format_cursor(*after), sock)


def _sse_messages(events: list[Event], more_in_last_tx: bool) -> bytes:
    """The SSE messages of a page: the last event of each tx has the id ``tx``, the others ``tx:index``."""
    out = []
    for i, event in enumerate(events):
        last_of_tx = (i + 1 < len(events) and events[i + 1].tx != event.tx) or (i + 1 == len(events)
                                                                              and not more_in_last_tx)
        ident = str(event.tx) if last_of_tx else f"{event.tx}:{event.index}"
        out.append(b"id: %s\ndata: %s\n\n" % (ident.encode(), orjson.dumps(event_json(event))))
    return b"".join(out)


class StreamEvents(EventStream):
    """The body of a stream's SSE response (slots, heartbeats and closing as :class:`EventStream`)."""

    def _run(self) -> Generator[bytes, None, None]:
        app, name = self.app, self.name
        heartbeat = app.heartbeat
        yield f": strata stream {name} after {self.after} (worker {os.getpid()})\nretry: 2000\n\n".encode()
        if not app.serving:
            return
        stream, watch = app.store.stream(name), app.watch
        beat_at = time.monotonic() + heartbeat
        cursor = str(self.after)
        while app.serving:
            try:
                page = stream.read(cursor=cursor, limit=SSE_PAGE)
            except errors.TxCompacted as exc:  # a compaction overtook this stream: say so and end it
                yield b"event: error\ndata: %s\n\n" % orjson.dumps(from_engine_error(exc).document())
                return
            if page.events:
                # A page may stop inside a tx: then its last event is not the last of its tx.
                yield _sse_messages(page.events, page.split)
                beat_at = time.monotonic() + heartbeat
            cursor = page.cursor
            if page.more:
                continue
            left = beat_at - time.monotonic()
            if left > 0 and watch.wait(page.tx, min(left, STREAM_TICK)) <= page.tx and client_left(self.sock):
                return
            if time.monotonic() >= beat_at:
                yield b": heartbeat\n\n"
                beat_at = time.monotonic() + heartbeat
