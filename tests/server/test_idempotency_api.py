"""Idempotency-Key over HTTP, in process: replays byte for byte, 422 on reuse, what is and is not
recorded, keys scoped per API key, and every write route. (Crashes and races against a live
2-worker server: tests/server/test_idempotency_live.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server import create_app
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


def test_every_write_route_replays(client: Client) -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", f"{NS}/write", {"json": [{"key": "a", "value": 1}]}),
        ("POST", f"{NS}/delete", {"json": {"keys": ["a"]}}),
        ("POST", f"{NS}/key", {"query": "key=b", "body": b"\x00raw", "content_type": "application/octet-stream"}),
        ("DELETE", f"{NS}/key", {"query": "key=b"}),
        ("POST", "/v4/namespace/storage", {"json": {"namespace": "made"}}),
        ("DELETE", "/v4/namespace/storage/made", {}),
        ("DELETE", "/v4/namespace/storage/made", {}),  # another key: a 404, recorded too
    ]
    for i, (method, path, kw) in enumerate(calls):
        first = client.request(method, path, headers=idem(f"r{i}"), **kw)
        tx = client.app.store.latest_tx
        again = client.request(method, path, headers=idem(f"r{i}"), **kw)
        assert (again.status, again.body) == (first.status, first.body), path
        assert again.headers["idempotent-replayed"] == "true" and client.app.store.latest_tx == tx
        assert again.headers.get("etag") == first.headers.get("etag")
    assert client.app.store.latest_tx == 4


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
