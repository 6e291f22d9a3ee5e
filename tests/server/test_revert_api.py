"""``POST /v4/storage/{storage}/revert`` in-process: answers, dry runs, notes, and every refusal."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson

from server import create_app
from tests.conftest import fingerprint
from tests.server.conftest import Client


def _revert(client: Client, body: Any, ns: str = "s", **kw: Any) -> Any:
    return client.post(f"/v4/storage/{ns}/revert", json=body, **kw)


def _timeline(client: Client) -> None:
    """tx 1: a=1, b=bytes, c="x"; tx 2: a with expiry and metadata, c cleared, d added; tx 3: b deleted."""
    client.write("s", [{"key": "a", "value": 1}, {"key": "b", "value": base64.b64encode(b"\x00").decode(),
                                                   "binary": True}, {"key": "c", "value": "x"}])
    client.write("s", [{"key": "a", "value": 2, "expiration": 4102444800, "metadata": {"by": "alice"}},
                       {"key": "c"}, {"key": "d", "value": [4]}])
    client.post("/v4/storage/s/delete", json=["b"])


def _data(client: Client) -> Any:
    return client.post("/v4/storage/s/read", json={"keys": ["a", "b", "c", "d"], "metadata": True,
                                                   "fields": ["expire_time"]}).json()["data"]


def test_revert_answers_the_tx_and_count_and_reads_as_at_to_tx(client: Client) -> None:
    _timeline(client)
    r = _revert(client, {"to_tx": 1}, headers={"X-Strata-Note": '{"by": "ops"}'})
    assert r.status == 200
    assert {k: v for k, v in r.json().items() if k != "duration"} == {"tx": 4, "count": 4}
    assert [(d["key"], d.get("value"), d["tx"], d.get("binary"), d.get("metadata")) for d in _data(client)] == [
        ("a", 1, 4, False, None), ("b", "AA==", 4, True, None), ("c", "x", 4, False, None)]
    assert client.get("/v4/tx/4").json()["note"] == {"by": "ops", "revert": {"to_tx": 1}}
    again = _revert(client, {"to_tx": 1}).json()
    assert (again["tx"], again["count"]) == (4, 0)  # nothing differs: no tx


def test_dry_run_answers_the_diff_with_metadata_and_expiry_and_writes_nothing(client: Client) -> None:
    _timeline(client)
    store = client.app.store
    before = fingerprint(store)
    r = _revert(client, {"to_tx": 2, "dry_run": True, "keys": ["a", "b", "zz"]})
    assert fingerprint(store) == before
    body = r.json()
    del body["duration"]
    assert body == {"data": [{"key": "b", "kind": "added", "before": None,
                              "after": {"key": "b", "value": "AA==", "tx": 1, "binary": True, "metadata": None,
                                        "expire_time": None}}],
                    "count": 1, "from_tx": 3, "to_tx": 2}
    r = _revert(client, {"to_tx": 0, "dry_run": True, "prefix": "a"}).json()
    assert r["data"] == [{"key": "a", "kind": "deleted", "after": None,
                          "before": {"key": "a", "value": 2, "tx": 2, "binary": False, "metadata": {"by": "alice"},
                                     "expire_time": "2100-01-01T00:00:00Z"}}]
    assert fingerprint(store) == before


def test_revert_of_keys_and_prefix_leaves_the_rest(client: Client) -> None:
    _timeline(client)
    assert _revert(client, {"to_tx": 1, "keys": ["c", "d"]}).json()["count"] == 2
    assert client.get("/v4/tx/4").json()["note"] == {"revert": {"to_tx": 1, "keys": 2}}
    assert [(d["key"], d.get("value")) for d in _data(client)] == [("a", 2), ("c", "x")]
    assert _revert(client, {"to_tx": 1, "prefix": "a"}).json()["count"] == 1
    assert client.get("/v4/tx/5").json()["note"] == {"revert": {"to_tx": 1, "prefix": "a"}}


def _problem(r: Any) -> tuple[str, str | None, str, list[tuple[str, Any]]]:
    doc = r.json()
    return r.status, doc["code"], doc["detail"], [(e["location"], e["value"]) for e in doc["errors"]]


def test_bad_reverts_are_clear_problems_and_write_nothing(client: Client) -> None:
    _timeline(client)
    store = client.app.store
    before = fingerprint(store)
    cases = [
        ({}, (400, "INVALID_PARAMETERS", "to_tx is required: the tx whose state to go back to",
              [("/to_tx", None)])),
        ({"to_tx": 9}, (400, "FUTURE_TX", "tx 9 is in the future: the latest committed tx is 3",
                        [("/to_tx", 9)])),
        ({"to_tx": "1"}, (400, "INVALID_PARAMETERS", "tx must be an integer from 0 to 9223372036854775807",
                          [("/to_tx", "1")])),
        ({"to_tx": 1, "dry_run": "yes"}, (400, "INVALID_PARAMETERS", "dry_run must be true or false",
                                          [("/dry_run", "yes")])),
        ({"to_tx": 1, "keys": ["a"], "prefix": "a"}, (400, "INVALID_PARAMETERS",
                                                      "give keys or prefix, not both", [("/prefix", "a")])),
        ({"to_tx": 1, "keys": ["a", "", 3]}, (400, "INVALID_PARAMETERS", "every key must be a string",
                                              [("/keys/2", 3)])),
        ({"to_tx": 1, "keys": ["a", "", "k" * 513]}, (400, "INVALID_KEY",
                                                      "2 of 3 keys are invalid; nothing was written",
                                                      [("/keys/1", ""), ("/keys/2", "k" * 200 + "...")])),
        ({"to_tx": 1, "keys": []}, (400, "INVALID_PARAMETERS",
                                    "keys must name at least one key (omit it to revert the whole namespace)",
                                    [("/keys", "array")])),
        ({"to_tx": 1, "prefix": 7}, (400, "INVALID_PARAMETERS", "prefix must be a string",
                                     [("/prefix", 7)])),
        ({"to_tx": 1, "tx": 1}, (400, "INVALID_PARAMETERS",
                                 "unknown field(s) 'tx'; allowed: dry_run, keys, prefix, to_tx", [("/tx", 1)])),
    ]
    for body, want in cases:
        assert _problem(_revert(client, body)) == want, body
    r = _revert(client, {"to_tx": 1}, headers={"X-Strata-Note": '{"revert": 1}'})
    assert _problem(r) == (400, "INVALID_PARAMETERS",
                           'a revert\'s note may not hold a "revert" member: the revert writes it',
                           [("header.X-Strata-Note", None)])
    assert fingerprint(store) == before


def test_revert_below_the_horizon_is_410(client: Client) -> None:
    _timeline(client)
    client.post("/v4/admin/compact", json={"before_tx": 2})
    r = _revert(client, {"to_tx": 1})
    assert _problem(r) == (410, "TX_COMPACTED", "tx 1 was compacted away: the oldest readable tx is 2",
                           [("/to_tx", 1)])
    assert r.json()["horizon"] == 2


def test_a_revert_over_the_item_limit_is_batch_too_large(tmp_path: Path) -> None:
    from engine import Limits

    app = create_app(tmp_path / "data", sync=False, store_options={"limits": Limits(max_batch=2)})
    try:
        client = Client(app)
        client.write("s", [{"key": "a", "value": 1}, {"key": "b", "value": 1}])
        client.write("s", [{"key": "c", "value": 1}])
        before = fingerprint(app.store)
        r = _revert(client, {"to_tx": 0})
        assert _problem(r) == (400, "BATCH_TOO_LARGE",
                               "the revert would write more than 2 keys, the most one tx may hold; nothing was "
                               "written: revert in parts, by prefix or keys", [("/to_tx", 0)])
        assert orjson.loads(r.body)["limit"] == 2 and fingerprint(app.store) == before
    finally:
        app.close()
