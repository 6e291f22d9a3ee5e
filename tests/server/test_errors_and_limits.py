"""Routing, problem documents, body limits, media types, storage names, and crash containment."""

from __future__ import annotations

import io
import os
from typing import Any

import orjson
import pytest

from engine import errors
from server.app import App
from server.problems import STATUS_BY_ERROR, from_engine_error, status_of
from tests.server.conftest import Client, NoReadInput

NS = "/v4/storage/sample"


def test_unknown_path_is_a_404_problem(client: Client) -> None:
    for path in ("/", "/v4", "/v4/storage/sample", "/v4/storage/sample/read/", "/v4/storage//read",
                 "/v4/storage/a/b/read", "/healthz/"):
        r = client.post(path, json={})
        assert r.status == 404 and r.code == "NOT_FOUND", path
        problem = r.json()
        assert problem["type"] == "urn:strata:problem:NOT_FOUND" and problem["instance"] == path
        assert problem["title"] == "Not Found" and problem["status"] == 404 and problem["errors"] == []


def test_wrong_method_is_405_with_allow(client: Client) -> None:
    cases = {
        f"{NS}/read": ("GET", "POST"),
        f"{NS}/key": ("PUT", "DELETE, GET, HEAD, POST"),
        "/v4/namespace/storage": ("DELETE", "GET, POST"),
        "/v4/namespace/storage/x": ("POST", "DELETE, GET"),
        "/healthz": ("POST", "GET"),
    }
    for path, (method, allow) in cases.items():
        r = client.request(method, path)
        assert r.status == 405 and r.code == "METHOD_NOT_ALLOWED", path
        assert r.headers["allow"] == allow


def test_problem_documents_carry_every_rfc9457_member(client: Client) -> None:
    r = client.post(f"{NS}/read", json={"keys": ["a"], "tx": "x"})
    assert r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    assert doc == {
        "type": "urn:strata:problem:INVALID_PARAMETERS",
        "title": "Bad Request",
        "status": 400,
        "detail": doc["detail"],
        "instance": f"{NS}/read",
        "errors": [{"location": "/tx", "message": doc["errors"][0]["message"], "value": "x"}],
        "code": "INVALID_PARAMETERS",
    }
    assert "tx" in doc["detail"]
    assert int(r.headers["content-length"]) == len(r.body)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidParameters, 400), (errors.FutureTx, 400), (errors.TxCompacted, 410),
        (errors.InvalidNamespace, 400), (errors.NamespaceNotFound, 404), (errors.NamespaceExists, 409),
        (errors.InvalidKey, 400), (errors.KeyTooLong, 400), (errors.InvalidValue, 400),
        (errors.ValueTooLarge, 400), (errors.BatchTooLarge, 400), (errors.EmptyBatch, 400),
        (errors.DuplicateKey, 400), (errors.Conflict, 409), (errors.StorageFull, 507),
        (errors.StoreClosed, 503), (errors.StorageError, 500),
    ],
)
def test_every_engine_code_has_its_status(error: type[errors.EngineError], status: int) -> None:
    assert status_of(error("x")) == status
    problem = from_engine_error(error("boom", errors=[{"index": 2, "key": "k", "code": error.code, "message": "m"}]))
    assert problem.status == status and problem.code == error.code
    assert problem.errors[0]["index"] == 2 and problem.errors[0]["location"].startswith("/2/")


def test_status_is_found_along_the_mro() -> None:
    class NewFullness(errors.StorageFull):
        code = "NEW_FULL"

    assert status_of(NewFullness("x")) == 507
    assert status_of(ValueError()) == 500
    assert set(STATUS_BY_ERROR) <= set(errors.BY_CODE.values())


def test_declared_oversize_body_is_413_without_reading(app: App) -> None:
    client = Client(app)
    for path in (f"{NS}/write", f"{NS}/read", f"{NS}/key?key=a"):
        path, _, query = path.partition("?")
        r = client.post(path, query=query, content_type="application/json",
                        environ={"CONTENT_LENGTH": str(100_000_001), "wsgi.input": NoReadInput()})
        assert r.status == 413 and r.code == "PAYLOAD_TOO_LARGE", path
    assert client.read("sample").json()["tx"] == 0


def test_body_exactly_at_the_limit_is_read(tmp_path: Any) -> None:
    app = App(tmp_path / "d", sync=False, max_body=64)
    client = Client(app)
    body = b'[{"key":"a","value":"' + b"x" * 40 + b'"}]'
    assert len(body) <= 64
    assert client.post(f"{NS}/write", body=body, content_type="application/json").status == 200
    big = b'[{"key":"a","value":"' + b"x" * 60 + b'"}]'
    assert client.post(f"{NS}/write", body=big, content_type="application/json").status == 413
    app.close()


class Trickle(io.RawIOBase):
    """A de-chunked body stream that yields ``total`` bytes and counts how many were read."""

    def __init__(self, total: int) -> None:
        self.left, self.read_bytes = total, 0

    def read(self, size: int = -1) -> bytes:
        n = min(self.left, 4096 if size < 0 else size)
        self.left -= n
        self.read_bytes += n
        return b" " * n


