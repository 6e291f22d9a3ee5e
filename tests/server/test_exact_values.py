"""Numbers over HTTP are stored exactly or refused with their location, never rounded.

The engine's codec holds integers from -2**63 to 2**64-1 and finite doubles; a JSON body can say
more (orjson alone would round ``12345678901234567890123`` to ``1.2345678901234568e+22``).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from server.app import App
from tests.conftest import fingerprint
from tests.server.conftest import Client, LiveServer

WRITE = "/v4/storage/s/write"
OUT_OF_RANGE = ["12345678901234567890123", "18446744073709551616", "-9223372036854775809", "1" + "0" * 5000,
                "1e400", "-1e400", "1.5E+309"]


def _write(client: Client, raw: bytes, **kw: Any) -> Any:
    return client.post(WRITE, body=raw, content_type="application/json", **kw)


def _read_raw(client: Client, key: str) -> bytes:
    """The read answer's bytes, to compare numbers as text (a parser could hide a change)."""
    r = client.post("/v4/storage/s/read", json={"keys": [key]})
    assert r.status == 200, r
    return r.body


@pytest.mark.parametrize("text", OUT_OF_RANGE, ids=lambda text: text[:24])
def test_a_number_no_value_can_hold_is_refused_where_it_is(app: App, client: Client, text: str) -> None:
    before = fingerprint(app.store)
    r = _write(client, b'[{"key":"ok","value":1},{"key":"n","value":{"a":[0,%s]}}]' % text.encode())
    assert r.status == 400 and r.code == "INVALID_VALUE", r
    (entry,) = r.json()["errors"]
    assert entry["location"] == "/1/value/a/1" and entry["index"] == 1 and entry["code"] == "INVALID_VALUE"
    assert entry["value"] == (text if len(text) <= 200 else text[:200] + "...")  # cut as every long string
    assert fingerprint(app.store) == before


@pytest.mark.parametrize("text", ["12345678901234567890123", "18446744073709551616", "-9223372036854775809"])
def test_the_reported_integers_are_refused_as_whole_values(client: Client, text: str) -> None:
    r = _write(client, b'[{"key":"n","value":%s}]' % text.encode())
    assert r.status == 400 and r.code == "INVALID_VALUE"
    assert [(e["location"], e["value"]) for e in r.json()["errors"]] == [("/0/value", text)]
    assert client.get("/v4/head").json()["tx"] == 0


def test_pointer_tokens_are_escaped(client: Client) -> None:
    r = _write(client, b'[{"key":"n","value":{"a/b~c":18446744073709551616}}]')
    assert r.json()["errors"][0]["location"] == "/0/value/a~1b~0c"


def test_partial_mode_sets_the_item_aside_and_writes_the_rest(client: Client) -> None:
    r = _write(client, b'[{"key":"a","value":1},{"key":"b","value":[18446744073709551616]}]', query="atomic=false")
    assert r.status == 200
    out = r.json()
    assert out["tx"] == 1 and out["succeeded"] == 1
    assert [(e["index"], e["key"], e["code"], e["location"], e["value"]) for e in out["errors"]] == [
        (1, "b", "INVALID_VALUE", "/1/value/0", "18446744073709551616")]
    assert [d["key"] for d in client.read("s", ["a", "b"]).json()["data"]] == ["a"]


def test_metadata_refuses_them_with_the_metadata_code(client: Client) -> None:
    r = _write(client, b'[{"key":"m","value":1,"metadata":{"n":[-9223372036854775809]}}]')
    assert r.status == 400 and r.code == "INVALID_METADATA"  # what the engine says for the same metadata
    assert [(e["location"], e["value"]) for e in r.json()["errors"]] == [("/0/metadata/n/0", "-9223372036854775809")]


def test_the_note_header_refuses_them(app: App, client: Client) -> None:
    before = fingerprint(app.store)
    r = client.write("s", [{"key": "a", "value": 1}], headers={"X-Strata-Note": '{"by":"x","n":18446744073709551616}'})
    assert r.status == 400 and r.code == "INVALID_VALUE"
    (entry,) = r.json()["errors"]
    assert entry["location"] == "header.X-Strata-Note" and entry["value"] == "18446744073709551616"
    assert "/n" in entry["message"]
    assert fingerprint(app.store) == before


