"""The past, for auditors: key history, diffs, the tx log, the chain head and verification.

* ``GET /v4/storage/{storage}/history?key=K``: a key's versions, newest first, paged by tx.
* ``POST /v4/storage/{storage}/diff``: what changed between two txs, streamed.
* ``GET /v4/tx/{tx}``, ``GET /v4/tx?at=TIME``, ``GET /v4/head``: the global tx log.
* ``GET /v4/verify``: re-derive the hash chain (admin scope; optionally against a kept receipt).

The tx-log routes show every namespace's keys, so a key limited to some namespaces may not use them
(403): it reads its own namespaces' past through ``history``, ``diff`` and ``changes``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC
from typing import TYPE_CHECKING, Any

import orjson

from engine import errors
from server.handlers.storage import tx_at
from server.http import JSON_HEADERS, Request, Response, duration, json_response
from server.problems import FORBIDDEN, INVALID_PARAMETERS, TX_NOT_FOUND, HTTPProblem, bad_request, from_engine_error
from server.shapes import change_json, tx_json, version_json
from server.validation import (
    MAX_TX,
    check_fields,
    check_storage,
    check_tx,
    parse_time,
    query_int,
    query_tx_param,
)

if TYPE_CHECKING:
    from server.app import App

_NO_QUERY: frozenset[str] = frozenset()
_HISTORY_QUERY = frozenset({"key", "before", "after", "limit", "order"})
_DIFF_FIELDS = frozenset({"from_tx", "to_tx"})
_AT_QUERY = frozenset({"at"})
_VERIFY_QUERY = frozenset({"receipt_tx", "receipt_hash"})
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
HISTORY_LIMIT_DEFAULT = 100
HISTORY_LIMIT_MAX = 1000
_STREAM_BATCH = 256


def _whole_log(req: Request) -> None:
    """The tx log names keys of every namespace: refuse keys limited to some namespaces."""
    key = req.principal
    if key is not None and key.namespaces is not None:
        raise HTTPProblem(403, FORBIDDEN, f"API key {key.name!r} is limited to some namespaces; the global tx log "
                          "needs a key for all of them (use history, diff or changes of a namespace instead)")


def history(app: App, req: Request) -> Response:
    """``GET /v4/storage/{storage}/history?key=K[&before=TX][&after=TX][&limit=N][&order=desc|asc]``.

    Versions with ``after < tx < before``; ``cursor`` is the tx to pass as ``before`` (desc) or
    ``after`` (asc) for the next page, or null when this page is the last.
    """
    name = check_storage(req.params["storage"])
    query = req.query(_HISTORY_QUERY)
    key = query.get("key")
    if key is None:
        raise bad_request(INVALID_PARAMETERS, "the key query parameter is required", "query.key", None)
    before = query_tx_param(query.get("before"), "before")
    after = query_tx_param(query.get("after"), "after")
    limit = query_int(query.get("limit"), "limit", 1, HISTORY_LIMIT_MAX, HISTORY_LIMIT_DEFAULT)
    order = query.get("order", "desc")
    if order not in ("desc", "asc"):
        raise bad_request(INVALID_PARAMETERS, "order must be desc (newest first) or asc", "query.order", order[:20])
    try:
        versions = app.store.namespace(name).history(key, before=before, after=after, limit=limit + 1, order=order)
    except errors.EngineError as exc:
        problem = from_engine_error(exc)
        if not problem.errors and exc.code in (errors.InvalidKey.code, errors.KeyTooLong.code):
            problem.errors = [{"location": "query.key", "message": exc.message, "value": key[:200]}]
        raise problem from None
    more = len(versions) > limit
    versions = versions[:limit]
    return json_response(200, {"data": [version_json(v) for v in versions], "count": len(versions),
                               "cursor": versions[-1].tx if more else None, "duration": duration(req.t0)})


def diff(app: App, req: Request) -> Response:
    """``POST /v4/storage/{storage}/diff`` with ``{"from_tx", "to_tx"?}`` (``to_tx``: the latest).

    Keys whose content differs between the two snapshots, in UTF-8 key order, streamed: the first
    change is computed before the status line (so bad input still gets a problem), the rest in batches.
    """
    name = check_storage(req.params["storage"])
    req.query(_NO_QUERY)
    body = check_fields(req.json(), _DIFF_FIELDS, 'diff takes {"from_tx": N, "to_tx": M}')
    if body.get("from_tx") is None:
        raise bad_request(INVALID_PARAMETERS, "from_tx is required", "/from_tx", None)
    from_tx = check_tx(body["from_tx"], "/from_tx")
    assert from_tx is not None
    store = app.store
    to_tx = check_tx(body.get("to_tx"), "/to_tx")
    if to_tx is None:
        to_tx = int(store.latest_tx)
        if from_tx > to_tx:
            exc = errors.FutureTx(f"tx {from_tx} is in the future: the latest committed tx is {to_tx}", tx=from_tx,
                                  latest_tx=to_tx)
            raise from_engine_error(exc, tx_location="/from_tx")
    if from_tx > to_tx:
        raise bad_request(INVALID_PARAMETERS, f"from_tx ({from_tx}) is after to_tx ({to_tx})", "/from_tx", from_tx)
    try:
        changes = store.namespace(name).diff(from_tx, to_tx)
        first = next(changes, None)
    except (errors.FutureTx, errors.TxCompacted) as exc:
        raise from_engine_error(exc, tx_location="/to_tx") from None
    return 200, JSON_HEADERS, _stream_diff(changes, first, from_tx, to_tx, req.t0)


def _stream_diff(changes: Iterator[Any], first: Any, from_tx: int, to_tx: int, t0: int) -> Iterator[bytes]:
    dumps = orjson.dumps
    head, batch, count = b'{"data":[', [], 0
    change = first
    while change is not None:
        batch.append(dumps(change_json(change)))
        count += 1
        if len(batch) == _STREAM_BATCH:
            yield head + b",".join(batch)
            head, batch = b",", []
        change = next(changes, None)
    tail = dumps({"count": count, "from_tx": from_tx, "to_tx": to_tx, "duration": duration(t0)})
    yield (head + b",".join(batch) if batch else head.rstrip(b",")) + b"]," + tail[1:]


def tx(app: App, req: Request) -> Response:
    """``GET /v4/tx/{tx}``: commit time, note, operations and chain hash; 404 if not committed."""
    _whole_log(req)
    req.query(_NO_QUERY)
    text = req.params["tx"]
    if not text.isdigit() or not text.isascii() or int(text) > MAX_TX:
        raise bad_request(INVALID_PARAMETERS, f"tx must be an integer from 0 to {MAX_TX}", "path.tx", text[:200])
    info = app.store.tx_info(int(text))
    if info is None:
        raise HTTPProblem(404, TX_NOT_FOUND, f"tx {text} was not committed (the latest tx is {app.store.latest_tx})",
                          [{"location": "path.tx", "message": "not committed", "value": int(text)}])
    out = tx_json(info)
    out["duration"] = duration(req.t0)
    return json_response(200, out)


def tx_at_time(app: App, req: Request) -> Response:
    """``GET /v4/tx?at=TIME``: the last tx committed at or before an RFC 3339 time (0 if none)."""
    _whole_log(req)
    query = req.query(_AT_QUERY)
    if query.get("at") is None:
        raise bad_request(INVALID_PARAMETERS, "the at query parameter (an RFC 3339 time) is required", "query.at",
                          None)
    when = parse_time(query["at"], "query.at")
    found = tx_at(app, when)
    info = app.store.tx_info(found) if found else None
    return json_response(200, {"tx": found, "time": info.time if info else None, "at": when.astimezone(UTC),
                               "duration": duration(req.t0)})


def head(app: App, req: Request) -> Response:
    """``GET /v4/head``: the latest tx and its chain hash (a receipt to keep for :func:`verify`), and the
    Merkle tree's ``size`` (= ``tx``) and ``root`` (hex; null if the store's tree is not built), which
    the proofs of :mod:`server.handlers.proofs` are checked against. With a signing key, ``signed``:
    the server's Ed25519 signature over them (:mod:`engine.signed_head`)."""
    _whole_log(req)
    req.query(_NO_QUERY)
    store = app.store
    found = store.head()
    latest, digest = found
    info = store.tx_info(latest) if latest else None
    out = {"tx": latest, "hash": digest, "time": info.time if info else None, "size": found.size, "root": found.root}
    signed = app.sign_head(found)
    if signed is not None:
        out["signed"] = signed
    out["duration"] = duration(req.t0)
    return json_response(200, out)


