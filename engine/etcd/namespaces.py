"""Namespaces on etcd: the registry ``P/n/<ns>`` (written by a namespace's first tx, or by
:func:`create`, a housekeeping txn; deleted by :func:`drop`), ``P/u/<ns>`` (put by every tx touching it)
and what :meth:`engine.Store.namespace_info` reports.

``namespace_info`` is the LMDB engine's :class:`~engine.records.NamespaceInfo`: ``created_at`` from the
registry, ``tx`` from ``P/u/<ns>``'s mod revision, ``updated_at`` from that tx's log entry, ``key_count``
by a ``count_only`` range of the data keys, all read in one txn. ``size_bytes`` (the bytes of the live
keys' newest versions as LMDB stores them: keypart and record) has no server-side aggregate in etcd, so
it is summed over a range of the namespace's keys and records: **O(keys) here** where LMDB keeps it in
the registry. The sealer will keep it per namespace from its watch (not built yet).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack
import ormsgpack

from .. import errors, schema
from ..codec import DELETE, DELETE_RECORD
from ..encoding import keypart
from ..records import NamespaceInfo
from .commit import MAX_ATTEMPTS, MAX_GUARD_RETRIES, RESERVED_BYTES, EtcdLimits
from .kv import Compare, DeleteRange, Put, Range, RangeResult, Request, prefix_end
from .once import commit_once
from .timeline import Timeline, count_of
from .txlog import records_at

if TYPE_CHECKING:
    from .idempotency import ClaimGuard

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


def create(timeline: Timeline, namespace: str, now_us: int, claim: ClaimGuard | None = None) -> NamespaceInfo:
    """Create an empty namespace: a housekeeping txn (it takes a revision but no tx number) putting its
    registry entry if there is none, else ``NAMESPACE_EXISTS`` (:meth:`engine.Store.create_namespace`).
    ``claim``: an idempotency claim stored by the same txn, its answer made from :func:`_created`."""
    registry = timeline.layout.registry(namespace)
    while True:
        compare, puts = claim.guard(lambda _: _created(timeline, namespace, now_us)) if claim else ([], [])
        try:
            timeline.housekeeping([Put(registry, ormsgpack.packb({"created_us": now_us})), *puts],
                                  [Compare(registry, "CREATE", "==", 0), *compare])
        except errors.Conflict:
            if claim is not None and claim.moved():
                continue  # the claim's guard failed, not the registry's: plan again (or replay)
            raise errors.NamespaceExists(f"namespace {namespace!r} already exists", namespace=namespace) from None
        if claim is not None:
            claim.written = True
        break
    created = info(timeline, namespace)  # after a drop it keeps the drop's tx and time, as on LMDB
    assert created is not None
    return created


def _created(timeline: Timeline, namespace: str, now_us: int) -> NamespaceInfo:
    """What :func:`info` will answer once ``namespace`` (absent now) is created at ``now_us``: no keys, and
    the ``tx`` and ``updated_at`` of its last tx if it had one (a dropped namespace), as on LMDB. Exact while
    no tx commits in between (the claim's guard compares ``P/log``, which every tx writes)."""
    created = schema.time_of(now_us)
    updated = timeline.client.range(timeline.layout.updated(namespace))
    if not updated.kvs:
        return NamespaceInfo(namespace, created, created, 0, 0, 0)
    revision = updated.kvs[0].mod_revision
    logged = records_at(timeline, [revision])
    updated_us = ormsgpack.unpackb(logged[revision])[0] if revision in logged else 0
    return NamespaceInfo(namespace, created, schema.time_of(updated_us), timeline.tx_of(revision), 0, 0)


def drop(timeline: Timeline, namespace: str, note: dict[str, Any] | None, now_us: int,
         limits: EtcdLimits, before: Callable[[], None] | None = None, claim: ClaimGuard | None = None) -> int:
    """Delete every live key of ``namespace`` in one tx and forget the namespace; returns the tx, as
    :meth:`engine.Store.drop_namespace` (``NAMESPACE_NOT_FOUND`` if it does not exist).

    One etcd txn: a range delete of ``P/d/<ns>/``, the drop marker ``P/m/<ns>``, the registry entry
    deleted (the next write or ``create_namespace`` brings the namespace back, created anew), and the
    tx's bookkeeping, its log listing every key it deleted in LMDB's order (keypart order), guarded by
    the mod revisions of ``P/u/<ns>`` and the registry seen when the keys were listed (a write in
    between: list again). A namespace with no live keys is forgotten by a housekeeping txn, without a
    tx: the latest tx answers and ``note`` is discarded. ``BATCH_TOO_LARGE`` if the log entry naming
    every key does not fit in one etcd request. ``before`` (the expiry sweep every write makes first)
    runs once the namespace is known to exist, so a refused drop records nothing. ``claim``: an idempotency
    claim stored by the same txn (:mod:`engine.etcd.idempotency`)."""
    layout = timeline.layout
    registry, updated, data = layout.registry(namespace), layout.updated(namespace), layout.data_prefix(namespace)
    end = prefix_end(data)
    if claim is not None:
        claim.look()  # as on LMDB, a retry replays before anything is read or written (the sweep included)
    # An idempotent drop is sent again whenever any tx lands in between (its claim's guard compares P/log):
    # allowed as many attempts as a commit gets for keys that moved.
    for _ in range(MAX_ATTEMPTS if claim is None else MAX_ATTEMPTS + MAX_GUARD_RETRIES):
        state = timeline.client.txn((), [Range(registry), Range(updated), Range(layout.housekeeping)])
        reg, upd, hk = state.responses
        assert isinstance(reg, RangeResult) and isinstance(upd, RangeResult) and isinstance(hk, RangeResult)
        timeline.learn(count_of(hk.kvs), state.revision)
        if not reg.kvs:
            raise errors.NamespaceNotFound(f"namespace {namespace!r} does not exist", namespace=namespace)
        if before is not None:
            before()
            before = None
            continue  # the sweep may have deleted keys of this namespace: list them again
        guard = [Compare(registry, "MOD", "==", reg.kvs[0].mod_revision),
                 Compare(updated, "MOD", "==", upd.kvs[0].mod_revision if upd.kvs else 0)]
        raws = [kv.key[len(data):] for kv in timeline.client.range(data, end, state.revision, keys_only=True).kvs]
        if not raws:
            compare, puts = claim.guard(lambda latest: latest) if claim is not None else ([], [])
            try:
                timeline.housekeeping([DeleteRange(registry), *puts], guard + compare)
            except errors.Conflict:
                continue  # written meanwhile: look again
            if claim is not None:
                claim.written = True
            timeline.registered.pop(namespace, None)
            return timeline.latest()[0]
        raws.sort(key=lambda raw: keypart(_NS_ID, raw))  # the order LMDB's index lists them in
        keys = [raw.decode("utf-8") for raw in raws]
        request_id = os.urandom(16)
        fp = hashlib.sha256(msgpack.packb([namespace, "drop", note, state.revision], use_bin_type=True)).digest()[:16]
        entry = msgpack.packb([now_us, note, [[namespace, DELETE, keys]], fp, None], use_bin_type=True)
        if len(entry) + RESERVED_BYTES > limits.max_request_bytes:
            raise errors.BatchTooLarge(
                f"dropping {len(keys)} keys logs {len(entry)} bytes in one etcd request; the cluster takes at "
                f"most {limits.max_request_bytes} (its --max-request-bytes): delete some keys first",
                count=len(keys), size=len(entry), limit=limits.max_request_bytes)  # fmt: skip
        compare, puts = claim.guard(lambda latest: latest + 1) if claim is not None else ([], [])
        success: list[Request] = [DeleteRange(data, end), Put(layout.dropped(namespace), DELETE_RECORD),
                                  Put(updated, b""), DeleteRange(registry), Put(layout.log, request_id),
                                  *puts, Range(layout.housekeeping)]
        result = commit_once(timeline.client, layout.request(request_id), entry, guard + compare, success)
        if not result.succeeded:
            continue  # a write landed after the keys were listed: list them again
        if claim is not None:
            claim.written = True
        timeline.registered.pop(namespace, None)  # this process's next write to it creates it anew at once
        if result.replayed:
            timeline.refresh()
            return timeline.tx_of(result.revision)
        counted = result.responses[-1]
        assert isinstance(counted, RangeResult)
        timeline.learn(count_of(counted.kvs), result.revision)
        return result.revision - timeline.base - count_of(counted.kvs)
    raise errors.StorageError(f"dropping namespace {namespace!r} did not settle: it kept being written",
                              attempts=MAX_ATTEMPTS)
