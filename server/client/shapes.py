"""The server's JSON shapes back into the engine's value types (the inverse of :mod:`server.shapes`).

A record ``{"key", "value", "tx", "binary"}`` becomes a :class:`~engine.records.Record` (base64
decoded to ``bytes`` when ``binary``); ``{"key", "tx"}`` without ``value`` is a cleared key. Times
(RFC 3339, UTC) become aware ``datetime`` objects, as the engine returns them.
"""

from __future__ import annotations

from base64 import b64decode
from datetime import UTC, datetime
from typing import Any

from engine.events import Event, StreamInfo
from engine.history import Change, Version
from engine.records import NamespaceInfo, Record
from engine.txlog import Operation, TxInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def when(text: Any) -> datetime | None:
    """An RFC 3339 time of an answer as an aware UTC datetime (None stays None)."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def time_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def value_of(doc: dict[str, Any], member: str = "value") -> Any:
    """The value of a record, version or event: base64 text decoded when ``binary``."""
    value = doc.get(member)
    return b64decode(value) if doc.get("binary") else value


def record(doc: dict[str, Any]) -> Record:
    if "value" not in doc:  # cleared: the seed's shape has no value member
        return Record(doc["key"], None, doc["tx"], False, True, doc.get("metadata"), when(doc.get("created_at")),
                      when(doc.get("updated_at")), when(doc.get("expire_time")))
    if len(doc) == 4:  # the plain shape: the common case, built without the optional lookups
        binary = doc["binary"]
        return Record(doc["key"], b64decode(doc["value"]) if binary else doc["value"], doc["tx"], binary)
    return Record(doc["key"], value_of(doc), doc["tx"], bool(doc.get("binary")), False, doc.get("metadata"),
                  when(doc.get("created_at")), when(doc.get("updated_at")), when(doc.get("expire_time")))


def version(doc: dict[str, Any]) -> Version:
    moment = when(doc["time"])
    assert moment is not None
    if doc["op"] != "put":
        return Version(doc["tx"], moment, doc["op"], note=doc.get("note"))
    return Version(doc["tx"], moment, "put", value_of(doc), bool(doc.get("binary")), doc.get("note"),
                   doc.get("metadata"), when(doc.get("expire_time")))


def change(doc: dict[str, Any]) -> Change:
    before, after = doc.get("before"), doc.get("after")
    return Change(doc["key"], doc["kind"], None if before is None else record(before),
                  None if after is None else record(after))


def namespace_info(doc: dict[str, Any]) -> NamespaceInfo:
    stat = doc.get("stat") or {}
    created, updated = when(doc["created_at"]), when(doc["updated_at"])
    assert created is not None and updated is not None
    return NamespaceInfo(doc["name"], created, updated, doc["tx"], stat.get("key_count", 0), stat.get("size_bytes", 0))


def stream_info(doc: dict[str, Any]) -> StreamInfo:
    stat = doc.get("stat") or {}
    created, updated = when(doc["created_at"]), when(doc["updated_at"])
    assert created is not None and updated is not None
    return StreamInfo(doc["name"], created, updated, doc["tx"], stat.get("event_count", 0), stat.get("size_bytes", 0))


def tx_info(doc: dict[str, Any], namespace: str | None = None) -> TxInfo:
    """A tx of the log (``GET /v4/tx/N``), or an event of a namespace's feed (its operations have no
    ``namespace`` member: they are all of ``namespace``)."""
    moment = when(doc["time"])
    assert moment is not None
    ops = [Operation(op.get("namespace", namespace), op["key"], op["op"]) for op in doc.get("operations") or ()]
    return TxInfo(doc["tx"], moment, time_us(moment), doc.get("note"), ops, doc.get("hash", ""))


def event(doc: dict[str, Any]) -> Event:
    binary = bool(doc.get("binary"))
    return Event(doc["tx"], doc["index"], b64decode(doc["data"]) if binary else doc["data"], binary)
