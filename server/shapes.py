"""The JSON shapes of engine objects in responses: records and namespaces.

A record is ``{"key", "value", "tx", "binary"}``; a binary value is base64 text with
``"binary": true``; a cleared key is ``{"key", "tx"}`` only (the seed's shape: no ``value`` member,
which is how a client tells "cleared" from "holds JSON null"). A namespace is ``{"name",
"created_at", "updated_at", "tx", "stat": {"key_count", "size_bytes"}}``; the datetimes are left as
``datetime`` objects for orjson to write as RFC 3339 UTC.
"""

from __future__ import annotations

from base64 import b64encode
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.records import NamespaceInfo, Record


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
