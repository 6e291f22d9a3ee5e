"""The route table: which handler answers which method and path, and with which API-key scope.

:data:`TABLE` is the whole HTTP surface (a test checks it against ``docs/openapi.json``).
:class:`Router` compiles it once: static paths are a dict lookup, templated ones a short list of
precompiled regexes. A path no route matches is a 404 problem; a known path with an unknown
method is a 405 problem with an ``Allow`` header.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.handlers import admin, audit, console, feed, keys, namespaces, ops, proofs, storage, streams, writes
from server.handlers import revert as revert_handler
from server.http import Request, Response
from server.problems import METHOD_NOT_ALLOWED, NOT_FOUND, HTTPProblem

Handler = Callable[[Any, Request], Response]

#: (path template, method, handler, scope). Scope None = public; else an API-key scope
#: ("read" < "write" < "admin"). A ``{storage}``, ``{stream}`` or ``{name}`` segment is the namespace
#: (or stream) the key must be allowed to use: a key's list of namespaces limits its streams too.
TABLE: list[tuple[str, str, Handler, str | None]] = [
    ("/v4/storage/{storage}/read", "POST", storage.read, "read"),
    ("/v4/storage/{storage}/write", "POST", writes.write, "write"),
    ("/v4/storage/{storage}/delete", "POST", writes.delete, "write"),
    ("/v4/storage/{storage}/scan", "POST", storage.scan, "read"),
    ("/v4/storage/{storage}/key", "GET", keys.get_key, "read"),
    ("/v4/storage/{storage}/key", "HEAD", keys.head_key, "read"),
    ("/v4/storage/{storage}/key", "POST", keys.put_key, "write"),
    ("/v4/storage/{storage}/key", "DELETE", keys.delete_key, "write"),
    ("/v4/storage/{storage}/history", "GET", audit.history, "read"),
    ("/v4/storage/{storage}/diff", "POST", audit.diff, "read"),
    ("/v4/storage/{storage}/changes", "GET", feed.changes, "read"),
    ("/v4/storage/{storage}/revert", "POST", revert_handler.revert, "write"),
    ("/v4/storage/{storage}/sse", "GET", feed.sse, "read"),
    ("/v4/tx", "GET", audit.tx_at_time, "read"),
    ("/v4/tx/{tx}", "GET", audit.tx, "read"),
    ("/v4/head", "GET", audit.head, "read"),
    ("/v4/proof/inclusion", "GET", proofs.inclusion, "read"),
    ("/v4/proof/consistency", "GET", proofs.consistency, "read"),
    ("/v4/verify", "GET", audit.verify, "admin"),
    ("/v4/namespace/storage", "GET", namespaces.list_namespaces, "read"),
    ("/v4/namespace/storage", "POST", namespaces.create_namespace, "admin"),
    ("/v4/namespace/storage/{name}", "GET", namespaces.get_namespace, "read"),
    ("/v4/namespace/storage/{name}", "DELETE", namespaces.drop_namespace, "admin"),
    ("/v4/stream/{stream}/write", "POST", streams.write, "write"),
    ("/v4/stream/{stream}", "GET", streams.read, "read"),
    ("/v4/stream/{stream}/sse", "GET", streams.sse, "read"),
    ("/v4/namespace/stream", "GET", namespaces.list_streams, "read"),
    ("/v4/namespace/stream", "POST", namespaces.create_stream, "admin"),
    ("/v4/namespace/stream/{name}", "GET", namespaces.get_stream, "read"),
    ("/v4/namespace/stream/{name}", "DELETE", namespaces.drop_stream, "admin"),
    ("/v4/admin/compact", "POST", admin.compact, "admin"),
    ("/v4/admin/compaction", "GET", admin.compaction_status, "admin"),
    ("/v4/admin/backup", "POST", admin.backup, "admin"),
    ("/healthz", "GET", ops.healthz, None),
    ("/openapi.json", "GET", ops.openapi, None),
    ("/metrics", "GET", ops.metrics, "read"),
    ("/v4/whoami", "GET", console.whoami, "read"),
    ("/console", "GET", console.page, None),
    ("/console/", "GET", console.slash, None),
    ("/console/{file}", "GET", console.asset, None),
]

#: Handlers the worker runs on a pool thread (see server.worker), where they hold up no other request and
#: gunicorn's watchdog does not count their time; every other request is answered on the worker's event
#: loop, so it must do work bounded by the request's size. On the pool: streams and whole-store work;
#: answers whose size a limit or the data sets (scan, history, the change feed, a tx's operations); and
#: every write, which may wait for the store's write lock and which, arriving together, the engine can
#: commit together.
LONG_RUNNING: frozenset[Handler] = frozenset({
    feed.sse, audit.diff, audit.verify, namespaces.drop_namespace, admin.compact, admin.backup,
    storage.scan, audit.history, feed.changes, audit.tx,
    writes.write, writes.delete, keys.put_key, keys.delete_key, namespaces.create_namespace,
    streams.sse, streams.read, streams.write, namespaces.create_stream, namespaces.drop_stream,
    revert_handler.revert,  # a write whose plan reads the log of every tx since to_tx
})

#: Long-running handlers whose whole work is one write of a bounded size: the worker's write batcher
#: (:mod:`server.write_batch`) answers those of them that arrive whole and small, committing all that
#: arrive together in one commit.
BATCHED: frozenset[Handler] = frozenset({writes.write, writes.delete, keys.put_key, keys.delete_key})

#: Handlers whose work depends on the request's body, with a cheap judge of the raw body (no JSON
#: parsing: it runs on the event loop for every such request) that is true when the request may run
#: long. A read is bounded by its size unless it asks for proofs, which rebuild whole log entries.
LONG_RUNNING_BODIES: dict[Handler, Callable[[bytes | bytearray], bool]] = {
    storage.read: storage.may_ask_for_proof,
}


_PARAM = re.compile(r"\{(\w+)\}")
_NAMESPACE_PARAMS = ("storage", "stream", "name")
UNMATCHED = ("unmatched", "")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One method of one route; ``metric`` is its index in :attr:`Router.endpoints`."""

    handler: Handler
    scope: str | None
    namespace_param: str | None
    metric: int


