"""Single keys: ``GET``, ``HEAD``, ``POST`` and ``DELETE /v4/storage/{storage}/key?key=K``.

``GET`` answers the record with ``ETag: "<tx>"`` (304 for a matching ``If-None-Match``); ``POST``
(the raw body is the value: bytes, or JSON by ``Content-Type``) and ``DELETE`` honour ``If-Match:
"<tx>"`` and ``If-None-Match: *`` (412 ``CONFLICT`` when they fail) and take ``Idempotency-Key``
(:mod:`server.idempotency`). Errors about the key point at ``query.key``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine import errors
from server import conditions
from server.exact_json import find_out_of_range, loads
from server.http import Request, Response, duration, json_response, problem_response, unsupported_media_type
from server.idempotency import Idempotent
from server.problems import INVALID_JSON, INVALID_PARAMETERS, KEY_NOT_FOUND, HTTPProblem, bad_request, from_engine_error
from server.shapes import record_json
from server.validation import check_storage, echo, note_header, query_tx

if TYPE_CHECKING:
    from server.app import App

_KEY_QUERY = frozenset({"key"})
_KEY_GET_QUERY = frozenset({"key", "tx"})


def _query_key(query: dict[str, str]) -> str:
    key = query.get("key")
    if key is None:
        raise bad_request(INVALID_PARAMETERS, "the key query parameter is required", "query.key", None)
    return key


def _single(exc: errors.EngineError) -> HTTPProblem:
    """An engine error about the one key of a single-key request, pointed at ``query.key``."""
    problem = from_engine_error(exc)
    for entry in problem.errors:
        if entry["location"].endswith("/key"):
            entry["location"] = "query.key"
    if not problem.errors and exc.code in (errors.InvalidKey.code, errors.KeyTooLong.code):
        problem.errors = [{"location": "query.key", "message": exc.message, "value": exc.details.get("key")}]
    return problem


def get_key(app: App, req: Request) -> Response:
    """``GET /v4/storage/{storage}/key?key=K[&tx=N]``: the record with ``ETag: "<tx>"``, or a 404
    problem; 304 (no body) when ``If-None-Match`` names the record's ETag (or is ``*``)."""
    name = check_storage(req.params["storage"])
    query = req.query(_KEY_GET_QUERY)
    key = _query_key(query)
    tx = query_tx(query.get("tx"))
    try:
        rec = app.store.namespace(name).get(key, tx=tx)
    except errors.NamespaceNotFound:
        rec = None
    except (errors.FutureTx, errors.TxCompacted) as exc:
        raise from_engine_error(exc, tx_location="query.tx") from None
    except errors.EngineError as exc:
        raise _single(exc) from None
    if rec is None:
        raise HTTPProblem(404, KEY_NOT_FOUND, f"key {key[:200]!r} has no record in {name!r}" +
                          ("" if tx is None else f" at tx {tx}"),
                          [{"location": "query.key", "message": "not found", "value": key[:200]}])
    tag = conditions.etag(rec.tx)
    if conditions.not_modified(req.environ, rec.tx):
        return 304, [("ETag", tag)], []
    out = record_json(rec)
    out["duration"] = duration(req.t0)
    status, headers, body = json_response(200, out)
    return status, [*headers, ("ETag", tag)], body


def head_key(app: App, req: Request) -> Response:
    """``HEAD /v4/storage/{storage}/key?key=K[&tx=N]``: the status and headers ``GET`` answers (200
    with ``ETag`` and the ``Content-Length`` of its body, 304, 404), without a body."""
    try:
        status, headers, body = get_key(app, req)
    except HTTPProblem as problem:
        status, headers, body = problem_response(problem, req.path)
    if status == 304:
        return status, headers, []
    size = sum(len(part) for part in body)
    return status, [*headers, ("Content-Length", str(size))], []


