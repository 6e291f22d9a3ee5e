"""Expiry and metadata on etcd: the read rule, creation times, and the records of puts that carry them.

The records are :mod:`engine.expiry`'s, byte for byte: a put with an expiry or metadata stores the
6-field extended record ``C1 03 | msgpack([0, key | None, packed, expire_us | None, metadata | None,
created_us])`` (:func:`engine.codec.rich_record`), so both backends chain the same bytes.

**The read rule** (:mod:`engine.expiry`'s): a version with ``expire_us`` is visible to a read evaluated
at time ``E`` iff ``expire_us > E``; a read at an explicit tx ``T`` uses ``E = time_us(T)`` from the tx
log, a latest read ``E = max(now, time_us(latest))``. :class:`View` applies it and fills the optional
fields (``metadata``, ``created_at``, ``updated_at``, ``expire_time``); it reads the log only when a
record needs a time (one or two txns per distinct revision, cached for the read).

**Creation time** (``created_us`` of a new rich record, ``created_at`` of a plain one): the start of the
key's current life, by :mod:`engine.expiry`'s rule: the commit time of the first put after the key last
did not exist (absent, deleted, or expired before being overwritten); a rich record on the way knows
its own. On etcd a delete is an etcd delete, so the life never reaches back past the data key's
``create_revision``: :func:`creation` walks back one range per older version (as LMDB's walk is one
cursor step per version) and stops there.

**Writes.** A put's ``created_us`` depends on the key's newest version, and ``expect`` on a key whose
value has expired but whose expiry is not recorded yet counts it as absent (``expect=0`` holds, its tx
does not): both need the newest version, read before the commit (:func:`engine.etcd.commit.commit`
then compares ``mod_revision`` with the version read, so the txn fails and is planned again if the key
changed in between).

**The sweep** that records expiries as delete txs of their own (note ``{"expired": true}``) before a
write and in ``expire()`` is :mod:`engine.etcd.sweep`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .. import errors, schema
from ..codec import CLEAR, MARK, PUT, decode_rich, put_value, rich_record, unpack_value
from ..encoding import SHORT_MAX, escape
from ..expiry import Opts
from ..records import Record
from .kv import KeyValue
from .timeline import Timeline
from .txlog import times_and_notes


class Times:
    """Commit times of the txs written at revisions, read from the log once each (0 for revision 0, or
    for a revision that wrote no tx)."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self._times: dict[int, int] = {0: 0}

    def __call__(self, revision: int) -> int:
        if revision not in self._times:
            self.fetch([revision])
        return self._times[revision]

    def fetch(self, revisions: Iterable[int]) -> None:
        """Read the times of ``revisions`` not known yet, all at once (two txns per ``--max-txn-ops``)."""
        missing = {r for r in revisions if r not in self._times}
        if missing:
            logged = times_and_notes(self.timeline, missing)
            for revision in missing:
                self._times[revision] = logged[revision][0] if revision in logged else 0


