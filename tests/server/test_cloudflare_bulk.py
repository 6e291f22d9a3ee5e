"""Cloudflare's bulk write shape: ``"base64": true`` is the ``binary`` flag under Cloudflare's name,
and partial-success answers name the ``unsuccessful_keys`` beside the per-item errors."""

from __future__ import annotations

from tests.conftest import fingerprint
from tests.server.conftest import Client


def test_base64_is_the_binary_flag(client: Client) -> None:
    r = client.write("s", [{"key": "a", "value": "AP8=", "base64": True},
                           {"key": "b", "value": "AP8=", "base64": False},
                           {"key": "c", "value": "AP8=", "binary": True, "base64": True},
                           {"key": "d", "value": "AP8=", "base64": True, "expiration_ttl": 60, "metadata": {"m": 1}}])
    assert (r.status, r.json()["tx"], r.json()["count"]) == (200, 1, 4)
    records = client.app.store.namespace("s").read(["a", "b", "c", "d"]).records
    assert [(rec.key, rec.value) for rec in records] == [("a", b"\x00\xff"), ("b", "AP8="), ("c", b"\x00\xff"),
                                                         ("d", b"\x00\xff")]


def test_binary_and_base64_that_disagree_are_refused(client: Client) -> None:
    before = fingerprint(client.app.store)
    r = client.write("s", [{"key": "a", "value": "AP8=", "binary": True, "base64": False},
                           {"key": "b", "value": "AP8=", "base64": "yes"},
                           {"key": "c", "value": "%%", "base64": True}])
    doc = r.json()
    assert (r.status, doc["code"], doc["detail"]) == (400, "INVALID_PARAMETERS",
                                                       "3 of 3 items are invalid; nothing was written")
    assert [(e["location"], e["message"], e["value"]) for e in doc["errors"]] == [
        ("/0/base64", "binary and base64 are one flag under two names (base64 is Cloudflare's); they disagree "
                      "here: give one of them", False),
        ("/1/base64", "base64 must be true or false", "yes"),
        ("/2/value", "a binary value must be a base64 string", "%%")]
    assert fingerprint(client.app.store) == before


def test_partial_success_lists_the_unsuccessful_keys(client: Client) -> None:
    r = client.write("s", [{"key": "a", "value": 1}, {"key": "", "value": 2}, {"value": 3},
                           {"key": "b", "value": "%%", "base64": True}, {"key": "a", "value": 4},
                           {"key": "c", "value": 5, "expiration_ttl": 0.5}, {"key": "b", "value": 6}],
                     query="atomic=false")
    doc = r.json()
    assert (r.status, doc["tx"], doc["succeeded"], doc["failed"]) == (200, 1, 2, 5)
    assert [e["index"] for e in doc["errors"]] == [1, 2, 3, 4, 5]
    # "a" was written by item 0 (its duplicate, item 4, failed); "b" by item 6 (item 3 failed).
    assert doc["unsuccessful_keys"] == ["", "c"]
    r = client.write("s", [{"key": "x", "value": 1, "binary": True}, {"key": "y", "value": 1, "ttl": 3}],
                     query="atomic=false")
    assert (r.json()["tx"], r.json()["unsuccessful_keys"]) == (None, ["x", "y"])