def test_a_json_body_of_put_key_refuses_them(client: Client) -> None:
    for raw, location in [(b"18446744073709551616", "body"), (b'{"a":[1,1e400]}', "/a/1")]:
        r = client.post("/v4/storage/s/key", query="key=k", body=raw, content_type="application/json")
        assert r.status == 400 and r.code == "INVALID_VALUE", r
        assert r.json()["errors"][0]["location"] == location
    assert client.get("/v4/head").json()["tx"] == 0


@pytest.mark.parametrize(("member", "code"), [("expiration_ttl", "INVALID_EXPIRATION_TTL"),
                                              ("expiration", "INVALID_EXPIRATION")])
@pytest.mark.parametrize("text", ["1e999", "1" + "0" * 150, "18446744073709551616"], ids=lambda text: text[:24])
def test_expiry_options_refuse_them_without_a_server_error(client: Client, member: str, code: str, text: str) -> None:
    r = _write(client, b'[{"key":"a","value":1,"%s":%s}]' % (member.encode(), text.encode()))
    assert r.status == 400 and r.code == code, r
    assert [(e["location"], e["value"]) for e in r.json()["errors"]] == [(f"/0/{member}", text)]


def test_every_storable_number_comes_back_exactly(client: Client) -> None:
    sent = (b'[-9223372036854775808,18446744073709551615,9223372036854775807,-0.0,0.0,0.1,5e-324,'
            b'1.7976931348623157e+308,-2.2250738585072014e-308,123456789012345678,1.0]')
    assert _write(client, b'[{"key":"n","value":%s}]' % sent).status == 200
    assert b'"value":' + sent + b"," in _read_raw(client, "n")
    value = client.read("s", ["n"]).json()["data"][0]["value"]
    assert value[0] == -(2**63) and value[1] == 2**64 - 1 and type(value[1]) is int
    assert str(value[3]) == "-0.0"


def test_a_fraction_is_the_nearest_double(client: Client) -> None:
    """Numbers with a fraction or an exponent are doubles (the docs say so): the nearest one is kept
    and answered in its shortest form, a long digit run (19+) included."""
    sent = b'[0.1000000000000000055511151231257827,1e2,12345678901234567890.5,"12345678901234567890123"]'
    assert _write(client, b'[{"key":"n","value":%s}]' % sent).status == 200
    assert b'"value":[0.1,100.0,1.2345678901234567e+19,"12345678901234567890123"]' in _read_raw(client, "n")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(app: App, client: Client, literal: bytes) -> None:
    before = fingerprint(app.store)
    r = _write(client, b'[{"key":"n","value":%s}]' % literal)
    assert r.status == 400 and r.code == "INVALID_JSON"
    assert "NaN and Infinity are not JSON numbers" in r.json()["detail"]
    assert fingerprint(app.store) == before


def test_the_fast_path_leaves_usual_bodies_to_orjson() -> None:
    from server.exact_json import loads  # here, so the HTTP tests above also run on a server without it

    items = [{"key": f"k{i}", "value": {"n": 10**17 + i, "f": 1.5, "s": "x" * 18}} for i in range(100)]
    raw = orjson.dumps(items)
    assert loads(raw) == (items, False)


def test_live_gunicorn_refuses_and_keeps_exactly(live_server: LiveServer) -> None:
    headers = {"Content-Type": "application/json"}
    status, _, body = live_server.request("POST", "/v4/storage/exact/write", body=b'[{"key":"n","value":'
                                          b'12345678901234567890123}]', headers=headers)
    assert status == 400
    problem = orjson.loads(body)
    assert problem["code"] == "INVALID_VALUE" and problem["errors"][0]["value"] == "12345678901234567890123"
    status, _, _ = live_server.request("POST", "/v4/storage/exact/write", body=b'[{"key":"n","value":'
                                       b'[18446744073709551615,-0.0]}]', headers=headers)
    assert status == 200
    status, _, body = live_server.request("GET", "/v4/storage/exact/key?key=n")
    assert status == 200 and b'"value":[18446744073709551615,-0.0]' in body
