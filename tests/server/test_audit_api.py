"""The audit endpoints in-process: history, read at a time, diff, the tx log, head, verify, notes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from server import create_app
from server.app import App
from tests.engine.clock import T0, Clock
from tests.server.conftest import Client
from tests.server.test_auth import ADMIN, READ, SCOPED, WRITE, write_keys


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _history(client: Client, ns: str, **query: str) -> Any:
    return client.get(f"/v4/storage/{ns}/history", query=query)


@pytest.fixture
def timeline(client: Client) -> dict[str, int]:
    """tx 1 put k=1, tx 2 put k=bytes, tx 3 clear k, tx 4 (other ns), tx 5 delete k, tx 6 put k=6."""
    txs = {}
    txs["put"] = client.write("s", [{"key": "k", "value": 1}, {"key": "gone", "value": "x"}]).json()["tx"]
    txs["bin"] = client.write("s", [{"key": "k", "value": base64.b64encode(b"\x00\x01").decode(),
                                     "binary": True}]).json()["tx"]
    txs["clear"] = client.write("s", [{"key": "k"}]).json()["tx"]
    txs["other"] = client.write("o", [{"key": "k", "value": "elsewhere"}]).json()["tx"]
    txs["delete"] = client.post("/v4/storage/s/delete", json=["k", "gone"]).json()["tx"]
    txs["again"] = client.write("s", [{"key": "k", "value": 6}]).json()["tx"]
    return txs


# -- history ---------------------------------------------------------------------------------


def test_history_lists_every_version_newest_first(client: Client, timeline: dict[str, int]) -> None:
    r = _history(client, "s", key="k")
    assert r.status == 200
    body = r.json()
    assert [(v["tx"], v["op"]) for v in body["data"]] == [(6, "put"), (5, "delete"), (3, "clear"), (2, "put"),
                                                          (1, "put")]
    assert body["data"][0]["value"] == 6 and body["data"][0]["binary"] is False
    assert body["data"][3] == {"tx": 2, "time": body["data"][3]["time"], "op": "put", "value": "AAE=",
                               "binary": True}
    assert "value" not in body["data"][1] and "value" not in body["data"][2]
    assert body["count"] == 5 and body["cursor"] is None and body["duration"].endswith("ms")
    times = [datetime.fromisoformat(v["time"]) for v in body["data"]]
    assert times == sorted(times, reverse=True) and body["data"][0]["time"].endswith("Z")


def test_history_says_who_changed_a_key_and_with_what_metadata(client: Client) -> None:
    """Each version carries its tx's note, and a put its metadata and expiry, when they exist."""
    note = {"X-Strata-Note": orjson.dumps({"by": "alice", "ticket": 7}).decode()}
    put = client.write("h", [{"key": "k", "value": 1, "metadata": {"src": "etl"}, "expiration": 4102444800}],
                       headers=note).json()["tx"]
    cleared = client.write("h", [{"key": "k"}]).json()["tx"]
    data = _history(client, "h", key="k").json()["data"]
    assert data == [
        {"tx": cleared, "time": data[0]["time"], "op": "clear"},
        {"tx": put, "time": data[1]["time"], "op": "put", "value": 1, "binary": False, "metadata": {"src": "etl"},
         "expire_time": "2100-01-01T00:00:00Z", "note": {"by": "alice", "ticket": 7}},
    ]


def test_history_pages_by_tx_in_both_orders(client: Client, timeline: dict[str, int]) -> None:
    page = _history(client, "s", key="k", limit="2").json()
    assert [v["tx"] for v in page["data"]] == [6, 5] and page["cursor"] == 5
    page = _history(client, "s", key="k", limit="2", before=str(page["cursor"])).json()
    assert [v["tx"] for v in page["data"]] == [3, 2] and page["cursor"] == 2
    page = _history(client, "s", key="k", limit="2", before="2").json()
    assert [v["tx"] for v in page["data"]] == [1] and page["cursor"] is None
    page = _history(client, "s", key="k", order="asc", limit="3").json()
    assert [v["tx"] for v in page["data"]] == [1, 2, 3] and page["cursor"] == 3
    page = _history(client, "s", key="k", order="asc", after="3").json()
    assert [v["tx"] for v in page["data"]] == [5, 6] and page["cursor"] is None
    assert [v["tx"] for v in _history(client, "s", key="k", after="1", before="5").json()["data"]] == [3, 2]


