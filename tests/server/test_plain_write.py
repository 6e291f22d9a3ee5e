"""The plain 1-item write (``[{"key", "value"}]``, atomic, no note, no idempotency key) takes a
shorter path through the handler: the same answers, the same refusals, the engine's one-key put."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine import Limits, one_key
from server.app import App, create_app
from tests.conftest import fingerprint
from tests.server.conftest import Client, Response

NOTE = {"X-Strata-Note": '{"by": "test"}'}  # a note sends a write down the general path
BODIES = [
    b'[{"key":"a","value":"x"}]',
    b'[{"value":{"n":[1,2.5,null,true]},"key":"a"}]',
    b'[{"key":"a","value":null}]',
    b'[{"key":"a","value":1,"value":2}]',  # a repeated member: the last one counts, on both paths
    b'[{"key":"a","value":"' + b"v" * 200 + b'"}]',  # over the store's max_value_bytes: the engine refuses
    b'[{"key":"","value":1}]',
    b'[{"key":"' + b"k" * 513 + b'","value":1}]',
    b'[{"key":7,"value":1}]',
    b'[{"key":"a","binary":true}]',
    b'[{"key":"a","value":"eA==","binary":true}]',
    b'[{"key":"a","value":12345678901234567890123}]',
    b'[{"key":"a","value":1e400}]',
    b'[{"key":"a","value":"\\ud800"}]',
    b'[{"key":"a\\u0000b","value":1}]',
    b'[{"key":"a","value":NaN}]',
    b'{"key":"a","value":1}',
    b'[["a",1]]',
    b"[]",
]


@pytest.fixture
def small_app(tmp_path: Path) -> Iterator[App]:
    application = create_app(tmp_path / "data", sync=False, store_options={"limits": Limits(max_value_bytes=100)})
    yield application
    application.close()


def _without_duration(r: Response) -> Any:
    body = r.json()
    if r.status == 200:
        assert re.fullmatch(rb'\{"tx":\d+,"count":1,"duration":"\d+\.\d{6}ms"\}', r.body), r.body
        del body["duration"]
    return body


def _without_length(r: Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k != "content-length" or r.status != 200}


@pytest.mark.parametrize("raw", BODIES, ids=lambda raw: raw[:40].decode())
def test_a_plain_write_answers_as_the_general_path(tmp_path: Path, raw: bytes) -> None:
    limits = {"limits": Limits(max_value_bytes=100)}
    plain_app = create_app(tmp_path / "plain", sync=False, store_options=limits)
    general_app = create_app(tmp_path / "general", sync=False, store_options=limits)
    try:
        plain = Client(plain_app).post("/v4/storage/s/write", body=raw, content_type="application/json")
        general = Client(general_app).post("/v4/storage/s/write", body=raw, content_type="application/json",
                                           headers=NOTE)
        assert plain.status == general.status
        # The duration's digits vary with the machine's speed, and with them the length of a 200.
        assert _without_length(plain) == _without_length(general)
        assert plain.headers["content-length"] == str(len(plain.body))
        assert _without_duration(plain) == _without_duration(general)
        if plain.status != 200:
            assert plain.body == general.body
        else:
            read = [Client(a).post("/v4/storage/s/read", json=["a"]).json()["data"] for a in (plain_app, general_app)]
            assert read[0] == read[1]
    finally:
        plain_app.close()
        general_app.close()


def test_a_plain_write_takes_the_engines_one_key_path(small_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    commit = one_key.commit

    def counted(*args: Any) -> int:
        calls.append(args[1:5])
        return commit(*args)

    monkeypatch.setattr(one_key, "commit", counted)
    client = Client(small_app)
    r = client.post("/v4/storage/s/write", body=b'[{"key":"k","value":"v"}]', content_type="application/json")
    assert r.status == 200 and r.json()["tx"] == 1 and r.json()["count"] == 1, r
    assert calls == [("s", "k", b"k", b"\xa1v")]
    assert client.read("s", ["k"]).json()["data"] == [{"key": "k", "value": "v", "tx": 1, "binary": False}]


def test_a_refused_plain_write_changes_nothing(small_app: App) -> None:
    client = Client(small_app)
    assert client.write("s", [{"key": "k", "value": 1}]).status == 200
    before = fingerprint(small_app.store)
    r = client.write("s", [{"key": "k", "value": "v" * 200}])
    assert r.status == 400 and r.code == "VALUE_TOO_LARGE", r
    assert orjson.loads(r.body)["errors"] == [
        {"location": "/0/value", "message": r.json()["errors"][0]["message"], "value": "v" * 200, "index": 0,
         "key": "k", "code": "VALUE_TOO_LARGE"}]
    assert fingerprint(small_app.store) == before
