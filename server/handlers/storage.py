"""Reading one namespace: bulk ``read`` (at a tx or a time) and ``scan`` (streamed).

Every body is checked before the engine is called. A namespace never written reads as empty. Writes
are in :mod:`server.handlers.writes`, single keys in :mod:`server.handlers.keys`.
"""

from __future__ import annotations

import re
from binascii import b2a_base64
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from engine import errors
from engine.proved_read import ProvedRead
from server.http import JSON_HEADERS, Request, Response, duration, json_response
from server.problems import INVALID_PARAMETERS, HTTPProblem, bad_request, from_engine_error
from server.shapes import record_json
from server.validation import (
    check_fields,
    check_keys,
    check_limit,
    check_read_options,
    check_storage,
    check_string,
    check_tx,
    echo,
    is_before_epoch,
    key_error,
    parse_time,
)

if TYPE_CHECKING:
    from server.app import App

_NO_QUERY: frozenset[str] = frozenset()
_READ_FIELDS = frozenset({"keys", "tx", "at", "metadata", "fields", "proof"})
_SCAN_FIELDS = frozenset({"prefix", "after", "limit", "tx", "metadata", "fields"})
_EMPTY: dict[str, Any] = {}
# The member name "proof" as JSON may spell it: each letter literal or a \u escape (hex in either case).
_PROOF_NAME = re.compile(rb'"(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[fF])(?:o|\\u006[fF])(?:f|\\u0066)"')
_STREAM_BATCH = 256


def read(app: App, req: Request) -> Response:
    """``POST /v4/storage/{storage}/read``: ``{"keys"?, "tx"? | "at"?}`` (or a bare array of keys).

    ``at`` (an RFC 3339 time) reads the snapshot of the last tx committed at or before that time;
    the answer's ``tx`` says which (0 when the time is before the first tx). ``"metadata": true``
    adds each record's ``metadata``; ``"fields": ["created_at", "updated_at", "expire_time"]`` adds
    those times. Expired values are left out (see ``docs/engine.md``, "Expiry and metadata").
    ``"proof": true`` adds ``proof``: what a client needs to check each record itself (:func:`_proof_json`).
    """
    name = check_storage(req.params["storage"])
    req.query(_NO_QUERY)
    body = req.json(empty=_EMPTY)
    metadata, fields, proof = False, None, False
    if type(body) is list:
        keys, tx = check_keys(body, ""), None
    else:
        check_fields(body, _READ_FIELDS, 'read takes {"keys": [...], "tx": N} or {"keys": [...], "at": time}')
        metadata, fields = check_read_options(body)
        proof = body.get("proof", False)
        if type(proof) is not bool:
            raise bad_request(INVALID_PARAMETERS, "proof must be true or false", "/proof", echo(proof))
        raw_keys = body.get("keys")
        keys = [] if raw_keys is None else check_keys(raw_keys, "/keys")
        tx = check_tx(body.get("tx"))
        if body.get("at") is not None:
            if tx is not None:
                raise HTTPProblem(400, INVALID_PARAMETERS, "give tx or at, not both",
                                  [{"location": "/at", "message": "tx is given too", "value": body["at"]}])
            tx = tx_at(app, parse_time(body["at"], "/at"))
    store = app.store
    if proof:
        return _proved_read(app, req, name, keys, tx, metadata, fields, "/keys" if type(body) is dict else "")
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


def may_ask_for_proof(body: bytes | bytearray) -> bool:
    """Whether a read's raw body may ask for proofs, judged from its bytes without parsing them: the
    worker runs such a read on its thread pool, not its event loop (a proved read rebuilds whole log
    entries, up to ``Limits.max_proof_bytes``). Never false for a body whose JSON has a ``proof`` member:
    JSON spells that name only as ``"proof"`` with any letter as a ``\\u`` escape, and the search
    covers every spelling. It may be true of a read without proofs (``"proof": false``, a key named
    "proof"): that costs a hop to the pool, never a wrong answer. Cost on an ordinary read: one
    substring search and one byte search (about 1 us for a 100-key read), plus a regex search only
    in a body with a backslash."""
    if b'"proof"' in body:
        return True
    return b"\\" in body and _PROOF_NAME.search(body) is not None


def _proved_read(app: App, req: Request, name: str, keys: list[str], tx: int | None, metadata: bool,
                 fields: list[str] | None, path: str) -> Response:
    """A read with ``"proof": true``: the records, and ``proof`` (see :func:`_proof_json`)."""
    try:
        result = app.store.namespace(name).proved_read(keys, tx=tx, metadata=metadata, fields=fields)
    except errors.EngineError as exc:
        problem = from_engine_error(exc, item_path=path, tx_location="/tx")
        if not problem.errors and isinstance(exc, errors.InvalidKey | errors.KeyTooLong):
            problem.errors = _bad_keys(keys, path, app.max_key_bytes)
        raise problem from None
    data = [_rich_json(r, metadata, fields) if metadata or fields else record_json(r) for r in result.records]
    records = orjson.dumps({"data": data, "count": len(data), "tx": result.tx}, option=orjson.OPT_UTC_Z)
    body = [records[:-1], b',"proof":', *_proof_json(app, result), b',"duration":%s}' % orjson.dumps(duration(req.t0))]
    return 200, JSON_HEADERS, body


#: Entry bytes per base64 call: a multiple of 3, so the pieces join into the text of the whole entry.
B64_PIECE = 3 << 18


def _proof_json(app: App, result: ProvedRead) -> list[bytes]:
    """The JSON of ``{"head": {"size", "root", "hash", "signed"?}, "versions": [{"key", "tx"}],
    "entries": [{"tx", "entry", "path"}]}``, in pieces: the head of the read's snapshot (signed with the
    server's key, if it has one), the tx of the version each key's read saw (null: none), and once per
    such tx its canonical log entry (base64) and Merkle inclusion path (hex) to the head (see
    :mod:`engine.proved_read`).

    The pieces are the bytes ``orjson.dumps`` makes of that object, cut so that no step holds the GIL
    long: an entry may be tens of megabytes, and one ``b64encode`` or ``dumps`` over it kept the
    worker's event loop (the thread answering ``/healthz`` and small reads) waiting tens of
    milliseconds per call, for every such answer in progress. Each entry is encoded
    :data:`B64_PIECE` bytes at a time, and its text needs no JSON escaping (the base64 alphabet has
    none), so it goes out as it is, piece after piece."""
    head = result.head
    head_json: dict[str, Any] = {"size": head.size, "root": head.root, "hash": head.hash}
    signed = app.sign_head(head)
    if signed is not None:
        head_json["signed"] = signed
    versions = [{"key": key, "tx": vtx} for key, vtx in result.versions]
    pieces = [b'{"head":%s,"versions":%s,"entries":[' % (orjson.dumps(head_json, option=orjson.OPT_UTC_Z),
                                                           orjson.dumps(versions))]
    for n, e in enumerate(result.entries):
        pieces.append(b'%s{"tx":%d,"entry":"' % (b"," if n else b"", e.tx))
        view = memoryview(e.entry)
        pieces += [b2a_base64(view[at:at + B64_PIECE], newline=False) for at in range(0, len(view), B64_PIECE)]
        pieces.append(b'","path":%s}' % orjson.dumps(e.path))
    pieces.append(b"]}")
    return pieces


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
