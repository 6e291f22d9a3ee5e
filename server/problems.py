"""Errors as data: RFC 9457 problem documents and the one table from error class to HTTP status.

Every error the server answers with is an ``application/problem+json`` document::

    {"type": "urn:strata:problem:FUTURE_TX", "title": "Bad Request", "status": 400,
     "detail": "tx 9 is above the latest tx 7", "errors": [{"location": "/tx", "message": "...",
     "value": 9}], "code": "FUTURE_TX"}

``code`` is stable (clients branch on it): the engine's codes plus the HTTP ones defined here. The
status of an engine error is found by walking its class's MRO through :data:`STATUS_BY_ERROR`, so a
new engine subclass inherits its parent's status instead of silently becoming a 500.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson

from engine import errors

#: Engine error class -> HTTP status. The one place this mapping lives; looked up along the MRO.
STATUS_BY_ERROR: dict[type[BaseException], int] = {
    errors.EngineError: 400,
    errors.FutureTx: 400,
    errors.InvalidExpiration: 400,
    errors.InvalidExpirationTtl: 400,
    errors.InvalidMetadata: 400,
    errors.MetadataTooLarge: 400,
    errors.TxCompacted: 410,
    errors.NamespaceNotFound: 404,
    errors.NamespaceExists: 409,
    errors.Conflict: 409,
    errors.IdempotencyKeyReused: 422,
    errors.ProofTooLarge: 422,
    errors.StorageFull: 507,
    errors.StorageUnavailable: 503,
    errors.StoreClosed: 503,
    errors.StorageError: 500,
    errors.NotSupported: 501,
}

# HTTP-level codes (the engine's codes are on its error classes).
NOT_FOUND = "NOT_FOUND"
KEY_NOT_FOUND = "KEY_NOT_FOUND"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
UNAUTHORIZED = "UNAUTHORIZED"
FORBIDDEN = "FORBIDDEN"
INVALID_JSON = "INVALID_JSON"
INVALID_PARAMETERS = errors.InvalidParameters.code
INTERNAL_ERROR = "INTERNAL_ERROR"
TX_NOT_FOUND = "TX_NOT_FOUND"
TOO_MANY_STREAMS = "TOO_MANY_STREAMS"
REQUEST_TIMEOUT = "REQUEST_TIMEOUT"

PROBLEM_CONTENT_TYPE = "application/problem+json"
_RESERVED = frozenset({"type", "title", "status", "detail", "instance", "errors", "code"})


def status_of(exc: BaseException) -> int:
    """The HTTP status for an engine error (500 for anything not in the table)."""
    for cls in type(exc).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def status_line(status: int) -> str:
    """``"404 Not Found"`` for 404 (the WSGI status string)."""
    return _STATUS_LINES.get(status) or f"{status} {HTTPStatus(status).phrase}"


_STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


class HTTPProblem(Exception):
    """An error response to send: raise it anywhere in a handler and the app answers with it.

    ``errors`` is the RFC 9457 extension list of ``{"location", "message", "value"}`` (a JSON
    Pointer into the request body, or ``query.NAME`` / ``path.NAME`` / ``header.NAME``); ``headers``
    are extra response headers (``Allow`` for a 405); ``extra`` holds more extension members.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        headers: list[tuple[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or []
        self.extra = extra or {}

    def document(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document as a dict (``instance`` is the request path, when known)."""
        doc: dict[str, Any] = {
            "type": f"urn:strata:problem:{self.code}",
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            doc["instance"] = instance
        doc["errors"] = self.errors
        doc["code"] = self.code
        for name, value in self.extra.items():
            if name not in _RESERVED:
                doc[name] = value
        return doc

    def body(self, instance: str | None = None) -> bytes:
        """The serialised problem document."""
        return orjson.dumps(self.document(instance), default=repr)


def bad_request(code: str, detail: str, location: str, value: Any, message: str | None = None) -> HTTPProblem:
    """A 400 about one input, with a single ``errors`` entry pointing at it."""
    return HTTPProblem(400, code, detail, [{"location": location, "message": message or detail, "value": value}])


def item_location(code: str, index: int) -> str:
    """Where in a write body an engine item error points: the key or the value of item ``index``."""
    field = "value" if code in ("INVALID_VALUE", "VALUE_TOO_LARGE") else "key"
    return f"/{index}/{field}"


def from_engine_error(exc: errors.EngineError, item_path: str = "", tx_location: str | None = None) -> HTTPProblem:
    """Turn an engine error into a problem; item errors become ``errors`` entries.

    ``item_path`` prefixes item locations (``"/keys"`` for a read body, ``""`` for a write array);
    ``tx_location`` is where the request named its tx, so FUTURE_TX / TX_COMPACTED point at it.
    """
    details = exc.details
    problem_errors: list[dict[str, Any]] = []
    for item in details.get("errors") or ():
        index = item.get("index")
        code = str(item.get("code"))
        location = f"{item_path}/{index}" if item_path else item_location(code, int(index or 0))
        problem_errors.append(
            {
                "location": location,
                "message": item.get("message", ""),
                "value": item.get("key"),
                "index": index,
                "code": item.get("code"),
            }
        )
    for conflict in details.get("conflicts") or ():
        problem_errors.append(
            {"location": f"/{conflict.get('key', '')}", "message": "expectation failed", "value": conflict}
        )
    if tx_location is not None and not problem_errors and isinstance(exc, errors.FutureTx | errors.TxCompacted):
        problem_errors.append({"location": tx_location, "message": exc.message, "value": details.get("tx")})
    extra = {k: v for k, v in details.items() if k not in ("errors", "conflicts")}
    return HTTPProblem(status_of(exc), exc.code, exc.message, problem_errors, extra=extra)
