"""Records of one namespace: bulk read, write, delete, scan, and single-key get/put/delete.

Every body and parameter is checked before the engine is called, so a rejected request writes
nothing. Writes are one engine transaction each. ``?atomic=false`` on ``/write`` is the seeds'
partial-success mode: bad items are set aside (with their index, key, code and message) and the good
ones commit together in one tx.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from engine import Item, errors
from engine import idempotency as idempotent_writes
from server import conditions
from server.exact_json import find_out_of_range, loads
from server.http import (
    JSON_HEADERS,
    Request,
    Response,
    duration,
    json_response,
    parse_json,
    problem_response,
    unsupported_media_type,
)
from server.idempotency import Idempotent
from server.problems import INVALID_JSON, INVALID_PARAMETERS, KEY_NOT_FOUND, HTTPProblem, bad_request, from_engine_error
from server.shapes import record_json
from server.validation import (
    WriteItem,
    check_fields,
    check_keys,
    check_limit,
    check_read_options,
    check_storage,
    check_string,
    check_tx,
    check_write_items,
    echo,
    is_before_epoch,
    key_error,
    note_header,
    parse_time,
    query_bool,
    query_tx,
)

if TYPE_CHECKING:
    from engine import Transaction
    from server.app import App

_NO_QUERY: frozenset[str] = frozenset()
_READ_FIELDS = frozenset({"keys", "tx", "at", "metadata", "fields"})
_DELETE_FIELDS = frozenset({"keys"})
_SCAN_FIELDS = frozenset({"prefix", "after", "limit", "tx", "metadata", "fields"})
_WRITE_QUERY = frozenset({"atomic"})
_KEY_QUERY = frozenset({"key"})
_KEY_GET_QUERY = frozenset({"key", "tx"})
_EMPTY: dict[str, Any] = {}
_STREAM_BATCH = 256


def read(app: App, req: Request) -> Response:
    """``POST /v4/storage/{storage}/read``: ``{"keys"?, "tx"? | "at"?}`` (or a bare array of keys).

    ``at`` (an RFC 3339 time) reads the snapshot of the last tx committed at or before that time;
    the answer's ``tx`` says which (0 when the time is before the first tx). ``"metadata": true``
    adds each record's ``metadata``; ``"fields": ["created_at", "updated_at", "expire_time"]`` adds
    those times. Expired values are left out (see ``docs/engine.md``, "Expiry and metadata").
    """
    name = check_storage(req.params["storage"])
    req.query(_NO_QUERY)
    body = req.json(empty=_EMPTY)
    metadata, fields = False, None
    if type(body) is list:
        keys, tx = check_keys(body, ""), None
    else:
        check_fields(body, _READ_FIELDS, 'read takes {"keys": [...], "tx": N} or {"keys": [...], "at": time}')
        metadata, fields = check_read_options(body)
        raw_keys = body.get("keys")
        keys = [] if raw_keys is None else check_keys(raw_keys, "/keys")
        tx = check_tx(body.get("tx"))
        if body.get("at") is not None:
            if tx is not None:
                raise HTTPProblem(400, INVALID_PARAMETERS, "give tx or at, not both",
                                  [{"location": "/at", "message": "tx is given too", "value": body["at"]}])
            tx = tx_at(app, parse_time(body["at"], "/at"))
    store = app.store
    try:
        result = store.namespace(name).read(keys, tx=tx, metadata=metadata, fields=fields)
    except errors.NamespaceNotFound:  # never written: reads as empty, not as an error
        return _read_answer(req, [], store.latest_tx if tx is None else tx)
    except errors.EngineError as exc:
        path = "/keys" if type(body) is dict else ""
        problem = from_engine_error(exc, item_path=path, tx_location="/tx")
        if not problem.errors and isinstance(exc, errors.InvalidKey | errors.KeyTooLong):
            problem.errors = _bad_keys(keys, path, app.max_key_bytes)
        raise problem from None
    if metadata or fields:
        return _read_answer(req, [_rich_json(r, metadata, fields) for r in result.records], result.tx)
    # The common record (JSON value, not cleared) is built inline: this loop runs 100s of times
    # per request and a function call per record is a measurable share of the request.
    data = [{"key": r.key, "value": r.value, "tx": r.tx, "binary": False} if not (r.binary or r.cleared)
            else record_json(r) for r in result.records]
    return _read_answer(req, data, result.tx)


def _rich_json(rec: Any, metadata: bool, fields: list[str] | None) -> dict[str, Any]:
    """A record with the optional members a read asked for: ``metadata`` and the ``fields``."""
    out = record_json(rec)
    if metadata:
        out["metadata"] = rec.metadata
    for name in fields or ():
        when = getattr(rec, name)  # RFC 3339 UTC, as every time in responses, or null
        out[name] = None if when is None else orjson.dumps(when, option=orjson.OPT_UTC_Z)[1:-1].decode()
    return out


def tx_at(app: App, when: datetime) -> int:
    """The last tx committed at or before ``when`` (0 before the first tx, or before 1970)."""
    return 0 if is_before_epoch(when) else int(app.store.tx_at(when))


def _bad_keys(keys: list[str], path: str, max_key_bytes: int) -> list[dict[str, Any]]:
    """Every key the engine would refuse, as problem ``errors`` entries."""
    out = []
    for i, key in enumerate(keys):
        why = key_error(key, max_key_bytes)
        if why is not None:
            out.append({"location": f"{path}/{i}", "message": why[1], "value": key[:200], "code": why[0]})
    return out


def _read_answer(req: Request, data: list[dict[str, Any]], tx: int) -> Response:
    return json_response(200, {"data": data, "count": len(data), "tx": tx, "duration": duration(req.t0)})


def write(app: App, req: Request) -> Response:
    """``POST /v4/storage/{storage}/write``: an array of ``{"key", "value"?, "binary"?}``, each
    optionally with ``expiration`` (epoch seconds), ``expiration_ttl`` (seconds) or Forge's
    ``"ttl": {"value", "unit"}``, and ``metadata`` (any JSON up to 1,024 bytes).

    Every bad item is listed with its index in the request, whichever check (the server's or the
    engine's) finds it: atomic mode refuses the request, partial mode commits the rest in one tx.
    ``if_match``/``if_none_match`` make items conditional (:mod:`server.conditions`): in atomic mode
    a failed one is 412 and nothing is written, in partial mode its item is set aside."""
    name = check_storage(req.params["storage"])
    atomic = query_bool(req.query(_WRITE_QUERY).get("atomic"), "atomic", True)
    raw = req.json_bytes()
    idem = Idempotent(app, req, raw)
    body, out_of_range = loads(raw)
    if type(body) is list and not body:
        raise bad_request(errors.EmptyBatch.code, "the write has no items", "", "array")
    if type(body) is list and len(body) > app.max_batch:
        raise bad_request(errors.BatchTooLarge.code, f"a write may hold at most {app.max_batch} items", "",
                          len(body))
    store = app.store  # opened first: it sets the key limit the items are checked against
    note = note_header(req.environ, app.max_note_bytes)
    good, bad = _with_conditions(check_write_items(body, app.max_key_bytes, out_of_range))
    store.namespace(name)  # validates the name through the engine as well
    if atomic:
        if bad:  # the engine's findings on the other items belong in the same list
            bad += _engine_errors(app, name, good, note)
            bad.sort(key=_by_index)
            raise HTTPProblem(400, bad[0]["code"], f"{len(bad)} of {len(body)} items are invalid; nothing was written",
                              [_problem_entry(e) for e in bad])
        made: list[Response] = []  # the answer, made once: inside the write transaction when it is recorded

        def answer(tx: Any, refusal: errors.EngineError | None) -> Response:
            if isinstance(refusal, errors.Conflict):
                made.append(problem_response(_failed(refusal, good, len(body)), req.path))
            else:
                made.append(json_response(200, {"tx": tx, "count": len(good), "duration": duration(req.t0)}))
            return made[-1]

        try:
            tx = _commit(app, name, good, note, idem.claim(answer))
        except errors.Conflict as exc:
            raise _failed(exc, good, len(body)) from None
        except errors.EngineError as exc:
            item_errors = _item_errors(exc, good)
            if not item_errors:
                raise
            raise HTTPProblem(400, item_errors[0]["code"], f"{len(item_errors)} of {len(body)} items are invalid; "
                              "nothing was written", [_problem_entry(e) for e in item_errors]) from None
        return made[-1] if made else answer(tx, None)
    return _write_partial(app, req, name, good, bad, note, idem)


def _with_conditions(checked: tuple[list[WriteItem], list[dict[str, Any]]]
                     ) -> tuple[list[WriteItem], list[dict[str, Any]]]:
    """The checked items with their ``if_match``/``if_none_match`` parsed; a bad condition makes its item bad."""
    good, bad = checked
    out: list[WriteItem] = []
    for item in good:
        sent = item.sent or {}
        if conditions.IF_MATCH not in sent and conditions.IF_NONE_MATCH not in sent:
            out.append(item)
            continue
        condition, error = conditions.item_condition(sent, item.request_index)
        if error is not None:
            bad.append(error)
        else:
            out.append(item._replace(condition=condition))
    return out, bad


def _condition_maps(items: list[WriteItem]) -> tuple[dict[str, int], dict[str, str]]:
    """For each conditional item's key: its index in the request and where its condition was given."""
    index_of = {item.key: item.request_index for item in items if item.condition is not None}
    location_of = {item.key: f"/{item.request_index}/{_member(item.condition)}"
                   for item in items if item.condition is not None}
    return index_of, location_of


def _member(condition: int | None) -> str:
    return conditions.IF_NONE_MATCH if condition == 0 else conditions.IF_MATCH


def _failed(exc: errors.Conflict, items: list[WriteItem], total: int) -> HTTPProblem:
    return conditions.precondition_failed([{**_problem_entry(e), "expected": e["expected"], "found": e["found"]}
                                           for e in _conflict_errors(exc, items)], total)


def _conflict_errors(exc: errors.Conflict, items: list[WriteItem]) -> list[dict[str, Any]]:
    return conditions.item_conflicts(exc, *_condition_maps(items))


def _by_index(entry: dict[str, Any]) -> int:
    return int(entry["index"])


def _write_partial(app: App, req: Request, name: str, good: list[WriteItem], bad: list[dict[str, Any]],
                   note: dict[str, Any] | None, idem: Idempotent) -> Response:
    """Commit the good items in one tx, setting aside every item the engine refuses or whose
    condition fails.

    The engine lists every item it refuses at once, so this normally commits on the second try;
    each retry drops at least one item, so it ends. An error that is not about items (such as
    STORAGE_FULL) fails the request as a whole: nothing was written, and the problem says why.
    With an idempotency key, the answer is recorded with the commit (or, when no item is left to
    commit after the engine was asked, on its own).
    """
    tx = None
    made: list[Response] = []

    def answer(result: Any, refusal: errors.EngineError | None) -> Response:
        made.append(_partial_answer(req, result, good, bad))
        return made[-1]

    claim = idem.claim(answer, recorded=())
    asked = bool(good)
    while good:
        try:
            tx = _commit(app, name, good, note, claim)
            break
        except errors.Conflict as exc:
            item_errors = _conflict_errors(exc, good)
        except errors.EngineError as exc:
            item_errors = _item_errors(exc, good)
            if not item_errors:
                raise
        bad += item_errors
        dropped = {e["index"] for e in item_errors}
        good = [item for item in good if item.request_index not in dropped]
    if asked and not good and claim is not None:
        idempotent_writes.run(app.store, claim, _nothing)
    return made[-1] if made else answer(tx, None)


def _nothing(txn: Any) -> None:
    return None


def _partial_answer(req: Request, tx: int | None, written: list[WriteItem], bad: list[dict[str, Any]]) -> Response:
    failed = sorted(bad, key=_by_index)
    entries = []
    for e in failed:
        entry = {"index": e["index"], "key": e["key"], "code": e["code"], "message": e["message"],
                 "location": e["location"], "value": e["value"]}
        if "found" in e:
            entry["expected"], entry["found"] = e["expected"], e["found"]
        entries.append(entry)
    return json_response(200, {"tx": tx, "succeeded": len(written), "failed": len(failed), "errors": entries,
                               "unsuccessful_keys": unsuccessful_keys(failed, written if tx is not None else []),
                               "duration": duration(req.t0)})


def unsuccessful_keys(bad: list[dict[str, Any]], written: list[WriteItem]) -> list[str]:
    """Cloudflare's ``unsuccessful_keys``: the keys of the failed items that no written item wrote
    (a later duplicate of a written key fails, but its key was written), each once, in request
    order. A failed item without a string key has no key to name; its error still lists it."""
    done = {item.key for item in written}
    return list(dict.fromkeys(e["key"] for e in bad if type(e["key"]) is str and e["key"] not in done))


def _commit(app: App, name: str, items: list[WriteItem], note: dict[str, Any] | None,
            claim: idempotent_writes.Claim | None = None) -> int:
    """Write ``items`` in one tx: ``put`` when all store values, ``clear`` when all clear, else a
    transaction, with the items' conditions and the request's idempotency ``claim``. Each path
    raises listing every bad item; indexes are positions in ``items``."""
    store = app.store
    clears = sum(1 for item in items if item.clear)
    rich = any(item.options is not None for item in items)
    expect = {item.key: item.condition for item in items if item.condition is not None} or None
    if not clears and rich:
        return int(store.namespace(name).put(
            [Item(item.key, item.value, *item.options) if item.options else Item(item.key, item.value)
             for item in items], note=note, expect=expect, idempotency=claim))
    if not clears:
        return int(store.namespace(name).put({item.key: item.value for item in items}, note=note, expect=expect,
                                             idempotency=claim))
    if clears == len(items):
        return int(store.namespace(name).clear([item.key for item in items], note=note, expect=expect,
                                               idempotency=claim))
    return int(_staged(app, name, items, note, claim).commit())


def _staged(app: App, name: str, items: list[WriteItem], note: dict[str, Any] | None,
            claim: idempotent_writes.Claim | None = None) -> Transaction:
    """A transaction holding ``items`` and their conditions, not committed yet; or raise listing
    every item the engine refuses (each call checks its own item, so the refusals are collected,
    not stopped at the first)."""
    t = app.store.transaction(note=note, idempotency=claim)
    for item in items:
        if item.condition is not None:
            t.expect(name, item.key, tx=item.condition)
    item_errors: list[dict[str, Any]] = []
    first: errors.EngineError | None = None
    for position, item in enumerate(items):
        try:
            if item.clear:
                t.clear(name, item.key)
            elif item.options is not None:
                expiration, ttl, metadata = item.options
                t.put(name, item.key, item.value, expiration=expiration, ttl=ttl, metadata=metadata)
            else:
                t.put(name, item.key, item.value)
        except errors.EngineError as exc:
            first = first or exc
            item_errors.append({"index": position, "key": item.key, "code": exc.code, "message": exc.message})
    if first is not None:
        count = len(item_errors)
        message = first.message if count == 1 else f"{count} items are invalid; the first: {first.message}"
        raise type(first)(message, errors=item_errors)
    return t


def _engine_errors(app: App, name: str, items: list[WriteItem], note: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What the engine would refuse among ``items``, found without writing (the staged transaction
    is dropped uncommitted)."""
    if not items:
        return []
    try:
        _staged(app, name, items, note)
    except errors.EngineError as exc:
        return _item_errors(exc, items)
    return []


def _item_errors(exc: errors.EngineError, items: list[WriteItem]) -> list[dict[str, Any]]:
    """The engine's per-item errors, re-indexed to positions in the request body, each pointing at
    the member it is about and echoing what the request sent there."""
    out = []
    for entry in exc.details.get("errors") or ():
        position = entry.get("index")
        if type(position) is not int or not 0 <= position < len(items):
            continue
        item = items[position]
        code = str(entry.get("code", exc.code))
        field = _FIELD_BY_CODE.get(code, "key")
        if code == errors.InvalidExpirationTtl.code:
            field = item.ttl_field
        at = item.request_index
        location, value = f"/{at}/{field}", item.key
        if field != "key":
            sent = item.sent or {}
            value = sent.get(field)
            if field == "ttl" and type(value) is dict:  # Forge's {"value", "unit"}: the amount is out of range
                location, value = f"{location}/value", value.get("value")
            value = echo(value)
        out.append({"index": at, "key": item.key, "code": code, "message": str(entry.get("message", "")),
                    "location": location, "value": value})
    return out


_FIELD_BY_CODE = {
    errors.InvalidValue.code: "value",
    errors.ValueTooLarge.code: "value",
    errors.InvalidExpiration.code: "expiration",
    errors.InvalidMetadata.code: "metadata",
    errors.MetadataTooLarge.code: "metadata",
}


def _problem_entry(e: dict[str, Any]) -> dict[str, Any]:
    return {"location": e["location"], "message": e["message"], "value": e["value"], "index": e["index"],
            "key": e["key"], "code": e["code"]}


def delete(app: App, req: Request) -> Response:
    """``POST /v4/storage/{storage}/delete``: ``{"keys": [...]}`` (or a bare array) in one tx. A key
    may be given as ``{"key", "if_match"?, "if_none_match"?}`` to make its delete conditional: a
    failed condition is 412 and nothing is deleted."""
    name = check_storage(req.params["storage"])
    req.query(_NO_QUERY)
    raw = req.json_bytes()
    idem = Idempotent(app, req, raw)
    body = parse_json(raw)
    if type(body) is list:
        path, listed = "", body
    else:
        check_fields(body, _DELETE_FIELDS, 'delete takes {"keys": [...]}')
        if "keys" not in body:
            raise bad_request(INVALID_PARAMETERS, "keys is required", "/keys", None)
        path, listed = "/keys", body["keys"]
    keys, expect, index_of, location_of = _delete_keys(listed, path)
    note = note_header(req.environ, app.max_note_bytes)
    if not keys:  # about the list itself, so it points there
        raise bad_request(errors.EmptyBatch.code, "a delete needs at least one key", path, "array")
    made: list[Response] = []

    def answer(tx: Any, refusal: errors.EngineError | None) -> Response:
        if isinstance(refusal, errors.Conflict):
            made.append(problem_response(_delete_failed(refusal, index_of, location_of, len(keys)), req.path))
        else:
            made.append(json_response(200, {"tx": tx, "count": len(keys), "duration": duration(req.t0)}))
        return made[-1]

    try:
        tx = app.store.namespace(name).delete(keys, note=note, expect=expect, idempotency=idem.claim(answer))
    except errors.Conflict as exc:
        raise _delete_failed(exc, index_of, location_of, len(keys)) from None
    except errors.EngineError as exc:
        raise from_engine_error(exc, item_path=path) from None
    return made[-1] if made else answer(tx, None)


def _delete_keys(value: Any, path: str) -> tuple[list[str], dict[str, int] | None, dict[str, int], dict[str, str]]:
    """``(keys, expect, index of each conditional key, location of its condition)`` of a delete's
    list: strings, or objects ``{"key", "if_match"?, "if_none_match"?}``."""
    if type(value) is not list or all(type(k) is str for k in value):
        return check_keys(value, path), None, {}, {}
    keys: list[Any] = []
    expect: dict[str, int] = {}
    index_of: dict[str, int] = {}
    location_of: dict[str, str] = {}
    bad: list[dict[str, Any]] = []
    for i, entry in enumerate(value):
        if type(entry) is not dict:
            keys.append(entry)
            continue
        unknown = [f for f in entry if f not in _DELETE_ITEM_FIELDS]
        key = entry.get("key")
        if unknown or type(key) is not str:
            where = f"{path}/{i}/{unknown[0]}" if unknown else f"{path}/{i}/key"
            bad.append({"location": where, "message": f"unknown field {unknown[0]!r}" if unknown
                        else "key must be a string", "value": echo(entry[unknown[0]] if unknown else key)})
            continue
        condition, error = conditions.item_condition(entry, i)
        if error is not None:
            bad.append({"location": f"{path}{error['location']}", "message": error["message"],
                        "value": error["value"]})
            continue
        keys.append(key)
        if condition is not None:
            expect[key], index_of[key] = condition, i
            member = conditions.IF_NONE_MATCH if condition == 0 else conditions.IF_MATCH
            location_of[key] = f"{path}/{i}/{member}"
    if bad:
        raise HTTPProblem(400, INVALID_PARAMETERS, 'every key must be a string or {"key", "if_match"?, '
                          '"if_none_match"?}', bad[:100])
    return check_keys(keys, path), expect or None, index_of, location_of


_DELETE_ITEM_FIELDS = frozenset({"key", conditions.IF_MATCH, conditions.IF_NONE_MATCH})


def _delete_failed(exc: errors.Conflict, index_of: dict[str, int], location_of: dict[str, str],
                   total: int) -> HTTPProblem:
    entries = conditions.item_conflicts(exc, index_of, location_of)
    return conditions.precondition_failed([{**_problem_entry(e), "expected": e["expected"], "found": e["found"]}
                                           for e in entries], total)


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
    made: list[Response] = []

    def answer(tx: Any, refusal: errors.EngineError | None) -> Response:
        if isinstance(refusal, errors.Conflict):
            made.append(problem_response(_header_failed(refusal, key, condition, req), req.path))
        else:  # the new record's ETag, for the next conditional write
            status, headers, body = json_response(200, {"tx": tx, "duration": duration(req.t0)})
            made.append((status, [*headers, ("ETag", conditions.etag(tx))], body))
        return made[-1]

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
    return made[-1] if made else answer(tx, None)


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
    made: list[Response] = []

    def answer(tx: Any, refusal: errors.EngineError | None) -> Response:
        if isinstance(refusal, errors.Conflict):
            made.append(problem_response(_header_failed(refusal, key, condition, req), req.path))
        else:
            made.append(json_response(200, {"tx": tx, "duration": duration(req.t0)}))
        return made[-1]

    try:
        tx = app.store.namespace(name).delete([key], note=note, expect=_header_expect(key, condition),
                                              idempotency=idem.claim(answer))
    except errors.Conflict as exc:
        raise _header_failed(exc, key, condition, req) from None
    except errors.EngineError as exc:
        raise _single(exc) from None
    return made[-1] if made else answer(tx, None)


def scan(app: App, req: Request) -> Response:
    """``POST /v4/storage/{storage}/scan``: ``{"prefix"?, "after"?, "limit"?, "tx"?}``, streamed.

    Records come in UTF-8 byte order of keys. ``cursor`` is the last key of the page when more
    records follow (pass it as ``after``, with the same ``tx`` for a consistent snapshot), else null.
    The first record is fetched before the status line is sent, so bad input (a future ``tx``) still
    gets a problem document; the rest is streamed in batches, so memory does not grow with ``limit``.
    """
    name = check_storage(req.params["storage"])
    req.query(_NO_QUERY)
    body = check_fields(req.json(empty=_EMPTY), _SCAN_FIELDS, "scan takes {prefix, after, limit, tx, metadata, fields}")
    metadata, fields = check_read_options(body)
    prefix = check_string(body, "prefix") or ""
    after = check_string(body, "after")
    limit = check_limit(body.get("limit"))
    tx = check_tx(body.get("tx"))
    store = app.store
    try:
        result = store.namespace(name).scan(prefix=prefix, tx=tx, after=after, limit=limit + 1, metadata=metadata,
                                            fields=fields)
        records = iter(result)
        first = next(records, None)
    except errors.NamespaceNotFound:
        return _read_answer(req, [], store.latest_tx if tx is None else tx)
    except (errors.FutureTx, errors.TxCompacted) as exc:
        raise from_engine_error(exc, tx_location="/tx") from None
    shape = partial(_rich_json, metadata=metadata, fields=fields) if metadata or fields else record_json
    return 200, JSON_HEADERS, _stream(result, records, first, limit, req.t0, shape)


def _stream(result: Any, records: Iterator[Any], first: Any, limit: int, t0: int,
            shape: Any = record_json) -> Iterator[bytes]:
    """The scan response body, in pieces of up to ``_STREAM_BATCH`` records."""
    dumps = orjson.dumps
    count = 0
    last_key = None
    more = False
    batch: list[bytes] = []
    head = b'{"data":['
    try:
        rec = first
        while rec is not None:
            if count == limit:
                more = True
                break
            batch.append(dumps(shape(rec)))
            count += 1
            last_key = rec.key
            if len(batch) == _STREAM_BATCH:
                yield head + b",".join(batch)
                head, batch = b",", []
            rec = next(records, None)
        tail = dumps({"count": count, "tx": result.tx, "cursor": last_key if more else None,
                      "duration": duration(t0)})
        yield (head + b",".join(batch) if batch else head.rstrip(b",")) + b"]," + tail[1:]
    finally:
        close = getattr(result, "close", None) or getattr(records, "close", None)
        if close is not None:
            close()
