"""server.http's Request and response helpers, called directly: exact bodies, problems and read sizes.

The WSGI tests reach these through the app; here each branch of body, query and media-type parsing is
pinned with environ dicts and streams that record how they were read.
"""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from server.http import (
    JSON_HEADERS,
    Request,
    duration,
    json_response,
    parse_json,
    problem_response,
    too_large,
    unsupported_media_type,
)
from server.problems import HTTPProblem


class Trickle(io.RawIOBase):
    """A body that hands out at most ``step`` bytes per read (as a de-chunking reader does) and records
    every size it was asked for."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos, self.sizes = data, step, 0, []  # type: list[int | None]

    def read(self, size: int | None = -1) -> bytes:
        self.sizes.append(size)
        n = self.step if size is None or size < 0 else min(size, self.step)
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


class Failing(io.RawIOBase):
    """A body whose read raises ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def read(self, size: int | None = -1) -> bytes:
        raise self.exc


class Unread(io.RawIOBase):
    """A body that must not be read."""

    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("read")


def request(max_body: int = 100, **environ: Any) -> Request:
    return Request(environ, {"name": "s"}, 7, max_body)


def problem_of(exc_info: pytest.ExceptionInfo[HTTPProblem]) -> tuple[int, dict[str, Any]]:
    return exc_info.value.status, exc_info.value.document()


def bad(detail: str, location: str, value: Any, code: str = "INVALID_PARAMETERS") -> tuple[int, dict[str, Any]]:
    return 400, {"type": f"urn:strata:problem:{code}", "title": "Bad Request", "status": 400, "detail": detail,
                 "errors": [{"location": location, "message": detail, "value": value}], "code": code}


def too_big(limit: int) -> tuple[int, dict[str, Any]]:
    return 413, {"type": "urn:strata:problem:PAYLOAD_TOO_LARGE", "title": "Request Entity Too Large", "status": 413,
                 "detail": f"the request body is larger than {limit} bytes", "errors": [],
                 "code": "PAYLOAD_TOO_LARGE", "limit": limit}


# --- the request itself ---------------------------------------------------------------------------------------

def test_a_request_keeps_what_it_was_given() -> None:
    environ = {"PATH_INFO": "/v4/head"}
    r = Request(environ, {"name": "s"}, 42, 9)
    assert (r.environ, r.params, r.t0, r.max_body, r.principal, r.path) == (environ, {"name": "s"}, 42, 9, None,
                                                                           "/v4/head")
    assert request().path == ""


# --- query ----------------------------------------------------------------------------------------------------

def test_query_absent_or_empty_is_no_parameters() -> None:
    assert request().query(frozenset({"tx"})) == {}
    assert request(QUERY_STRING="").query(frozenset({"tx"})) == {}


def test_query_keeps_blank_values_and_decodes_escapes() -> None:
    r = request(QUERY_STRING="tx=&key=a%20b+c&prefix=%C3%A9")
    assert r.query(frozenset({"tx", "key", "prefix"})) == {"tx": "", "key": "a b c", "prefix": "é"}


def test_query_with_raw_utf8_bytes_as_wsgi_hands_them_over() -> None:
    # WSGI gives the query string as the bytes sent, decoded as latin-1.
    raw = "key=é€".encode().decode("latin-1")
    assert request(QUERY_STRING=raw).query(frozenset({"key"})) == {"key": "é€"}


@pytest.mark.parametrize("raw", ["key=%FF", "key=%C3", "key=" + b"\xff".decode("latin-1")])
def test_query_that_is_not_utf8_is_400(raw: str) -> None:
    with pytest.raises(HTTPProblem) as e:
        request(QUERY_STRING=raw).query(frozenset({"key"}))
    assert problem_of(e) == bad("the query string is not valid UTF-8", "query", raw)


def test_unknown_and_repeated_query_parameters_are_400() -> None:
    with pytest.raises(HTTPProblem) as e:
        request(QUERY_STRING="tx=1&txx=2").query(frozenset({"tx"}))
    assert problem_of(e) == bad("unknown query parameter 'txx'", "query.txx", "2")
    with pytest.raises(HTTPProblem) as e:
        request(QUERY_STRING="tx=1&tx=2").query(frozenset({"tx"}))
    assert problem_of(e) == bad("query parameter 'tx' given twice", "query.tx", "2")


# --- media type -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("content_type", "media"), [
    (None, None),
    ("", None),
    (";charset=utf-8", None),
    ("Application/JSON", "application/json"),
    (" text/plain ; charset=utf-8", "text/plain"),
    ("application/x; a=1; b=2", "application/x"),
])
def test_media_type(content_type: str | None, media: str | None) -> None:
    environ = {} if content_type is None else {"CONTENT_TYPE": content_type}
    assert request(**environ).media_type() == media


# --- body with a Content-Length -------------------------------------------------------------------------------

