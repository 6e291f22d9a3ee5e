"""Operations endpoints: ``/healthz``, ``/openapi.json`` and ``/metrics`` (Prometheus text).

``/healthz`` touches the store, so a worker whose store cannot open answers 503/500 rather than
"ok". ``/openapi.json`` serves bytes read once at start-up (no file read per request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.http import Request, Response, json_response
from server.problems import INTERNAL_ERROR, HTTPProblem

if TYPE_CHECKING:
    from server.app import App

_NO_QUERY: frozenset[str] = frozenset()
_PROMETHEUS = [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]
_OPENAPI = [("Content-Type", "application/json")]


def healthz(app: App, req: Request) -> Response:
    """``GET /healthz``: ``{"status": "ok", "tx": latest}`` once the store is open."""
    req.query(_NO_QUERY)
    return json_response(200, {"status": "ok", "tx": app.store.latest_tx})


def openapi(app: App, req: Request) -> Response:
    """``GET /openapi.json``: the OpenAPI 3.1 document of ``docs/openapi.json``."""
    req.query(_NO_QUERY)
    if app.openapi is None:
        raise HTTPProblem(500, INTERNAL_ERROR, "the OpenAPI document was not found when the server started")
    return 200, _OPENAPI, [app.openapi]


def metrics(app: App, req: Request) -> Response:
    """``GET /metrics``: request counters, latency histogram, latest tx and map usage."""
    req.query(_NO_QUERY)
    stats = app.store.stats()
    gauges = {
        "strata_latest_tx": ("The latest committed transaction id.", stats.get("latest_tx", 0)),
        "strata_map_size_bytes": ("The LMDB map size (the most the store can hold now).", stats.get("map_size", 0)),
        "strata_map_used_bytes": ("Bytes of the LMDB map in use.", stats.get("used_bytes", 0)),
    }
    return 200, _PROMETHEUS, [app.metrics.render(gauges)]
