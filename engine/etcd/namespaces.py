"""Namespaces on etcd: the registry ``P/n/<ns>`` (written by a namespace's first tx, or by
:func:`create`, a housekeeping txn), ``P/u/<ns>`` (put by every tx touching it) and what
:meth:`engine.Store.namespace_info` reports.

``namespace_info`` is the LMDB engine's :class:`~engine.records.NamespaceInfo`: ``created_at`` from the
registry, ``tx`` from ``P/u/<ns>``'s mod revision, ``updated_at`` from that tx's log entry, ``key_count``
by a ``count_only`` range of the data keys, all read in one txn. ``size_bytes`` (the bytes of the live
keys' newest versions as LMDB stores them: keypart and record) has no server-side aggregate in etcd, so
it is summed over a range of the namespace's keys and records: **O(keys) here** where LMDB keeps it in
the registry. The sealer will keep it per namespace from its watch (not built yet).
"""

from __future__ import annotations

import ormsgpack

from .. import errors, schema
from ..encoding import keypart
from ..records import NamespaceInfo
from .kv import Compare, Put, Range, RangeResult, prefix_end
from .timeline import Timeline
from .txlog import records_at

#: A 4-byte namespace id: only its length matters for a keypart's size.
_NS_ID = b"\0\0\0\0"


def names(timeline: Timeline) -> list[str]:
    """The names of every namespace ever written, in name order."""
    start, end = timeline.layout.registries
    kvs = timeline.client.range(start, end, keys_only=True).kvs
    return [timeline.layout.namespace_of_registry(kv.key) for kv in kvs]


def info(timeline: Timeline, namespace: str) -> NamespaceInfo | None:
    """What ``namespace`` holds at the latest tx, or None if it was never written."""
    layout = timeline.layout
    data = layout.data_prefix(namespace)
    result = timeline.client.txn((), [Range(layout.registry(namespace)), Range(layout.updated(namespace)),
                                      Range(data, prefix_end(data), count_only=True)])
    registry, updated, count = result.responses
    assert isinstance(registry, RangeResult) and isinstance(updated, RangeResult) and isinstance(count, RangeResult)
    if not registry.kvs:
        return None
    created_us = ormsgpack.unpackb(registry.kvs[0].value)["created_us"]
    if not updated.kvs:  # created, never written: as LMDB, updated when created, at tx 0
        return NamespaceInfo(namespace, schema.time_of(created_us), schema.time_of(created_us), 0, 0, 0)
    revision = updated.kvs[0].mod_revision
    logged = records_at(timeline, [revision])
    updated_us = ormsgpack.unpackb(logged[revision])[0] if revision in logged else 0
    size = 0
    for kv in timeline.client.range(data, prefix_end(data), result.revision).kvs:
        size += len(keypart(_NS_ID, kv.key[len(data):])) + len(kv.value)
    return NamespaceInfo(namespace, schema.time_of(created_us), schema.time_of(updated_us), timeline.tx_of(revision),
                         count.total, size)


def create(timeline: Timeline, namespace: str, now_us: int) -> NamespaceInfo:
    """Create an empty namespace: a housekeeping txn (it takes a revision but no tx number) putting its
    registry entry if there is none, else ``NAMESPACE_EXISTS`` (:meth:`engine.Store.create_namespace`)."""
    registry = timeline.layout.registry(namespace)
    try:
        timeline.housekeeping([Put(registry, ormsgpack.packb({"created_us": now_us}))],
                              [Compare(registry, "CREATE", "==", 0)])
    except errors.Conflict:
        raise errors.NamespaceExists(f"namespace {namespace!r} already exists", namespace=namespace) from None
    return NamespaceInfo(namespace, schema.time_of(now_us), schema.time_of(now_us), 0, 0, 0)
