"""Reads at any tx on etcd: resolve a tx, read keys at it, scan a namespace at it.

A read at tx T is etcd ranges at ``revision(T)`` (:mod:`engine.etcd.timeline`): etcd's MVCC keeps every
version until it is compacted, so a past read costs what a latest one does. A read of N keys is **one
round trip**: one txn of ``range P/sys/hk`` (at the latest revision: it gives the latest tx, for
``FUTURE_TX``, and tells whether the cached housekeeping list is current) and the N ranges at
``revision(T)``. Past ``--max-txn-ops`` ranges the keys are read by several txns at that same revision,
which MVCC makes one snapshot. A scan is one range over ``P/d/<ns>/<prefix>`` at the revision, paged at
that revision.

Answers are the LMDB backend's: the same :class:`~engine.records.Record` (``tx`` is the tx of the key's
last change at or before T), decoded from the same record bytes by the same function
(:func:`engine.snapshot.decode_version`), keys in request order (reads) or UTF-8 byte order (scans),
absent, deleted and expired keys left out, ``FUTURE_TX`` worded as the LMDB backend words it.

Expiry and the optional fields as on LMDB (:mod:`engine.etcd.expiry`): a value whose expiry is at or
before the read's time is left out (the time of a read at tx T is T's commit time, of a latest read
``max(now, commit time of the latest tx)``; a scan's pages share one time); ``metadata=True`` and
``fields`` fill those fields of each record. A record that needs a time costs the log lookups of
:class:`engine.etcd.expiry.View`; plain records cost nothing more.

Reads by time (``at=``) resolve to a tx first (:mod:`engine.etcd.timeseek`, called by the namespace facade)
and read at it here. A read below the compaction horizon raises ``TX_COMPACTED`` with LMDB's words: the
read's txn also ranges ``P/c/state`` (:mod:`engine.etcd.compacted`), so the horizon costs no round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .. import errors
from ..records import Limits, ReadResult
from ..snapshot import check_readable
from ..validation import check_prefix, key_bytes
from . import compacted
from .expiry import View
from .kv import KeyValue, Range, RangeResult, prefix_end
from .timeline import MAX_REVISION, Timeline, count_of

#: Keys per page of a scan.
PAGE = 1000


def read_keys_of(keys: Iterable[str], limits: Limits) -> tuple[list[str], list[bytes]]:
    """The keys of a read, each once in request order, and their UTF-8 bytes, checked as
    :meth:`engine.Namespace.read` checks them (same errors)."""
    if isinstance(keys, str | bytes):
        raise errors.InvalidParameters("keys must be a list of str, not a single string")
    unique = list(dict.fromkeys(keys))
    if len(unique) > limits.max_read_keys:
        raise errors.BatchTooLarge(f"{len(unique)} keys in one read; the limit is {limits.max_read_keys}",
                                   count=len(unique), limit=limits.max_read_keys)
    return unique, [key_bytes(k, limits.max_key_bytes) for k in unique]


def check_page(after: str | None, limit: int | None, limits: Limits) -> None:
    """A scan's ``after`` and ``limit``, checked as :meth:`engine.Namespace.scan` checks them (same errors)."""
    if after is not None:
        key_bytes(after, limits.max_key_bytes)
    if limit is not None and (type(limit) is not int or limit < 0):
        raise errors.InvalidParameters(f"limit must be a non-negative integer or None, not {limit!r}",
                                       parameter="limit")


def view_of(timeline: Timeline, tx: int | None, snap: int, now: Callable[[], int], metadata: bool,
            fields: frozenset[str], kvs: list[KeyValue]) -> View:
    """How a read at ``tx`` (None: the latest) that resolved to ``snap`` sees versions (the read rule),
    with the log times the versions ``kvs`` need read at once."""
    view = View(timeline, snap, now if tx is None else None, metadata=metadata, fields=fields)
    view.prefetch(kvs)
    return view


def compacted_error(tx: int, horizon: int) -> errors.TxCompacted:
    """``TX_COMPACTED`` for a read at ``tx`` below ``horizon``, in the LMDB engine's words."""
    return errors.TxCompacted(f"tx {tx} was compacted away: the oldest readable tx is {horizon}", tx=tx,
                              horizon=horizon)


def check_horizon(timeline: Timeline, tx: int) -> None:
    """``TX_COMPACTED`` unless ``tx`` is at or above the horizon (one range)."""
    state, _ = compacted.read_state(timeline.client, timeline.layout)
    if tx < state.horizon:
        raise compacted_error(tx, state.horizon)


