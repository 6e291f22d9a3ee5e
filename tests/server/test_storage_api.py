"""The storage endpoints in-process: read, write, delete, scan and single keys, success and failure."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from engine import Limits
from server import create_app
from tests.server.conftest import Client

NS = "/v4/storage/sample"
DEEP = b"[" * 300 + b"]" * 300


def test_write_then_read_returns_records_in_request_order(client: Client) -> None:
    w = client.write("sample", [{"key": "city:1", "value": {"name": "Braavos"}}, {"key": "city:2", "value": 7}])
    assert w.status == 200
    body = w.json()
    assert body["count"] == 2 and body["tx"] >= 1
    assert body["duration"].endswith("ms") and float(body["duration"][:-2]) >= 0
    r = client.read("sample", ["city:2", "missing", "city:1"])
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    out = r.json()
    assert out["data"] == [
        {"key": "city:2", "value": 7, "tx": body["tx"], "binary": False},
        {"key": "city:1", "value": {"name": "Braavos"}, "tx": body["tx"], "binary": False},
    ]
    assert out["count"] == 2 and out["tx"] == body["tx"]


def test_read_accepts_a_bare_array_of_keys(client: Client) -> None:
    client.write("sample", [{"key": "a", "value": 1}])
    r = client.post(f"{NS}/read", json=["a", "b"])
    assert r.status == 200
    assert [d["key"] for d in r.json()["data"]] == ["a"]


@pytest.mark.parametrize("body", [{}, None])
def test_read_without_keys_returns_only_the_latest_tx(client: Client, body: object) -> None:
    tx = client.write("sample", [{"key": "a", "value": 1}]).json()["tx"]
    r = client.post(f"{NS}/read", json=body) if body is not None else client.post(f"{NS}/read", body=b"")
    assert r.status == 200
    assert r.json()["data"] == [] and r.json()["count"] == 0 and r.json()["tx"] == tx


def test_never_written_namespace_reads_as_empty(client: Client) -> None:
    client.write("other", [{"key": "a", "value": 1}])
    r = client.read("fresh", ["a"])
    assert r.status == 200 and r.json()["data"] == [] and r.json()["count"] == 0


def test_json_value_types_round_trip(client: Client) -> None:
    values = [None, True, False, 0, -(2**63), 2**63 - 1, 1.5, "", "naïve ☃", [1, [2]], {"a": {"b": None}}]
    items = [{"key": f"k{i}", "value": v} for i, v in enumerate(values)]
    assert client.write("sample", items).status == 200
    data = client.read("sample", [f"k{i}" for i in range(len(values))]).json()["data"]
    assert [d["value"] for d in data] == values
    assert all(d["binary"] is False for d in data)


def test_binary_values_round_trip_as_base64(client: Client) -> None:
    raw = bytes(range(256)) * 3
    b64 = base64.b64encode(raw).decode()
    assert client.write("sample", [{"key": "bin", "value": b64, "binary": True},
                                   {"key": "empty", "value": "", "binary": True}]).status == 200
    data = client.read("sample", ["bin", "empty"]).json()["data"]
    assert data[0]["binary"] is True and base64.b64decode(data[0]["value"]) == raw
    assert data[1] == {"key": "empty", "value": "", "tx": data[1]["tx"], "binary": True}
    # the same bytes through the single-key endpoint
    g = client.get(f"{NS}/key", query={"key": "bin"})
    assert g.json()["binary"] is True and base64.b64decode(g.json()["value"]) == raw


def test_binary_false_keeps_a_base64_looking_string_as_text(client: Client) -> None:
    client.write("sample", [{"key": "s", "value": "aGVsbG8=", "binary": False}])
    d = client.read("sample", ["s"]).json()["data"][0]
    assert d["value"] == "aGVsbG8=" and d["binary"] is False


def test_cleared_deleted_and_absent_keys_differ(client: Client) -> None:
    t1 = client.write("sample", [{"key": "c", "value": 1}, {"key": "d", "value": 2},
                                 {"key": "n", "value": None}]).json()["tx"]
    t2 = client.write("sample", [{"key": "c"}]).json()["tx"]  # no value: clears
    t3 = client.post(f"{NS}/delete", json={"keys": ["d"]}).json()["tx"]
    assert t1 < t2 < t3
    data = client.read("sample", ["c", "d", "n", "never"]).json()["data"]
    assert data == [{"key": "c", "tx": t2}, {"key": "n", "value": None, "tx": t1, "binary": False}]
    # single-key view: cleared is a record without value, deleted and absent are 404
    c = client.get(f"{NS}/key", query={"key": "c"}).json()
    assert c["key"] == "c" and c["tx"] == t2 and "value" not in c
    for key in ("d", "never"):
        g = client.get(f"{NS}/key", query={"key": key})
        assert g.status == 404 and g.code == "KEY_NOT_FOUND"


def test_reads_at_old_txs_see_old_versions(client: Client) -> None:
    t1 = client.write("sample", [{"key": "k", "value": "v1"}]).json()["tx"]
    t2 = client.write("sample", [{"key": "k", "value": "v2"}]).json()["tx"]
    t3 = client.write("sample", [{"key": "k"}]).json()["tx"]
    t4 = client.post(f"{NS}/delete", json=["k"]).json()["tx"]
    v1 = [{"key": "k", "value": "v1", "tx": t1, "binary": False}]
    assert client.read("sample", ["k"], tx=t1).json()["data"] == v1
    assert client.read("sample", ["k"], tx=t2).json()["data"][0]["value"] == "v2"
    assert client.read("sample", ["k"], tx=t3).json()["data"] == [{"key": "k", "tx": t3}]
    assert client.read("sample", ["k"], tx=t4).json()["data"] == []
    assert client.read("sample", ["k"], tx=t1).json()["tx"] == t1
    assert client.read("sample", ["k"], tx=0).json()["data"] == []
    g = client.get(f"{NS}/key", query={"key": "k", "tx": str(t2)})
    assert g.status == 200 and g.json()["value"] == "v2" and g.json()["tx"] == t2


def test_future_tx_is_400(client: Client) -> None:
    tx = client.write("sample", [{"key": "k", "value": 1}]).json()["tx"]
    r = client.read("sample", ["k"], tx=tx + 1)
    assert r.status == 400 and r.code == "FUTURE_TX"
    assert r.json()["errors"][0]["location"] == "/tx"
    r = client.get(f"{NS}/key", query={"key": "k", "tx": str(tx + 5)})
    assert r.code == "FUTURE_TX" and r.json()["errors"][0]["location"] == "query.tx"
    r = client.post(f"{NS}/scan", json={"tx": tx + 1})
    assert r.code == "FUTURE_TX" and r.json()["errors"][0]["location"] == "/tx"
    assert client.read("never", ["k"], tx=tx + 1).code == "FUTURE_TX"


@pytest.mark.parametrize("tx", ["1", 1.0, 1.5, True, False, -1, 2**63, 2**64 - 1, 10**30, [1], {"a": 1}])
def test_tx_of_the_wrong_type_or_range_is_400(client: Client, tx: object) -> None:
    client.write("sample", [{"key": "k", "value": 1}])
    r = client.post(f"{NS}/read", json={"keys": ["k"], "tx": tx}) if tx != 10**30 else \
        client.post(f"{NS}/read", body=b'{"keys":["k"],"tx":1000000000000000000000000000000}',
                    content_type="application/json")
    assert r.status == 400 and r.code == "INVALID_PARAMETERS"
    assert r.json()["errors"][0]["location"] == "/tx"


@pytest.mark.parametrize("tx", ["-1", "1.0", "x", "", "99999999999999999999", "\uff11"])
def test_query_tx_must_be_plain_digits(client: Client, tx: str) -> None:
    r = client.get(f"{NS}/key", query={"key": "k", "tx": tx})
    assert r.status == 400 and r.code == "INVALID_PARAMETERS"


@pytest.mark.parametrize(
    "body",
    [{"keys": ["a"], "extra": 1}, {"keys": "a"}, {"keys": [1]}, {"keys": [None]}, "keys", 5, None],
)
def test_bad_read_bodies_are_400(client: Client, body: object) -> None:
    r = client.post(f"{NS}/read", json=body)
    assert r.status == 400, r
    assert r.code == "INVALID_PARAMETERS"


def test_malformed_json_is_400(client: Client) -> None:
    for raw in (b"{", b"{'keys': []}", b"[1,]", b"\xff\xfe", b'{"keys":["\\ud800"]}', b"NaN"):
        r = client.post(f"{NS}/read", body=raw, content_type="application/json")
        assert r.status == 400 and r.code == "INVALID_JSON", raw
        assert r.headers["content-type"] == "application/problem+json"


def test_invalid_keys_on_read_are_400(client: Client) -> None:
    for keys in ([""], ["x" * 513]):
        r = client.read("sample", keys)
        assert r.status == 400 and r.code in ("INVALID_KEY", "KEY_TOO_LONG")


def test_atomic_write_with_a_bad_item_writes_nothing_and_lists_every_bad_item(client: Client) -> None:
    before = client.read("sample").json()["tx"]
    items = [
        {"key": "ok", "value": 1},
        {"key": "", "value": 2},
        {"key": "x" * 513, "value": 3},
        {"key": "b", "value": "not base64!", "binary": True},
        {"key": "ok", "value": 4},
        {"key": "u", "value": 5, "expires": 3},
        {"value": 6},
        7,
        {"key": "bb", "value": 1, "binary": "yes"},
        {"key": 5, "value": 1},
    ]
    r = client.write("sample", items)
    assert r.status == 400
    problem = r.json()
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    assert {"type", "title", "status", "detail", "errors", "code"} <= set(problem)
    locations = [e["location"] for e in problem["errors"]]
    assert locations == ["/1/key", "/2/key", "/3/value", "/4/key", "/5/expires", "/6/key", "/7", "/8/binary", "/9/key"]
    codes = [e["code"] for e in problem["errors"]]
    assert codes[:5] == ["INVALID_KEY", "KEY_TOO_LONG", "INVALID_VALUE", "DUPLICATE_KEY", "INVALID_PARAMETERS"]
    after = client.read("sample", ["ok"]).json()
    assert after["data"] == [] and after["tx"] == before


def test_engine_rejected_value_fails_the_atomic_write(client: Client) -> None:
    # valid JSON the server passes on, but nested deeper than the engine stores (255 levels)
    raw = b'[{"key":"a","value":1},{"key":"big","value":' + DEEP + b"}]"
    r = client.post(f"{NS}/write", body=raw, content_type="application/json")
    assert r.status == 400 and r.code == "INVALID_VALUE"
    assert r.json()["errors"][0]["location"] == "/1/value"
    assert client.read("sample", ["a"]).json()["data"] == []


def test_partial_write_commits_good_items_in_one_tx(client: Client) -> None:
    raw = (b'[{"key":"a","value":1},{"key":"","value":2},{"key":"c"},'
           b'{"key":"big","value":' + DEEP + b'},{"key":"d","value":"@@","binary":true},'
           b'{"key":"a","value":9}]')
    client.write("sample", [{"key": "c", "value": "old"}])
    r = client.post(f"{NS}/write", body=raw, content_type="application/json", query="atomic=false")
    assert r.status == 200
    out = r.json()
    assert out["succeeded"] == 2 and out["failed"] == 4
    assert [(e["index"], e["code"]) for e in out["errors"]] == [
        (1, "INVALID_KEY"), (3, "INVALID_VALUE"), (4, "INVALID_VALUE"), (5, "DUPLICATE_KEY")]
    assert all(set(e) == {"index", "key", "code", "message", "location", "value"} for e in out["errors"])
    data = client.read("sample", ["a", "c", "big", "d"]).json()["data"]
    assert data == [{"key": "a", "value": 1, "tx": out["tx"], "binary": False}, {"key": "c", "tx": out["tx"]}]


def test_partial_write_with_nothing_valid_commits_nothing(client: Client) -> None:
    before = client.read("sample").json()["tx"]
    r = client.write("sample", [{"key": ""}, {"key": 3}], query="atomic=false")
    assert r.status == 200 and r.json()["tx"] is None
    assert r.json()["succeeded"] == 0 and r.json()["failed"] == 2
    assert client.read("sample").json()["tx"] == before


@pytest.mark.parametrize("query", ["atomic=maybe", "atomic=", "atomic=true&atomic=false", "other=1"])
def test_bad_write_query_is_400(client: Client, query: str) -> None:
    r = client.write("sample", [{"key": "a", "value": 1}], query=query)
    assert r.status == 400 and r.code == "INVALID_PARAMETERS"
    assert client.read("sample", ["a"]).json()["data"] == []


def test_empty_and_oversized_batches_are_400(client: Client) -> None:
    for query in ("", "atomic=false"):
        r = client.write("sample", [], query=query)
        assert r.status == 400 and r.code == "EMPTY_BATCH"
    r = client.write("sample", [{"key": f"k{i}", "value": i} for i in range(10_001)])
    assert r.status == 400 and r.code == "BATCH_TOO_LARGE"
    assert client.read("sample").json()["tx"] == 0


def test_write_body_must_be_an_array(client: Client) -> None:
    r = client.write("sample", {"key": "a", "value": 1})  # type: ignore[arg-type]
    assert r.status == 400 and r.code == "INVALID_PARAMETERS"


def test_mixed_puts_and_clears_share_one_tx(client: Client) -> None:
    client.write("sample", [{"key": "x", "value": 1}])
    tx = client.write("sample", [{"key": "x"}, {"key": "y", "value": 2}]).json()["tx"]
    assert client.read("sample", ["x", "y"]).json()["data"] == [
        {"key": "x", "tx": tx}, {"key": "y", "value": 2, "tx": tx, "binary": False}]


def test_delete_endpoint(client: Client) -> None:
    client.write("sample", [{"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "c", "value": 3}])
    r = client.post(f"{NS}/delete", json={"keys": ["a", "b"]})
    assert r.status == 200 and r.json()["count"] == 2
    assert [d["key"] for d in client.read("sample", ["a", "b", "c"]).json()["data"]] == ["c"]
    for body in ({"keys": "a"}, {"key": ["a"]}, {}, {"keys": [1]}):
        assert client.post(f"{NS}/delete", json=body).status == 400
    r = client.post(f"{NS}/delete", json={"keys": ["c", ""]})
    assert r.status == 400 and r.code == "INVALID_KEY"
    assert r.json()["errors"][0]["location"] == "/keys/1"
    assert [d["key"] for d in client.read("sample", ["c"]).json()["data"]] == ["c"]


def test_single_key_json_and_bytes(client: Client) -> None:
    r = client.post(f"{NS}/key", query={"key": "j"}, body=b'{"a": [1, 2]}', content_type="application/json")
    assert r.status == 200 and r.json()["tx"] >= 1 and r.json()["duration"].endswith("ms")
    g = client.get(f"{NS}/key", query={"key": "j"}).json()
    assert g["value"] == {"a": [1, 2]} and g["binary"] is False and g["tx"] == r.json()["tx"]
    raw = b"\x00\x01binary\xff"
    client.post(f"{NS}/key", query={"key": "b"}, body=raw, content_type="application/octet-stream")
    g = client.get(f"{NS}/key", query={"key": "b"}).json()
    assert g["binary"] is True and base64.b64decode(g["value"]) == raw
    # a JSON string stays a string; charset parameters are fine; vendor +json types are JSON
    client.post(f"{NS}/key", query={"key": "s"}, body=b'"text"', content_type="application/json; charset=utf-8")
    client.post(f"{NS}/key", query={"key": "v"}, body=b"[true]", content_type="application/vnd.x+json")
    data = client.read("sample", ["s", "v"]).json()["data"]
    assert [d["value"] for d in data] == ["text", [True]]


def test_single_key_unicode_key_round_trips_through_the_query(client: Client) -> None:
    key = "ключ/with spaces&=?#"
    client.post(f"{NS}/key", query={"key": key}, body=b"1", content_type="application/json")
    assert client.get(f"{NS}/key", query={"key": key}).json()["key"] == key
    assert client.read("sample", [key]).json()["data"][0]["value"] == 1


def test_single_key_errors(client: Client) -> None:
    r = client.post(f"{NS}/key", query={"key": "t"}, body=b"hi", content_type="text/plain")
    assert r.status == 415 and r.code == "UNSUPPORTED_MEDIA_TYPE"
    r = client.post(f"{NS}/key", query={"key": "t"}, body=b"{", content_type="application/json")
    assert r.status == 400 and r.code == "INVALID_JSON"
    r = client.post(f"{NS}/key", query={"key": "t"}, body=b"", content_type="application/json")
    assert r.status == 400 and r.code == "INVALID_JSON"
    r = client.get(f"{NS}/key")
    assert r.status == 400 and r.json()["errors"][0]["location"] == "query.key"
    r = client.get(f"{NS}/key", query={"key": ""})
    assert r.status == 400 and r.code == "INVALID_KEY"
    r = client.post(f"{NS}/key", query={"key": "x" * 513}, body=b"1", content_type="application/json")
    assert r.status == 400 and r.code == "KEY_TOO_LONG"
    r = client.get(f"{NS}/key", query="key=%ED%A0%80")  # UTF-8 of a lone surrogate
    assert r.status == 400
    r = client.get(f"{NS}/key", query={"key": "a", "bogus": "1"})
    assert r.status == 400 and r.code == "INVALID_PARAMETERS"
    assert client.read("sample").json()["tx"] == 0


def test_single_key_delete(client: Client) -> None:
    client.post(f"{NS}/key", query={"key": "k"}, body=b"1", content_type="application/json")
    r = client.delete(f"{NS}/key", query={"key": "k"})
    assert r.status == 200 and set(r.json()) == {"tx", "duration"}
    assert client.get(f"{NS}/key", query={"key": "k"}).status == 404
    assert client.get(f"{NS}/key", query={"key": "k", "tx": str(r.json()["tx"] - 1)}).json()["value"] == 1


def test_scan_pages_through_keys_in_byte_order_with_a_cursor(client: Client) -> None:
    keys = ["b", "a", "é", "a/2", "a/10", "Z", "c"]
    client.write("sample", [{"key": k, "value": k} for k in keys])
    client.write("sample", [{"key": "c"}])
    expected = sorted(keys, key=lambda k: k.encode())
    seen, after, tx = [], None, None
    while True:
        body = {"limit": 3, **({"after": after} if after else {}), **({"tx": tx} if tx else {})}
        page = client.post(f"{NS}/scan", json=body).json()
        tx = page["tx"]
        assert page["count"] == len(page["data"]) <= 3
        seen += page["data"]
        after = page["cursor"]
        if after is None:
            break
        assert after == page["data"][-1]["key"]
    assert [d["key"] for d in seen] == expected
    assert {"key": "c", "tx": tx} in seen


def test_scan_prefix_tx_and_empty_results(client: Client) -> None:
    t1 = client.write("sample", [{"key": "user:1", "value": 1}, {"key": "user:2", "value": 2},
                                 {"key": "item:1", "value": 3}]).json()["tx"]
    client.write("sample", [{"key": "user:3", "value": 4}])
    r = client.post(f"{NS}/scan", json={"prefix": "user:", "tx": t1}).json()
    assert [d["key"] for d in r["data"]] == ["user:1", "user:2"] and r["cursor"] is None and r["tx"] == t1
    r = client.post(f"{NS}/scan", json={"prefix": "nothing"}).json()
    assert r["data"] == [] and r["count"] == 0 and r["cursor"] is None
    r = client.post("/v4/storage/never/scan", body=b"").json()
    assert r["data"] == [] and r["count"] == 0


def test_scan_streams_large_pages(client: Client) -> None:
    client.write("sample", [{"key": f"k{i:05d}", "value": i} for i in range(1200)])
    r = client.post(f"{NS}/scan", json={"limit": 1000})
    assert r.status == 200 and "content-length" not in r.headers  # streamed, not built whole
    out = r.json()
    assert out["count"] == 1000 and out["cursor"] == "k00999"
    assert [d["value"] for d in out["data"]] == list(range(1000))
    out = client.post(f"{NS}/scan", json={"after": out["cursor"], "limit": 10000}).json()
    assert out["count"] == 200 and out["cursor"] is None


@pytest.mark.parametrize("body", [{"limit": 0}, {"limit": 10001}, {"limit": "5"}, {"limit": 2.0},
                                  {"prefix": 1}, {"after": ["a"]}, {"tx": -1}, {"cursor": "a"}, []])
def test_bad_scan_bodies_are_400(client: Client, body: object) -> None:
    r = client.post(f"{NS}/scan", json=body)
    assert r.status == 400 and r.code == "INVALID_PARAMETERS"


def test_default_scan_limit_is_1000(client: Client) -> None:
    client.write("sample", [{"key": f"k{i:05d}", "value": i} for i in range(1001)])
    out = client.post(f"{NS}/scan", body=b"").json()
    assert out["count"] == 1000 and out["cursor"] == "k00999"


def test_read_of_too_many_keys_is_400(client: Client) -> None:
    r = client.read("sample", [f"k{i}" for i in range(10_001)])
    assert r.status == 400 and r.code == "BATCH_TOO_LARGE"
    assert client.read("sample", [f"k{i}" for i in range(10_000)]).status == 200


def test_bad_key_in_a_read_is_located(client: Client) -> None:
    r = client.read("sample", ["ok", "x" * 513, ""])
    assert r.status == 400
    assert [e["location"] for e in r.json()["errors"]] == ["/keys/1", "/keys/2"]


def test_the_engines_limits_apply(tmp_path: Path) -> None:
    app = create_app(tmp_path / "d", sync=False, store_options={"limits": Limits(max_key_bytes=16, max_batch=3)})
    client = Client(app)
    r = client.write("s", [{"key": "k" * 17, "value": 1}, {"key": "ok", "value": 2}], query="atomic=false")
    assert r.json()["succeeded"] == 1 and r.json()["errors"][0]["code"] == "KEY_TOO_LONG"
    r = client.write("s", [{"key": f"k{i}", "value": i} for i in range(4)])
    assert r.status == 400 and r.code == "BATCH_TOO_LARGE"
    app.close()
