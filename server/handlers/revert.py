"""``POST /v4/storage/{storage}/revert``: one tx after which a namespace reads as it did at a past tx.

Body ``{"to_tx": N, "keys"?: [...], "prefix"?: "...", "dry_run"?: bool}`` (``keys`` or ``prefix``,
not both); the ``X-Strata-Note`` header, as on writes, is kept in the tx's note beside the
``"revert"`` member the engine adds. The answer is the write answer ``{"tx", "count", "duration"}``
(``count``: keys written; a revert that changes nothing answers the latest tx and ``count`` 0), or,
for a dry run, the diff answer ``{"data": [change, ...], "count", "from_tx", "to_tx", "duration"}``
from the latest tx to ``to_tx``, each record with its ``metadata`` and ``expire_time``. The rules
(expiry, limits) are :mod:`engine.revert`'s.

A revert takes ``Idempotency-Key`` (:mod:`server.idempotency`): a retry gets the first answer and
writes nothing. The refusals found in the write transaction (``FUTURE_TX``, ``TX_COMPACTED``, and
``BATCH_TOO_LARGE`` for a plan over the tx limit) are recorded as its answer too. A dry run writes
nothing, so its key is checked (a malformed one is a 400) but neither looked up nor recorded: a
dry run always shows the diff as it is now, and the same key may then run the revert itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from engine import errors
from server.http import Request, Response, duration, json_response, parse_json, problem_response
from server.idempotency import Idempotent, key_of
from server.problems import INVALID_PARAMETERS, HTTPProblem, bad_request, from_engine_error
from server.shapes import record_json
from server.validation import (
    check_fields,
    check_keys,
    check_storage,
    check_string,
    check_tx,
    echo,
    key_error,
    note_header,
)

if TYPE_CHECKING:
    from engine import Record
    from engine.history import Change
    from server.app import App

_NO_QUERY: frozenset[str] = frozenset()
_REVERT_FIELDS = frozenset({"to_tx", "keys", "prefix", "dry_run"})


def _record(rec: Record | None) -> dict[str, Any] | None:
    """A record of a dry run's change: the read shape plus ``metadata`` and ``expire_time``."""
    if rec is None:
        return None
    out = record_json(rec)
    out["metadata"] = rec.metadata
    when = rec.expire_time
    out["expire_time"] = None if when is None else orjson.dumps(when, option=orjson.OPT_UTC_Z)[1:-1].decode()
    return out


def _change(change: Change) -> dict[str, Any]:
    return {"key": change.key, "kind": change.kind, "before": _record(change.before), "after": _record(change.after)}


def _checked_keys(body: dict[str, Any], max_key_bytes: int) -> list[str] | None:
    if body.get("keys") is None:
        return None
    keys = check_keys(body["keys"], "/keys")
    bad = [(i, why) for i, key in enumerate(keys) if (why := key_error(key, max_key_bytes)) is not None]
    if bad:
        raise HTTPProblem(400, bad[0][1][0], f"{len(bad)} of {len(keys)} keys are invalid; nothing was written",
                          [{"location": f"/keys/{i}", "message": why[1], "value": echo(keys[i]), "code": why[0]}
                           for i, why in bad[:100]])
    return keys


def revert(app: App, req: Request) -> Response:
    """``POST /v4/storage/{storage}/revert``: see the module docstring."""
    name = check_storage(req.params["storage"])
    req.query(_NO_QUERY)
    raw = req.json_bytes()
    body = check_fields(parse_json(raw), _REVERT_FIELDS, 'revert takes {"to_tx": N, "keys"?: [...], "prefix"?: '
                                                         '"...", "dry_run"?: false}')
    if body.get("to_tx") is None:
        raise bad_request(INVALID_PARAMETERS, "to_tx is required: the tx whose state to go back to", "/to_tx", None)
    to_tx = check_tx(body["to_tx"], "/to_tx")
    dry_run = body.get("dry_run", False)
    if type(dry_run) is not bool:
        raise bad_request(INVALID_PARAMETERS, "dry_run must be true or false", "/dry_run", echo(dry_run))
    if dry_run:
        key_of(req)  # a malformed key is a 400 all the same; a dry run records nothing (see the module docstring)
    idem = None if dry_run else Idempotent(app, req, raw)
    prefix = check_string(body, "prefix")
    store = app.store  # opened first: it sets the key limit the keys are checked against
    keys = _checked_keys(body, app.max_key_bytes)
    if keys is not None and prefix is not None:
        raise bad_request(INVALID_PARAMETERS, "give keys or prefix, not both", "/prefix", echo(prefix))
    note = note_header(req.environ, app.max_note_bytes)

    def answer(result: Any, refusal: errors.EngineError | None) -> Response:
        if refusal is not None:
            return problem_response(_refused(refusal, body, keys), req.path)
        elif dry_run:
            return json_response(200, {"data": [_change(c) for c in result.changes], "count": result.count,
                                        "from_tx": result.tx, "to_tx": to_tx, "duration": duration(req.t0)})
        else:
            return json_response(200, {"tx": result.tx, "count": result.count, "duration": duration(req.t0)})

    claim = None if idem is None else idem.claim(answer, recorded=_RECORDED)
    try:
        result = store.namespace(name).revert(to_tx, keys=keys, prefix=prefix, dry_run=dry_run, note=note,
                                              idempotency=claim)
    except errors.EngineError as exc:
        raise _refused(exc, body, keys) from None
    return answer(result, None) if idem is None else idem.answered(result)


#: The refusals a revert finds in its write transaction, before it writes anything: recorded.
_RECORDED = (errors.FutureTx, errors.TxCompacted, errors.BatchTooLarge)


def _refused(exc: errors.EngineError, body: dict[str, Any], keys: list[str] | None) -> HTTPProblem:
    """The problem of an engine refusal, pointing at the member (or header) it is about."""
    problem = from_engine_error(exc, tx_location="/to_tx")
    if not problem.errors and isinstance(exc, errors.BatchTooLarge):
        where = "/keys" if keys is not None else "/to_tx"
        problem.errors = [{"location": where, "message": exc.message, "value": echo(body.get(where[1:]))}]
    elif not problem.errors and exc.details.get("parameter") == "note":
        problem.errors = [{"location": "header.X-Strata-Note", "message": exc.message, "value": None}]
    elif not problem.errors and exc.details.get("parameter") in _REVERT_FIELDS:
        where = str(exc.details["parameter"])
        problem.errors = [{"location": f"/{where}", "message": exc.message, "value": echo(body.get(where))}]
    return problem