class View:
    """How one read at ``tx`` sees versions (:class:`engine.expiry.ReadView`'s twin): the time expiry is
    evaluated at (``tx``'s commit time, or ``max(now(), it)`` for a latest read: ``now`` given), computed
    on first need, and which optional fields to fill."""

    def __init__(self, timeline: Timeline, tx: int, now: Callable[[], int] | None = None, *, metadata: bool = False,
                 fields: frozenset[str] = frozenset()) -> None:
        self.timeline = timeline
        self.times = Times(timeline)
        self.revision = timeline.revision_of(tx) if tx else 0
        self._now = now
        self._eval: int | None = None
        self.metadata = metadata
        self.fields = fields

    def eval_us(self) -> int:
        if self._eval is None:
            at = self.times(self.revision)
            self._eval = at if self._now is None else max(self._now(), at)
        return self._eval

    def prefetch(self, kvs: Iterable[KeyValue]) -> None:
        """Read at once every time the records ``kvs`` will need (instead of two txns per record)."""
        wanted: set[int] = set()
        timed = bool(self.fields & {"created_at", "updated_at"})
        for kv in kvs:
            if timed:
                wanted.update((kv.mod_revision, kv.create_revision))
            if kv.value[0] == MARK and self._eval is None:  # may carry an expiry: the read time is needed
                wanted.add(self.revision)
        self.times.fetch(wanted)

    def record(self, key: str, data_key: bytes, kv: KeyValue) -> Record | None:
        """The record ``kv`` (a version of ``data_key``) shows this read; None if it expired (etcd never
        holds a delete record under a data key: a delete is an etcd delete)."""
        raw = kv.value
        vtx = self.timeline.tx_of(kv.mod_revision)
        if raw[0] != MARK:
            value = unpack_value(raw)
            rec = Record(key, value, vtx, type(value) is bytes, False)
            return self._dress(rec, data_key, kv, None, None, None) if self.fields else rec
        op, packed, _, expire_us, metadata, created_us = decode_rich(raw)
        if op != PUT and op != CLEAR:
            return None
        if expire_us is not None and expire_us <= self.eval_us():
            return None
        if op == CLEAR:
            rec = Record(key, None, vtx, False, True)
        else:
            value = put_value(packed)
            rec = Record(key, value, vtx, type(value) is bytes, False)
        if not (self.fields or self.metadata):
            return rec
        return self._dress(rec, data_key, kv, expire_us, metadata, created_us)

    def _dress(self, rec: Record, data_key: bytes, kv: KeyValue, expire_us: int | None, metadata: Any,
               created_us: int | None) -> Record:
        fields = self.fields
        created = updated = expire = None
        if "created_at" in fields:
            if created_us is None:
                created_us = creation(self.timeline, data_key, kv, self.times)
            created = schema.time_of(created_us)
        if "updated_at" in fields:
            updated = schema.time_of(self.times(kv.mod_revision))
        if "expire_time" in fields and expire_us is not None:
            expire = schema.time_of(expire_us)
        return rec._replace(metadata=metadata if self.metadata else None, created_at=created, updated_at=updated,
                            expire_time=expire)


def creation(timeline: Timeline, data_key: bytes, kv: KeyValue, times: Callable[[int], int]) -> int:
    """When the life of the key whose live version is ``kv`` began (UTC microseconds): the walk of
    :func:`engine.expiry.creation_from`, one range per older version, never below ``create_revision`` nor
    below a compaction (as LMDB's walk ends at the oldest version compaction kept)."""
    created = _created(kv.value)
    if created is not None:
        return created
    newer = kv
    while newer.mod_revision > newer.create_revision:
        try:
            older = timeline.client.range(data_key, revision=newer.mod_revision - 1).kvs[0]
        except errors.TxCompacted:  # compacted away: as on LMDB, the life starts at the oldest version kept
            break
        if older.value[0] == MARK:
            _, _, _, expire_us, _, created = decode_rich(older.value)
            if expire_us is not None and expire_us <= times(newer.mod_revision):
                break  # it expired before the next version was written: a life of its own
            if created is not None:
                return int(created)
        newer = older
    return times(newer.mod_revision)


def _created(raw: bytes) -> int | None:
    created = decode_rich(raw)[5] if raw[0] == MARK else None
    return None if created is None else int(created)


def creation_for_write(timeline: Timeline, data_key: bytes, newest: KeyValue | None, now: int,
                       times: Callable[[int], int]) -> int:
    """``created_us`` of a new rich version of ``data_key`` committed at ``now``, whose newest version
    is ``newest`` (None: absent or deleted), as :func:`engine.expiry.creation_for_write` finds it."""
    if newest is None:
        return now
    if newest.value[0] == MARK:
        _, _, _, expire_us, _, created = decode_rich(newest.value)
        if expire_us is not None and expire_us <= now:
            return now
        if created is not None:
            return int(created)
    return creation(timeline, data_key, newest, times)


def live_tx(timeline: Timeline, newest: KeyValue | None, now: int) -> int:
    """The tx of a key's record at the latest tx as a read at ``now`` shows it (0 if absent or expired),
    from its newest version: what ``expect`` compares with (:func:`engine.snapshot.live_tx`)."""
    if newest is None:
        return 0
    if newest.value[0] == MARK:
        expire_us = decode_rich(newest.value)[3]
        if expire_us is not None and expire_us <= now:
            return 0
    return timeline.tx_of(newest.mod_revision)


def rich(key: str, raw: bytes, packed: bytes, opts: Opts, now: int, created_us: int) -> tuple[bytes, int | None]:
    """``(record, expire_us)`` of a put of ``key`` with the validated ``opts`` committed at ``now``, as
    the LMDB write path stores it (the full key in the record only for a long key)."""
    ttl_us, expire_us, metadata = opts
    if ttl_us is not None:
        expire_us = now + ttl_us
    long = len(escape(raw)) > SHORT_MAX
    return rich_record(key if long else None, packed, expire_us, metadata, created_us), expire_us