def snapshot(timeline: Timeline, tx: int | None, ranges: list[Range]) -> tuple[int, int, list[RangeResult]]:
    """``(tx, revision, answers)``: ``ranges`` (their revision left 0) read at ``revision(tx)`` (the
    latest for None) in one txn (more past the cluster's ``--max-txn-ops``), with the latest tx and the
    horizon checked (``FUTURE_TX``, then ``TX_COMPACTED``) and the housekeeping list made current."""
    per_txn = timeline.max_txn_ops - 2  # and the housekeeping and compaction state ranges
    if tx is not None:
        check_readable(tx, tx)  # INVALID_PARAMETERS for a tx that is not a non-negative int
        if timeline.revision_of(tx) > MAX_REVISION:  # etcd could not even parse it: surely in the future
            check_readable(tx, timeline.latest()[0])
    layout = timeline.layout
    for _ in range(3):
        revision = 0 if tx is None else timeline.revision_of(tx)
        ops = [Range(layout.housekeeping), Range(compacted.state_key(layout)),
               *(_at(r, revision) for r in ranges[:per_txn])]
        try:
            result = timeline.client.txn((), ops)
        except errors.FutureTx:  # a revision etcd does not have yet: a tx above the latest
            latest, _ = timeline.latest()
            check_readable(tx, latest)
            continue  # the latest moved up to tx meanwhile: read again
        except errors.TxCompacted:  # below etcd's compaction, so below the horizon (raised first)
            assert tx is not None
            check_readable(tx, timeline.latest()[0])
            check_horizon(timeline, tx)
            raise
        hk = result.responses[0]
        assert isinstance(hk, RangeResult)
        count = count_of(hk.kvs)
        stale = timeline.count_below(result.revision) != count
        timeline.learn(count, result.revision)
        latest = result.revision - timeline.base - count
        if tx is not None:
            check_readable(tx, latest)
            state = result.responses[1]
            assert isinstance(state, RangeResult)
            horizon = compacted.state_of(state)[0].horizon
            if tx < horizon:
                raise compacted_error(tx, horizon)
            if stale and timeline.revision_of(tx) != revision:
                continue  # the cached housekeeping list was behind: revision(tx) moved
        read_at = revision or result.revision
        answers = [r for r in result.responses[2:] if isinstance(r, RangeResult)]
        for start in range(per_txn, len(ranges), per_txn):
            more = timeline.client.txn((), [_at(r, read_at) for r in ranges[start:start + per_txn]])
            answers += [r for r in more.responses if isinstance(r, RangeResult)]
        return (latest if tx is None else tx), read_at, answers
    raise errors.StorageError("the etcd read did not settle: housekeeping txns kept landing in between")


def _at(r: Range, revision: int) -> Range:
    return Range(r.key, r.range_end, revision, r.limit, r.keys_only, r.count_only, r.serializable)


def read(timeline: Timeline, namespace: str, keys: Iterable[str], tx: int | None, limits: Limits,
         now: Callable[[], int], metadata: bool = False, fields: frozenset[str] = frozenset()) -> ReadResult:
    """Records of ``keys`` of ``namespace`` at ``tx`` (latest if None), as :meth:`engine.Namespace.read`
    (``now``: the store's clock in microseconds, for a latest read's expiry)."""
    unique, raws = read_keys_of(keys, limits)
    layout = timeline.layout
    data_keys = [layout.data(namespace, raw) for raw in raws]
    snap, _, answers = snapshot(timeline, tx, [Range(k) for k in data_keys])
    view = view_of(timeline, tx, snap, now, metadata, fields, [a.kvs[0] for a in answers if a.kvs])
    records = []
    for key, data_key, answer in zip(unique, data_keys, answers, strict=True):
        if answer.kvs:
            rec = view.record(key, data_key, answer.kvs[0])
            if rec is not None:
                records.append(rec)
    return ReadResult(records, snap)


def scan(timeline: Timeline, namespace: str, prefix: str, tx: int | None, after: str | None, limit: int | None,
         limits: Limits, now: Callable[[], int], metadata: bool = False,
         fields: frozenset[str] = frozenset()) -> ReadResult:
    """Records of the keys of ``namespace`` starting with ``prefix`` at ``tx`` (latest if None), after
    ``after`` (exclusive), at most ``limit``, in UTF-8 byte order: :meth:`engine.Namespace.scan`'s
    records and checks, as a list with the tx read."""
    check_prefix(prefix)
    check_page(after, limit, limits)
    layout = timeline.layout
    base = layout.data_prefix(namespace)
    start = base + prefix.encode()
    end = prefix_end(start)
    if after is not None:
        start = max(start, base + after.encode() + b"\0")  # the first key after ``after``
    if limit == 0:
        return ReadResult([], snapshot(timeline, tx, [])[0])
    page = PAGE if limit is None else min(limit, PAGE)
    snap, revision, answers = snapshot(timeline, tx, [Range(start, end, 0, page)])
    first = answers[0]
    kvs = list(first.kvs)
    if first.more and (limit is None or len(kvs) < limit):
        rest = timeline.client.range(kvs[-1].key + b"\0", end, revision,
                                     limit=None if limit is None else limit - len(kvs))
        kvs += rest.kvs
    view = view_of(timeline, tx, snap, now, metadata, fields, kvs)
    records: list[Any] = []
    for kv in kvs:
        rec = view.record(layout.key_of(namespace, kv.key), kv.key, kv)
        if rec is not None:
            records.append(rec)
    return ReadResult(records, snap)
