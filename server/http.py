"""Request parsing with size limits, and the response shapes every handler returns.

A handler gets a :class:`Request` and returns a :data:`Response` tuple ``(status, headers, body)``
where ``body`` is an iterable of bytes (a one-element list, or a generator for streamed answers).
Bodies are read only when a handler asks, and never beyond ``max_body`` bytes: a declared
``Content-Length`` over the limit is refused with 413 before a byte is read, and a chunked (or
lying) body is cut off as soon as it passes the limit. A body the server cannot de-chunk
(malformed chunk framing, cut off before the last chunk) is a 400 ``INVALID_PARAMETERS``; one that
does not arrive before the server's read deadline is a 408 ``REQUEST_TIMEOUT``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import orjson

from server.problems import (
    INVALID_JSON,
    INVALID_PARAMETERS,
    PAYLOAD_TOO_LARGE,
    PROBLEM_CONTENT_TYPE,
    REQUEST_TIMEOUT,
    UNSUPPORTED_MEDIA_TYPE,
    HTTPProblem,
    bad_request,
)

Headers = list[tuple[str, str]]
Response = tuple[int, Headers, Iterable[bytes]]

JSON_HEADERS: Headers = [("Content-Type", "application/json")]
_READ_CHUNK = 1 << 16


class Request:
    """One request: its WSGI environ, the path parameters of its route, and lazy body/query parsing.

    ``t0`` is ``time.perf_counter_ns()`` at arrival (for ``duration``); ``principal`` is the API key
    that authenticated it (``None`` when auth is off). ``query()`` raises a 400 problem for a query
    string that is not UTF-8 or repeats a parameter; ``json()`` raises 415/413/400 problems.
    """

    __slots__ = ("environ", "max_body", "params", "principal", "t0")

    def __init__(self, environ: dict[str, Any], params: dict[str, str], t0: int, max_body: int) -> None:
        self.environ = environ
        self.params = params
        self.t0 = t0
        self.max_body = max_body
        self.principal: Any = None

    @property
    def path(self) -> str:
        return str(self.environ.get("PATH_INFO", ""))

    def query(self, allowed: frozenset[str]) -> dict[str, str]:
        """The query parameters; unknown or repeated names and non-UTF-8 text are 400 problems."""
        raw = self.environ.get("QUERY_STRING", "")
        if not raw:
            return {}
        try:
            # WSGI hands the query string over as latin-1 decoded bytes; recover the UTF-8 text.
            text = raw if raw.isascii() else raw.encode("latin-1").decode()
            pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
        except (UnicodeError, ValueError):
            raise bad_request(INVALID_PARAMETERS, "the query string is not valid UTF-8", "query", raw) from None
        out: dict[str, str] = {}
        for name, value in pairs:
            if name not in allowed:
                raise bad_request(
                    INVALID_PARAMETERS, f"unknown query parameter {name!r}", f"query.{name}", value,
                )
            if name in out:
                raise bad_request(
                    INVALID_PARAMETERS, f"query parameter {name!r} given twice", f"query.{name}", value,
                )
            out[name] = value
        return out

    def media_type(self) -> str | None:
        """The lower-cased media type of the body (``Content-Type`` without parameters), if any."""
        raw = self.environ.get("CONTENT_TYPE")
        if not raw:
            return None
        if raw == "application/json":  # what nearly every request sends: nothing to take apart
            return raw
        return str(raw).split(";", 1)[0].strip().lower() or None

    def body(self) -> bytes:
        """The raw body, at most ``max_body`` bytes (413 problem beyond that)."""
        environ = self.environ
        declared = environ.get("CONTENT_LENGTH")
        stream = environ.get("wsgi.input")
        if declared:
            if not declared.isdigit():
                raise bad_request(INVALID_PARAMETERS, "Content-Length is not a number", "header.Content-Length",
                                  declared)
            length = int(declared)
            if length > self.max_body:
                raise too_large(self.max_body)
            if length == 0 or stream is None:
                return b""
            data = _read(stream, length)
            if len(data) < length:
                raise bad_request(INVALID_PARAMETERS, "the body is shorter than its Content-Length",
                                  "header.Content-Length", length)
            return bytes(data)
        # No length: only a chunked body (which the server de-chunks for us) can follow; reading an
        # unterminated stream without a length would block on servers that do not terminate it.
        chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        if stream is None or not (chunked or environ.get("wsgi.input_terminated")):
            return b""
        parts: list[bytes] = []
        total = 0
        while True:
            chunk = _read(stream, _READ_CHUNK)
            if not chunk:
                return b"".join(parts)
            total += len(chunk)
            if total > self.max_body:
                raise too_large(self.max_body)
            parts.append(chunk)

    def json(self, empty: Any = None) -> Any:
        """The body parsed as JSON. No ``Content-Type`` is taken as JSON; any other non-JSON type is
        a 415 problem. An empty body returns ``empty`` (or is a 400 problem when ``empty`` is None)."""
        raw = self.json_bytes(empty is not None)
        return parse_json(raw) if raw else empty

    def json_bytes(self, allow_empty: bool = False) -> bytes:
        """The raw body of a JSON request, for a caller with a parser of its own: the same 415 for a
        non-JSON ``Content-Type`` and 400 for an empty body (unless ``allow_empty``) as :meth:`json`."""
        media = self.media_type()
        if media is not None and media != "application/json" and not media.endswith("+json"):
            raise unsupported_media_type(media, "application/json")
        raw = self.body()
        if not raw and not allow_empty:
            raise bad_request(INVALID_JSON, "the request body is empty; this endpoint needs JSON", "body", None)
        return raw


def _read(stream: Any, size: int) -> bytes:
    """``stream.read(size)``, with a failure of the server's body reader as a 400 problem.

    The WSGI server de-chunks a chunked body while the app reads it, so a malformed chunk (a bad
    chunk size or extension, no CRLF after the data) or a body cut off before its last chunk
    surfaces here, as the server's own exception type. It is the client's fault, not the app's:
    400 ``INVALID_PARAMETERS`` at ``body``, never a logged 500. (gunicorn closes the connection
    after such an answer: where the next request would start is unknown.)
    """
    try:
        return bytes(stream.read(size))
    except TimeoutError:  # the server's body deadline passed (strata serve --body-timeout)
        raise HTTPProblem(408, REQUEST_TIMEOUT, "the request body did not arrive in time") from None
    except OSError:  # the client went away or stalled mid-body
        raise bad_request(INVALID_PARAMETERS, "the request body ended before it was complete", "body",
                          None) from None
    except Exception as exc:
        reason = (str(exc) or type(exc).__name__)[:200]
        raise bad_request(INVALID_PARAMETERS, f"the request body could not be read: {reason}", "body",
                          None) from None


def parse_json(raw: bytes) -> Any:
    """Parse JSON bytes, turning a syntax error into a 400 ``INVALID_JSON`` problem."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(INVALID_JSON, f"the body is not valid JSON: {exc}", "body", None) from None


