"""A key's versions on etcd, newest or oldest first, deletes included.

A key's puts and clears are the versions of its data key ``P/d/<ns>/<key>``; its deletes are etcd
deletes of that key, which a range never shows, and also versions of its **delete marker**
``P/m/<ns>/<key>`` (see :mod:`engine.etcd.layout`). So:

* **newest first**: one txn of two ranges (data key and marker) at revision r gives the key's newest
  version at or below r (the larger of the two mod revisions); the next is read at that revision - 1.
  One round trip per version returned, as the LMDB walk is one cursor step per version.
* **oldest first**: one txn of the same two ranges at ``revision(before - 1)`` gives the revision of the
  last version to return; a watch on the data key from ``revision(after + 1)`` then yields every put and
  delete in order (a watch does show deletes) until that revision or ``limit``.

Each version's commit time and note come from its tx's log entry (:mod:`engine.etcd.txlog`: one short
watch per version). The answers are :class:`engine.history.Version` values equal to the LMDB backend's,
decoded from the same record bytes.
"""

from __future__ import annotations

from .. import errors, schema
from ..codec import DELETE, DELETE_RECORD, OP_NAMES, decode_rich, extended_record, put_value
from ..encoding import SHORT_MAX, escape
from ..history import Version
from ..validation import check_tx, key_bytes
from .kv import KeyValue, Range, RangeResult
from .timeline import Timeline
from .txlog import time_and_note

MAX_LIMIT = 10_000


def delete_record(key: str, raw: bytes) -> bytes:
    """The record a delete of ``key`` stores (the extended form for a long key, as LMDB's)."""
    return extended_record(DELETE, key, None) if len(escape(raw)) > SHORT_MAX else DELETE_RECORD


def version(timeline: Timeline, revision: int, record: bytes) -> Version:
    """The :class:`Version` written at ``revision`` with ``record`` (time and note from the log)."""
    time_us, note = time_and_note(timeline, revision)
    tx = timeline.tx_of(revision)
    op, packed, _, expire_us, metadata, _ = decode_rich(record)
    if op != 0:
        return Version(tx, schema.time_of(time_us), OP_NAMES[op], None, False, note)
    value = put_value(packed)
    expires = None if expire_us is None else schema.time_of(expire_us)
    return Version(tx, schema.time_of(time_us), "put", value, type(value) is bytes, note, metadata, expires)


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
    layout = timeline.layout
    data, marker = layout.data(namespace, raw), layout.marker(namespace, raw)
    low = timeline.revision_of(lo)
    newest = _newest(timeline, data, marker, timeline.revision_of(hi))
    if newest is None or newest[0] < low:
        return []
    if newest_first:
        out: list[Version] = []
        while newest is not None and newest[0] >= low and len(out) < limit:
            out.append(version(timeline, *newest))
            newest = _newest(timeline, data, marker, newest[0] - 1)
        return out
    return _oldest_first(timeline, key, raw, data, low, newest[0], limit)


def _newest(timeline: Timeline, data: bytes, marker: bytes, revision: int) -> tuple[int, bytes] | None:
    """``(revision, record)`` of the key's newest version at or below ``revision``, or None."""
    if revision <= timeline.base:
        return None
    result = timeline.client.txn((), [Range(data, revision=revision), Range(marker, revision=revision)])
    found: list[KeyValue] = []
    for answer in result.responses:
        assert isinstance(answer, RangeResult)
        found += answer.kvs
    if not found:
        return None
    kv = max(found, key=lambda kv: kv.mod_revision)
    return kv.mod_revision, kv.value


def _oldest_first(timeline: Timeline, key: str, raw: bytes, data: bytes, low: int, last: int,
                  limit: int) -> list[Version]:
    """Versions of the data key from revision ``low`` to ``last``, oldest first: one watch."""
    found: list[tuple[int, bytes]] = []
    with timeline.client.watch(data, None, low) as watch:
        for rev in watch:
            for event in rev.events:
                record = event.kv.value if event.type == "PUT" else delete_record(key, raw)
                found.append((rev.revision, record))
            if rev.revision >= last or len(found) >= limit:
                break
    return [version(timeline, revision, record) for revision, record in found[:limit]]
