"""Auth on every route: the scope each endpoint needs, written out here independently of the route
table, checked against the table, over HTTP, and against the OpenAPI document's security."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from server import create_app
from server.app import App
from server.routes import TABLE
from tests.server.conftest import Client
from tests.server.test_auth import write_keys

# The promise, spelled out: (method, path template) -> the least scope that may call it (None: public).
EXPECTED: dict[tuple[str, str], str | None] = {
    ("POST", "/v4/storage/{storage}/read"): "read",
    ("POST", "/v4/storage/{storage}/write"): "write",
    ("POST", "/v4/storage/{storage}/delete"): "write",
    ("POST", "/v4/storage/{storage}/scan"): "read",
    ("GET", "/v4/storage/{storage}/key"): "read",
    ("HEAD", "/v4/storage/{storage}/key"): "read",
    ("POST", "/v4/storage/{storage}/key"): "write",
    ("DELETE", "/v4/storage/{storage}/key"): "write",
    ("GET", "/v4/storage/{storage}/history"): "read",
    ("POST", "/v4/storage/{storage}/diff"): "read",
    ("GET", "/v4/storage/{storage}/changes"): "read",
    ("POST", "/v4/storage/{storage}/revert"): "write",
    ("GET", "/v4/storage/{storage}/sse"): "read",
    ("GET", "/v4/tx"): "read",
    ("GET", "/v4/tx/{tx}"): "read",
    ("GET", "/v4/head"): "read",
    ("GET", "/v4/proof/inclusion"): "read",
    ("GET", "/v4/proof/consistency"): "read",
    ("GET", "/v4/verify"): "admin",
    ("GET", "/v4/namespace/storage"): "read",
    ("POST", "/v4/namespace/storage"): "admin",
    ("GET", "/v4/namespace/storage/{name}"): "read",
    ("DELETE", "/v4/namespace/storage/{name}"): "admin",
    ("POST", "/v4/stream/{stream}/write"): "write",
    ("GET", "/v4/stream/{stream}"): "read",
    ("GET", "/v4/stream/{stream}/sse"): "read",
    ("GET", "/v4/namespace/stream"): "read",
    ("POST", "/v4/namespace/stream"): "admin",
    ("GET", "/v4/namespace/stream/{name}"): "read",
    ("DELETE", "/v4/namespace/stream/{name}"): "admin",
    ("POST", "/v4/admin/compact"): "admin",
    ("GET", "/v4/admin/compaction"): "admin",
    ("POST", "/v4/admin/backup"): "admin",
    ("GET", "/healthz"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/metrics"): "read",
    ("GET", "/v4/whoami"): "read",
    ("GET", "/console"): None,
    ("GET", "/console/"): None,
    ("GET", "/console/{file}"): None,
}
KEYS = {"read": "read-key-0123456789", "write": "write-key-0123456789", "admin": "admin-key-0123456789"}
OTHER_NS = "other-ns-admin-0123456789"  # an admin key for another namespace only
LOWER = {"write": "read", "admin": "write"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("auth-routes")
    keys = write_keys(tmp / "keys.json", [
        *({"key": key, "scope": scope} for scope, key in KEYS.items()),
        {"key": OTHER_NS, "scope": "admin", "namespaces": ["elsewhere"]},
    ])
    app = create_app(tmp / "data", keys_file=keys, sync=False)
    yield app
    app.close()


def _path(template: str) -> str:
    return (template.replace("{storage}", "sample").replace("{stream}", "sample").replace("{name}", "sample")
            .replace("{tx}", "1").replace("{file}", "console.js"))


def _status(app: App, method: str, template: str, token: str | None) -> tuple[int, str | None]:
    """Status and problem code, from the first chunk only: a stream that wrongly let the caller in
    must fail this test, not hang it."""
    env: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": _path(template), "QUERY_STRING": "",
                           "SERVER_NAME": "test", "SERVER_PORT": "80", "wsgi.input": io.BytesIO(b""),
                           "wsgi.url_scheme": "http", "CONTENT_LENGTH": "0"}
    if token is not None:
        env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    status: list[str] = []
    chunks = app(env, lambda s, h, e=None: status.append(s))
    try:
        first = next(iter(chunks), b"")
    finally:
        getattr(chunks, "close", lambda: None)()
    code = json.loads(first).get("code") if first.startswith(b"{") else None
    return int(status[0].split()[0]), code


def test_the_route_table_declares_exactly_these_scopes() -> None:
    assert {(method, path): scope for path, method, _, scope in TABLE} == EXPECTED


@pytest.mark.parametrize(("method", "template"), [k for k, v in EXPECTED.items() if v is not None])
def test_without_a_key_every_protected_route_is_401(app: App, method: str, template: str) -> None:
    assert _status(app, method, template, None) == (401, "UNAUTHORIZED")


@pytest.mark.parametrize(("method", "template"), [k for k, v in EXPECTED.items() if v in LOWER])
def test_a_key_one_scope_too_low_is_403(app: App, method: str, template: str) -> None:
    scope = EXPECTED[(method, template)]
    assert scope is not None
    assert _status(app, method, template, KEYS[LOWER[scope]]) == (403, "FORBIDDEN")


@pytest.mark.parametrize(("method", "template"), [k for k, v in EXPECTED.items() if v and "{" in k[1]
                                                  and "{tx}" not in k[1]])
def test_a_key_for_another_namespace_is_403(app: App, method: str, template: str) -> None:
    assert _status(app, method, template, OTHER_NS) == (403, "FORBIDDEN")


@pytest.mark.parametrize(("method", "template"), [k for k in EXPECTED if not k[1].endswith("/sse")])
def test_the_least_scope_passes_auth(app: App, method: str, template: str) -> None:
    # (The stream is left out: it answers by never ending.) Any answer but 401/403 passed auth;
    # a bodyless request may well be refused for its missing body, after auth.
    scope = EXPECTED[(method, template)]
    r = Client(app).request(method, _path(template), token=None if scope is None else KEYS[scope])
    assert r.status not in (401, 403), (r.status, r.body[:200])


def test_the_openapi_document_declares_each_operations_scope() -> None:
    doc = json.loads((ROOT / "docs" / "openapi.json").read_text())
    declared: dict[tuple[str, str], str | None] = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and "responses" in op:
                security = op.get("security", doc.get("security"))
                # OpenAPI 3.1 lets a bearer requirement list role names: the least scope.
                declared[(method.upper(), path)] = security[0]["bearer"][0] if security else None
    assert declared == EXPECTED
