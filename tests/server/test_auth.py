"""API keys: file format, 401 for missing/unknown keys, 403 for scope and namespace limits."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from server import create_app
from server.app import App
from server.auth import KeyRing, KeysFileError
from tests.server.conftest import Client

READ = "read-key-0123456789"
WRITE = "write-key-0123456789"
ADMIN = "admin-key-0123456789"
SCOPED = "scoped-writer-0123456789"
HASHED = "hashed-admin-0123456789"


def write_keys(path: Path, keys: list[dict[str, Any]]) -> Path:
    path.write_bytes(orjson.dumps({"keys": keys}))
    return path


@pytest.fixture
def secured(tmp_path: Path) -> Any:
    keys = write_keys(tmp_path / "keys.json", [
        {"name": "reader", "key": READ, "scope": "read"},
        {"name": "writer", "key": WRITE, "scope": "write"},
        {"name": "admin", "key": ADMIN, "scope": "admin"},
        {"name": "scoped", "key": SCOPED, "scope": "admin", "namespaces": ["mine"]},
        {"name": "hashed", "key_sha256": hashlib.sha256(HASHED.encode()).hexdigest(), "scope": "admin"},
    ])
    app = create_app(tmp_path / "data", keys_file=keys, sync=False)
    yield app
    app.close()


def test_missing_or_unknown_key_is_401(secured: App) -> None:
    client = Client(secured)
    for headers in ({}, {"Authorization": "Bearer nope-nope-nope-nope"}, {"Authorization": f"Basic {READ}"},
                    {"Authorization": "Bearer"}, {"Authorization": f"Bearer {READ}x"}):
        r = client.read("sample", ["a"], headers=headers)
        assert r.status == 401 and r.code == "UNAUTHORIZED", headers
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.read("sample", ["a"], token=READ).status == 200
    assert client.read("sample", ["a"], headers={"Authorization": f"bearer {READ}"}).status == 200


def test_scopes(secured: App) -> None:
    client = Client(secured)
    item = [{"key": "a", "value": 1}]
    assert client.write("sample", item, token=READ).status == 403
    assert client.write("sample", item, token=READ).code == "FORBIDDEN"
    assert client.post("/v4/storage/sample/delete", json=["a"], token=READ).status == 403
    assert client.post("/v4/storage/sample/key", query={"key": "a"}, body=b"1", token=READ).status == 403
    assert client.delete("/v4/storage/sample/key", query={"key": "a"}, token=READ).status == 403
    assert client.read("sample", token=READ).json()["tx"] == 0  # nothing was written
    assert client.write("sample", item, token=WRITE).status == 200
    assert client.post("/v4/storage/sample/scan", json={}, token=READ).json()["count"] == 1
    assert client.get("/v4/storage/sample/key", query={"key": "a"}, token=READ).status == 200
    # namespaces: reading needs read, creating and dropping need admin
    assert client.get("/v4/namespace/storage", token=READ).status == 200
    assert client.post("/v4/namespace/storage", json={"namespace": "n"}, token=WRITE).status == 403
    assert client.delete("/v4/namespace/storage/sample", token=WRITE).status == 403
    assert client.post("/v4/namespace/storage", json={"namespace": "n"}, token=ADMIN).status == 201
    assert client.delete("/v4/namespace/storage/n", token=HASHED).status == 200


def test_namespace_limited_key(secured: App) -> None:
    client = Client(secured)
    client.write("other", [{"key": "a", "value": 1}], token=ADMIN)
    assert client.write("mine", [{"key": "a", "value": 1}], token=SCOPED).status == 200
    r = client.write("other", [{"key": "a", "value": 2}], token=SCOPED)
    assert r.status == 403 and r.code == "FORBIDDEN"
    assert client.read("other", ["a"], token=SCOPED).status == 403
    assert client.get("/v4/namespace/storage/other", token=SCOPED).status == 403
    assert client.delete("/v4/namespace/storage/other", token=SCOPED).status == 403
    assert client.post("/v4/namespace/storage", json={"namespace": "theirs"}, token=SCOPED).status == 403
    names = [n["name"] for n in client.get("/v4/namespace/storage", token=SCOPED).json()["data"]]
    assert names == ["mine"]
    assert client.read("other", ["a"], token=ADMIN).json()["data"][0]["value"] == 1


def test_public_and_protected_ops_endpoints(secured: App) -> None:
    client = Client(secured)
    assert client.get("/healthz").status == 200
    assert client.get("/openapi.json").status == 200
    assert client.get("/metrics").status == 401
    assert client.get("/metrics", token=READ).status == 200


def test_routing_errors_come_before_auth(secured: App) -> None:
    client = Client(secured)
    assert client.get("/nowhere").status == 404
    assert client.get("/v4/storage/sample/read").status == 405


def test_keys_are_never_logged(secured: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = Client(secured)
    client.read("sample", ["a"], token=WRITE)
    client.read("sample", ["a"], token="unknown-key-0123456789")
    assert WRITE not in caplog.text and "unknown-key-0123456789" not in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "is not JSON"),
        (b"[]", r"must be an object \{"),
        (b'{"keys": {}}', r"must be an object \{"),
        (b'{"keys": [], "extra": 1}', r"must be an object \{"),
        (b'{"keys": [{"key": "short", "scope": "read"}]}', r"keys\[0\]\.key must be a string of at least 16"),
        (b'{"keys": [{"key": "long-enough-secret-123", "scope": "root"}]}', r"keys\[0\]\.scope must be one of"),
        (b'{"keys": [{"key": "long-enough-secret-123"}]}', r"keys\[0\]\.scope must be one of"),
        (b'{"keys": [{"key": "long-enough-secret-123", "key_sha256": "00", "scope": "read"}]}',
         r"keys\[0\] needs exactly one of 'key' and 'key_sha256'"),
        (b'{"keys": [{"key_sha256": "zz", "scope": "read"}]}', r"keys\[0\]\.key_sha256 must be 64 hex digits"),
        (b'{"keys": [{"key": "long-enough-secret-123", "scope": "read", "namespaces": "a"}]}',
         r"keys\[0\]\.namespaces must be a list of namespace names"),
        (b'{"keys": [{"key": "long-enough-secret-123", "scope": "read", "color": "red"}]}',
         r"keys\[0\] has unknown fields \['color'\]"),
        (b'{"keys": [{"key": "long-enough-secret-123", "scope": "read"}, '
         b'{"key": "long-enough-secret-123", "scope": "admin"}]}', "the same key is listed twice"),
    ],
)
def test_malformed_keys_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content)
    with pytest.raises(KeysFileError, match=message):
        KeyRing.load(path)


def test_missing_keys_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeysFileError, match="cannot read"):
        KeyRing.load(tmp_path / "absent.json")


def test_keys_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = write_keys(tmp_path / "k.json", [{"key": READ, "scope": "read"}])
    monkeypatch.setenv("STRATA_KEYS_FILE", str(keys))
    app = create_app(tmp_path / "data", sync=False)
    assert Client(app).read("s").status == 401
    assert Client(app, token=READ).read("s").status == 200
    app.close()