def too_large(limit: int) -> HTTPProblem:
    """The 413 problem for a body over ``limit`` bytes."""
    return HTTPProblem(413, PAYLOAD_TOO_LARGE, f"the request body is larger than {limit} bytes",
                       extra={"limit": limit})


def unsupported_media_type(media: str, accepted: str) -> HTTPProblem:
    """The 415 problem for a body of the wrong media type."""
    return HTTPProblem(
        415, UNSUPPORTED_MEDIA_TYPE, f"Content-Type {media!r} is not accepted here; send {accepted}",
        [{"location": "header.Content-Type", "message": f"expected {accepted}", "value": media}],
    )


def duration(t0: int) -> str:
    """The processing time since ``t0`` (a ``perf_counter_ns`` value) as ``"0.184213ms"``."""
    return f"{(time.perf_counter_ns() - t0) / 1e6:.6f}ms"


def json_response(status: int, payload: Any) -> Response:
    """A JSON response (datetimes serialise as RFC 3339 UTC with a ``Z``)."""
    return status, JSON_HEADERS, [orjson.dumps(payload, option=orjson.OPT_UTC_Z)]


def problem_response(problem: HTTPProblem, instance: str | None) -> Response:
    """The problem+json response for ``problem``."""
    headers: Headers = [("Content-Type", PROBLEM_CONTENT_TYPE), *problem.headers]
    return problem.status, headers, [problem.body(instance)]
