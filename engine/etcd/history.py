"""A key's versions on etcd, newest or oldest first, deletes included.

A key's puts and clears are the versions of its data key ``P/d/<ns>/<key>``; its deletes are etcd
deletes of that key, which a range never shows, and also versions of its **delete marker**
``P/m/<ns>/<key>`` (see :mod:`engine.etcd.layout`). So:

* **newest first**: one txn of ranges of the data key, its marker and the namespace's drop marker at
  revision r gives the key's newest version at or below r (the largest mod revision; a drop counts if
  the key existed just before it); the next is read at that revision - 1. One round trip per version
  returned, as the LMDB walk is one cursor step per version.
* **oldest first**: the same walk back from ``revision(before - 1)``, reversed, when the range holds at
  most :data:`WALK` versions; beyond, a watch on the data key from ``revision(after + 1)`` yields every
  put and delete in order (a watch does show deletes, a drop's range delete included) up to the newest
  one or ``limit`` (a watch that
  starts in the past costs up to 100 ms: etcd's sync loop serves it).

**After a compaction** to horizon H (etcd compacted at ``revision(H)``, see :mod:`engine.etcd.compaction`)
the walk shows what LMDB keeps: every version at or after H, and the newest one at or before H unless it
is a delete below H. It reads nothing below ``revision(H)``: there etcd keeps each key's newest version
(the data key's, the delete marker's, the drop marker's), and the walk stops at the first it meets. An
oldest-first watch starts above ``revision(H)``, after that kept version.

The versions' commit times and notes come from their txs' log entries (:mod:`engine.etcd.txlog`: two
txns for all of them). The answers are :class:`engine.history.Version` values equal to the LMDB backend's,
decoded from the same record bytes.
"""

from __future__ import annotations

from typing import Any

import ormsgpack

from .. import errors, schema
from ..codec import DELETE, DELETE_RECORD, OP_NAMES, decode_rich, extended_record, put_value
from ..encoding import SHORT_MAX, escape
from ..history import Version
from ..validation import check_tx, key_bytes
from . import compacted
from .kv import Range, RangeResult
from .timeline import Timeline
from .txlog import records_at, storage_runs, times_and_notes

MAX_LIMIT = 10_000
#: Oldest first walks back (one round trip per version) through at most this many versions, then
#: watches forward instead: a watch that starts in the past waits for etcd's 100 ms sync loop.
WALK = 16


def delete_record(key: str, raw: bytes) -> bytes:
    """The record a delete of ``key`` stores (the extended form for a long key, as LMDB's)."""
    return extended_record(DELETE, key, None) if len(escape(raw)) > SHORT_MAX else DELETE_RECORD


def version(timeline: Timeline, revision: int, record: bytes, logged: tuple[int, dict[str, Any] | None]) -> Version:
    """The :class:`Version` written at ``revision`` with ``record``; ``logged``: its tx's time and note."""
    time_us, note = logged
    tx = timeline.tx_of(revision)
    op, packed, _, expire_us, metadata, _ = decode_rich(record)
    if op != 0:
        return Version(tx, schema.time_of(time_us), OP_NAMES[op], None, False, note)
    value = put_value(packed)
    expires = None if expire_us is None else schema.time_of(expire_us)
    return Version(tx, schema.time_of(time_us), "put", value, type(value) is bytes, note, metadata, expires)


def versions(timeline: Timeline, found: list[tuple[int, bytes]]) -> list[Version]:
    """``(revision, record)`` pairs as :class:`Version` values, their log entries read in two txns."""
    logged = times_and_notes(timeline, [revision for revision, _ in found])
    return [version(timeline, revision, record, logged.get(revision, (0, None))) for revision, record in found]


def check(key: str, before: int | None, after: int | None, limit: int, order: str, max_key_bytes: int) -> bytes:
    """The checks of :meth:`engine.Namespace.history` (same errors); the key's UTF-8 bytes."""
    raw = key_bytes(key, max_key_bytes)
    for name, value in (("before", before), ("after", after)):
        if value is not None:
            check_tx(value, name)
    if type(limit) is not int or not 0 <= limit <= MAX_LIMIT:
        raise errors.InvalidParameters(f"limit must be an integer from 0 to 10000, not {limit!r}", parameter="limit")
    if order not in ("asc", "desc"):
        raise errors.InvalidParameters(f"order must be 'asc' or 'desc', not {order!r}", parameter="order")
    return raw


