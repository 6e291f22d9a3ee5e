"""Problem documents (RFC 9457) back into the engine's exceptions.

The server answers every error with ``{"type", "title", "status", "detail", "errors", "code", ...}``.
:func:`error_from_problem` raises what the engine would have raised for the same mistake: the class
of ``code`` in :data:`engine.errors.BY_CODE`, with ``detail`` as its message, the problem's other
members as its ``details`` (``tx``, ``latest_tx``, ``horizon``, ...) and its ``errors`` as
``details["errors"]``, one entry per bad item (``index``, ``key``, ``code``, ``message``, plus the
server's ``location`` and ``value``). A failed condition (412 ``CONFLICT``) also gets the engine's
``details["conflicts"]``: ``{"namespace", "key", "expected", "actual"}`` per key, 0 meaning no record.

Codes only HTTP has (``UNAUTHORIZED``, ``FORBIDDEN``, ``PAYLOAD_TOO_LARGE``, ``TOO_MANY_STREAMS``, ...)
raise :class:`ServerError`, an :class:`~engine.errors.EngineError` whose ``code`` is the problem's.
Every exception carries the answer's HTTP ``status``.
"""

from __future__ import annotations

from typing import Any

import orjson

from engine import errors

_RESERVED = frozenset({"type", "title", "status", "detail", "instance", "errors", "code"})


class ServerError(errors.EngineError):
    """An error of the HTTP layer (authentication, a route, a limit of the server), not of the
    engine: ``code`` is the problem's code (``UNAUTHORIZED``, ``FORBIDDEN``, ``TOO_MANY_STREAMS``, ...)."""

    code = "SERVER_ERROR"

    def __init__(self, message: str, code: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        if code is not None:
            self.code = code


class ServerUnavailable(ServerError):
    """The server could not be reached, or the connection failed, after every retry allowed."""

    code = "SERVER_UNAVAILABLE"


def error_from_problem(status: int, content_type: str | None, body: bytes) -> errors.EngineError:
    """The exception for an error answer (a problem document, or anything else a proxy may send)."""
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if type(doc) is not dict or type(doc.get("code")) is not str:
        text = body[:200].decode("utf-8", "replace").strip()
        exc: errors.EngineError = ServerError(f"HTTP {status}: {text or 'no problem document'}",
                                              "INTERNAL_ERROR" if status >= 500 else "HTTP_ERROR")
        exc.status = status  # type: ignore[attr-defined]
        return exc
    code = doc["code"]
    message = str(doc.get("detail") or doc.get("title") or code)
    details = {k: v for k, v in doc.items() if k not in _RESERVED}
    items = [_item(e) for e in doc.get("errors") or () if type(e) is dict]
    if items:
        details["errors"] = items
    if code == errors.Conflict.code and any("found" in e for e in items):
        details["conflicts"] = [{"namespace": None, "key": e.get("key"), "expected": _tx(e.get("expected")),
                                 "actual": _tx(e.get("found"))} for e in items if "found" in e]
    cls = errors.BY_CODE.get(code)
    exc = cls(message, **details) if cls is not None else ServerError(message, code, **details)
    exc.status = status  # type: ignore[attr-defined]
    return exc


def _item(entry: dict[str, Any]) -> dict[str, Any]:
    """A problem's ``errors`` entry in the engine's item-error form (its other members kept)."""
    out = dict(entry)
    if "index" in out:  # an item of a batch: the members the engine's item errors always have
        out.setdefault("key", entry.get("value") if type(entry.get("value")) is str else None)
        out.setdefault("code", None)
        out.setdefault("message", "")
    return out


def _tx(value: Any) -> int:
    """A condition's ``expected``/``found`` as the engine writes it: a tx, 0 for "no record" (``*``, null)."""
    return value if type(value) is int else 0
