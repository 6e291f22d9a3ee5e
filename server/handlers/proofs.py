"""Merkle proofs over the tx log (RFC 9162), for clients that verify the store themselves.

* ``GET /v4/proof/inclusion?tx=T[&size=N]``: tx T is leaf T-1 of the tree of N txs (default: the
  latest) -> ``{"tx", "size", "leaf_hash", "path"}``.
* ``GET /v4/proof/consistency?from=M[&to=N]``: the tree of N txs (default: the latest) extends the
  tree of M txs -> ``{"from", "to", "path"}``.

Hashes are lowercase hex. A size above the latest tx is ``FUTURE_TX``; ``tx`` outside ``1..size``
or ``from`` outside ``1..to`` is ``INVALID_PARAMETERS``. The root to check against comes from
``GET /v4/head`` (``size``, ``root``), never from the proof. Both are O(log n) reads, answered on the
worker's event loop. Like the rest of the global tx log, they need a key for every namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine import errors
from server.handlers.audit import _whole_log as whole_log
from server.http import Request, Response, duration, json_response
from server.problems import INVALID_PARAMETERS, HTTPProblem, bad_request, from_engine_error
from server.validation import query_tx_param

if TYPE_CHECKING:
    from server.app import App

_INCLUSION_QUERY = frozenset({"tx", "size"})
_CONSISTENCY_QUERY = frozenset({"from", "to"})


def _problem(exc: errors.EngineError, values: dict[str, int | None]) -> HTTPProblem:
    """The engine's refusal, pointing at the query parameter it names."""
    parameter = str(exc.details.get("parameter", ""))
    location = f"query.{parameter}"
    if isinstance(exc, errors.InvalidParameters):
        return bad_request(INVALID_PARAMETERS, exc.message, location, values.get(parameter))
    return from_engine_error(exc, tx_location=location)


def inclusion(app: App, req: Request) -> Response:
    """``GET /v4/proof/inclusion?tx=T[&size=N]``."""
    whole_log(req)
    query = req.query(_INCLUSION_QUERY)
    tx = query_tx_param(query.get("tx"), "tx")
    if tx is None:
        raise bad_request(INVALID_PARAMETERS, "the tx query parameter (the tx to prove) is required", "query.tx", None)
    size = query_tx_param(query.get("size"), "size")
    try:
        proof = app.store.inclusion_proof(tx, size)
    except errors.EngineError as exc:
        raise _problem(exc, {"tx": tx, "size": size}) from None
    return json_response(200, {**proof.to_dict(), "duration": duration(req.t0)})


def consistency(app: App, req: Request) -> Response:
    """``GET /v4/proof/consistency?from=M[&to=N]``."""
    whole_log(req)
    query = req.query(_CONSISTENCY_QUERY)
    first = query_tx_param(query.get("from"), "from")
    if first is None:
        raise bad_request(INVALID_PARAMETERS, "the from query parameter (the size of the older tree) is required",
                          "query.from", None)
    second = query_tx_param(query.get("to"), "to")
    try:
        proof = app.store.consistency_proof(first, second)
    except errors.EngineError as exc:
        raise _problem(exc, {"from": first, "to": second}) from None
    return json_response(200, {**proof.to_dict(), "duration": duration(req.t0)})