def test_chunked_body_over_the_limit_is_cut_off(tmp_path: Any) -> None:
    app = App(tmp_path / "d", sync=False, max_body=100_000)
    stream = Trickle(10_000_000)
    r = Client(app).post(f"{NS}/read", content_type="application/json",
                         environ={"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": stream})
    assert r.status == 413
    assert stream.read_bytes < 300_000  # stopped soon after the limit, not at the end
    app.close()


def test_chunked_body_under_the_limit_is_parsed(client: Client) -> None:
    body = b'[{"key":"a","value":1}]'
    r = client.post(f"{NS}/write", content_type="application/json",
                    environ={"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(body)})
    assert r.status == 200 and r.json()["count"] == 1


def test_short_body_is_400(client: Client) -> None:
    r = client.post(f"{NS}/write", content_type="application/json",
                    environ={"CONTENT_LENGTH": "100", "wsgi.input": io.BytesIO(b"[]")})
    assert r.status == 400
    r = client.post(f"{NS}/write", content_type="application/json",
                    environ={"CONTENT_LENGTH": "-5", "wsgi.input": io.BytesIO(b"[]")})
    assert r.status == 400


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                   "application/octet-stream"])
def test_json_endpoints_refuse_other_media_types_with_415(client: Client, ctype: str) -> None:
    for path in ("read", "write", "delete", "scan"):
        r = client.post(f"{NS}/{path}", body=b"[]", content_type=ctype)
        assert r.status == 415 and r.code == "UNSUPPORTED_MEDIA_TYPE", (path, ctype)
    r = client.post("/v4/namespace/storage", body=b'{"namespace":"x"}', content_type=ctype)
    assert r.status == 415


def test_json_endpoints_accept_json_with_parameters_or_no_content_type(client: Client) -> None:
    body = b'[{"key":"a","value":1}]'
    assert client.post(f"{NS}/write", body=body, content_type="application/json; charset=utf-8").status == 200
    assert client.post(f"{NS}/write", body=body, content_type="Application/JSON").status == 200
    assert client.post(f"{NS}/write", body=body).status == 200


@pytest.mark.parametrize("name", ["..", ".", "%2e%2e", "a" * 65, "a b", "a*", "ä", "a:b", "a\\b", "a%2Fb"])
def test_invalid_storage_names_are_400(client: Client, name: str) -> None:
    for path, method in (("read", "POST"), ("write", "POST"), ("scan", "POST"), ("delete", "POST")):
        r = client.request(method, f"/v4/storage/{name}/{path}", json=[{"key": "a", "value": 1}]
                           if path == "write" else {"keys": ["a"]} if path == "delete" else {})
        assert r.status == 400 and r.code == "INVALID_NAMESPACE", (name, path)
    r = client.get(f"/v4/storage/{name}/key", query={"key": "a"})
    assert r.status == 400 and r.code == "INVALID_NAMESPACE"
    r = client.get(f"/v4/namespace/storage/{name}")
    assert r.status == 400 and r.code == "INVALID_NAMESPACE"
    assert client.get("/v4/namespace/storage").json()["data"] == []


def test_longest_valid_storage_name_works(client: Client) -> None:
    name = "a-Z_0." + "x" * 58
    assert client.write(name, [{"key": "k", "value": 1}]).status == 200
    assert client.read(name, ["k"]).json()["count"] == 1


def test_unexpected_exception_is_a_bare_500_and_logged(app: App, caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(app)
    client.write("sample", [{"key": "a", "value": 1}])

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(type(app.store.namespace("sample")), "read", explode)
    r = client.read("sample", ["a"])
    assert r.status == 500 and r.code == "INTERNAL_ERROR"
    assert b"secret internal detail" not in r.body and b"Traceback" not in r.body
    assert "secret internal detail" in caplog.text
    monkeypatch.undo()
    assert client.read("sample", ["a"]).status == 200  # the app keeps serving


def test_closed_store_is_503(app: App) -> None:
    client = Client(app)
    store = app.store
    store.close()
    r = client.read("sample", ["a"])
    assert r.status == 503 and r.code == "STORE_CLOSED"


def _in_child(fn: Any) -> bytes:
    """Run ``fn() -> bytes`` in a forked child and return what it produced (or its error)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            out = fn()
        except BaseException as exc:
            out = repr(exc).encode()
        os.write(w, out)
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as f:
        return f.read()


def test_forked_workers_open_their_own_store_and_share_metrics(app: App) -> None:
    # The app is built in the parent (as gunicorn's master does) but the parent never opens the store.
    client = Client(app)
    written = _in_child(lambda: client.write("sample", [{"key": "a", "value": 1}]).body)
    assert orjson.loads(written)["tx"] == 1
    read = _in_child(lambda: client.read("sample", ["a"]).body)
    assert orjson.loads(read)["data"] == [{"key": "a", "value": 1, "tx": 1, "binary": False}]
    assert app._store is None  # nothing was opened here
    metrics = client.get("/metrics").body.decode()
    assert 'route="/v4/storage/{storage}/write",method="POST",status="200"} 1' in metrics
    assert 'route="/v4/storage/{storage}/read",method="POST",status="200"} 1' in metrics
