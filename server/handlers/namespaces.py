"""Namespaces and stream namespaces: list, create, inspect and drop (``/v4/namespace/storage[/{name}]``
and ``/v4/namespace/stream[/{name}]``).

Both kinds answer in the same shapes (a stream's ``stat`` counts events instead of keys) and follow
the same rules, so one set of functions serves both, parametrized by a :class:`Kind`. A key limited
to some namespaces sees only those in the list (its streams too) and may create or drop only those.
Dropping a namespace deletes every live key in one tx (past reads at older txs still work) and
forgets it; dropping a stream forgets its events (one tx if it has any); the answer carries that
tx. Create and drop take ``Idempotency-Key`` (:mod:`server.idempotency`); a 409 of a create and a
404 of a drop are recorded as their answers too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine import Store, errors
from server.auth import KeyRing
from server.http import Request, Response, duration, json_response, parse_json, problem_response
from server.idempotency import Idempotent
from server.problems import HTTPProblem, bad_request, from_engine_error
from server.shapes import namespace_json, stream_json
from server.validation import check_fields, check_storage, note_header

if TYPE_CHECKING:
    from server.app import App

_NO_QUERY: frozenset[str] = frozenset()
_CREATE_FIELDS = frozenset({"namespace"})


@dataclass(frozen=True, slots=True)
class Kind:
    """What the routes of one kind of namespace call: the store's methods for it, the response
    shape of one, and the ``noun`` a 404 names it by."""

    noun: str
    listing: Callable[[Store], list[Any]]
    info: Callable[[Store, str], Any]
    create: Callable[..., Any]
    drop: Callable[..., int]
    shape: Callable[[Any], dict[str, Any]]


# Called by name, not as ``Store.namespaces``: the server's store may be on etcd (engine.etcd.store.EtcdStore).
STORAGE = Kind("namespace", lambda s: s.namespaces(), lambda s, n: s.namespace_info(n),
               lambda s, n, **o: s.create_namespace(n, **o), lambda s, n, **o: s.drop_namespace(n, **o), namespace_json)
STREAMS = Kind("stream", lambda s: s.streams(), lambda s, n: s.stream_info(n),
               lambda s, n, **o: s.create_stream(n, **o), lambda s, n, **o: s.drop_stream(n, **o), stream_json)


def list_all(kind: Kind, app: App, req: Request) -> Response:
    """``GET``: every namespace of ``kind`` this key may see, by name."""
    req.query(_NO_QUERY)
    infos = kind.listing(app.store)
    allowed = req.principal.namespaces if req.principal is not None else None
    data = [kind.shape(i) for i in infos if allowed is None or i.name in allowed]
    return json_response(200, {"data": data, "duration": duration(req.t0)})


def create(kind: Kind, app: App, req: Request) -> Response:
    """``POST`` with ``{"namespace": name}``: 201, or 409 if it exists."""
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

    def answer(info: Any, refusal: errors.EngineError | None) -> Response:
        if refusal is not None:
            return problem_response(_pointed(refusal, "/namespace", name), req.path)
        else:
            return json_response(201, {"data": kind.shape(info), "duration": duration(req.t0)})

    try:
        info = kind.create(app.store, name, idempotency=idem.claim(answer, recorded=(errors.NamespaceExists,)))
    except errors.NamespaceExists as exc:
        raise _pointed(exc, "/namespace", name) from None
    return idem.answered(info)


def get(kind: Kind, app: App, req: Request) -> Response:
    """``GET .../{name}``: one namespace of ``kind``, or a 404 problem."""
    req.query(_NO_QUERY)
    name = check_storage(req.params["name"], "path.name")
    info = kind.info(app.store, name)
    if info is None:
        raise HTTPProblem(404, errors.NamespaceNotFound.code, f"{kind.noun} {name!r} does not exist",
                          [{"location": "path.name", "message": "not found", "value": name}])
    return json_response(200, {"data": kind.shape(info), "duration": duration(req.t0)})


def drop(kind: Kind, app: App, req: Request) -> Response:
    """``DELETE .../{name}``: drop it in one tx (none if there is nothing to delete) and forget it."""
    req.query(_NO_QUERY)
    name = check_storage(req.params["name"], "path.name")
    idem = Idempotent(app, req, b"")
    note = note_header(req.environ, app.max_note_bytes)

    def answer(tx: Any, refusal: errors.EngineError | None) -> Response:
        if refusal is not None:
            return problem_response(_pointed(refusal, "path.name", name), req.path)
        else:
            return json_response(200, {"tx": tx, "duration": duration(req.t0)})

    try:
        tx = kind.drop(app.store, name, note=note,
                       idempotency=idem.claim(answer, recorded=(errors.NamespaceNotFound,)))
    except errors.NamespaceNotFound as exc:
        raise _pointed(exc, "path.name", name) from None
    return idem.answered(tx)


def _pointed(exc: errors.EngineError, location: str, name: str) -> HTTPProblem:
    """The problem of an engine error about the namespace ``name``, pointing where the request named it."""
    problem = from_engine_error(exc)
    problem.errors = [{"location": location, "message": exc.message, "value": name}]
    return problem


# -- the routes --------------------------------------------------------------------------------


def list_namespaces(app: App, req: Request) -> Response:
    """``GET /v4/namespace/storage``: every namespace this key may see, by name."""
    return list_all(STORAGE, app, req)


def create_namespace(app: App, req: Request) -> Response:
    """``POST /v4/namespace/storage`` with ``{"namespace": name}``: 201, or 409 if it exists."""
    return create(STORAGE, app, req)


def get_namespace(app: App, req: Request) -> Response:
    """``GET /v4/namespace/storage/{name}``: one namespace, or a 404 problem."""
    return get(STORAGE, app, req)


def drop_namespace(app: App, req: Request) -> Response:
    """``DELETE /v4/namespace/storage/{name}``: delete all its keys in one tx and forget it."""
    return drop(STORAGE, app, req)


def list_streams(app: App, req: Request) -> Response:
    """``GET /v4/namespace/stream``: every stream this key may see, by name."""
    return list_all(STREAMS, app, req)


def create_stream(app: App, req: Request) -> Response:
    """``POST /v4/namespace/stream`` with ``{"namespace": name}``: 201, or 409 if it exists."""
    return create(STREAMS, app, req)


def get_stream(app: App, req: Request) -> Response:
    """``GET /v4/namespace/stream/{name}``: one stream, or a 404 problem."""
    return get(STREAMS, app, req)


def drop_stream(app: App, req: Request) -> Response:
    """``DELETE /v4/namespace/stream/{name}``: forget the stream and its events (one tx if it has any)."""
    return drop(STREAMS, app, req)