def test_body_of_a_declared_length_reads_exactly_that_length() -> None:
    stream = Trickle(b"abcdef", 100)
    assert request(CONTENT_LENGTH="3", **{"wsgi.input": stream}).body() == b"abc"
    assert stream.sizes == [3]


def test_body_exactly_at_the_limit_is_read_and_one_byte_more_is_413_unread() -> None:
    assert request(5, CONTENT_LENGTH="5", **{"wsgi.input": io.BytesIO(b"12345")}).body() == b"12345"
    with pytest.raises(HTTPProblem) as e:
        request(5, CONTENT_LENGTH="6", **{"wsgi.input": Unread()}).body()
    assert problem_of(e) == too_big(5)


def test_body_of_length_zero_or_without_a_stream_is_empty_and_unread() -> None:
    assert request(CONTENT_LENGTH="0", **{"wsgi.input": Unread()}).body() == b""
    assert request(CONTENT_LENGTH="5").body() == b""
    assert request().body() == b""


@pytest.mark.parametrize("declared", ["abc", "-1", "1.5", " 3"])
def test_content_length_that_is_not_a_number_is_400(declared: str) -> None:
    with pytest.raises(HTTPProblem) as e:
        request(CONTENT_LENGTH=declared, **{"wsgi.input": Unread()}).body()
    assert problem_of(e) == bad("Content-Length is not a number", "header.Content-Length", declared)


def test_body_shorter_than_its_content_length_is_400() -> None:
    with pytest.raises(HTTPProblem) as e:
        request(CONTENT_LENGTH="4", **{"wsgi.input": io.BytesIO(b"abc")}).body()
    assert problem_of(e) == bad("the body is shorter than its Content-Length", "header.Content-Length", 4)


# --- body without a length ------------------------------------------------------------------------------------

def test_body_without_a_length_is_read_only_when_chunked_or_terminated() -> None:
    assert request(**{"wsgi.input": Unread()}).body() == b""
    assert request(HTTP_TRANSFER_ENCODING="gzip", **{"wsgi.input": Unread()}).body() == b""
    assert request(HTTP_TRANSFER_ENCODING="chunked").body() == b""
    for environ in ({"HTTP_TRANSFER_ENCODING": "chunked"}, {"HTTP_TRANSFER_ENCODING": "gzip, CHUNKED"},
                    {"wsgi.input_terminated": True}):
        stream = Trickle(b"0123456789", 4)
        assert request(**environ, **{"wsgi.input": stream}).body() == b"0123456789", environ
        assert stream.sizes == [1 << 16] * 4, environ  # 4 + 4 + 2 bytes, then the end