def test_history_of_unknown_keys_and_namespaces_is_empty(client: Client, timeline: dict[str, int]) -> None:
    assert _history(client, "s", key="nope").json()["data"] == []
    never = _history(client, "never", key="k").json()
    assert (never["data"], never["count"], never["cursor"]) == ([], 0, None)


@pytest.mark.parametrize(("query", "location"), [
    ({}, "query.key"),
    ({"key": ""}, "query.key"),
    ({"key": "x" * 513}, "query.key"),
    ({"key": "k", "limit": "0"}, "query.limit"),
    ({"key": "k", "limit": "1001"}, "query.limit"),
    ({"key": "k", "limit": "ten"}, "query.limit"),
    ({"key": "k", "before": "-1"}, "query.before"),
    ({"key": "k", "after": "1.5"}, "query.after"),
    ({"key": "k", "order": "newest"}, "query.order"),
    ({"key": "k", "tx": "1"}, "query.tx"),
])
def test_history_rejects_bad_parameters(client: Client, query: dict[str, str], location: str) -> None:
    r = _history(client, "s", **query)
    assert r.status == 400 and r.json()["errors"][0]["location"] == location, r


# -- read at a time ----------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clocked(tmp_path: Path, clock: Clock) -> Iterator[Client]:
    """A client of an app whose store commits at the times of ``clock`` (exact, no sleeping)."""
    application = create_app(tmp_path / "clocked", sync=False, store_options={"clock": clock})
    yield Client(application)
    application.close()


def test_read_at_a_time_reads_the_snapshot_then(clocked: Client, clock: Clock) -> None:
    client = clocked
    t1 = client.write("s", [{"key": "a", "value": "first"}]).json()["tx"]  # at T0
    clock.now = T0 + 2
    client.write("s", [{"key": "a", "value": "second"}])  # tx 2 at T0 + 2

    def read_at(at: str) -> Any:
        r = client.post("/v4/storage/s/read", json={"keys": ["a"], "at": at})
        assert r.status == 200, r
        return r.json()

    between = read_at(_rfc3339(datetime.fromtimestamp(T0 + 1, UTC)))
    assert between["tx"] == t1 == 1
    assert between["data"] == [{"key": "a", "value": "first", "tx": t1, "binary": False}]
    assert read_at(_rfc3339(datetime.fromtimestamp(T0 + 2, UTC) - timedelta(microseconds=1)))["tx"] == 1
    assert read_at(_rfc3339(datetime.fromtimestamp(T0 + 2, UTC)))["tx"] == 2  # the commit instant itself
    # the exact commit time of tx 1 (from the log) reads tx 1; an offset other than Z means the same instant
    committed = client.get(f"/v4/tx/{t1}").json()["time"]
    assert datetime.fromisoformat(committed) == datetime.fromtimestamp(T0, UTC)
    assert read_at(committed)["tx"] == t1
    plus_two = datetime.fromisoformat(committed).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert read_at(plus_two)["tx"] == t1
    early = read_at(_rfc3339(datetime.fromtimestamp(T0, UTC) - timedelta(microseconds=1)))
    assert early["tx"] == 0 and early["data"] == []
    ancient = read_at("1900-01-01T00:00:00Z")
    assert ancient["tx"] == 0 and ancient["data"] == []
    future = read_at("2999-01-01T00:00:00Z")
    assert future["tx"] == 2 and future["data"][0]["value"] == "second"


@pytest.mark.parametrize("at", ["2026-11-23T07:31:47", "2026-11-23", "yesterday", "2026-13-01T00:00:00Z",
                                "2026-02-30T00:00:00Z", 1700000000, "", "2026-11-23T07:31:47.1234567891Z"])
def test_read_rejects_bad_times(client: Client, at: Any) -> None:
    r = client.post("/v4/storage/s/read", json={"keys": ["a"], "at": at})
    assert r.status == 400 and r.code == "INVALID_PARAMETERS" and r.json()["errors"][0]["location"] == "/at"


def test_read_refuses_tx_and_at_together(client: Client) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    r = client.post("/v4/storage/s/read", json={"keys": ["a"], "tx": 1, "at": "2026-01-01T00:00:00Z"})
    assert r.status == 400 and r.code == "INVALID_PARAMETERS" and r.json()["errors"][0]["location"] == "/at"


