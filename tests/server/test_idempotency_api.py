"""Idempotency-Key over HTTP, in process: replays byte for byte, 422 on reuse, what is and is not
recorded, keys scoped per API key, and every write route. (Crashes and races against a live
2-worker server: tests/server/test_idempotency_live.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server import create_app
from server.routes import TABLE
from tests.conftest import fingerprint
from tests.server.conftest import Client
from tests.server.test_auth import write_keys

NS = "/v4/storage/s"


def idem(key: str, **more: str) -> dict[str, str]:
    return {"Idempotency-Key": key, **more}


def test_a_retry_gets_the_first_answer_byte_for_byte_and_writes_nothing(client: Client) -> None:
    first = client.write("s", [{"key": "a", "value": 1}], headers=idem("k-1"))
    assert first.status == 200 and first.json()["tx"] == 1 and "idempotent-replayed" not in first.headers
    before = fingerprint(client.app.store)
    again = client.write("s", [{"key": "a", "value": 1}], headers=idem('"k-1"'))  # the quoted form is the same key
    assert (again.status, again.body, again.headers["idempotent-replayed"]) == (200, first.body, "true")
    assert fingerprint(client.app.store) == before


def test_the_same_key_for_another_request_is_422(client: Client) -> None:
    client.write("s", [{"key": "a", "value": 1}], headers=idem("k"))
    before = fingerprint(client.app.store)
    for kw in ({"json": [{"key": "a", "value": 2}]}, {"json": [{"key": "a", "value": 1}], "query": "atomic=false"},
               {"json": [{"key": "a", "value": 1}], "headers": idem("k", **{"X-Strata-Note": '{"by": "x"}'})}):
        headers = kw.pop("headers", idem("k"))
        r = client.post(f"{NS}/write", headers=headers, **kw)
        assert r.status == 422 and r.code == "IDEMPOTENCY_KEY_REUSED", kw
        assert r.json()["errors"] == [{"location": "header.Idempotency-Key",
                                       "message": "already used for a different request", "value": "k"}]
    r = client.post("/v4/storage/other/write", json=[{"key": "a", "value": 1}], headers=idem("k"))
    assert r.status == 422  # another path is another request
    assert fingerprint(client.app.store) == before


def test_a_failed_condition_is_recorded_but_a_validation_error_is_not(client: Client) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    first = client.write("s", [{"key": "a", "value": 2, "if_none_match": "*"}], headers=idem("c"))
    assert first.status == 412
    client.post(f"{NS}/delete", json=["a"])  # the condition would hold now: the retry still gets the 412
    again = client.write("s", [{"key": "a", "value": 2, "if_none_match": "*"}], headers=idem("c"))
    assert (again.status, again.body, again.headers["idempotent-replayed"]) == (412, first.body, "true")
    bad = client.write("s", [{"key": "", "value": 1}], headers=idem("v"))
    assert bad.status == 400
    fixed = client.write("s", [{"key": "", "value": 1}], headers=idem("v"))
    assert fixed.status == 400 and "idempotent-replayed" not in fixed.headers  # run again, not replayed


def test_partial_writes_record_their_answer(client: Client) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    items = [{"key": "a", "value": 2, "if_match": 5}, {"key": "b", "value": 1}]
    first = client.write("s", items, query="atomic=false", headers=idem("p"))
    assert first.json()["tx"] == 2 and first.json()["failed"] == 1
    again = client.write("s", items, query="atomic=false", headers=idem("p"))
    assert again.body == first.body and client.app.store.latest_tx == 2
    # Every item failing its condition: nothing written, the answer recorded all the same.
    none = [{"key": "a", "value": 3, "if_match": 9}]
    first = client.write("s", none, query="atomic=false", headers=idem("q"))
    assert first.json()["tx"] is None
    client.write("s", [{"key": "a", "value": 4}])
    assert client.write("s", none, query="atomic=false", headers=idem("q")).body == first.body


#: Routes that change what the store holds but take no Idempotency-Key: whole-store operations,
#: themselves safe to retry (a compaction to a horizon already reached does nothing; a backup to a
#: name already taken is a 409 that writes nothing).
NOT_WRITES = {("POST", "/v4/admin/compact"), ("POST", "/v4/admin/backup")}


def write_routes() -> set[tuple[str, str]]:
    """Every route that may write, from the route table: any method but GET and HEAD that needs more
    than the read scope (the auth test holds each route's scope to its promise)."""
    return {(method, path) for path, method, _, scope in TABLE
            if method not in ("GET", "HEAD") and scope not in (None, "read")} - NOT_WRITES


def test_every_write_route_replays(client: Client) -> None:
    """Each write route, sent twice under one key: the same status and bytes, replayed, no new tx.
    A new write route fails this test until it takes Idempotency-Key and has a call here."""
    calls: list[tuple[str, str, str, dict[str, Any]]] = [
        ("POST", "/v4/storage/{storage}/write", f"{NS}/write", {"json": [{"key": "a", "value": 1}]}),
        ("POST", "/v4/storage/{storage}/delete", f"{NS}/delete", {"json": {"keys": ["a"]}}),
        ("POST", "/v4/storage/{storage}/key", f"{NS}/key",
         {"query": "key=b", "body": b"\x00raw", "content_type": "application/octet-stream"}),
        ("DELETE", "/v4/storage/{storage}/key", f"{NS}/key", {"query": "key=b"}),
        ("POST", "/v4/storage/{storage}/revert", f"{NS}/revert", {"json": {"to_tx": 1}}),
        ("POST", "/v4/namespace/storage", "/v4/namespace/storage", {"json": {"namespace": "made"}}),
        ("DELETE", "/v4/namespace/storage/{name}", "/v4/namespace/storage/made", {}),
        ("DELETE", "/v4/namespace/storage/{name}", "/v4/namespace/storage/made", {}),  # a 404, recorded too
        ("POST", "/v4/stream/{stream}/write", "/v4/stream/st/write", {"json": [{"data": {"n": 1}}]}),
        ("POST", "/v4/namespace/stream", "/v4/namespace/stream", {"json": {"namespace": "st"}}),  # a 409
        ("DELETE", "/v4/namespace/stream/{name}", "/v4/namespace/stream/st", {}),
        ("DELETE", "/v4/namespace/stream/{name}", "/v4/namespace/stream/st", {}),  # a 404, recorded too
    ]
    assert {(method, template) for method, template, _, _ in calls} == write_routes()
    statuses = []
    for i, (method, _, path, kw) in enumerate(calls):
        first = client.request(method, path, headers=idem(f"r{i}"), **kw)
        tx = client.app.store.latest_tx
        again = client.request(method, path, headers=idem(f"r{i}"), **kw)
        assert (again.status, again.body) == (first.status, first.body), path
        assert again.headers["idempotent-replayed"] == "true" and client.app.store.latest_tx == tx
        assert again.headers.get("etag") == first.headers.get("etag")
        statuses.append(first.status)
    assert statuses == [200, 200, 200, 200, 200, 201, 200, 404, 200, 409, 200, 404]
    assert client.app.store.latest_tx == 7  # write, delete, put, delete, revert, publish, stream drop


def test_a_publish_retried_publishes_once(client: Client) -> None:
    events = [{"data": {"n": 1}}, {"data": "AAE=", "binary": True}]
    first = client.post("/v4/stream/st/write", json=events, headers=idem("pub"))
    assert first.status == 200 and first.json()["tx"] == 1 and first.json()["count"] == 2
    before = fingerprint(client.app.store)
    again = client.post("/v4/stream/st/write", json=events, headers=idem("pub"))
    assert (again.status, again.body, again.headers["idempotent-replayed"]) == (200, first.body, "true")
    reused = client.post("/v4/stream/st/write", json=events[:1], headers=idem("pub"))
    assert reused.status == 422 and reused.code == "IDEMPOTENCY_KEY_REUSED"
    assert fingerprint(client.app.store) == before
    assert client.get("/v4/stream/st", query="start_tx=0").json()["count"] == 2
    bad = client.post("/v4/stream/st/write", json=[{"data": 1, "binary": True}], headers=idem("bad"))
    assert bad.status == 400  # refused before the write: not recorded, the fixed request runs
    fixed = client.post("/v4/stream/st/write", json=[{"data": 1}], headers=idem("bad"))
    assert (fixed.status, fixed.json()["tx"]) == (200, 2) and "idempotent-replayed" not in fixed.headers


def test_a_revert_retried_reverts_once_and_its_refusals_are_recorded(client: Client) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    client.write("s", [{"key": "a", "value": 2}, {"key": "b", "value": 3}])
    first = client.post(f"{NS}/revert", json={"to_tx": 1}, headers=idem("rv"))
    assert (first.status, first.json()["tx"], first.json()["count"]) == (200, 3, 2)
    client.write("s", [{"key": "a", "value": 5}])  # a second revert to 1 would write again; the retry does not
    before = fingerprint(client.app.store)
    again = client.post(f"{NS}/revert", json={"to_tx": 1}, headers=idem("rv"))
    assert (again.status, again.body, again.headers["idempotent-replayed"]) == (200, first.body, "true")
    assert fingerprint(client.app.store) == before
    future = client.post(f"{NS}/revert", json={"to_tx": 9}, headers=idem("future"))
    assert future.status == 400 and future.code == "FUTURE_TX"
    for _ in range(5):
        client.write("s", [{"key": "c", "value": 1}])  # tx 9 exists now: the retry still gets the first answer
    retried = client.post(f"{NS}/revert", json={"to_tx": 9}, headers=idem("future"))
    assert (retried.status, retried.body, retried.headers["idempotent-replayed"]) == (400, future.body, "true")


def test_a_dry_run_with_a_key_records_nothing(client: Client) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    client.write("s", [{"key": "a", "value": 2}])
    before = fingerprint(client.app.store)
    dry = client.post(f"{NS}/revert", json={"to_tx": 1, "dry_run": True}, headers=idem("d"))
    assert dry.status == 200 and dry.json()["count"] == 1 and "idempotent-replayed" not in dry.headers
    assert fingerprint(client.app.store) == before  # no record, no tx
    client.write("s", [{"key": "b", "value": 1}])
    fresh = client.post(f"{NS}/revert", json={"to_tx": 1, "dry_run": True}, headers=idem("d"))
    assert fresh.json()["count"] == 2 and "idempotent-replayed" not in fresh.headers  # today's diff, not replayed
    real = client.post(f"{NS}/revert", json={"to_tx": 1}, headers=idem("d"))  # the key is still free
    assert (real.status, real.json()["tx"], real.json()["count"]) == (200, 4, 2)
    after = client.post(f"{NS}/revert", json={"to_tx": 1, "dry_run": True}, headers=idem("d"))
    assert (after.status, after.json()["count"]) == (200, 0)  # not looked up: no 422 for the used key
    bad = client.post(f"{NS}/revert", json={"to_tx": 1, "dry_run": True}, headers=idem("a b"))
    assert bad.status == 400 and bad.json()["errors"][0]["location"] == "header.Idempotency-Key"
@pytest.mark.parametrize("key", ["", "a b", "x" * 256, "caf\u00e9"])
def test_bad_keys_are_400(client: Client, key: str) -> None:
    r = client.write("s", [{"key": "a", "value": 1}],
                     environ={"HTTP_IDEMPOTENCY_KEY": key.encode().decode("latin-1")})
    assert r.status == 400 and r.json()["errors"][0]["location"] == "header.Idempotency-Key"
    assert client.app.store.latest_tx == 0


def test_keys_are_scoped_per_api_key(tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "keys.json", [{"key": "alice-0123456789abcdef", "scope": "write"},
                                               {"key": "bob-0123456789abcdefgh", "scope": "write"}])
    app = create_app(tmp_path / "data", keys_file=keys, sync=False)
    try:
        alice, bob = Client(app, "alice-0123456789abcdef"), Client(app, "bob-0123456789abcdefgh")
        assert alice.write("s", [{"key": "a", "value": 1}], headers=idem("same")).json()["tx"] == 1
        assert bob.write("s", [{"key": "a", "value": 2}], headers=idem("same")).json()["tx"] == 2
        assert alice.write("s", [{"key": "a", "value": 1}], headers=idem("same")).json()["tx"] == 1
    finally:
        app.close()