def test_chunked_body_exactly_at_the_limit_is_read() -> None:
    stream = Trickle(b"x" * 10, 3)
    assert request(10, HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": stream}).body() == b"x" * 10


def test_chunked_body_over_the_limit_is_413_as_soon_as_it_passes_it() -> None:
    # The limit counts every piece read so far, not the last one; and reading stops at the piece that
    # passed it, however long the rest of the body is.
    stream = Trickle(b"x" * 1000, 3)
    with pytest.raises(HTTPProblem) as e:
        request(10, HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": stream}).body()
    assert problem_of(e) == too_big(10)
    assert (stream.pos, stream.sizes) == (12, [1 << 16] * 4)
    big = io.BytesIO(b"x" * (1 << 20))
    with pytest.raises(HTTPProblem):
        request(10, HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": big}).body()
    assert big.tell() == 1 << 16


# --- failures of the server's body reader ---------------------------------------------------------------------

@pytest.mark.parametrize("environ", [{"CONTENT_LENGTH": "3"}, {"HTTP_TRANSFER_ENCODING": "chunked"}])
def test_body_that_does_not_arrive_in_time_is_408(environ: dict[str, Any]) -> None:
    with pytest.raises(HTTPProblem) as e:
        request(**environ, **{"wsgi.input": Failing(TimeoutError("slow"))}).body()
    assert problem_of(e) == (408, {
        "type": "urn:strata:problem:REQUEST_TIMEOUT", "title": "Request Timeout", "status": 408,
        "detail": "the request body did not arrive in time", "errors": [], "code": "REQUEST_TIMEOUT",
    })


@pytest.mark.parametrize("environ", [{"CONTENT_LENGTH": "3"}, {"HTTP_TRANSFER_ENCODING": "chunked"}])
def test_body_cut_off_by_the_client_is_400(environ: dict[str, Any]) -> None:
    with pytest.raises(HTTPProblem) as e:
        request(**environ, **{"wsgi.input": Failing(ConnectionResetError("reset"))}).body()
    assert problem_of(e) == bad("the request body ended before it was complete", "body", None)


@pytest.mark.parametrize(("exc", "reason"), [
    (ValueError("Invalid chunk size"), "Invalid chunk size"),
    (ValueError(), "ValueError"),
    (RuntimeError("x" * 300), "x" * 200),
])
def test_body_the_server_cannot_dechunk_is_400_with_the_reason(exc: Exception, reason: str) -> None:
    with pytest.raises(HTTPProblem) as e:
        request(HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": Failing(exc)}).body()
    assert problem_of(e) == bad(f"the request body could not be read: {reason}", "body", None)


# --- JSON bodies ----------------------------------------------------------------------------------------------

def json_request(body: bytes, content_type: str | None = None) -> Request:
    environ: dict[str, Any] = {"CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    return request(**environ)


@pytest.mark.parametrize("content_type", [None, "application/json", "Application/JSON; charset=utf-8",
                                          "application/merge-patch+json"])
def test_json_is_parsed_for_json_media_types_or_none(content_type: str | None) -> None:
    assert json_request(b'{"a": [1]}', content_type).json() == {"a": [1]}
    assert json_request(b'{"a": [1]}', content_type).json_bytes() == b'{"a": [1]}'


@pytest.mark.parametrize("content_type", ["text/plain", "application/json-seq", "Application/JSON+xml"])
def test_json_of_another_media_type_is_415_unread(content_type: str) -> None:
    media = content_type.lower()
    for call in (lambda r: r.json(), lambda r: r.json_bytes(True)):
        with pytest.raises(HTTPProblem) as e:
            call(request(CONTENT_TYPE=content_type, CONTENT_LENGTH="2", **{"wsgi.input": Unread()}))
        assert problem_of(e) == (415, {
            "type": "urn:strata:problem:UNSUPPORTED_MEDIA_TYPE", "title": "Unsupported Media Type", "status": 415,
            "detail": f"Content-Type {media!r} is not accepted here; send application/json",
            "errors": [{"location": "header.Content-Type", "message": "expected application/json", "value": media}],
            "code": "UNSUPPORTED_MEDIA_TYPE",
        })


def test_empty_json_body_is_400_unless_the_endpoint_has_a_default() -> None:
    empty = bad("the request body is empty; this endpoint needs JSON", "body", None, "INVALID_JSON")
    for call in (lambda r: r.json(), lambda r: r.json_bytes()):
        with pytest.raises(HTTPProblem) as e:
            call(json_request(b""))
        assert problem_of(e) == empty
    assert json_request(b"").json(empty={}) == {}
    assert json_request(b"").json_bytes(True) == b""
    assert json_request(b"[]").json(empty={"x": 1}) == []


def test_body_that_is_not_json_is_400() -> None:
    with pytest.raises(HTTPProblem) as e:
        json_request(b"[1,").json()
    status, doc = problem_of(e)
    assert (status, doc["code"], doc["errors"]) == (400, "INVALID_JSON", [
        {"location": "body", "message": doc["detail"], "value": None}])
    assert re.fullmatch(r"the body is not valid JSON: .+: line 1 column 4 \(char 3\)", doc["detail"]), doc
    with pytest.raises(HTTPProblem) as e:
        parse_json(b"nope")
    assert e.value.document()["detail"].startswith("the body is not valid JSON: ")
    assert parse_json(b'{"k": null}') == {"k": None}


# --- responses ------------------------------------------------------------------------------------------------

def test_json_response_writes_utc_times_with_a_z() -> None:
    at = datetime(2026, 11, 30, 10, 0, 0, 250000, tzinfo=UTC)
    body = b'{"at":"2026-11-30T10:00:00.250000Z","n":1}'
    assert json_response(201, {"at": at, "n": 1}) == (201, JSON_HEADERS, [body])
    assert JSON_HEADERS == [("Content-Type", "application/json")]


def test_problem_response_has_the_problem_type_extra_headers_and_instance() -> None:
    p = HTTPProblem(405, "METHOD_NOT_ALLOWED", "no", headers=[("Allow", "GET, HEAD")])
    status, headers, body = problem_response(p, "/v4/head")
    assert (status, headers) == (405, [("Content-Type", "application/problem+json"), ("Allow", "GET, HEAD")])
    assert list(body) == [p.body("/v4/head")]
    assert orjson.loads(b"".join(body))["instance"] == "/v4/head"


def test_too_large_and_unsupported_media_type_problems() -> None:
    assert (too_large(7).status, too_large(7).document()) == too_big(7)
    p = unsupported_media_type("text/csv", "application/x-ndjson")
    assert (p.status, p.code, p.detail, p.errors) == (
        415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type 'text/csv' is not accepted here; send application/x-ndjson",
        [{"location": "header.Content-Type", "message": "expected application/x-ndjson", "value": "text/csv"}],
    )


def test_duration_is_the_milliseconds_since_t0() -> None:
    # A t0 long ago (about 11.6 days), so that a divisor off by one part in a million is a second off.
    t0 = time.perf_counter_ns() - 10**15
    low = time.perf_counter_ns() - t0
    text = duration(t0)
    high = time.perf_counter_ns() - t0
    assert re.fullmatch(r"\d+\.\d{6}ms", text), text
    shown_ns = int(text[:-2].replace(".", ""))  # six decimals of a millisecond: nanoseconds
    assert low - 1 <= shown_ns <= high + 1  # 1 ns for the float's rounding
