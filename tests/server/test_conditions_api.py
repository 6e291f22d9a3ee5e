"""Conditional writes over HTTP: item conditions in write and delete, ETag / If-Match / If-None-Match
on single keys, HEAD, exact 412 problems, and nothing written by a refused request."""

from __future__ import annotations

from typing import Any

from tests.conftest import fingerprint
from tests.server.conftest import Client

NS = "/v4/storage/s"


def key_url(client: Client, method: str, key: str, **kw: Any) -> Any:
    return client.request(method, f"{NS}/key", query={"key": key}, **kw)


def test_atomic_write_with_conditions_commits_when_they_hold(client: Client) -> None:
    assert client.write("s", [{"key": "a", "value": 1}, {"key": "c", "value": 0}]).json()["tx"] == 1
    client.write("s", [{"key": "c"}])  # tx 2: cleared, so it has a record
    r = client.write("s", [{"key": "a", "value": 2, "if_match": 1}, {"key": "b", "value": 1, "if_none_match": "*"},
                           {"key": "c", "value": 5, "if_match": 2}])
    assert r.status == 200 and r.json()["tx"] == 3


def test_atomic_write_with_a_failed_condition_is_412_and_writes_nothing(client: Client) -> None:
    client.write("s", [{"key": "a", "value": 1}, {"key": "b", "value": 1}])
    before = fingerprint(client.app.store)
    r = client.write("s", [{"key": "a", "value": 2, "if_match": 7}, {"key": "ok", "value": 1},
                           {"key": "b", "value": 2, "if_none_match": "*"}, {"key": "new", "value": 1, "if_match": 1}])
    assert r.status == 412 and r.code == "CONFLICT"
    doc = r.json()
    assert doc["detail"] == "3 of 4 items failed their condition; nothing was written"
    assert doc["errors"] == [
        {"location": "/0/if_match", "message": "the key's record was to be at tx 7, but its record is at tx 1",
         "value": 7, "index": 0, "key": "a", "code": "CONFLICT", "expected": 7, "found": 1},
        {"location": "/2/if_none_match", "message": "the key was to have no record, but its record is at tx 1",
         "value": "*", "index": 2, "key": "b", "code": "CONFLICT", "expected": "*", "found": 1},
        {"location": "/3/if_match", "message": "the key's record was to be at tx 1, but it has no record",
         "value": 1, "index": 3, "key": "new", "code": "CONFLICT", "expected": 1, "found": None}]
    assert fingerprint(client.app.store) == before


def test_partial_write_sets_failed_conditions_aside_and_commits_the_rest(client: Client) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    r = client.write("s", [{"key": "a", "value": 2, "if_match": 9}, {"key": "b", "value": 1, "if_none_match": "*"},
                           {"key": "", "value": 1}], query="atomic=false")
    body = r.json()
    assert r.status == 200 and (body["tx"], body["succeeded"], body["failed"]) == (2, 1, 2)
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(0, "CONFLICT"), (2, "INVALID_KEY")]
    assert body["errors"][0] == {"index": 0, "key": "a", "code": "CONFLICT", "location": "/0/if_match", "value": 9,
                                 "message": "the key's record was to be at tx 9, but its record is at tx 1",
                                 "expected": 9, "found": 1}
    assert client.read("s", ["a", "b"]).json()["data"] == [
        {"key": "a", "value": 1, "tx": 1, "binary": False}, {"key": "b", "value": 1, "tx": 2, "binary": False}]


def test_bad_conditions_are_400_per_item(client: Client) -> None:
    r = client.write("s", [{"key": "a", "value": 1, "if_match": 0}, {"key": "b", "value": 1, "if_none_match": "5"},
                           {"key": "c", "value": 1, "if_match": 1, "if_none_match": "*"},
                           {"key": "d", "value": 1, "if_match": True}])
    assert r.status == 400 and r.code == "INVALID_PARAMETERS"
    assert [(e["location"], e["index"]) for e in r.json()["errors"]] == [
        ("/0/if_match", 0), ("/1/if_none_match", 1), ("/2/if_none_match", 2), ("/3/if_match", 3)]