def verify(app: App, req: Request) -> Response:
    """``GET /v4/verify[?receipt_tx=N&receipt_hash=HEX]`` (admin): re-derive the whole hash chain.

    Always 200 when the check ran: ``ok`` says whether the store is intact, and when not,
    ``bad_tx`` and ``problem`` name the first tx that does not match. O(all operations ever).
    """
    _whole_log(req)
    query = req.query(_VERIFY_QUERY)
    receipt_tx = query_tx_param(query.get("receipt_tx"), "receipt_tx")
    receipt_hash = query.get("receipt_hash")
    if (receipt_tx is None) != (receipt_hash is None):
        missing = "receipt_hash" if receipt_hash is None else "receipt_tx"
        raise bad_request(INVALID_PARAMETERS, "a receipt needs both receipt_tx and receipt_hash", f"query.{missing}",
                          None)
    receipt = None
    if receipt_tx is not None and receipt_hash is not None:
        if not _HEX64.fullmatch(receipt_hash):
            raise bad_request(INVALID_PARAMETERS, "receipt_hash must be 64 hex digits (a SHA-256 from /v4/head)",
                              "query.receipt_hash", receipt_hash[:200])
        receipt = (receipt_tx, receipt_hash.lower())
    report = app.store.verify(receipt)
    out: dict[str, Any] = {"ok": report.ok, "checked": report.checked, "head_tx": report.head_tx,
                           "head_hash": report.head_hash, "bad_tx": report.bad_tx, "problem": report.problem}
    if receipt is not None:
        out["receipt"] = {"tx": receipt[0], "hash": receipt[1]}
    out["duration"] = duration(req.t0)
    return json_response(200, out)
