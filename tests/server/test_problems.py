"""server.problems as data: the exact problem documents, bytes, statuses and locations it builds.

The HTTP tests see these through whole requests; here each function's contract is pinned directly, so a
changed member name, default or branch shows up as a failing assertion on exact values.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from engine import errors
from server.problems import HTTPProblem, bad_request, from_engine_error, item_location, status_line, status_of


def test_status_line_is_the_wsgi_status_string() -> None:
    assert [status_line(s) for s in (200, 404, 413, 507)] == [
        "200 OK", "404 Not Found", "413 Request Entity Too Large", "507 Insufficient Storage",
    ]


def test_status_line_refuses_a_status_http_does_not_define() -> None:
    # Never a status string of None (a WSGI server would fail on it later, far from the cause).
    with pytest.raises(ValueError, match=r"^599 is not a valid HTTPStatus$"):
        status_line(599)


def test_status_of_an_exception_outside_the_table_is_500() -> None:
    assert status_of(KeyError("x")) == 500
    assert status_of(errors.ProofFailed("x")) == 400  # found through EngineError along the MRO


def test_a_problem_keeps_what_it_was_given() -> None:
    p = HTTPProblem(405, "METHOD_NOT_ALLOWED", "no", [{"location": "a"}], [("Allow", "GET")], {"limit": 3})
    assert (p.status, p.code, p.detail, p.errors, p.headers, p.extra) == (
        405, "METHOD_NOT_ALLOWED", "no", [{"location": "a"}], [("Allow", "GET")], {"limit": 3},
    )
    assert str(p) == "no" and p.args == ("no",)


def test_a_problem_without_errors_headers_or_extra_has_empty_ones() -> None:
    p = HTTPProblem(404, "NOT_FOUND", "gone")
    assert (p.errors, p.headers, p.extra) == ([], [], {})
    # Fresh containers each time: appending to one problem's list must not show in another's.
    p.errors.append({"location": "x"})
    assert HTTPProblem(404, "NOT_FOUND", "gone").errors == []


def test_document_members_in_order_without_instance() -> None:
    doc = HTTPProblem(409, "CONFLICT", "it moved", [{"location": "/k"}]).document()
    assert list(doc.items()) == [
        ("type", "urn:strata:problem:CONFLICT"), ("title", "Conflict"), ("status", 409), ("detail", "it moved"),
        ("errors", [{"location": "/k"}]), ("code", "CONFLICT"),
    ]


def test_document_with_instance_and_extension_members() -> None:
    extra = {"limit": 10, "type": "x", "title": "x", "status": 1, "detail": "x", "instance": "x", "errors": 1,
             "code": "x"}
    doc = HTTPProblem(413, "PAYLOAD_TOO_LARGE", "big", extra=extra).document("/v4/storage/s/write")
    # The reserved RFC 9457 members (and errors/code) are never overwritten by an extension member.
    assert list(doc.items()) == [
        ("type", "urn:strata:problem:PAYLOAD_TOO_LARGE"), ("title", "Request Entity Too Large"),
        ("status", 413), ("detail", "big"), ("instance", "/v4/storage/s/write"), ("errors", []),
        ("code", "PAYLOAD_TOO_LARGE"), ("limit", 10),
    ]


def test_body_is_the_document_as_json_bytes() -> None:
    p = HTTPProblem(400, "INVALID_PARAMETERS", "bad", [{"location": "query.tx", "message": "m", "value": "x"}])
    assert p.body("/v4/tx") == (
        b'{"type":"urn:strata:problem:INVALID_PARAMETERS","title":"Bad Request","status":400,"detail":"bad",'
        b'"instance":"/v4/tx","errors":[{"location":"query.tx","message":"m","value":"x"}],'
        b'"code":"INVALID_PARAMETERS"}'
    )
    assert orjson.loads(p.body()) == p.document()


def test_body_shows_a_value_json_cannot_hold_by_its_repr() -> None:
    p = HTTPProblem(400, "INVALID_PARAMETERS", "bad", [{"location": "body", "message": "m", "value": b"\x00k"}])
    assert orjson.loads(p.body())["errors"] == [{"location": "body", "message": "m", "value": "b'\\x00k'"}]


def test_bad_request_names_one_input() -> None:
    p = bad_request("INVALID_PARAMETERS", "tx is not a number", "query.tx", "x")
    assert (p.status, p.code, p.detail, p.errors, p.headers, p.extra) == (
        400, "INVALID_PARAMETERS", "tx is not a number",
        [{"location": "query.tx", "message": "tx is not a number", "value": "x"}], [], {},
    )
    own = bad_request("INVALID_JSON", "the body is not JSON", "body", None, message="expected JSON")
    assert own.errors == [{"location": "body", "message": "expected JSON", "value": None}]


@pytest.mark.parametrize(("code", "index", "location"), [
    ("INVALID_VALUE", 0, "/0/value"),
    ("VALUE_TOO_LARGE", 3, "/3/value"),
    ("INVALID_KEY", 2, "/2/key"),
    ("KEY_TOO_LONG", 0, "/0/key"),
    ("DUPLICATE_KEY", 7, "/7/key"),
    ("invalid_value", 1, "/1/key"),  # codes are exact: no case folding
])
def test_item_location_points_at_the_value_or_the_key(code: str, index: int, location: str) -> None:
    assert item_location(code, index) == location


def test_item_errors_of_a_write_array() -> None:
    exc = errors.InvalidValue("2 items are invalid", errors=[
        {"index": 0, "key": "a", "code": "VALUE_TOO_LARGE", "message": "too big"},
        {"index": 2, "key": "b", "code": "INVALID_KEY", "message": "bad key"},
    ], limit=5)
    p = from_engine_error(exc)
    assert (p.status, p.code, p.detail) == (400, "INVALID_VALUE", "2 items are invalid")
    assert p.errors == [
        {"location": "/0/value", "message": "too big", "value": "a", "index": 0, "code": "VALUE_TOO_LARGE"},
        {"location": "/2/key", "message": "bad key", "value": "b", "index": 2, "code": "INVALID_KEY"},
    ]
    # The item list is in ``errors`` once, not repeated as an extension member.
    assert p.extra == {"limit": 5}
    assert list(p.document()) == ["type", "title", "status", "detail", "errors", "code", "limit"]


def test_item_errors_under_a_path_and_with_missing_members() -> None:
    exc = errors.InvalidKey("bad", errors=[{"index": 1, "key": "k", "code": "INVALID_KEY"}, {"code": "INVALID_VALUE"}])
    assert from_engine_error(exc, item_path="/keys").errors == [
        {"location": "/keys/1", "message": "", "value": "k", "index": 1, "code": "INVALID_KEY"},
        {"location": "/keys/None", "message": "", "value": None, "index": None, "code": "INVALID_VALUE"},
    ]
    # Without a path, an item with no index points at item 0.
    assert [e["location"] for e in from_engine_error(exc).errors] == ["/1/key", "/0/value"]


def test_conflicts_become_errors_at_their_keys() -> None:
    conflict = {"namespace": "s", "key": "k", "expected": 1, "actual": 2}
    exc = errors.Conflict("1 expectation(s) failed", conflicts=[conflict, {"expected": 0}])
    p = from_engine_error(exc, tx_location="/tx")
    assert (p.status, p.code) == (409, "CONFLICT")
    assert p.errors == [
        {"location": "/k", "message": "expectation failed", "value": conflict},
        {"location": "/", "message": "expectation failed", "value": {"expected": 0}},
    ]
    assert p.extra == {}
    assert list(p.document()) == ["type", "title", "status", "detail", "errors", "code"]


@pytest.mark.parametrize(("error", "status"), [(errors.FutureTx, 400), (errors.TxCompacted, 410)])
def test_a_refused_tx_points_at_where_the_request_named_it(error: type[errors.EngineError], status: int) -> None:
    p = from_engine_error(error("tx 9 is above the latest tx 7", tx=9, latest_tx=7), tx_location="query.tx")
    assert (p.status, p.code, p.detail) == (status, error.code, "tx 9 is above the latest tx 7")
    assert p.errors == [{"location": "query.tx", "message": "tx 9 is above the latest tx 7", "value": 9}]
    assert p.extra == {"tx": 9, "latest_tx": 7}
    # No location given: no entry made up.
    assert from_engine_error(error("m", tx=9)).errors == []


def test_only_a_refused_tx_gets_a_tx_entry() -> None:
    assert from_engine_error(errors.InvalidParameters("m", tx=-1), tx_location="/tx").errors == []
    # Item errors already say where the request went wrong: no tx entry is added to them.
    exc = errors.FutureTx("m", tx=9, errors=[{"index": 0, "key": "k", "code": "FUTURE_TX", "message": "x"}])
    assert [e["location"] for e in from_engine_error(exc, tx_location="/tx").errors] == ["/0/key"]


def test_details_become_extension_members() -> None:
    details: dict[str, Any] = {"needed_bytes": 10, "free_bytes": 2}
    p = from_engine_error(errors.StorageFull("full", **details))
    assert (p.status, p.code, p.detail, p.errors, p.headers, p.extra) == (507, "STORAGE_FULL", "full", [], [], details)