# -- diff ----------------------------------------------------------------------------------------


def test_diff_reports_each_kind_of_change(client: Client) -> None:
    t0 = client.write("d", [{"key": "keep", "value": 0}, {"key": "chg", "value": 1}, {"key": "clr", "value": 2},
                            {"key": "del", "value": 3}]).json()["tx"]
    client.write("d", [{"key": "chg", "value": 10}, {"key": "clr"}, {"key": "new", "value": 4}])
    client.post("/v4/storage/d/delete", json=["del"])
    client.write("d", [{"key": "keep", "value": 0}])  # rewritten with the same value: no change
    r = client.post("/v4/storage/d/diff", json={"from_tx": t0})
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["from_tx"] == t0 and body["to_tx"] == 4 and body["count"] == 4
    assert body["data"] == [
        {"key": "chg", "kind": "changed", "before": {"key": "chg", "value": 1, "tx": 1, "binary": False},
         "after": {"key": "chg", "value": 10, "tx": 2, "binary": False}},
        {"key": "clr", "kind": "cleared", "before": {"key": "clr", "value": 2, "tx": 1, "binary": False},
         "after": {"key": "clr", "tx": 2}},
        {"key": "del", "kind": "deleted", "before": {"key": "del", "value": 3, "tx": 1, "binary": False},
         "after": None},
        {"key": "new", "kind": "added", "before": None, "after": {"key": "new", "value": 4, "tx": 2,
                                                                  "binary": False}},
    ]
    back = client.post("/v4/storage/d/diff", json={"from_tx": 0, "to_tx": t0}).json()
    assert [c["kind"] for c in back["data"]] == ["added"] * 4
    assert client.post("/v4/storage/d/diff", json={"from_tx": 2, "to_tx": 2}).json()["data"] == []
    assert client.post("/v4/storage/never/diff", json={"from_tx": 0}).json()["count"] == 0


def test_diff_streams_many_changes(client: Client) -> None:
    client.write("big", [{"key": f"k{i:04}", "value": i} for i in range(700)])
    r = client.post("/v4/storage/big/diff", json={"from_tx": 0, "to_tx": 1})
    body = r.json()
    assert body["count"] == 700 and [c["key"] for c in body["data"]] == [f"k{i:04}" for i in range(700)]


@pytest.mark.parametrize(("body", "code", "location"), [
    ({"from_tx": 3, "to_tx": 1}, "INVALID_PARAMETERS", "/from_tx"),
    ({"from_tx": 0, "to_tx": 99}, "FUTURE_TX", "/to_tx"),
    ({"from_tx": 99}, "FUTURE_TX", "/from_tx"),
    ({"to_tx": 1}, "INVALID_PARAMETERS", "/from_tx"),
    ({"from_tx": "1"}, "INVALID_PARAMETERS", "/from_tx"),
    ({"from_tx": -1}, "INVALID_PARAMETERS", "/from_tx"),
    ({"from_tx": 0, "to_tx": 1.0}, "INVALID_PARAMETERS", "/to_tx"),
    ({"from_tx": 0, "tx": 1}, "INVALID_PARAMETERS", "/tx"),
])
def test_diff_rejects_bad_ranges(client: Client, body: dict[str, Any], code: str, location: str) -> None:
    client.write("d", [{"key": "a", "value": 1}, {"key": "b", "value": 1}])
    client.write("d", [{"key": "a", "value": 2}])
    client.write("d", [{"key": "a", "value": 3}])
    r = client.post("/v4/storage/d/diff", json=body)
    assert r.status == 400 and r.code == code and r.json()["errors"][0]["location"] == location, r


# -- the tx log, head and verify ------------------------------------------------------------------


