"""Every bad item of a write is listed with its own index in the request, whichever check finds it;
partial mode commits every good item in one tx."""

from __future__ import annotations

from server.app import App
from tests.conftest import fingerprint
from tests.server.conftest import Client

MIXED = [{"key": "c"}, {"key": "a", "value": 1, "expiration_ttl": 0.5},
         {"key": "b", "value": 2, "expiration_ttl": 0.5}]


def _entries(errors: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(e["index"], e["key"], e["code"], e["location"], e["value"]) for e in errors]


def test_partial_mixed_batch_lists_both_bad_items_and_commits_the_clear(client: Client) -> None:
    client.write("s", [{"key": "c", "value": "old"}])
    r = client.write("s", MIXED, query="atomic=false")
    assert r.status == 200, r
    out = r.json()
    assert out["tx"] == 2 and out["succeeded"] == 1 and out["failed"] == 2
    assert _entries(out["errors"]) == [(1, "a", "INVALID_EXPIRATION_TTL", "/1/expiration_ttl", 0.5),
                                       (2, "b", "INVALID_EXPIRATION_TTL", "/2/expiration_ttl", 0.5)]
    assert all(e["message"] for e in out["errors"])
    assert client.read("s", ["a", "b", "c"]).json()["data"] == [{"key": "c", "tx": 2}]  # cleared
    ops = client.get("/v4/tx/2").json()["operations"]
    assert [(op["namespace"], op["key"], op["op"]) for op in ops] == [("s", "c", "clear")]
    assert client.get("/v4/head").json()["tx"] == 2  # one tx


def test_atomic_mixed_batch_lists_every_bad_item(app: App, client: Client) -> None:
    before = fingerprint(app.store)
    r = client.write("s", MIXED)
    assert r.status == 400 and r.code == "INVALID_EXPIRATION_TTL"
    assert [(e["index"], e["key"], e["location"], e["value"], e["code"]) for e in r.json()["errors"]] == [
        (1, "a", "/1/expiration_ttl", 0.5, "INVALID_EXPIRATION_TTL"),
        (2, "b", "/2/expiration_ttl", 0.5, "INVALID_EXPIRATION_TTL")]
    assert fingerprint(app.store) == before


def test_atomic_lists_the_engines_findings_with_the_servers(app: App, client: Client) -> None:
    """The server's checks (an empty key) and the engine's (a ttl below the minimum, metadata too
    large) land in one list, in request order."""
    before = fingerprint(app.store)
    items = [{"key": "ok", "value": 1}, {"key": "m", "value": 1, "metadata": "x" * 2000}, {"key": "", "value": 1},
             {"key": "c"}, {"key": "t", "value": 1, "ttl": {"value": 0}}]
    r = client.write("s", items)
    assert r.status == 400 and r.code == "METADATA_TOO_LARGE"
    assert [(e["index"], e["key"], e["code"], e["location"]) for e in r.json()["errors"]] == [
        (1, "m", "METADATA_TOO_LARGE", "/1/metadata"), (2, "", "INVALID_KEY", "/2/key"),
        (4, "t", "INVALID_EXPIRATION_TTL", "/4/ttl/value")]
    assert fingerprint(app.store) == before


def test_partial_keeps_request_indexes_across_both_checks(client: Client) -> None:
    items = [{"key": "", "value": 0}, {"key": "x"}, {"key": "a", "value": 1, "expiration": 5},
             {"key": "y", "value": 2}, {"key": "b", "value": 3, "expiration_ttl": -5}]
    r = client.write("s", items, query="atomic=false")
    out = r.json()
    assert r.status == 200 and out["succeeded"] == 2 and out["failed"] == 3
    assert _entries(out["errors"]) == [(0, "", "INVALID_KEY", "/0/key", ""),
                                       (2, "a", "INVALID_EXPIRATION", "/2/expiration", 5),
                                       (4, "b", "INVALID_EXPIRATION_TTL", "/4/expiration_ttl", -5)]
    data = client.read("s", ["x", "y", "a", "b"]).json()["data"]
    assert data == [{"key": "x", "tx": out["tx"]}, {"key": "y", "value": 2, "tx": out["tx"], "binary": False}]


def test_partial_with_every_item_bad_writes_nothing(app: App, client: Client) -> None:
    before = fingerprint(app.store)
    r = client.write("s", MIXED[1:], query="atomic=false")
    assert r.status == 200
    assert r.json()["tx"] is None and r.json()["succeeded"] == 0 and r.json()["failed"] == 2
    assert fingerprint(app.store) == before
