"""A catalogue of hostile requests over real HTTP: each gets its exact status and code, and none
changes the store.

One ``strata serve`` (2 gunicorn workers, API keys on) serves a store seeded through the engine.
Every case asserts the status and problem ``code`` (``None`` where gunicorn itself answers before
the app, with its own non-JSON page) and then that the store looks exactly as before over HTTP:
the latest tx from ``/metrics``, the namespace listing and a full scan of every namespace. After
the catalogue the server is stopped and the store's fingerprint (a hash of every byte of every
LMDB database) must equal the one taken before it started.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from engine import Store
from tests.conftest import fingerprint
from tests.server.conftest import LiveServer, http_request, raw, start_server, stop_server

ADMIN, READER, WRITER, SCOPED = ("admin-secret-0123456789", "reader-secret-0123456789",
                                 "writer-secret-0123456789", "scoped-secret-0123456789")
KEYS = {"keys": [
    {"name": "admin", "key": ADMIN, "scope": "admin"},
    {"name": "reader", "key": READER, "scope": "read"},
    {"name": "writer", "key": WRITER, "scope": "write"},
    {"name": "scoped", "key": SCOPED, "scope": "admin", "namespaces": ["scoped"]},
]}
NAMESPACES = ["seed", "other", "scoped"]


@dataclass
class Case:
    name: str
    method: str
    path: str
    body: bytes | None = None
    status: int = 400
    code: str | None = "INVALID_PARAMETERS"
    token: str | None = ADMIN
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


def j(obj: Any) -> bytes:
    return orjson.dumps(obj)


W, R, S = "/v4/storage/seed/write", "/v4/storage/seed/read", "/v4/storage/seed/scan"
DEEP = b"[" * 100_000 + b"]" * 100_000
CASES = [
    # malformed and truncated JSON
    Case("truncated-json", "POST", W, b'[{"key": "a", "value": ', code="INVALID_JSON"),
    Case("not-json", "POST", W, b"hello", code="INVALID_JSON"),
    Case("trailing-garbage", "POST", R, b'{"keys": []} x', code="INVALID_JSON"),
    Case("empty-write-body", "POST", W, b"", code="INVALID_JSON"),
    Case("json-nesting-100k-deep", "POST", W, DEEP, code="INVALID_JSON"),
    Case("value-nesting-100k-deep", "POST", W, b'[{"key": "a", "value": ' + DEEP + b"}]", code="INVALID_JSON"),
    Case("value-nesting-300-deep", "POST", W, b'[{"key": "a", "value": ' + b"[" * 300 + b"]" * 300 + b"}]",
         code="INVALID_VALUE"),
    Case("invalid-utf8-body", "POST", W, b'[{"key": "\xff\xfe", "value": 1}]', code="INVALID_JSON"),
    Case("nan-literal", "POST", W, b'[{"key": "a", "value": NaN}]', code="INVALID_JSON"),
    # wrong types
    Case("tx-as-string", "POST", R, j({"keys": ["a"], "tx": "1"})),
    Case("tx-as-float", "POST", R, j({"keys": ["a"], "tx": 1.5})),
    Case("tx-as-bool", "POST", R, j({"keys": ["a"], "tx": True})),
    Case("tx-huge", "POST", R, b'{"keys": ["a"], "tx": 99999999999999999999999999}'),
    Case("tx-2-pow-63", "POST", R, j({"keys": ["a"], "tx": 2**63})),
    Case("tx-negative", "POST", R, j({"keys": ["a"], "tx": -1})),
    Case("tx-future", "POST", R, j({"keys": ["a"], "tx": 10**9}), code="FUTURE_TX"),
    Case("tx-query-not-int", "GET", "/v4/storage/seed/key?key=a&tx=abc", None),
    Case("scan-limit-zero", "POST", S, j({"limit": 0})),
    Case("scan-limit-string", "POST", S, j({"limit": "10"})),
    Case("keys-not-a-list", "POST", R, j({"keys": "a"})),
    Case("write-not-a-list", "POST", W, j({"key": "a", "value": 1})),
    Case("key-as-int", "POST", W, j([{"key": 7, "value": 1}]), code="INVALID_KEY"),
    Case("binary-not-bool", "POST", W, j([{"key": "a", "value": "aGk=", "binary": "yes"}])),
    Case("unknown-field", "POST", R, j({"keys": ["a"], "tx_id": 1})),
    Case("unknown-item-field", "POST", W, j([{"key": "a", "value": 1, "expires": 5}])),  # "ttl" is a field now
    Case("unknown-query-param", "POST", R + "?atomic=false", j({"keys": ["a"]})),
    Case("repeated-query-param", "GET", "/v4/storage/seed/key?key=a&key=b", None),
    # sizes and keys
    Case("read-10001-keys", "POST", R, j({"keys": [f"k{i}" for i in range(10_001)]}), code="BATCH_TOO_LARGE"),
    Case("write-10001-items", "POST", W, j([{"key": f"k{i}", "value": i} for i in range(10_001)]),
         code="BATCH_TOO_LARGE"),
    Case("delete-10001-keys", "POST", "/v4/storage/seed/delete", j({"keys": [f"k{i}" for i in range(10_001)]}),
         code="BATCH_TOO_LARGE"),
    Case("key-513-bytes", "POST", W, j([{"key": "k" * 513, "value": 1}]), code="KEY_TOO_LONG"),
    Case("key-513-bytes-utf8", "POST", W, j([{"key": "é" * 256 + "k", "value": 1}]), code="KEY_TOO_LONG"),
    Case("key-513-bytes-get", "GET", "/v4/storage/seed/key?key=" + "k" * 513, None, code="KEY_TOO_LONG"),
    Case("empty-key", "POST", W, j([{"key": "", "value": 1}]), code="INVALID_KEY"),
    Case("empty-key-get", "GET", "/v4/storage/seed/key?key=", None, code="INVALID_KEY"),
    Case("lone-surrogate-key", "POST", W, b'[{"key": "\\ud800", "value": 1}]', code="INVALID_JSON"),
    Case("nul-key-with-bad-item", "POST", W, j([{"key": "a\x00b", "value": 1}, {"key": "", "value": 2}]),
         code="INVALID_KEY"),
    Case("invalid-utf8-query", "GET", "/v4/storage/seed/key?key=%FF%FE", None),
    Case("duplicate-keys", "POST", W, j([{"key": "d", "value": 1}, {"key": "d", "value": 2}]),
         code="DUPLICATE_KEY"),
    Case("not-base64", "POST", W, j([{"key": "b", "value": "%%%not base64", "binary": True}]),
         code="INVALID_VALUE"),
    Case("base64-bad-padding", "POST", W, j([{"key": "b", "value": "aGk", "binary": True}]), code="INVALID_VALUE"),
    Case("empty-batch", "POST", W, j([]), code="EMPTY_BATCH"),
    Case("value-over-25MiB", "POST", W, j([{"key": "v", "value": "x" * (25 * 1024 * 1024 + 1)}]),
         code="VALUE_TOO_LARGE"),
    # storage names
    Case("storage-dotdot", "POST", "/v4/storage/../read", j({}), code="INVALID_NAMESPACE"),
    Case("storage-pct-dotdot", "POST", "/v4/storage/%2e%2e/read", j({}), code="INVALID_NAMESPACE"),
    Case("storage-a-slash-b", "POST", "/v4/storage/a/b/read", j({}), status=404, code="NOT_FOUND"),
    Case("storage-pct-slash", "POST", "/v4/storage/a%2Fb/read", j({}), status=404, code="NOT_FOUND"),
    Case("storage-65-chars", "POST", "/v4/storage/" + "a" * 65 + "/write", j([{"key": "a", "value": 1}]),
         code="INVALID_NAMESPACE"),
    Case("storage-3000-chars", "POST", "/v4/storage/" + "a" * 3000 + "/read", j({}), code="INVALID_NAMESPACE"),
    Case("storage-nul", "POST", "/v4/storage/a%00b/write", j([{"key": "a", "value": 1}]), code="INVALID_NAMESPACE"),
    Case("storage-space", "POST", "/v4/storage/a%20b/write", j([{"key": "a", "value": 1}]),
         code="INVALID_NAMESPACE"),
    Case("namespace-create-bad-name", "POST", "/v4/namespace/storage", j({"namespace": ".."}),
         code="INVALID_NAMESPACE"),
    Case("namespace-create-existing", "POST", "/v4/namespace/storage", j({"namespace": "seed"}), status=409,
         code="NAMESPACE_EXISTS"),
    Case("namespace-drop-missing", "DELETE", "/v4/namespace/storage/nope", None, status=404,
         code="NAMESPACE_NOT_FOUND"),
    # protocol
    Case("wrong-content-type", "POST", W, j([{"key": "a", "value": 1}]), status=415, code="UNSUPPORTED_MEDIA_TYPE",
         headers={"Content-Type": "text/plain"}),
    Case("wrong-method", "PUT", W, j([{"key": "a", "value": 1}]), status=405, code="METHOD_NOT_ALLOWED"),
    Case("unknown-route", "POST", "/v4/storage/seed/compact", j({}), status=404, code="NOT_FOUND"),
    Case("declared-100MB-plus-1", "POST", W, b"[", status=413, code="PAYLOAD_TOO_LARGE",
         headers={"Content-Type": "application/json", "Content-Length": "100000001"}),
    # API keys
    Case("no-api-key", "POST", W, j([{"key": "a", "value": 1}]), status=401, code="UNAUTHORIZED", token=None),
    Case("wrong-api-key", "POST", W, j([{"key": "a", "value": 1}]), status=401, code="UNAUTHORIZED",
         token="wrong-secret-0123456789"),
    Case("basic-auth-scheme", "POST", W, j([{"key": "a", "value": 1}]), status=401, code="UNAUTHORIZED",
         token=None, headers={"Content-Type": "application/json",
                              "Authorization": "Basic " + base64.b64encode(b"u:" + ADMIN.encode()).decode()}),
    Case("empty-bearer", "POST", W, j([{"key": "a", "value": 1}]), status=401, code="UNAUTHORIZED",
         token=None, headers={"Content-Type": "application/json", "Authorization": "Bearer "}),
    Case("read-only-key-writes", "POST", W, j([{"key": "a", "value": 1}]), status=403, code="FORBIDDEN",
         token=READER),
    Case("read-only-key-deletes", "DELETE", "/v4/storage/seed/key?key=a", None, status=403, code="FORBIDDEN",
         token=READER),
    Case("write-key-drops-namespace", "DELETE", "/v4/namespace/storage/seed", None, status=403, code="FORBIDDEN",
         token=WRITER),
    Case("scoped-key-writes-elsewhere", "POST", W, j([{"key": "a", "value": 1}]), status=403, code="FORBIDDEN",
         token=SCOPED),
    Case("scoped-key-reads-elsewhere", "POST", R, j({"keys": ["a"]}), status=403, code="FORBIDDEN", token=SCOPED),
    Case("scoped-key-drops-elsewhere", "DELETE", "/v4/namespace/storage/other", None, status=403, code="FORBIDDEN",
         token=SCOPED),
    Case("no-key-on-metrics", "GET", "/metrics", None, status=401, code="UNAUTHORIZED", token=None),
]


def state(server: LiveServer) -> tuple[Any, ...]:
    """What a client can see of the whole store: latest tx, namespaces, every record."""
    auth = {"Authorization": f"Bearer {ADMIN}"}
    metrics = server.request("GET", "/metrics", headers=auth)[2].decode()
    latest = re.search(r"^strata_latest_tx (\d+)$", metrics, re.M)
    listing = orjson.loads(server.request("GET", "/v4/namespace/storage", headers=auth)[2])["data"]
    scans = [orjson.loads(server.request("POST", f"/v4/storage/{ns}/scan", json={"limit": 10_000}, headers=auth)[2])
             for ns in NAMESPACES]
    return (latest and latest.group(1), listing, [(s["tx"], s["data"]) for s in scans])


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str, list[Any]]]:
    tmp = tmp_path_factory.mktemp("hostile")
    with Store.open(tmp / "data") as store:
        store.namespace("seed").put({"a": 1, "b": b"\x00\xff", "a\x00b": {"n": None}, "é": "v"})
        store.namespace("seed").clear(["é"])
        store.namespace("other").put({"o": [1, 2]})
        store.namespace("scoped").put({"s": "x"})
        before = fingerprint(store)
    (tmp / "keys.json").write_bytes(orjson.dumps(KEYS))
    server = start_server(tmp, "--keys", str(tmp / "keys.json"))
    seen = [state(server)]
    yield server, before, seen
    stop_server(server.proc)


def send(server: LiveServer, case: Case) -> tuple[int, dict[str, str], bytes]:
    headers = dict(case.headers)
    if case.token is not None:
        headers["Authorization"] = f"Bearer {case.token}"
    if "Content-Length" in headers:  # a lie http.client would correct: write the request by hand
        return raw(server.port, case.method, case.path, headers, case.body or b"", shutdown=False)
    return http_request(server.port, case.method, case.path, case.body, headers)


def problem_code(headers: dict[str, str], body: bytes) -> str | None:
    if headers.get("content-type") != "application/problem+json":
        return None
    doc = orjson.loads(body)
    return str(doc["code"])


def assert_unchanged(server: LiveServer, before: str, seen: list[Any]) -> None:
    """Nothing a client can see changed, and not a byte of the store's files (read by this process
    beside the live server: LMDB gives it a consistent snapshot); the server still answers."""
    assert state(server) == seen[0], "the store changed"
    with Store.open(server.data) as store:
        assert fingerprint(store) == before, "a byte of the store changed"
    assert server.request("GET", "/healthz")[0] == 200


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_request(hostile: tuple[LiveServer, str, list[Any]], case: Case) -> None:
    server, before, seen = hostile
    status, headers, body = send(server, case)
    assert (status, problem_code(headers, body)) == (case.status, case.code), body[:500]
    if case.code is not None:
        doc = orjson.loads(body)
        assert doc["status"] == status and doc["type"] == f"urn:strata:problem:{case.code}"
    assert_unchanged(server, before, seen)


JSON = {"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN}"}
ITEM = b'[{"key": "lie", "value": "longer than declared"}]'
RAW_CASES = [
    # (name, headers, body, raw options, status, code)
    ("content-length-longer-than-body", {**JSON, "Content-Length": str(len(ITEM) + 50)}, ITEM, {}, 400,
     "INVALID_PARAMETERS"),
    ("content-length-shorter-than-body", {**JSON, "Content-Length": str(len(ITEM) - 10)}, ITEM, {}, 400,
     "INVALID_JSON"),
    ("content-length-not-a-number", {**JSON, "Content-Length": "12abc"}, ITEM, {}, 400, None),
    ("content-length-negative", {**JSON, "Content-Length": "-1"}, ITEM, {}, 400, None),
    ("content-length-and-chunked", {**JSON, "Content-Length": str(len(ITEM)), "Transfer-Encoding": "chunked"},
     ITEM, {}, 400, None),
    ("slow-body-cut-short", {**JSON, "Content-Length": str(len(ITEM) + 5)}, ITEM[:20], {"trickle": 0.02}, 400,
     "INVALID_PARAMETERS"),
    ("slow-truncated-json", {**JSON, "Content-Length": "20"}, ITEM[:20], {"trickle": 0.02}, 400, "INVALID_JSON"),
    ("chunked-body-over-100MB", {**JSON, "Transfer-Encoding": "chunked"}, None, {}, 413, "PAYLOAD_TOO_LARGE"),
]


def chunked_over_limit() -> bytes:
    piece = b"x" * (1 << 20)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return chunk * 96 + b"0\r\n\r\n"  # 96 MiB = 100,663,296 bytes: over the 100 MB limit


@pytest.mark.parametrize("name,headers,body,options,status,code", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_hostile_raw_request(hostile: tuple[LiveServer, str, list[Any]], name: str, headers: dict[str, str],
                             body: bytes | None, options: dict[str, Any], status: int, code: str | None) -> None:
    server, before, seen = hostile
    got = raw(server.port, "POST", W, headers, body if body is not None else chunked_over_limit(), **options)
    assert (got[0], problem_code(got[1], got[2])) == (status, code), got[2][:500]
    assert_unchanged(server, before, seen)


def test_listing_with_a_scoped_key_shows_only_its_namespaces(hostile: tuple[LiveServer, str, list[Any]]) -> None:
    server, before, seen = hostile
    status, _, body = server.request("GET", "/v4/namespace/storage", headers={"Authorization": f"Bearer {SCOPED}"})
    assert status == 200 and [n["name"] for n in orjson.loads(body)["data"]] == ["scoped"]
    assert_unchanged(server, before, seen)
