"""server.validation called directly: each check's exact answer, and the exact problem of each refusal.

The API tests reach these checks through requests; here every branch and boundary is pinned with the
value it gives or the problem (status, code, detail, errors) it raises.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from server.exact_json import OutOfRange
from server.problems import HTTPProblem
from server.validation import (
    MAX_TX,
    WriteItem,
    check_batch_size,
    check_fields,
    check_keys,
    check_limit,
    check_read_options,
    check_storage,
    check_string,
    check_tx,
    check_write_items,
    echo,
    is_before_epoch,
    key_error,
    note_header,
    parse_time,
    query_bool,
    query_int,
    query_tx,
    query_tx_param,
)

Refusal = tuple[int, str, str, list[dict[str, Any]]]


def refusal(call: Callable[[], Any]) -> Refusal:
    """The problem ``call`` raises, as (status, code, detail, errors)."""
    with pytest.raises(HTTPProblem) as e:
        call()
    p = e.value
    assert (p.headers, p.extra) == ([], {})
    return p.status, p.code, p.detail, p.errors


def one(code: str, detail: str, location: str, value: Any) -> Refusal:
    return 400, code, detail, [{"location": location, "message": detail, "value": value}]


TX_RANGE = f"tx must be an integer from 0 to {MAX_TX}"


# --- names, txs and query parameters --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a", "A-z_0.9", "x" * 64, "...", ".a"])
def test_valid_storage_names(name: str) -> None:
    assert check_storage(name) == name


@pytest.mark.parametrize(("name", "shown"), [
    ("", ""), (".", "."), ("..", ".."), ("x" * 65, "x" * 65), ("a/b", "a/b"), ("é", "é"), ("y" * 90, "y" * 80),
    ("a\n", "a\n"),
])
def test_invalid_storage_names(name: str, shown: str) -> None:
    detail = (f"invalid storage name {shown!r}: use 1-64 characters of A-Z a-z 0-9 . _ - (not '.' or '..')")
    assert refusal(lambda: check_storage(name)) == one("INVALID_NAMESPACE", detail, "path.storage", shown)
    assert refusal(lambda: check_storage(name, "/namespace"))[3][0]["location"] == "/namespace"


def test_check_tx() -> None:
    assert [check_tx(v) for v in (None, 0, 1, MAX_TX)] == [None, 0, 1, MAX_TX]
    for value, shown in [(-1, -1), (MAX_TX + 1, MAX_TX + 1), (True, True), (1.0, 1.0), ("1", "1"), ([1], "array")]:
        assert refusal(lambda v=value: check_tx(v)) == one("INVALID_PARAMETERS", TX_RANGE, "/tx", shown)
    assert refusal(lambda: check_tx(-1, "/from_tx"))[3][0]["location"] == "/from_tx"


@pytest.mark.parametrize("text", ["", "-1", "1a", " 1", "²", "\u0661", str(MAX_TX + 1), "1.0"])
def test_query_tx_refusals(text: str) -> None:
    assert refusal(lambda: query_tx(text)) == one("INVALID_PARAMETERS", TX_RANGE, "query.tx", text)
    detail = f"since must be an integer from 0 to {MAX_TX}"
    assert refusal(lambda: query_tx_param(text, "since")) == one("INVALID_PARAMETERS", detail, "query.since", text)


def test_query_tx_values() -> None:
    assert [query_tx(t) for t in (None, "0", "007", str(MAX_TX))] == [None, 0, 7, MAX_TX]
    assert [query_tx_param(t, "since") for t in (None, "0", "12", str(MAX_TX))] == [None, 0, 12, MAX_TX]


def test_query_int() -> None:
    assert [query_int(t, "limit", 1, 5, 3) for t in (None, "1", "5", "04")] == [3, 1, 5, 4]
    detail = "limit must be an integer from 1 to 5"
    for text in ("0", "6", "-1", "x", "", "²", "\u0661", "9" * 300):
        assert refusal(lambda t=text: query_int(t, "limit", 1, 5, 3)) == one(
            "INVALID_PARAMETERS", detail, "query.limit", text[:200])


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("TRUE", True), ("1", True), ("false", False), ("False", False), ("0", False),
])
def test_query_bool(text: str, value: bool) -> None:
    assert query_bool(text, "atomic", not value) is value


def test_query_bool_default_and_refusals() -> None:
    assert query_bool(None, "atomic", True) is True and query_bool(None, "atomic", False) is False
    for text in ("yes", "", "2", "truee"):
        assert refusal(lambda t=text: query_bool(t, "atomic", True)) == one(
            "INVALID_PARAMETERS", "atomic must be true or false", "query.atomic", text)


# --- times ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "when"), [
    ("2026-11-23T07:31:47Z", datetime(2026, 11, 23, 7, 31, 47, tzinfo=UTC)),
    ("2026-11-23t07:31:47z", datetime(2026, 11, 23, 7, 31, 47, tzinfo=UTC)),
    ("2026-11-23 07:31:47+00:00", datetime(2026, 11, 23, 7, 31, 47, tzinfo=UTC)),
    ("2026-11-23T09:31:47.5+02:00", datetime(2026, 11, 23, 9, 31, 47, 500000, tzinfo=timezone(timedelta(hours=2)))),
    ("2026-11-23T07:31:47.123456789-01:30",
     datetime(2026, 11, 23, 7, 31, 47, 123456, tzinfo=timezone(-timedelta(hours=1, minutes=30)))),
    ("2026-11-23T07:31:47.1234567Z", datetime(2026, 11, 23, 7, 31, 47, 123456, tzinfo=UTC)),
])
def test_parse_time(text: str, when: datetime) -> None:
    parsed = parse_time(text, "query.at")
    assert parsed == when and parsed.utcoffset() == when.utcoffset()


FORMAT = ("a time must be an RFC 3339 date-time with an offset, such as 2026-11-23T07:31:47Z or "
          "2026-11-23T09:31:47.5+02:00")


@pytest.mark.parametrize(("value", "shown"), [
    ("2026-11-23T07:31:47", "2026-11-23T07:31:47"), ("2026-11-23", "2026-11-23"), (1764000000, 1764000000),
    ("2026-11-23T07:31:47.1234567890Z", "2026-11-23T07:31:47.1234567890Z"), ("2026-11-23T07:31Z", "2026-11-23T07:31Z"),
    (" 2026-11-23T07:31:47Z", " 2026-11-23T07:31:47Z"), ("2026-11-23T07:31:47Zx", "2026-11-23T07:31:47Zx"),
    ({"at": 1}, "object"), (None, None),
])
def test_parse_time_refuses_other_forms(value: Any, shown: Any) -> None:
    assert refusal(lambda: parse_time(value, "query.at")) == one("INVALID_PARAMETERS", FORMAT, "query.at", shown)


@pytest.mark.parametrize("text", ["2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z"])
def test_parse_time_refuses_dates_that_do_not_exist(text: str) -> None:
    detail = f"{text!r} is not a valid date-time (month 1-12, day in month, hour 0-23, ...)"
    assert refusal(lambda: parse_time(text, "/at")) == one("INVALID_PARAMETERS", detail, "/at", text)


def test_is_before_epoch() -> None:
    assert is_before_epoch(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) is True
    assert is_before_epoch(datetime(1970, 1, 1, tzinfo=UTC)) is False


# --- the note header ------------------------------------------------------------------------------------------

NOTE = "header.X-Strata-Note"


def wsgi(text: str) -> dict[str, Any]:
    """The environ of a request whose X-Strata-Note header was ``text`` sent as UTF-8."""
    return {"HTTP_X_STRATA_NOTE": text.encode().decode("latin-1")}


def test_note_header_absent_or_an_object() -> None:
    assert note_header({}, 100) is None
    assert note_header(wsgi('{"by": "zoë", "n": 1}'), 100) == {"by": "zoë", "n": 1}


def test_note_header_that_is_not_utf8() -> None:
    raw = "\xff" * 300
    assert refusal(lambda: note_header({"HTTP_X_STRATA_NOTE": raw}, 100)) == one(
        "INVALID_PARAMETERS", "X-Strata-Note is not UTF-8", NOTE, raw[:200])


def test_note_header_far_over_the_limit_is_refused_before_parsing() -> None:
    text = "{" + " " * 398 + "}"  # 400 characters: at four bytes a character, the most 100 bytes can be
    assert note_header(wsgi('{"a": 1}' + " " * 392), 100) == {"a": 1}
    assert refusal(lambda: note_header(wsgi(text + " "), 100)) == one(
        "INVALID_PARAMETERS", "X-Strata-Note is over 100 bytes", NOTE, 401)


@pytest.mark.parametrize(("text", "shown"), [("[", "["), ("{'a': 1}", "{'a': 1}"), ("x" * 250, "x" * 200 + "...")])
def test_note_header_that_is_not_json(text: str, shown: str) -> None:
    assert refusal(lambda: note_header(wsgi(text), 1000)) == one(
        "INVALID_PARAMETERS", "X-Strata-Note is not valid JSON", NOTE, shown)


@pytest.mark.parametrize(("text", "kind"), [("[]", "array"), ("1", "integer"), ("null", "null"), ('"x"', "string"),
                                           ("true", "boolean"), ("1.5", "number"), ("1e999", "number")])
def test_note_header_that_is_not_an_object(text: str, kind: str) -> None:
    detail = 'X-Strata-Note must be a JSON object, such as {"by": "alice", "ticket": "OPS-42"}'
    assert refusal(lambda: note_header(wsgi(text), 100)) == one("INVALID_PARAMETERS", detail, NOTE, kind)


def test_note_header_with_a_number_no_record_can_store() -> None:
    big = "1" + "0" * 25
    detail = (f"X-Strata-Note: integer {big} is out of the 64-bit range (-9223372036854775808 to "
              "18446744073709551615) at /a/1")
    assert refusal(lambda: note_header(wsgi('{"a": [1, ' + big + "]}"), 1000)) == one(
        "INVALID_VALUE", detail, NOTE, big)
    # A long digit run that is in range is not refused.
    assert note_header(wsgi('{"a": 1000000000000000000000e-10}'), 1000) == {"a": 1e11}


def test_note_header_over_the_engine_limit() -> None:
    text = '{"a": "' + "x" * 20 + '"}'
    detail = "X-Strata-Note: note is 24 bytes encoded; the limit is 10"
    assert refusal(lambda: note_header(wsgi(text), 10)) == one("INVALID_PARAMETERS", detail, NOTE, text)


# --- bodies ---------------------------------------------------------------------------------------------------

def test_check_fields() -> None:
    body = {"a": 1, "b": 2}
    assert check_fields(body, frozenset({"a", "b", "c"}), "a read") is body
    assert check_fields({}, frozenset(), "a read") == {}
    assert refusal(lambda: check_fields([1], frozenset({"a"}), "a read")) == one(
        "INVALID_PARAMETERS", "the body must be a JSON object (a read)", "", "array")
    assert refusal(lambda: check_fields({"a": 1, "x": [1], "y": "v"}, frozenset({"b", "a"}), "a read")) == (
        400, "INVALID_PARAMETERS", "unknown field(s) 'x', 'y'; allowed: a, b",
        [{"location": "/x", "message": "unknown field", "value": "array"},
         {"location": "/y", "message": "unknown field", "value": "v"}],
    )


def test_check_keys() -> None:
    keys = ["a", "b"]
    assert check_keys(keys, "/keys") is keys and check_keys([], "/keys") == []
    assert refusal(lambda: check_keys("a", "/keys")) == one(
        "INVALID_PARAMETERS", "keys must be an array of strings", "/keys", "string")
    assert refusal(lambda: check_keys(("a",), "/keys"))[3][0]["value"] == "tuple"
    assert refusal(lambda: check_keys(["a", 1, None, "b", {"k": 1}], "/keys")) == (
        400, "INVALID_PARAMETERS", "every key must be a string",
        [{"location": "/keys/1", "message": "not a string", "value": 1},
         {"location": "/keys/2", "message": "not a string", "value": None},
         {"location": "/keys/4", "message": "not a string", "value": "object"}],
    )
    many = [1] * 150
    errors = refusal(lambda: check_keys(many, ""))[3]
    assert [e["location"] for e in errors] == [f"/{i}" for i in range(100)]


def test_check_string() -> None:
    assert check_string({"prefix": "p"}, "prefix") == "p"
    assert check_string({}, "prefix") is None and check_string({"prefix": None}, "prefix") is None
    assert refusal(lambda: check_string({"prefix": 1}, "prefix")) == one(
        "INVALID_PARAMETERS", "prefix must be a string", "/prefix", 1)


def test_check_limit() -> None:
    assert [check_limit(v) for v in (None, 1, 10_000)] == [1000, 1, 10_000]
    for value in (0, 10_001, True, 5.0, "5"):
        assert refusal(lambda v=value: check_limit(v)) == one(
            "INVALID_PARAMETERS", "limit must be an integer from 1 to 10000", "/limit", value)


def test_check_read_options() -> None:
    assert check_read_options({}) == (False, None)
    assert check_read_options({"metadata": True, "fields": []}) == (True, [])
    assert check_read_options({"metadata": False, "fields": ["expire_time", "created_at", "updated_at"]}) == (
        False, ["expire_time", "created_at", "updated_at"])
    assert check_read_options({"fields": None}) == (False, None)
    for value in (1, None, "true"):
        assert refusal(lambda v=value: check_read_options({"metadata": v})) == one(
            "INVALID_PARAMETERS", "metadata must be true or false", "/metadata", value)
    detail = "fields must be an array of created_at, updated_at, expire_time"
    for fields, shown in ((["created_at", "tx"], "array"), ("created_at", "created_at"), ({"a": 1}, "object")):
        assert refusal(lambda f=fields: check_read_options({"fields": f})) == one(
            "INVALID_PARAMETERS", detail, "/fields", shown)


@pytest.mark.parametrize(("key", "why"), [
    ("k", None),
    ("é" * 256, None),
    (1, ("INVALID_KEY", "key must be a string")),
    (None, ("INVALID_KEY", "key must be a string")),
    ("", ("INVALID_KEY", "key must not be empty")),
    ("a\ud800", ("INVALID_KEY", "key is not valid Unicode (it holds a lone surrogate)")),
    ("é" * 256 + "x", ("KEY_TOO_LONG", "key is 513 bytes of UTF-8; the limit is 512")),
])
def test_key_error(key: Any, why: tuple[str, str] | None) -> None:
    assert key_error(key) == why


def test_key_error_with_another_limit() -> None:
    assert key_error("abc", 3) is None
    assert key_error("abcd", 3) == ("KEY_TOO_LONG", "key is 4 bytes of UTF-8; the limit is 3")


def test_check_batch_size() -> None:
    for body in ([1, 2, 3], {"a": 1}, "x", None):
        assert check_batch_size(body, 3, "items") is None
    assert refusal(lambda: check_batch_size([], 3, "events")) == one("EMPTY_BATCH", "the write has no events", "",
                                                                     "array")
    assert refusal(lambda: check_batch_size([1, 2, 3, 4], 3, "items")) == one(
        "BATCH_TOO_LARGE", "a write may hold at most 3 items", "", 4)


# --- echo -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "shown"), [
    ({}, "object"), ([1], "array"), ("x" * 200, "x" * 200), ("x" * 201, "x" * 200 + "..."), (1.5, 1.5),
    (True, True), (None, None), (OutOfRange("1e999"), "1e999"), (OutOfRange("9" * 300), "9" * 200 + "..."),
    (b"x", b"x"),
])
def test_echo(value: Any, shown: Any) -> None:
    assert echo(value) == shown


# --- write items ----------------------------------------------------------------------------------------------

def item_error(index: int, key: Any, code: str, message: str, location: str, value: Any) -> dict[str, Any]:
    return {"index": index, "key": key, "code": code, "message": message, "location": location, "value": value}


def test_write_items_that_are_good() -> None:
    body: list[Any] = [
        {"key": "a", "value": 1},
        {"key": "b"},
        {"key": "c", "value": "AAE=", "binary": True},
        {"key": "d", "value": "AAE=", "base64": True},
        {"key": "e", "value": "AAE=", "binary": False},
        {"key": "f", "value": "", "binary": True, "base64": True},
        {"key": "g", "value": {"x": [1]}, "expiration": 4_000_000_000, "metadata": {"m": 1}},
        {"key": "h", "value": 1, "expiration_ttl": 60.5},
        {"key": "i", "value": 1, "ttl": {"value": 2, "unit": "HOURS"}},
        {"key": "j", "value": 1, "ttl": {"value": 3}},
        {"key": "k", "value": None, "metadata": "m"},
        {"key": "l", "value": 1, "expiration": None, "expiration_ttl": None, "ttl": None, "metadata": None},
        {"key": "m"},
        {"key": "n", "value": "AAE=", "binary": True, "expiration_ttl": 60, "metadata": {"m": 2}},
    ]
    good, bad = check_write_items(body)
    assert bad == []
    assert good == [
        WriteItem(0, "a", 1, False, None, "expiration_ttl", body[0]),
        WriteItem(1, "b", None, True, sent=body[1]),
        WriteItem(2, "c", b"\x00\x01", False, None, "expiration_ttl", body[2]),
        WriteItem(3, "d", b"\x00\x01", False, None, "expiration_ttl", body[3]),
        WriteItem(4, "e", "AAE=", False, None, "expiration_ttl", body[4]),
        WriteItem(5, "f", b"", False, None, "expiration_ttl", body[5]),
        WriteItem(6, "g", {"x": [1]}, False, (4_000_000_000, None, {"m": 1}), "expiration_ttl", body[6]),
        WriteItem(7, "h", 1, False, (None, 60.5, None), "expiration_ttl", body[7]),
        WriteItem(8, "i", 1, False, (None, 7200, None), "ttl", body[8]),
        WriteItem(9, "j", 1, False, (None, 3, None), "ttl", body[9]),
        WriteItem(10, "k", None, False, (None, None, "m"), "expiration_ttl", body[10]),
        WriteItem(11, "l", 1, False, None, "expiration_ttl", body[11]),
        WriteItem(12, "m", None, True, sent=body[12]),
        WriteItem(13, "n", b"\x00\x01", False, (None, 60, {"m": 2}), "expiration_ttl", body[13]),
    ]
    assert all(item.condition is None for item in good)


@pytest.mark.parametrize("unit", ["SECONDS", "MINUTES", "HOURS", "DAYS"])
def test_every_ttl_unit(unit: str) -> None:
    seconds = {"SECONDS": 1, "MINUTES": 60, "HOURS": 3600, "DAYS": 86400}[unit]
    good, bad = check_write_items([{"key": "k", "value": 1, "ttl": {"value": 2, "unit": unit}}])
    assert (bad, good[0].options, good[0].ttl_field) == ([], (None, 2 * seconds, None), "ttl")


def test_write_body_that_is_not_an_array() -> None:
    for body, kind in (({"key": "a"}, "object"), ("x", "string"), (None, "null"), (1.5, "number"), (False, "boolean"),
                       (OutOfRange("1e999"), "number")):
        assert refusal(lambda b=body: check_write_items(b)) == one(
            "INVALID_PARAMETERS", "the write body must be a JSON array of items", "", kind)
    assert check_write_items([]) == ([], [])


def test_write_items_with_bad_shapes_keys_and_flags() -> None:
    body: list[Any] = [
        [1],
        {"value": 1},
        {"key": 5, "value": 1},
        {"key": "", "value": 1},
        {"key": "x" * 513, "value": 1},
        {"key": "a", "value": 1, "colour": [1], "shade": 2},
        {"key": "a", "value": 1},
        {"key": "a", "value": 2},
        {"key": "b", "value": 1, "binary": 1},
        {"key": "c", "value": 1, "base64": "yes"},
        {"key": "d", "value": "AA==", "binary": True, "base64": False},
        {"key": "e", "value": "AA=", "binary": True},
        {"key": "f", "value": 5, "base64": True},
        {"key": 7, "colour": 1},
    ]
    good, bad = check_write_items(body)
    assert good == [WriteItem(6, "a", 1, False, None, "expiration_ttl", body[6])]
    assert bad == [
        item_error(0, None, "INVALID_PARAMETERS", "an item must be an object", "/0", "array"),
        item_error(1, None, "INVALID_KEY", "key is required", "/1/key", None),
        item_error(2, None, "INVALID_KEY", "key must be a string", "/2/key", 5),
        item_error(3, "", "INVALID_KEY", "key must not be empty", "/3/key", ""),
        item_error(4, "x" * 513, "KEY_TOO_LONG", "key is 513 bytes of UTF-8; the limit is 512", "/4/key",
                   "x" * 200 + "..."),
        item_error(5, "a", "INVALID_PARAMETERS", "unknown field 'colour'", "/5/colour", "array"),
        item_error(7, "a", "DUPLICATE_KEY", "key appears earlier in the same write", "/7/key", "a"),
        item_error(8, "b", "INVALID_PARAMETERS", "binary must be true or false", "/8/binary", 1),
        item_error(9, "c", "INVALID_PARAMETERS", "base64 must be true or false", "/9/base64", "yes"),
        item_error(10, "d", "INVALID_PARAMETERS", "binary and base64 are one flag under two names (base64 is "
                   "Cloudflare's); they disagree here: give one of them", "/10/base64", False),
        item_error(11, "e", "INVALID_VALUE", "a binary value must be a base64 string", "/11/value", "AA="),
        item_error(12, "f", "INVALID_VALUE", "a binary value must be a base64 string", "/12/value", 5),
        item_error(13, None, "INVALID_PARAMETERS", "unknown field 'colour'", "/13/colour", 1),
    ]


def test_a_bad_item_does_not_claim_its_key() -> None:
    # Only a good item's key makes a later one a duplicate.
    good, bad = check_write_items([{"key": "a", "value": 1, "binary": 1}, {"key": "a", "value": 2},
                                   {"key": "b", "value": "!", "binary": True}, {"key": "b", "value": 3},
                                   {"key": "c", "value": 1, "expiration": "x"}, {"key": "c", "value": 4}])
    assert [(g.request_index, g.key) for g in good] == [(1, "a"), (3, "b"), (5, "c")]
    assert [e["index"] for e in bad] == [0, 2, 4]


def test_write_items_with_a_shorter_key_limit() -> None:
    good, bad = check_write_items([{"key": "abc", "value": 1}, {"key": "abcd", "value": 1}], 3)
    assert [g.key for g in good] == ["abc"]
    assert bad == [item_error(1, "abcd", "KEY_TOO_LONG", "key is 4 bytes of UTF-8; the limit is 3", "/1/key", "abcd")]


def test_write_items_with_bad_options() -> None:
    ttl_shape = 'ttl must be {"value": number, "unit": "SECONDS" | "MINUTES" | "HOURS" | "DAYS"}'
    body: list[Any] = [
        {"key": "a", "value": 1, "expiration": "soon"},
        {"key": "b", "value": 1, "expiration": True},
        {"key": "c", "value": 1, "expiration_ttl": "60"},
        {"key": "d", "value": 1, "expiration_ttl": 60, "ttl": {"value": 60}},
        {"key": "e", "value": 1, "ttl": 60},
        {"key": "f", "value": 1, "ttl": {"value": 1, "unit": "WEEKS"}},
        {"key": "g", "value": 1, "ttl": {"value": "1"}},
        {"key": "h", "value": 1, "ttl": {"value": 1, "unit": 1}},
        {"key": "i", "value": 1, "ttl": {"value": 1, "every": 2}},
        {"key": "j", "ttl": {"value": 1}},
        {"key": "k", "metadata": {"m": 1}},
        {"key": "l", "expiration": 5},
        {"key": "m", "value": 1, "expiration": OutOfRange("1e999")},
        {"key": "n", "value": 1, "expiration_ttl": OutOfRange("1" * 30)},
        {"key": "o", "value": 1, "ttl": {"unit": "DAYS"}},
        {"key": "p", "value": 1, "ttl": {"value": 1, "unit": "days"}},
        {"key": "q", "value": 1, "ttl": {"value": 1, "unit": ["DAYS"]}},
    ]
    good, bad = check_write_items(body)
    assert good == []
    clear = "a clear (an item without value) takes no expiration, ttl or metadata"
    assert bad == [
        item_error(0, "a", "INVALID_EXPIRATION", "expiration must be epoch seconds (a number)", "/0/expiration",
                   "soon"),
        item_error(1, "b", "INVALID_EXPIRATION", "expiration must be epoch seconds (a number)", "/1/expiration", True),
        item_error(2, "c", "INVALID_EXPIRATION_TTL", "expiration_ttl must be a number of seconds",
                   "/2/expiration_ttl", "60"),
        item_error(3, "d", "INVALID_PARAMETERS", "give expiration_ttl or ttl, not both", "/3/ttl", "object"),
        item_error(4, "e", "INVALID_EXPIRATION_TTL", ttl_shape, "/4/ttl", 60),
        item_error(5, "f", "INVALID_EXPIRATION_TTL", ttl_shape, "/5/ttl", "object"),
        item_error(6, "g", "INVALID_EXPIRATION_TTL", ttl_shape, "/6/ttl", "object"),
        item_error(7, "h", "INVALID_EXPIRATION_TTL", ttl_shape, "/7/ttl", "object"),
        item_error(8, "i", "INVALID_EXPIRATION_TTL", ttl_shape, "/8/ttl", "object"),
        item_error(9, "j", "INVALID_PARAMETERS", clear, "/9", "object"),
        item_error(10, "k", "INVALID_PARAMETERS", clear, "/10", "object"),
        item_error(11, "l", "INVALID_PARAMETERS", clear, "/11", "object"),
        item_error(12, "m", "INVALID_EXPIRATION", "number 1e999 is beyond the range of a double (about 1.8e308)",
                   "/12/expiration", "1e999"),
        item_error(13, "n", "INVALID_EXPIRATION_TTL", f"integer {'1' * 30} is out of the 64-bit range "
                   "(-9223372036854775808 to 18446744073709551615)", "/13/expiration_ttl", "1" * 30),
        item_error(14, "o", "INVALID_EXPIRATION_TTL", ttl_shape, "/14/ttl", "object"),
        item_error(15, "p", "INVALID_EXPIRATION_TTL", ttl_shape, "/15/ttl", "object"),
        item_error(16, "q", "INVALID_EXPIRATION_TTL", ttl_shape, "/16/ttl", "object"),
    ]


def test_write_items_with_numbers_no_record_can_store() -> None:
    big = OutOfRange("1" * 25)
    body: list[Any] = [
        {"key": "a", "value": [1, {"x": big}]},
        {"key": "b", "value": 1, "metadata": {"m": OutOfRange("-1e999")}},
        {"key": "c", "value": {"ok": 1}, "metadata": {"ok": 2}},
        {"key": "d", "value": big, "metadata": {"m": OutOfRange("2e999")}},
        {"key": "e", "metadata": {"m": big}, "value": 1, "binary": False},
    ]
    good, bad = check_write_items(body, out_of_range=True)
    assert [(g.request_index, g.key) for g in good] == [(2, "c")]
    too_big = f"integer {'1' * 25} is out of the 64-bit range (-9223372036854775808 to 18446744073709551615)"
    assert bad == [
        item_error(0, "a", "INVALID_VALUE", f"value is not storable: {too_big}", "/0/value/1/x", "1" * 25),
        item_error(1, "b", "INVALID_METADATA", "metadata is not storable: number -1e999 is beyond the range of a "
                   "double (about 1.8e308)", "/1/metadata/m", "-1e999"),
        item_error(3, "d", "INVALID_VALUE", f"value is not storable: {too_big}", "/3/value", "1" * 25),
        item_error(4, "e", "INVALID_METADATA", f"metadata is not storable: {too_big}", "/4/metadata/m", "1" * 25),
    ]
    # Without the flag the body is taken to hold none (the parser said so): nothing is searched.
    good, bad = check_write_items([{"key": "a", "value": [big]}])
    assert (bad, good[0].value) == ([], [big])