def history(timeline: Timeline, namespace: str, key: str, raw: bytes, *, before: int | None, after: int | None,
            limit: int, newest_first: bool) -> list[Version]:
    """Versions of ``key`` with ``after < tx < before``, at most ``limit``, in the order asked."""
    latest, _ = timeline.latest()
    hi = latest if before is None else min(before - 1, latest)
    lo = 1 if after is None else after + 1
    if hi < lo or limit == 0:
        return []
    low, top = timeline.revision_of(lo), timeline.revision_of(hi)
    floor = compacted.read_state(timeline.client, timeline.layout)[0].revision
    if newest_first:
        return versions(timeline, _walk_back(timeline, key, raw, namespace, top, low, limit, floor))
    walked = _walk_back(timeline, key, raw, namespace, top, low, WALK + 1, floor)
    if len(walked) <= WALK:  # every version in range: the walk, reversed
        return versions(timeline, walked[::-1][:limit])
    data = timeline.layout.data(namespace, raw)
    kept: list[tuple[int, bytes]] = []
    if floor >= low:  # the version compaction kept, then the watch from above it
        kept = _walk_back(timeline, key, raw, namespace, floor, low, 1, floor)
        low = floor + 1
    return versions(timeline, (kept + _watch_forward(key, raw, timeline, data, low, walked[0][0], limit))[:limit])


def _walk_back(timeline: Timeline, key: str, raw: bytes, namespace: str, top: int, low: int,
               limit: int, floor: int = 0) -> list[tuple[int, bytes]]:
    """``(revision, record)`` of the key's versions from revision ``top`` down to ``low``, newest first,
    at most ``limit``: one txn of three ranges (data key, its delete marker, the namespace's drop marker)
    per version. A drop counts as a delete of the key when the key existed just before it (one more
    range says), as LMDB's drop writes a delete version for every live key. ``floor``: the compacted
    revision (0: none); the walk reads nothing below it (see the module docstring)."""
    layout = timeline.layout
    data, marker, dropped = layout.data(namespace, raw), layout.marker(namespace, raw), layout.dropped(namespace)
    out: list[tuple[int, bytes]] = []
    revision = max(top, floor)  # below the floor only the kept version is left: it is read at the floor
    while len(out) < limit and revision >= max(low, floor):
        result = timeline.client.txn((), [Range(data, revision=revision), Range(marker, revision=revision),
                                          Range(dropped, revision=revision)])
        found: list[tuple[int, bytes, int]] = []
        for i, answer in enumerate(result.responses):
            assert isinstance(answer, RangeResult)
            found += [(kv.mod_revision, kv.value, i) for kv in answer.kvs]
        if not found:
            break
        newest, record, source = max(found)
        if newest > top or newest < low or (newest < floor and source != 0):
            break  # below the range, or a delete below the horizon (compaction freed it, as on LMDB)
        revision = newest - 1
        if source == 2:
            if not _existed_before_drop(timeline, data, newest, key, namespace):
                continue  # the key did not exist when its namespace was dropped: no version of it
            record = delete_record(key, raw)
        out.append((newest, record))
        if newest <= floor:
            break  # the version compaction kept: nothing older is left
    return out


def _existed_before_drop(timeline: Timeline, data: bytes, revision: int, key: str, namespace: str) -> bool:
    """Whether the drop at ``revision`` deleted ``key``: it was live just before (one range), or, when
    that revision is compacted away, the drop's log entry lists it."""
    try:
        return bool(timeline.client.range(data, revision=revision - 1).kvs)
    except errors.TxCompacted:
        logged = records_at(timeline, [revision]).get(revision)
        runs = storage_runs(ormsgpack.unpackb(logged)[2]) if logged is not None else []
        return any(ns == namespace and key in keys for ns, _, keys in runs)


def _watch_forward(key: str, raw: bytes, timeline: Timeline, data: bytes, low: int, last: int,
                   limit: int) -> list[tuple[int, bytes]]:
    """Versions of the data key from revision ``low`` to ``last``, oldest first, at most ``limit``: one
    watch (it shows deletes too)."""
    found: list[tuple[int, bytes]] = []
    with timeline.client.watch(data, None, low) as watch:
        for rev in watch:
            for event in rev.events:
                record = event.kv.value if event.type == "PUT" else delete_record(key, raw)
                found.append((rev.revision, record))
            if rev.revision >= last or len(found) >= limit:
                break
    return found[:limit]