def test_tx_shows_time_note_operations_and_hash(client: Client) -> None:
    note = {"by": "alice", "ticket": "OPS-42", "é": [1, 2]}
    header = orjson.dumps(note).decode("latin-1")  # WSGI carries header bytes as latin-1 text
    tx = client.write("s", [{"key": "a", "value": 1}, {"key": "b"}], headers={"X-Strata-Note": header}).json()["tx"]
    r = client.get(f"/v4/tx/{tx}")
    assert r.status == 200
    body = r.json()
    assert body["tx"] == tx and body["note"] == note and len(body["hash"]) == 64 and body["time"].endswith("Z")
    assert body["operations"] == [{"namespace": "s", "key": "a", "op": "put"},
                                  {"namespace": "s", "key": "b", "op": "clear"}]
    head = client.get("/v4/head").json()
    assert (head["tx"], head["hash"], head["time"]) == (tx, body["hash"], body["time"])
    assert client.get("/v4/tx", query={"at": body["time"]}).json()["tx"] == tx


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/v4/tx/0", 404, "TX_NOT_FOUND"), ("/v4/tx/2", 404, "TX_NOT_FOUND"),
    ("/v4/tx/abc", 400, "INVALID_PARAMETERS"), ("/v4/tx/-1", 400, "INVALID_PARAMETERS"),
    ("/v4/tx/99999999999999999999", 400, "INVALID_PARAMETERS"),
])
def test_tx_not_committed_or_invalid(client: Client, path: str, status: int, code: str) -> None:
    client.write("s", [{"key": "a", "value": 1}])
    r = client.get(path)
    assert r.status == status and r.code == code and r.json()["errors"][0]["location"] == "path.tx"


def test_tx_at_a_time(clocked: Client, clock: Clock) -> None:
    client = clocked
    empty = client.get("/v4/tx", query={"at": "2026-01-01T00:00:00Z"}).json()
    assert empty["tx"] == 0 and empty["time"] is None and empty["at"] == "2026-01-01T00:00:00Z"
    client.write("s", [{"key": "a", "value": 1}])  # tx 1 at T0
    clock.now = T0 + 5
    client.write("s", [{"key": "a", "value": 2}])  # tx 2 at T0 + 5
    at_first = client.get("/v4/tx", query={"at": _rfc3339(datetime.fromtimestamp(T0 + 4.999999, UTC))}).json()
    assert at_first["tx"] == 1 and at_first["time"] == client.get("/v4/tx/1").json()["time"]
    assert client.get("/v4/tx", query={"at": _rfc3339(datetime.fromtimestamp(T0 + 5, UTC))}).json()["tx"] == 2
    assert client.get("/v4/tx", query={"at": "1969-07-20T20:17:40Z"}).json()["tx"] == 0
    for query, location in (({}, "query.at"), ({"at": "noon"}, "query.at"), ({"at": "2026-01-01"}, "query.at"),
                            ({"at": "2026-01-01T00:00:00Z", "tx": "1"}, "query.tx")):
        r = client.get("/v4/tx", query=query)
        assert r.status == 400 and r.json()["errors"][0]["location"] == location, query


def test_head_of_an_empty_store(client: Client) -> None:
    assert client.get("/v4/head").json() | {"duration": ""} == {
        "tx": 0, "hash": "0" * 64, "time": None, "size": 0, "duration": "",
        "root": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}  # SHA-256 of nothing


def test_verify_with_and_without_a_receipt(client: Client) -> None:
    for i in range(3):
        client.write("s", [{"key": "a", "value": i}])
    head = client.get("/v4/head").json()
    report = client.get("/v4/verify").json()
    assert report["ok"] is True and report["checked"] == 3 and report["head_hash"] == head["hash"]
    assert report["bad_tx"] is None and report["problem"] is None and "receipt" not in report
    receipt = {"receipt_tx": "2", "receipt_hash": client.get("/v4/tx/2").json()["hash"].upper()}
    good = client.get("/v4/verify", query=receipt).json()
    assert good["ok"] is True and good["receipt"] == {"tx": 2, "hash": receipt["receipt_hash"].lower()}
    forged = client.get("/v4/verify", query={"receipt_tx": "2", "receipt_hash": "ab" * 32})
    assert forged.status == 200 and forged.json()["ok"] is False and forged.json()["bad_tx"] == 2
    assert "receipt" in forged.json()["problem"]
    beyond = client.get("/v4/verify", query={"receipt_tx": "9", "receipt_hash": head["hash"]})
    assert beyond.status == 400 and beyond.code == "FUTURE_TX"  # no head of this store named tx 9


@pytest.mark.parametrize(("query", "location"), [
    ({"receipt_tx": "2"}, "query.receipt_hash"),
    ({"receipt_hash": "ab" * 32}, "query.receipt_tx"),
    ({"receipt_tx": "2", "receipt_hash": "xyz"}, "query.receipt_hash"),
    ({"receipt_tx": "two", "receipt_hash": "ab" * 32}, "query.receipt_tx"),
])
def test_verify_rejects_a_malformed_receipt(client: Client, query: dict[str, str], location: str) -> None:
    r = client.get("/v4/verify", query=query)
    assert r.status == 400 and r.json()["errors"][0]["location"] == location