@dataclass(slots=True)
class Route:
    """One path template with its endpoints by method; ``other_metric`` counts 405s on it."""

    template: str
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    other_metric: int = -1

    @property
    def allow(self) -> str:
        return ", ".join(sorted(self.endpoints))


class Router:
    """The compiled table. ``match(path)`` -> ``(Route, params)`` or a 404 problem;
    ``endpoint(route, method)`` -> :class:`Endpoint` or a 405 problem. ``endpoints`` lists the
    ``(template, method)`` metric labels, with 405s as method ``"other"`` and 404s last."""

    def __init__(self, table: list[tuple[str, str, Handler, str | None]] = TABLE) -> None:
        routes: dict[str, Route] = {}
        self.endpoints: list[tuple[str, str]] = []
        for template, method, handler, scope in table:
            route = routes.setdefault(template, Route(template))
            params = _PARAM.findall(template)
            ns_param = next((p for p in params if p in _NAMESPACE_PARAMS), None)
            route.endpoints[method] = Endpoint(handler, scope, ns_param, len(self.endpoints))
            self.endpoints.append((template, method))
        for route in routes.values():
            route.other_metric = len(self.endpoints)
            self.endpoints.append((route.template, "other"))
        self.unmatched_metric = len(self.endpoints)
        self.endpoints.append(UNMATCHED)
        self.routes = list(routes.values())
        self._static = {r.template: r for r in self.routes if "{" not in r.template}
        self._dynamic = [(_compile(r.template), r) for r in self.routes if "{" in r.template]
        # Paths of parameterised routes already matched. The worker asks about a request's path up to
        # three times (long_running, batched, the app itself), each a scan of the route patterns.
        self._matched: dict[str, tuple[Route, dict[str, str]]] = {}

    def match(self, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``path`` and its parameters (a dict of the caller's own), or a 404 problem."""
        route = self._static.get(path)
        if route is not None:
            return route, {}
        matched = self._matched.get(path)
        if matched is not None:
            return matched[0], matched[1].copy()
        for pattern, route in self._dynamic:
            m = pattern.match(path)
            if m is not None:
                params = m.groupdict()
                if len(self._matched) >= _MAX_MATCHED:
                    self._matched.clear()
                self._matched[path] = (route, params)
                return route, params.copy()
        raise HTTPProblem(404, NOT_FOUND, f"no route for {path[:200]!r}")

    def long_running(self, method: str, path: str, body: bytes | bytearray | None = None) -> bool:
        """Whether ``method path`` is answered by a handler in :data:`LONG_RUNNING`, or by one in
        :data:`LONG_RUNNING_BODIES` whose judge finds ``body`` (the whole request body) may run long.
        Without ``body`` such a handler is not judged long: ask again once the body is whole."""
        try:
            route, _ = self.match(path)
        except HTTPProblem:
            return False
        endpoint = route.endpoints.get(method)
        if endpoint is None:
            return False
        if endpoint.handler in LONG_RUNNING:
            return True
        judge = LONG_RUNNING_BODIES.get(endpoint.handler)
        return judge is not None and body is not None and judge(body)

    def batched(self, method: str, path: str) -> bool:
        """Whether ``method path`` is answered by a handler in :data:`BATCHED`."""
        try:
            route, _ = self.match(path)
        except HTTPProblem:
            return False
        endpoint = route.endpoints.get(method)
        return endpoint is not None and endpoint.handler in BATCHED

    @staticmethod
    def endpoint(route: Route, method: str) -> Endpoint:
        """The endpoint of ``route`` for ``method``, or a 405 problem listing the allowed ones."""
        endpoint = route.endpoints.get(method)
        if endpoint is None:
            raise HTTPProblem(405, METHOD_NOT_ALLOWED, f"{method[:20]} is not allowed on {route.template}; use "
                              f"{route.allow}", headers=[("Allow", route.allow)])
        return endpoint


_MAX_MATCHED = 4096  # paths remembered by Router.match (then it starts afresh): namespaces are in paths


def _compile(template: str) -> re.Pattern[str]:
    """A template such as ``/v4/storage/{storage}/read`` as an anchored regex with named groups;
    a parameter matches one non-empty path segment."""
    parts = re.split(r"(\{\w+\})", template)
    pattern = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{pattern}$")