def put_key(app: App, req: Request) -> Response:
    """``POST /v4/storage/{storage}/key?key=K``: the raw body is the value. The answer carries the
    new record's ``ETag``; ``If-Match: "<tx>"`` / ``If-None-Match: *`` make the write conditional.

    ``application/octet-stream`` (or no Content-Type, which RFC 9110 lets a recipient treat as
    octet-stream) stores bytes; ``application/json`` or ``*+json`` stores the parsed JSON value.
    """
    name = check_storage(req.params["storage"])
    key = _query_key(req.query(_KEY_QUERY))
    media = req.media_type()
    value: Any
    binary = media is None or media == "application/octet-stream"
    if not binary and media != "application/json" and not str(media).endswith("+json"):
        raise unsupported_media_type(str(media), "application/octet-stream or application/json")
    raw = req.body()
    idem = Idempotent(app, req, raw)
    if binary:
        value = raw
    else:
        if not raw:
            raise bad_request(INVALID_JSON, "the body is empty; send a JSON value", "body", None)
        value, out_of_range = loads(raw)
        found = find_out_of_range(value, "") if out_of_range else None
        if found is not None:  # a JSON Pointer into the body (the body is the value)
            raise bad_request(errors.InvalidValue.code, f"value is not storable: {found[1].reason()}",
                              found[0] or "body", echo(found[1]))
    note = note_header(req.environ, app.max_note_bytes)
    condition = conditions.header_condition(req.environ)

    def answer(tx: Any, refusal: errors.EngineError | None) -> Response:
        if isinstance(refusal, errors.Conflict):
            return problem_response(_header_failed(refusal, key, condition, req), req.path)
        else:  # the new record's ETag, for the next conditional write
            status, headers, body = json_response(200, {"tx": tx, "duration": duration(req.t0)})
            return status, [*headers, ("ETag", conditions.etag(tx))], body

    try:
        tx = app.store.namespace(name).put({key: value}, note=note, expect=_header_expect(key, condition),
                                           idempotency=idem.claim(answer))
    except errors.Conflict as exc:
        raise _header_failed(exc, key, condition, req) from None
    except errors.EngineError as exc:
        problem = _single(exc)
        for entry in problem.errors:
            if entry["location"].endswith("/value"):
                entry["location"], entry["value"] = "body", None
        raise problem from None
    return idem.answered(tx)


def _header_expect(key: str, condition: tuple[int, str] | None) -> dict[str, int] | None:
    return None if condition is None else {key: condition[0]}


def _header_failed(exc: errors.Conflict, key: str, condition: tuple[int, str] | None, req: Request) -> HTTPProblem:
    assert condition is not None  # only a conditional write conflicts
    header = condition[1]
    sent = req.environ.get("HTTP_IF_MATCH" if header == "If-Match" else "HTTP_IF_NONE_MATCH", "")
    return conditions.header_conflict(exc, key, header, sent)


def delete_key(app: App, req: Request) -> Response:
    """``DELETE /v4/storage/{storage}/key?key=K``: delete one key (gone from later snapshots);
    ``If-Match: "<tx>"`` / ``If-None-Match: *`` make it conditional (412 when the condition fails)."""
    name = check_storage(req.params["storage"])
    key = _query_key(req.query(_KEY_QUERY))
    idem = Idempotent(app, req, b"")
    note = note_header(req.environ, app.max_note_bytes)
    condition = conditions.header_condition(req.environ)

    def answer(tx: Any, refusal: errors.EngineError | None) -> Response:
        if isinstance(refusal, errors.Conflict):
            return problem_response(_header_failed(refusal, key, condition, req), req.path)
        else:
            return json_response(200, {"tx": tx, "duration": duration(req.t0)})

    try:
        tx = app.store.namespace(name).delete([key], note=note, expect=_header_expect(key, condition),
                                              idempotency=idem.claim(answer))
    except errors.Conflict as exc:
        raise _header_failed(exc, key, condition, req) from None
    except errors.EngineError as exc:
        raise _single(exc) from None
    return idem.answered(tx)