def test_delete_items_take_conditions(client: Client) -> None:
    client.write("s", [{"key": "a", "value": 1}, {"key": "b", "value": 1}])
    before = fingerprint(client.app.store)
    r = client.post(f"{NS}/delete", json={"keys": ["b", {"key": "a", "if_match": 2}]})
    assert r.status == 412 and r.json()["errors"] == [
        {"location": "/keys/1/if_match", "message": "the key's record was to be at tx 2, but its record is at tx 1",
         "value": 2, "index": 1, "key": "a", "code": "CONFLICT", "expected": 2, "found": 1}]
    assert fingerprint(client.app.store) == before
    r = client.post(f"{NS}/delete", json=[{"key": "a", "if_match": 1}, {"key": "gone", "if_none_match": "*"}])
    assert r.status == 200 and r.json()["tx"] == 2
    r = client.post(f"{NS}/delete", json=["b", {"key": "a", "nope": 1}])
    assert r.status == 400 and r.json()["errors"][0]["location"] == "/1/nope"


def test_get_answers_an_etag_and_304_for_a_matching_if_none_match(client: Client) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    client.write("s", [{"key": "c"}])
    r = key_url(client, "GET", "a")
    assert r.status == 200 and r.headers["etag"] == '"1"'
    assert key_url(client, "GET", "c").headers["etag"] == '"2"'  # a cleared key has a record
    for header in ('"1"', 'W/"1"', '"7", "1"', "*"):
        r = key_url(client, "GET", "a", headers={"If-None-Match": header})
        assert (r.status, r.body, r.headers["etag"]) == (304, b"", '"1"'), header
    assert key_url(client, "GET", "a", headers={"If-None-Match": '"2"'}).status == 200
    r = key_url(client, "GET", "a", headers={"If-None-Match": "1"})
    assert r.status == 400 and r.json()["errors"][0]["location"] == "header.If-None-Match"
    assert key_url(client, "GET", "nope", headers={"If-None-Match": "*"}).status == 404


def test_head_answers_gets_status_and_headers_without_a_body(client: Client) -> None:
    client.write("s", [{"key": "a", "value": {"x": 1}}])
    get, head = key_url(client, "GET", "a"), key_url(client, "HEAD", "a")
    assert (head.status, head.body, head.headers["etag"]) == (200, b"", '"1"')
    # The same answer but for its duration, whose whole milliseconds take one digit or more (more on a busy
    # machine): the lengths agree once each side's duration is left out.
    without_duration = len(get.body) - len(get.json()["duration"])
    assert int(head.headers["content-length"]) - without_duration in range(len("0.000000ms"), len("99999.000000ms"))
    missing = key_url(client, "HEAD", "nope")
    assert (missing.status, missing.body, missing.headers["content-type"]) == (404, b"", "application/problem+json")
    assert int(missing.headers["content-length"]) == len(key_url(client, "GET", "nope").body)


def test_single_key_writes_honour_if_match_and_if_none_match(client: Client) -> None:
    r = key_url(client, "POST", "a", json=1, headers={"If-None-Match": "*"})
    assert (r.status, r.json()["tx"], r.headers["etag"]) == (200, 1, '"1"')
    before = fingerprint(client.app.store)
    r = key_url(client, "POST", "a", json=2, headers={"If-None-Match": "*"})
    assert r.status == 412 and r.json()["errors"] == [
        {"location": "header.If-None-Match", "message": "the key was to have no record, but its record is at tx 1",
         "value": "*", "key": "a", "code": "CONFLICT", "expected": "*", "found": 1}]
    r = key_url(client, "DELETE", "a", headers={"If-Match": '"5"'})
    assert r.status == 412 and r.json()["errors"][0]["expected"] == 5
    assert fingerprint(client.app.store) == before
    assert key_url(client, "POST", "a", json=2, headers={"If-Match": '"1"'}).json()["tx"] == 2
    assert key_url(client, "DELETE", "a", headers={"If-Match": '"2"'}).json()["tx"] == 3
    r = key_url(client, "POST", "a", json=3, headers={"If-Match": '"2"'})
    assert r.status == 412 and r.json()["errors"][0]["found"] is None


def test_bad_condition_headers_are_400(client: Client) -> None:
    for headers, where in (({"If-Match": "1"}, "header.If-Match"), ({"If-Match": '"0"'}, "header.If-Match"),
                           ({"If-Match": "*"}, "header.If-Match"), ({"If-None-Match": '"1"'}, "header.If-None-Match"),
                           ({"If-Match": '"1"', "If-None-Match": "*"}, "header.If-None-Match")):
        r = key_url(client, "POST", "a", json=1, headers=headers)
        assert r.status == 400 and r.json()["errors"][0]["location"] == where, headers
    assert client.app.store.latest_tx == 0