@pytest.fixture
def secured(tmp_path: Path) -> Any:
    keys = write_keys(tmp_path / "keys.json", [
        {"name": "reader", "key": READ, "scope": "read"},
        {"name": "writer", "key": WRITE, "scope": "write"},
        {"name": "admin", "key": ADMIN, "scope": "admin"},
        {"name": "scoped", "key": SCOPED, "scope": "admin", "namespaces": ["mine"]},
    ])
    app = create_app(tmp_path / "data", keys_file=keys, sync=False)
    yield app
    app.close()


def test_scopes_of_the_audit_routes(secured: App) -> None:
    client = Client(secured)
    assert client.write("mine", [{"key": "a", "value": 1}], token=WRITE).status == 200
    assert client.get("/v4/verify", token=WRITE).code == "FORBIDDEN"
    assert client.get("/v4/verify", token=ADMIN).json()["ok"] is True
    for path in ("/v4/tx/1", "/v4/head", "/v4/storage/mine/history?key=a", "/v4/storage/mine/changes"):
        path, _, query = path.partition("?")
        assert client.get(path, query=query, token=READ).status == 200, path
    # a key limited to some namespaces sees its own namespace's past, not the global log
    assert client.get("/v4/storage/mine/history", query="key=a", token=SCOPED).status == 200
    assert client.post("/v4/storage/mine/diff", json={"from_tx": 0}, token=SCOPED).status == 200
    assert client.get("/v4/storage/other/changes", token=SCOPED).status == 403
    for path in ("/v4/tx/1", "/v4/head", "/v4/verify"):
        r = client.get(path, token=SCOPED)
        assert r.status == 403 and r.code == "FORBIDDEN", path
    assert client.get("/v4/tx", query={"at": "2026-01-01T00:00:00Z"}, token=SCOPED).status == 403
    assert client.get("/v4/head").status == 401


# -- notes on writes -----------------------------------------------------------------------------


def test_every_write_route_takes_a_note(client: Client) -> None:
    def note(n: int) -> dict[str, str]:
        return {"X-Strata-Note": orjson.dumps({"by": "bob", "step": n}).decode()}

    client.write("s", [{"key": "a", "value": 1}, {"key": "b", "value": 2}], headers=note(1))
    client.post("/v4/storage/s/delete", json={"keys": ["a"]}, headers=note(2))
    client.post("/v4/storage/s/key", query={"key": "c"}, body=b"raw", headers=note(3))
    client.delete("/v4/storage/s/key", query={"key": "c"}, headers=note(4))
    client.write("s", [{"key": "d", "value": 1}, {"key": "b"}], headers=note(5))  # put + clear: a transaction
    client.post("/v4/storage/s/write", query="atomic=false", json=[{"key": "e", "value": 1}, {"key": ""}],
                headers=note(6))
    client.write("gone", [{"key": "x", "value": 1}])
    client.delete("/v4/namespace/storage/gone", headers=note(8))
    for tx in (1, 2, 3, 4, 5, 6, 8):
        assert client.get(f"/v4/tx/{tx}").json()["note"] == {"by": "bob", "step": tx}, tx
    assert client.get("/v4/tx/7").json()["note"] is None


@pytest.mark.parametrize("header", ["not json", "[1, 2]", '"text"', "null", '{"big": "' + "x" * 5000 + '"}',
                                    "{", "\xff\xfe"])
def test_a_bad_note_writes_nothing(client: Client, header: str) -> None:
    r = client.write("s", [{"key": "a", "value": 1}], headers={"X-Strata-Note": header})
    assert r.status == 400 and r.code == "INVALID_PARAMETERS"
    assert r.json()["errors"][0]["location"] == "header.X-Strata-Note"
    assert client.get("/healthz").json()["tx"] == 0
    for method, path in (("POST", "/v4/storage/s/delete"), ("DELETE", "/v4/storage/s/key?key=a")):
        path, _, query = path.partition("?")
        r = client.request(method, path, query=query, json=["a"], headers={"X-Strata-Note": header})
        assert r.status == 400 and r.json()["errors"][0]["location"] == "header.X-Strata-Note"
