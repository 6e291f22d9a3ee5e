"""Expiry and metadata over HTTP: write item members, read/scan options, errors. Injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from server import create_app
from server.app import App
from tests.engine.clock import T0, Clock, clock  # noqa: F401 (fixtures)

from .conftest import Client


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def app(tmp_path: Path, clock: Clock) -> Iterator[App]:
    application = create_app(tmp_path / "data", sync=False, store_options={"clock": clock})
    yield application
    application.close()


@pytest.fixture
def client(app: App) -> Client:
    return Client(app)


def keys_of(resp: Any) -> list[str]:
    assert resp.status == 200, resp
    return [r["key"] for r in resp.json()["data"]]


def test_expiration_ttl_expiration_and_forge_ttl(client: Client, clock: Clock) -> None:
    resp = client.write("s", [
        {"key": "ttl", "value": 1, "expiration_ttl": 10},
        {"key": "abs", "value": 2, "expiration": T0 + 20},
        {"key": "both", "value": 3, "expiration": T0 + 1000, "expiration_ttl": 5},
        {"key": "forge", "value": 4, "ttl": {"value": 1, "unit": "MINUTES"}},
        {"key": "plain", "value": 5},
    ])
    assert resp.status == 200, resp
    tx = resp.json()["tx"]
    everything = ["ttl", "abs", "both", "forge", "plain"]
    assert keys_of(client.read("s", everything)) == everything
    clock.now = T0 + 10
    assert keys_of(client.read("s", everything)) == ["abs", "forge", "plain"]
    clock.now = T0 + 60
    assert keys_of(client.read("s", everything)) == ["plain"]
    assert keys_of(client.post("/v4/storage/s/scan", json={})) == ["plain"]
    # An explicit tx evaluates expiry at its commit time: unchanged forever.
    assert keys_of(client.read("s", everything, tx=tx)) == everything
    assert keys_of(client.post("/v4/storage/s/scan", json={"tx": tx})) == sorted(everything)
    assert client.get("/v4/storage/s/key", query={"key": "ttl"}).status == 404


def test_metadata_and_fields(client: Client, clock: Clock) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    clock.now = T0 + 5
    resp = client.write("s", [{"key": "a", "value": 2, "metadata": {"by": "alice"}, "expiration_ttl": 100},
                              {"key": "b", "value": "x", "metadata": [1, 2]}])
    assert resp.status == 200, resp
    body = {"keys": ["a", "b"], "metadata": True, "fields": ["created_at", "updated_at", "expire_time"]}
    data = client.post("/v4/storage/s/read", json=body).json()["data"]
    assert data == [
        {"key": "a", "value": 2, "tx": 2, "binary": False, "metadata": {"by": "alice"}, "created_at": iso(T0),
         "updated_at": iso(T0 + 5), "expire_time": iso(T0 + 105)},
        {"key": "b", "value": "x", "tx": 2, "binary": False, "metadata": [1, 2], "created_at": iso(T0 + 5),
         "updated_at": iso(T0 + 5), "expire_time": None},
    ]
    plain = client.read("s", ["a"]).json()["data"]
    assert plain == [{"key": "a", "value": 2, "tx": 2, "binary": False}]
    only_meta = client.post("/v4/storage/s/read", json={"keys": ["a"], "tx": 1, "metadata": True}).json()["data"]
    assert only_meta == [{"key": "a", "value": 1, "tx": 1, "binary": False, "metadata": None}]
    scanned = client.post("/v4/storage/s/scan", json={"metadata": True, "fields": ["expire_time"]}).json()["data"]
    assert [(r["key"], r["metadata"], r["expire_time"]) for r in scanned] == [
        ("a", {"by": "alice"}, iso(T0 + 105)), ("b", [1, 2], None)]


def test_item_errors_are_located(client: Client) -> None:
    cases = [
        ({"key": "a", "value": 1, "expiration_ttl": 0}, "INVALID_EXPIRATION_TTL", "/0/expiration_ttl"),
        ({"key": "a", "value": 1, "expiration_ttl": "60"}, "INVALID_EXPIRATION_TTL", "/0/expiration_ttl"),
        ({"key": "a", "value": 1, "expiration": T0 - 100}, "INVALID_EXPIRATION", "/0/expiration"),
        ({"key": "a", "value": 1, "expiration": True}, "INVALID_EXPIRATION", "/0/expiration"),
        ({"key": "a", "value": 1, "ttl": {"value": 1, "unit": "WEEKS"}}, "INVALID_EXPIRATION_TTL", "/0/ttl"),
        ({"key": "a", "value": 1, "ttl": {"value": 0.5}}, "INVALID_EXPIRATION_TTL", "/0/ttl/value"),
        ({"key": "a", "value": 1, "ttl": 60}, "INVALID_EXPIRATION_TTL", "/0/ttl"),
        ({"key": "a", "value": 1, "ttl": {"value": 60}, "expiration_ttl": 60}, "INVALID_PARAMETERS", "/0/ttl"),
        ({"key": "a", "value": 1, "metadata": "x" * 1023}, "METADATA_TOO_LARGE", "/0/metadata"),
        ({"key": "a", "metadata": {}}, "INVALID_PARAMETERS", "/0"),
    ]
    for item, code, location in cases:
        resp = client.write("s", [item])
        assert resp.status == 400, (item, resp)
        assert resp.code == code, (item, resp)
        assert resp.json()["errors"][0]["location"] == location, (item, resp)
    assert client.get("/v4/head").json()["tx"] == 0  # nothing was written


def test_partial_write_sets_bad_options_aside(client: Client) -> None:
    resp = client.write("s", [{"key": "a", "value": 1, "expiration_ttl": 60},
                              {"key": "b", "value": 2, "expiration_ttl": 0},
                              {"key": "c", "value": 3, "metadata": "x" * 2000}], query="atomic=false")
    assert resp.status == 200, resp
    body = resp.json()
    assert (body["succeeded"], body["failed"]) == (1, 2)
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(1, "INVALID_EXPIRATION_TTL"),
                                                                 (2, "METADATA_TOO_LARGE")]
    assert keys_of(client.read("s", ["a", "b", "c"])) == ["a"]


def test_mixed_clears_and_options_in_one_write(client: Client) -> None:
    client.write("s", [{"key": "c", "value": 0}])
    resp = client.write("s", [{"key": "a", "value": 1, "expiration_ttl": 5, "metadata": 1}, {"key": "c"}])
    assert resp.status == 200, resp
    data = client.post("/v4/storage/s/read", json={"keys": ["a", "c"], "metadata": True}).json()["data"]
    assert data == [{"key": "a", "value": 1, "tx": 2, "binary": False, "metadata": 1},
                    {"key": "c", "tx": 2, "metadata": None}]


def test_expiry_recorded_by_the_next_write_shows_in_history_and_changes(client: Client, clock: Clock) -> None:
    client.write("s", [{"key": "a", "value": 1, "expiration_ttl": 1}])
    clock.now = T0 + 2
    assert client.write("s", [{"key": "b", "value": 2}]).json()["tx"] == 3
    history = client.get("/v4/storage/s/history", query={"key": "a"}).json()
    assert [v["op"] for v in history["data"]] == ["delete", "put"]
    info = client.get("/v4/tx/2").json()
    assert info["note"] == {"expired": True}
    assert info["operations"] == [{"namespace": "s", "key": "a", "op": "delete"}]


def test_bad_read_options(client: Client) -> None:
    for body in ({"metadata": 1}, {"fields": ["nope"]}, {"fields": "created_at"}):
        resp = client.post("/v4/storage/s/read", json={"keys": ["a"], **body})
        assert (resp.status, resp.code) == (400, "INVALID_PARAMETERS"), resp
        resp = client.post("/v4/storage/s/scan", json=body)
        assert (resp.status, resp.code) == (400, "INVALID_PARAMETERS"), resp
