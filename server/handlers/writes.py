"""Writes to one namespace: ``POST .../write`` and ``POST .../delete``.

Every body is checked before the engine is called, so a rejected request writes nothing. A write
is one engine transaction. Items may carry conditions (``if_match``, ``if_none_match``:
:mod:`server.conditions`); a failed one is 412 ``CONFLICT`` and nothing is written. ``?atomic=false``
on ``/write`` is the seeds' partial-success mode: bad items (and items whose condition fails) are
set aside with their index, key, code and message, the good ones commit together in one tx, and the
answer lists the ``unsuccessful_keys`` (Cloudflare's bulk shape). Both take ``Idempotency-Key``
(:mod:`server.idempotency`).
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from engine import Item, errors
from engine import idempotency as idempotent_writes
from server import conditions
from server.exact_json import loads
from server.http import JSON_HEADERS, Request, Response, duration, json_response, parse_json, problem_response
from server.idempotency import ENVIRON as IDEMPOTENCY_ENVIRON
from server.idempotency import Idempotent
from server.problems import INVALID_PARAMETERS, HTTPProblem, bad_request, from_engine_error
from server.validation import (
    NOTE_ENVIRON,
    WriteItem,
    check_batch_size,
    check_fields,
    check_keys,
    check_storage,
    check_write_items,
    echo,
    key_error,
    note_header,
    query_bool,
)

if TYPE_CHECKING:
    from engine import Transaction
    from server.app import App

_NO_QUERY: frozenset[str] = frozenset()
_DELETE_FIELDS = frozenset({"keys"})
_WRITE_QUERY = frozenset({"atomic"})


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
    environ = req.environ
    plain = atomic and IDEMPOTENCY_ENVIRON not in environ and NOTE_ENVIRON not in environ
    idem = None if plain else Idempotent(app, req, raw)  # plain: no header, nothing to look up
    body, out_of_range = loads(raw)
    check_batch_size(body, app.max_batch, "items")
    store = app.store  # opened first: it sets the key limit the items are checked against
    if plain and not out_of_range and type(body) is list and len(body) == 1:
        item = body[0]
        if _plain_item(item, app.max_key_bytes):
            return _write_one(store, req, name, item)
    if idem is None:
        idem = Idempotent(app, req, raw)
    note = note_header(environ, app.max_note_bytes)
    good, bad = _with_conditions(check_write_items(body, app.max_key_bytes, out_of_range))
    store.namespace(name)  # validates the name through the engine as well
    if atomic:
        if bad:  # the engine's findings on the other items belong in the same list
            bad += _engine_errors(app, name, good, note)
            bad.sort(key=_by_index)
            raise HTTPProblem(400, bad[0]["code"], f"{len(bad)} of {len(body)} items are invalid; nothing was written",
                              [_problem_entry(e) for e in bad])

        def answer(tx: Any, refusal: errors.EngineError | None) -> Response:
            if isinstance(refusal, errors.Conflict):
                return problem_response(_failed(refusal, good, len(body)), req.path)
            else:
                return json_response(200, {"tx": tx, "count": len(good), "duration": duration(req.t0)})

        try:
            tx = _commit(app, name, good, note, idem.claim(answer))
        except errors.Conflict as exc:
            raise _failed(exc, good, len(body)) from None
        except errors.EngineError as exc:
            raise _refused(exc, good, len(body)) from None
        return idem.answered(tx)
    return _write_partial(app, req, name, good, bad, note, idem)


def _plain_item(item: Any, max_key_bytes: int) -> bool:
    """Whether ``item`` is ``{"key", "value"}`` with a key the server finds nothing wrong with (an
    item :func:`check_write_items` passes as it is)."""
    if type(item) is not dict or len(item) != 2 or "value" not in item:
        return False
    key = item.get("key")
    return type(key) is str and key_error(key, max_key_bytes) is None


def _write_one(store: Any, req: Request, name: str, item: dict[str, Any]) -> Response:
    """The commonest write, an atomic one of one plain item (:func:`_plain_item`), no note, no
    idempotency key, no number out of range: what the general path does with it (the engine's
    one-key put, the same refusals), its answer written directly (the bytes ``json_response``
    makes of the same members)."""
    key, value = item["key"], item["value"]
    try:
        tx = store.namespace(name).put({key: value})
    except errors.EngineError as exc:  # no condition: never a Conflict
        raise _refused(exc, [WriteItem(0, key, value, False, None, "expiration_ttl", item)], 1) from None
    return 200, JSON_HEADERS, [b'{"tx":%d,"count":1,"duration":"%.6fms"}' % (tx, (perf_counter_ns() - req.t0) / 1e6)]


def _refused(exc: errors.EngineError, good: list[WriteItem], total: int) -> Exception:
    """The problem of an atomic write whose items the engine refused (``exc`` itself when it is
    not about items: the app answers it as any engine error)."""
    item_errors = _item_errors(exc, good)
    if not item_errors:
        return exc
    return HTTPProblem(400, item_errors[0]["code"], f"{len(item_errors)} of {total} items are invalid; "
                       "nothing was written", [_problem_entry(e) for e in item_errors])


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

    def answer(result: Any, refusal: errors.EngineError | None) -> Response:
        return _partial_answer(req, result, good, bad)

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
    return idem.answered(tx)


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

    def answer(tx: Any, refusal: errors.EngineError | None) -> Response:
        if isinstance(refusal, errors.Conflict):
            return problem_response(_delete_failed(refusal, index_of, location_of, len(keys)), req.path)
        else:
            return json_response(200, {"tx": tx, "count": len(keys), "duration": duration(req.t0)})

    try:
        tx = app.store.namespace(name).delete(keys, note=note, expect=expect, idempotency=idem.claim(answer))
    except errors.Conflict as exc:
        raise _delete_failed(exc, index_of, location_of, len(keys)) from None
    except errors.EngineError as exc:
        raise from_engine_error(exc, item_path=path) from None
    return idem.answered(tx)


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
