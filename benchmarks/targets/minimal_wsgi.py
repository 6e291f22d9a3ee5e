"""The HTTP baseline: the smallest WSGI app that answers ``POST .../read`` with the same lookups.

It parses ``{"keys": [...], "tx": N}`` with orjson, does no validation at all (no auth, no size limit,
no schema check, no problem documents, no metrics) and answers ``{"data": [...], "tx": N}``. Two
back ends, chosen by the factory:

- ``create_app(data_dir)``: the same versioned lookups through ``engine.Store`` (what Strata's server
  does minus everything HTTP-side): the issue-3 target compares the server to this.
- ``create_floor_app(floor_dir)``: raw LMDB ``txn.get`` of the newest values (no versions), decoded
  as every target decodes: the ceiling for any Python WSGI app on this machine, for context.

Served by gunicorn with the same worker settings as the Strata server, so only the app differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

StartResponse = Callable[..., Any]
HEADERS = [("Content-Type", "application/json")]


def _body(environ: dict[str, Any]) -> Any:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return orjson.loads(environ["wsgi.input"].read(length)) if length else {}


def create_app(data_dir: str, namespace: str = "bench") -> Callable[..., Iterable[bytes]]:
    from engine import Store

    store = Store.open(data_dir)
    ns = store.namespace(namespace)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        req = _body(environ)
        res = ns.read(req.get("keys", []), tx=req.get("tx"))
        data = [{"key": r.key, "value": r.value, "tx": r.tx} for r in res.records]
        start_response("200 OK", HEADERS)
        return [orjson.dumps({"data": data, "tx": res.tx})]

    return app


def create_floor_app(floor_dir: str) -> Callable[..., Iterable[bytes]]:
    import lmdb

    from benchmarks.targets import decode as unpackb  # the engine's decoder: this app is a ceiling

    env = lmdb.open(floor_dir, readonly=True, lock=True, max_dbs=1)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        req = _body(environ)
        with env.begin() as txn:
            data = []
            for k in req.get("keys", []):
                raw = txn.get(k.encode())
                if raw is not None:
                    data.append({"key": k, "value": unpackb(raw)})
        start_response("200 OK", HEADERS)
        return [orjson.dumps({"data": data})]

    return app
