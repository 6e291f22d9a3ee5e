"""Namespace endpoints: list, create, get, drop, with the Litebase Namespace shape."""

from __future__ import annotations

from datetime import datetime

from tests.server.conftest import Client

BASE = "/v4/namespace/storage"


def _ts(text: str) -> datetime:
    assert text.endswith("Z")  # RFC 3339, UTC
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_create_get_list_drop(client: Client) -> None:
    r = client.post(BASE, json={"namespace": "cities"})
    assert r.status == 201
    ns = r.json()["data"]
    assert ns["name"] == "cities" and ns["tx"] == 0 and ns["stat"] == {"key_count": 0, "size_bytes": 0}
    assert _ts(ns["created_at"]) <= _ts(ns["updated_at"])
    assert r.json()["duration"].endswith("ms")
    r = client.post(BASE, json={"namespace": "cities"})
    assert r.status == 409 and r.code == "NAMESPACE_EXISTS"

    tx = client.write("cities", [{"key": "a", "value": {"n": 1}}, {"key": "b", "value": 2}]).json()["tx"]
    client.write("towns", [{"key": "x", "value": 1}])
    got = client.get(f"{BASE}/cities").json()["data"]
    assert got["tx"] == tx and got["stat"]["key_count"] == 2 and got["stat"]["size_bytes"] > 0
    assert [n["name"] for n in client.get(BASE).json()["data"]] == ["cities", "towns"]

    dropped = client.delete(f"{BASE}/cities")
    assert dropped.status == 200 and dropped.json()["tx"] == tx + 2
    assert client.get(f"{BASE}/cities").code == "NAMESPACE_NOT_FOUND"
    assert client.get(f"{BASE}/cities").status == 404
    assert client.delete(f"{BASE}/cities").status == 404
    assert [n["name"] for n in client.get(BASE).json()["data"]] == ["towns"]
    # its data is gone from the latest tx but still readable at older ones
    assert client.read("cities", ["a"]).json()["data"] == []
    assert client.read("cities", ["a"], tx=tx).json()["data"][0]["value"] == {"n": 1}


def test_bad_create_bodies(client: Client) -> None:
    for body, code in (({}, "INVALID_NAMESPACE"), ({"namespace": 5}, "INVALID_NAMESPACE"),
                       ({"namespace": ".."}, "INVALID_NAMESPACE"), ({"namespace": "a" * 65}, "INVALID_NAMESPACE"),
                       ({"namespace": "a", "x": 1}, "INVALID_PARAMETERS"), (["a"], "INVALID_PARAMETERS")):
        r = client.post(BASE, json=body)
        assert r.status == 400 and r.code == code, body
    assert client.post(BASE, body=b"{", content_type="application/json").code == "INVALID_JSON"
    assert client.get(BASE).json()["data"] == []


def test_unknown_namespace_is_404(client: Client) -> None:
    r = client.get(f"{BASE}/nothing")
    assert r.status == 404 and r.code == "NAMESPACE_NOT_FOUND"
