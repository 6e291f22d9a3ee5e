"""Problem documents name where the request went wrong, with the value as sent; times come back in UTC."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import Client

T_FAR = 4_000_000_000  # epoch seconds in 2096: a valid expiration


@pytest.mark.parametrize(("member", "sent", "code", "location", "echoed"), [
    ("expiration_ttl", 0, "INVALID_EXPIRATION_TTL", "/0/expiration_ttl", 0),
    ("expiration_ttl", -5, "INVALID_EXPIRATION_TTL", "/0/expiration_ttl", -5),
    ("expiration_ttl", 1e11, "INVALID_EXPIRATION_TTL", "/0/expiration_ttl", 1e11),
    ("expiration", 5, "INVALID_EXPIRATION", "/0/expiration", 5),
    ("ttl", {"value": 0}, "INVALID_EXPIRATION_TTL", "/0/ttl/value", 0),
    ("ttl", {"value": 0, "unit": "DAYS"}, "INVALID_EXPIRATION_TTL", "/0/ttl/value", 0),
    ("metadata", "x" * 1100, "METADATA_TOO_LARGE", "/0/metadata", "x" * 200 + "..."),
    ("metadata", {"blob": "x" * 1100}, "METADATA_TOO_LARGE", "/0/metadata", "object"),
], ids=lambda v: str(v)[:20])
def test_item_errors_echo_what_was_sent(client: Client, member: str, sent: Any, code: str, location: str,
                                        echoed: Any) -> None:
    item = {"key": "k", "value": 1, member: sent}
    for query in (None, "atomic=false"):
        r = client.write("s", [item], query=query)
        errors = r.json()["errors"]
        assert len(errors) == 1, r
        entry = errors[0]
        assert (entry["code"], entry["location"], entry["value"], entry["index"]) == (code, location, echoed, 0), r
    assert client.get("/v4/head").json()["tx"] == 0


def test_namespace_exists_points_at_the_name(client: Client) -> None:
    assert client.post("/v4/namespace/storage", json={"namespace": "cities"}).status == 201
    r = client.post("/v4/namespace/storage", json={"namespace": "cities"})
    assert r.status == 409 and r.code == "NAMESPACE_EXISTS"
    assert [(e["location"], e["value"]) for e in r.json()["errors"]] == [("/namespace", "cities")]


def test_dropping_an_unknown_namespace_points_at_the_path(client: Client) -> None:
    r = client.delete("/v4/namespace/storage/nope")
    assert r.status == 404 and r.code == "NAMESPACE_NOT_FOUND"
    assert [(e["location"], e["value"]) for e in r.json()["errors"]] == [("path.name", "nope")]


def test_changes_below_the_horizon_point_at_since(client: Client) -> None:
    for i in range(6):
        client.write("s", [{"key": "k", "value": i}])
    assert client.post("/v4/admin/compact", json={"before_tx": 4}).status == 200
    r = client.get("/v4/storage/s/changes", query="since=1")
    assert r.status == 410 and r.code == "TX_COMPACTED"
    assert [(e["location"], e["value"]) for e in r.json()["errors"]] == [("query.since", 1)]


def test_an_empty_delete_points_at_its_keys(client: Client) -> None:
    for body, location in [({"keys": []}, "/keys"), ([], "")]:
        r = client.post("/v4/storage/s/delete", json=body)
        assert r.status == 400 and r.code == "EMPTY_BATCH"
        assert [e["location"] for e in r.json()["errors"]] == [location]


@pytest.mark.parametrize(("at", "utc"), [
    ("2026-11-23T10:00:00.250+01:00", "2026-11-23T09:00:00.250000Z"),
    ("2026-11-23T01:30:00.5-07:30", "2026-11-23T09:00:00.500000Z"),
    ("2026-11-23T09:00:00.000001z", "2026-11-23T09:00:00.000001Z"),
])
def test_tx_at_echoes_the_time_in_utc(client: Client, at: str, utc: str) -> None:
    r = client.get("/v4/tx", query={"at": at})
    assert r.status == 200 and r.json()["at"] == utc


def test_every_problem_about_a_part_of_the_request_names_it(client: Client) -> None:
    """A sweep over the input problems of the routes: none has an empty ``errors``."""
    client.write("s", [{"key": "k", "value": 1}])
    client.post("/v4/namespace/storage", json={"namespace": "made"})
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v4/namespace/storage", {"json": {"namespace": "made"}}),
        ("DELETE", "/v4/namespace/storage/nope", {}),
        ("GET", "/v4/namespace/storage/nope", {}),
        ("POST", "/v4/storage/s/delete", {"json": []}),
        ("POST", "/v4/storage/s/delete", {"json": ["a", "a"]}),
        ("POST", "/v4/storage/s/write", {"json": []}),
        ("POST", "/v4/storage/s/write", {"json": [{"key": "a", "value": 1, "expiration": 5}]}),
        ("POST", "/v4/storage/s/read", {"json": {"tx": 99}}),
        ("POST", "/v4/storage/s/scan", {"json": {"tx": 99}}),
        ("GET", "/v4/storage/s/key", {"query": "key=nope"}),
        ("GET", "/v4/storage/s/changes", {"query": "since=99"}),
        ("POST", "/v4/storage/s/diff", {"json": {"from_tx": 99}}),
        ("GET", "/v4/tx/99", {}),
        ("GET", "/v4/tx", {"query": "at=yesterday"}),
        ("POST", "/v4/storage/s/key", {"query": "key=k", "body": b"[1,", "content_type": "application/json"}),
        ("POST", "/v4/storage/s/write", {"json": [{"key": "a", "value": 1}], "headers": {"X-Strata-Note": "[]"}}),
    ]
    for method, path, kw in requests:
        r = client.request(method, path, **kw)
        assert 400 <= r.status < 500 and r.code is not None, (method, path, r)
        errors = r.json()["errors"]
        assert errors and all({"location", "message", "value"} <= set(e) for e in errors), (method, path, r)
