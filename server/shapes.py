"""The JSON shapes of engine objects in responses: records, namespaces, versions, diffs and txs.

A record is ``{"key", "value", "tx", "binary"}``; a binary value is base64 text with
``"binary": true``; a cleared key is ``{"key", "tx"}`` only (the seed's shape: no ``value`` member,
which is how a client tells "cleared" from "holds JSON null"). A namespace is ``{"name",
"created_at", "updated_at", "tx", "stat": {"key_count", "size_bytes"}}``, a stream the same with
``"stat": {"event_count", "size_bytes"}``; the datetimes are left as ``datetime`` objects for orjson
to write as RFC 3339 UTC.
"""

from __future__ import annotations

from base64 import b64encode
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.events import StreamInfo
    from engine.history import Change, Version
    from engine.records import NamespaceInfo, Record
    from engine.txlog import TxInfo


def record_json(rec: Record) -> dict[str, Any]:
    """The response form of one record."""
    if rec.cleared:
        return {"key": rec.key, "tx": rec.tx}
    if rec.binary:
        return {"key": rec.key, "value": b64encode(rec.value).decode("ascii"), "tx": rec.tx, "binary": True}
    return {"key": rec.key, "value": rec.value, "tx": rec.tx, "binary": False}


def namespace_json(info: NamespaceInfo) -> dict[str, Any]:
    """The response form of one namespace."""
    return {
        "name": info.name,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "tx": info.tx,
        "stat": {"key_count": info.key_count, "size_bytes": info.size_bytes},
    }


def stream_json(info: StreamInfo) -> dict[str, Any]:
    """The response form of one stream namespace."""
    return {"name": info.name, "created_at": info.created_at, "updated_at": info.updated_at, "tx": info.tx,
            "stat": {"event_count": info.event_count, "size_bytes": info.size_bytes}}


def version_json(version: Version) -> dict[str, Any]:
    """One version of a key's history: ``{"tx", "time", "op"}``, plus ``value``/``binary`` for a put,
    and, when there are any, the tx's ``note`` (who changed it) and a put's ``metadata`` and
    ``expire_time``: an auditor reads who and what from one answer."""
    doc: dict[str, Any] = {"tx": version.tx, "time": version.time, "op": version.op}
    if version.op == "put":
        doc["value"] = b64encode(version.value).decode("ascii") if version.binary else version.value
        doc["binary"] = version.binary
        if version.metadata is not None:
            doc["metadata"] = version.metadata
        if version.expire_time is not None:
            doc["expire_time"] = version.expire_time
    if version.note is not None:
        doc["note"] = version.note
    return doc


def change_json(change: Change) -> dict[str, Any]:
    """One key of a diff: ``{"key", "kind", "before", "after"}`` with records (or null when absent)."""
    return {"key": change.key, "kind": change.kind,
            "before": None if change.before is None else record_json(change.before),
            "after": None if change.after is None else record_json(change.after)}


def tx_json(info: TxInfo) -> dict[str, Any]:
    """A committed tx from the log: time, note, operations (namespace, key, op) and chain hash."""
    return {"tx": info.tx, "time": info.time, "note": info.note,
            "operations": [{"namespace": op.namespace, "key": op.key, "op": op.op} for op in info.operations],
            "hash": info.hash}
