"""API keys, exactly: the detail of every 401 and 403, a key's default name, the shortest secret
accepted, and malformed entries refused with the message that names them."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from server.auth import MIN_KEY_LENGTH, ApiKey, KeyRing, KeysFileError, parse_entry
from server.problems import HTTPProblem

SECRET = "reader-key-0123456789"
CHALLENGE = [("WWW-Authenticate", 'Bearer realm="strata"')]


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing([parse_entry({"name": "reader", "key": SECRET, "scope": "read"}, 0),
                    parse_entry({"name": "scoped", "key": SECRET + "-s", "scope": "admin", "namespaces": ["mine"]}, 1)])


def problem(call: Any, *args: Any) -> HTTPProblem:
    with pytest.raises(HTTPProblem) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearerx " + SECRET])
def test_no_bearer_token_is_401_with_advice_and_the_challenge(ring: KeyRing, header: str | None) -> None:
    p = problem(ring.authenticate, header)
    assert (p.status, p.code, p.detail) == (401, "UNAUTHORIZED",
                                            "missing bearer token: send 'Authorization: Bearer <key>'")
    assert p.headers == CHALLENGE


@pytest.mark.parametrize("token", ["nope-nope-nope-nope", SECRET + "x", "\udcff\udcfe-not-utf-8-encodable"])
def test_an_unknown_key_is_401_whatever_its_bytes(ring: KeyRing, token: str) -> None:
    # A header gunicorn could not decode carries lone surrogates: it is an unknown key, not a crash.
    p = problem(ring.authenticate, f"Bearer {token}")
    assert (p.status, p.code, p.detail, p.headers) == (401, "UNAUTHORIZED", "unknown API key", CHALLENGE)


def test_a_known_key_is_found_with_its_name_and_scope(ring: KeyRing) -> None:
    key = ring.authenticate(f"bearer  {SECRET} ")
    assert (key.name, key.scope, key.namespaces) == ("reader", "read", None)


def test_403_details_name_the_key_the_scope_and_the_namespace(ring: KeyRing) -> None:
    reader, scoped = ring.authenticate(f"Bearer {SECRET}"), ring.authenticate(f"Bearer {SECRET}-s")
    p = problem(KeyRing.authorize, reader, "write", None)
    assert (p.status, p.code, p.detail) == (403, "FORBIDDEN", "API key 'reader' has scope 'read'; this needs 'write'")
    p = problem(KeyRing.authorize, scoped, "read", "other")
    assert (p.status, p.code, p.detail) == (403, "FORBIDDEN", "API key 'scoped' may not use namespace 'other'")
    KeyRing.authorize(scoped, "admin", "mine")
    KeyRing.authorize(reader, "read", "anything")


def test_a_key_without_a_name_is_named_by_its_position() -> None:
    entry = {"key": SECRET, "scope": "write"}
    assert parse_entry(entry, 3) == ApiKey("key-3", "write", None, hashlib.sha256(SECRET.encode()).digest())
    assert parse_entry({**entry, "name": "ingest"}, 3).name == "ingest"


def test_the_shortest_secret_accepted_is_the_minimum_length() -> None:
    assert parse_entry({"key": "k" * MIN_KEY_LENGTH, "scope": "read"}, 0).scope == "read"
    with pytest.raises(KeysFileError, match=r"^keys\[0\]\.key must be a string of at least 16 characters$"):
        parse_entry({"key": "k" * (MIN_KEY_LENGTH - 1), "scope": "read"}, 0)


@pytest.mark.parametrize(("entry", "message"), [
    ([], "keys[2] must be an object"),
    ({"name": 7, "key": SECRET, "scope": "read"}, "keys[2].name must be a string"),
    ({"key_sha256": 123, "scope": "read"}, "keys[2].key_sha256 must be 64 hex digits"),
    ({"key_sha256": "ab" * 31, "scope": "read"}, "keys[2].key_sha256 must be 64 hex digits"),
    ({"key_sha256": "zz" * 32, "scope": "read"}, "keys[2].key_sha256 must be 64 hex digits"),
])
def test_malformed_entries_are_refused_by_position(entry: Any, message: str) -> None:
    with pytest.raises(KeysFileError) as caught:
        parse_entry(entry, 2)
    assert str(caught.value) == message


def test_the_same_secret_twice_is_refused_even_under_two_names() -> None:
    hashed = hashlib.sha256(SECRET.encode()).hexdigest()
    entries = [parse_entry({"name": "a", "key": SECRET, "scope": "read"}, 0),
               parse_entry({"name": "b", "key_sha256": hashed, "scope": "admin"}, 1)]
    with pytest.raises(KeysFileError) as caught:
        KeyRing(entries)
    assert str(caught.value) == "the same key is listed twice"
