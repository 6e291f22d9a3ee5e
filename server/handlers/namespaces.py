"""Namespaces: list, create, inspect and drop (``/v4/namespace/storage[/{name}]``).

A key limited to some namespaces sees only those in the list and may create or drop only those.
Dropping deletes every live key in one tx (past reads at older txs still work) and forgets the
namespace; the answer carries that tx. Both take ``Idempotency-Key`` (:mod:`server.idempotency`);
a 409 of a create and a 404 of a drop are recorded as their answers too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine import errors
from server.auth import KeyRing
from server.http import Request, Response, duration, json_response, parse_json, problem_response
from server.idempotency import Idempotent
from server.problems import HTTPProblem, bad_request, from_engine_error
from server.shapes import namespace_json
from server.validation import check_fields, check_storage, note_header

if TYPE_CHECKING:
    from server.app import App

_NO_QUERY: frozenset[str] = frozenset()
_CREATE_FIELDS = frozenset({"namespace"})


def list_namespaces(app: App, req: Request) -> Response:
    """``GET /v4/namespace/storage``: every namespace this key may see, by name."""
    req.query(_NO_QUERY)
    infos = app.store.namespaces()
    allowed = req.principal.namespaces if req.principal is not None else None
    data = [namespace_json(i) for i in infos if allowed is None or i.name in allowed]
    return json_response(200, {"data": data, "duration": duration(req.t0)})


def create_namespace(app: App, req: Request) -> Response:
    """``POST /v4/namespace/storage`` with ``{"namespace": name}``: 201, or 409 if it exists."""
    req.query(_NO_QUERY)
    raw = req.json_bytes()
    idem = Idempotent(app, req, raw)
    body = check_fields(parse_json(raw), _CREATE_FIELDS, 'create takes {"namespace": "name"}')
    name = body.get("namespace")
    if type(name) is not str:
        raise bad_request(errors.InvalidNamespace.code, "namespace must be a string", "/namespace", name)
    check_storage(name, "/namespace")
    if req.principal is not None:
        KeyRing.authorize(req.principal, "admin", name)
    made: list[Response] = []

    def answer(info: Any, refusal: errors.EngineError | None) -> Response:
        if refusal is not None:
            made.append(problem_response(_pointed(refusal, "/namespace", name), req.path))
        else:
            made.append(json_response(201, {"data": namespace_json(info), "duration": duration(req.t0)}))
        return made[-1]

    try:
        info = app.store.create_namespace(name, idempotency=idem.claim(answer, recorded=(errors.NamespaceExists,)))
    except errors.NamespaceExists as exc:
        raise _pointed(exc, "/namespace", name) from None
    return made[-1] if made else answer(info, None)


def get_namespace(app: App, req: Request) -> Response:
    """``GET /v4/namespace/storage/{name}``: one namespace, or a 404 problem."""
    req.query(_NO_QUERY)
    name = check_storage(req.params["name"], "path.name")
    info = app.store.namespace_info(name)
    if info is None:
        raise HTTPProblem(404, errors.NamespaceNotFound.code, f"namespace {name!r} does not exist",
                          [{"location": "path.name", "message": "not found", "value": name}])
    return json_response(200, {"data": namespace_json(info), "duration": duration(req.t0)})


def drop_namespace(app: App, req: Request) -> Response:
    """``DELETE /v4/namespace/storage/{name}``: delete all its keys in one tx and forget it."""
    req.query(_NO_QUERY)
    name = check_storage(req.params["name"], "path.name")
    idem = Idempotent(app, req, b"")
    note = note_header(req.environ, app.max_note_bytes)
    made: list[Response] = []

    def answer(tx: Any, refusal: errors.EngineError | None) -> Response:
        if refusal is not None:
            made.append(problem_response(_pointed(refusal, "path.name", name), req.path))
        else:
            made.append(json_response(200, {"tx": tx, "duration": duration(req.t0)}))
        return made[-1]

    try:
        tx = app.store.drop_namespace(name, note=note,
                                      idempotency=idem.claim(answer, recorded=(errors.NamespaceNotFound,)))
    except errors.NamespaceNotFound as exc:
        raise _pointed(exc, "path.name", name) from None
    return made[-1] if made else answer(tx, None)


def _pointed(exc: errors.EngineError, location: str, name: str) -> HTTPProblem:
    """The problem of an engine error about the namespace ``name``, pointing where the request named it."""
    problem = from_engine_error(exc)
    problem.errors = [{"location": location, "message": exc.message, "value": name}]
    return problem
