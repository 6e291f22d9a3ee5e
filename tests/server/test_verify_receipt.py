"""Answers that must not claim more than the store holds: a receipt past the head, and a delete
that changes nothing (it takes no tx and answers with the current one)."""

from __future__ import annotations

from tests.conftest import fingerprint

from .conftest import Client


def test_verify_with_a_receipt_past_the_head_is_future_tx(client: Client) -> None:
    for i in range(6):
        client.write("s", [{"key": "a", "value": i}])
    head = client.get("/v4/head").json()
    before = fingerprint(client.app.store)
    r = client.get("/v4/verify", query={"receipt_tx": "50", "receipt_hash": head["hash"]})
    assert r.status == 400 and r.code == "FUTURE_TX", r
    assert r.json()["tx"] == 50 and r.json()["latest_tx"] == 6
    assert fingerprint(client.app.store) == before
    at_head = client.get("/v4/verify", query={"receipt_tx": "6", "receipt_hash": head["hash"]}).json()
    assert at_head["ok"] is True and at_head["checked"] == 6


def test_delete_of_a_key_never_written_answers_the_current_tx(client: Client) -> None:
    assert client.write("s", [{"key": "a", "value": 1}]).json()["tx"] == 1
    r = client.delete("/v4/storage/s/key", query={"key": "never"})
    assert r.status == 200 and r.json()["tx"] == 1
    assert client.get("/v4/head").json()["tx"] == 1
    history = client.get("/v4/storage/s/history", query={"key": "never"}).json()
    assert history["data"] == [] and history["count"] == 0
    assert client.get("/v4/tx/2").status == 404
    # a bulk delete with one real key logs only that key
    r = client.post("/v4/storage/s/delete", json=["never", "a"])
    assert r.status == 200 and r.json()["tx"] == 2
    assert [op["key"] for op in client.get("/v4/tx/2").json()["operations"]] == ["a"]


def test_dropping_an_empty_namespace_takes_no_tx(client: Client) -> None:
    assert client.post("/v4/namespace/storage", json={"namespace": "empty"}).status == 201
    client.write("s", [{"key": "a", "value": 1}])
    r = client.delete("/v4/namespace/storage/empty")
    assert r.status == 200 and r.json()["tx"] == 1
    assert client.get("/v4/namespace/storage/empty").status == 404
    assert client.get("/v4/head").json()["tx"] == 1
