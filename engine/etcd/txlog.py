"""The tx log on etcd: each tx's bookkeeping put ``P/tx/<request id>`` is its log entry.

The entry is msgpack ``[time_us, note, runs, fingerprint, answer]`` (runs as the LMDB log stores them:
``[namespace, op, [key, ...]]``, op 0 put, 1 clear, 2 delete), written in the tx's own txn, so its mod
revision is the tx's revision. Its key is named after the request, not the tx (a writer cannot know its
tx before etcd applies the txn); the tx also puts its request id at the log index ``P/log``, so the
entry of the tx at revision R is two ranges: ``P/log`` at R (whose mod revision must be R), then the
entry. Entries of many revisions take two txns (more past ``--max-txn-ops``).

:class:`TxEntry` is :class:`engine.txlog.TxInfo`; the entries read here carry no hash and the writer's
clock as written: the hash chain, and LMDB's clamp of a commit time to never precede the previous tx's
(which writers on several machines cannot apply inside their txn), are computed after the fact by the
sealer (:mod:`engine.etcd.chain`), and :class:`engine.etcd.storage.EtcdStorage` adds both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ormsgpack

from .. import errors, schema
from ..codec import OP_NAMES
from ..txlog import Operation
from ..validation import check_tx
from . import compacted
from .kv import Range, RangeResult
from .timeline import Timeline


@dataclass(frozen=True, slots=True)
class TxEntry:
    """A committed tx: when (the writer's clock), the caller's note, and what it touched, in order."""

    tx: int
    time: datetime
    time_us: int
    note: dict[str, Any] | None
    operations: list[Operation]
    #: The tx's chain hash (hex): None in an entry as the log holds it, set by the storage from the sealed
    #: chain (:mod:`engine.etcd.chain`) before any caller sees it.
    hash: str | None = None


def storage_runs(runs: list[Any]) -> list[Any]:
    """The storage runs ``[namespace, op, [key, ...]]`` of a logged tx: its stream runs
    ``[stream, op, count, seq]`` left out (:mod:`engine.etcd.stream_log`; a tx holds one kind or the
    other), as :func:`engine.txlog.runs_of` on LMDB."""
    return [run for run in runs if len(run) == 3]


def decode(tx: int, value: bytes) -> TxEntry:
    """The entry of ``tx`` from its bookkeeping record (a stream tx lists no operation, as on LMDB)."""
    time_us, note, runs = ormsgpack.unpackb(value)[:3]
    operations = [Operation(ns, key, OP_NAMES[op]) for ns, op, keys in storage_runs(runs) for key in keys]
    return TxEntry(tx, schema.time_of(time_us), time_us, note, operations)


def _ranges(timeline: Timeline, ops: list[Range]) -> list[RangeResult]:
    out: list[RangeResult] = []
    step = timeline.max_txn_ops
    for start in range(0, len(ops), step):
        result = timeline.client.txn((), ops[start:start + step])
        out += [r for r in result.responses if isinstance(r, RangeResult)]
    return out


def records_at(timeline: Timeline, revisions: Iterable[int]) -> dict[int, bytes]:
    """The bookkeeping records written at ``revisions`` (a revision with no tx is left out)."""
    ids = request_ids_at(timeline, revisions)
    found = _ranges(timeline, [Range(timeline.layout.request(i)) for i in ids.values()])
    return {revision: answer.kvs[0].value for revision, answer in zip(ids, found, strict=True) if answer.kvs}


def request_ids_at(timeline: Timeline, revisions: Iterable[int]) -> dict[int, bytes]:
    """The request ids of the txs written at ``revisions`` (a revision with no tx is left out): ``P/log``
    at each, or below a compaction the index it wrote (:mod:`engine.etcd.compacted`)."""
    wanted = sorted(set(revisions))
    floor = timeline.compacted_revision
    try:
        ids = _logged_ids(timeline, [r for r in wanted if r >= floor])
    except errors.TxCompacted:
        state, _ = compacted.read_state(timeline.client, timeline.layout)
        if state.revision <= floor:
            raise
        timeline.compacted_revision = state.revision
        return request_ids_at(timeline, wanted)
    below = [r for r in wanted if r < floor]
    if below:  # the housekeeping list is exact below the compaction (kept from its index)
        txs = {timeline.tx_of(r): r for r in below}
        txs = {tx: r for tx, r in txs.items() if tx >= 1 and timeline.revision_of(tx) == r}
        indexed = compacted.request_ids(timeline.client, timeline.layout, txs)
        ids.update({txs[tx]: request_id for tx, request_id in indexed.items()})
    return dict(sorted(ids.items()))


def _logged_ids(timeline: Timeline, wanted: list[int]) -> dict[int, bytes]:
    log = timeline.layout.log
    ids = {}
    for revision, answer in zip(wanted, _ranges(timeline, [Range(log, revision=r) for r in wanted]), strict=True):
        if answer.kvs and answer.kvs[0].mod_revision == revision:
            ids[revision] = answer.kvs[0].value
    return ids


def entry(timeline: Timeline, tx: int) -> TxEntry | None:
    """The log entry of ``tx``, or None if it was not committed (0, or above the latest tx)."""
    check_tx(tx)
    latest, _ = timeline.latest()
    if not 1 <= tx <= latest:
        return None
    record = records_at(timeline, [timeline.revision_of(tx)])
    return decode(tx, next(iter(record.values()))) if record else None


def changes(timeline: Timeline, since: int, limit: int, namespace: str | None) -> list[TxEntry]:
    """Txs after ``since`` in order, at most ``limit``; with ``namespace``, only the txs touching it, with
    only its operations (:meth:`engine.Store.changes`, checked by the caller). Reads the log in windows
    of ``--max-txn-ops`` txs, two txns each."""
    latest, _ = timeline.latest()
    out: list[TxEntry] = []
    tx = since
    while tx < latest and len(out) < limit:
        window = range(tx + 1, min(latest, tx + timeline.max_txn_ops) + 1)
        revisions = {timeline.revision_of(t): t for t in window}
        found = records_at(timeline, revisions)
        for revision, t in revisions.items():
            if revision not in found or len(out) >= limit:
                continue
            entry = decode(t, found[revision])
            if namespace is not None:
                ops = [op for op in entry.operations if op.namespace == namespace]
                if not ops:
                    continue
                entry = TxEntry(entry.tx, entry.time, entry.time_us, entry.note, ops)
            out.append(entry)
        tx = window[-1]
    return out


def wait_for(timeline: Timeline, tx: int, timeout: float | None) -> bool:
    """Block until ``tx`` is committed (by any process); False if ``timeout`` seconds pass first.

    No polling: a watch on the log index ``P/log`` from the revision after the one the latest tx was
    read at wakes on each tx committed since (a watch that starts at the next revision is served as
    soon as it is written, not by etcd's 100 ms loop for watches that start in the past); a timer closes
    it at the deadline."""
    latest, revision = timeline.latest()
    if latest >= tx:
        return True
    if timeout is not None and timeout <= 0:
        return False
    watch = timeline.client.watch(timeline.layout.log, None, revision + 1)
    timer = None if timeout is None else threading.Timer(timeout, watch.close)
    try:
        if timer is not None:
            timer.start()
        # Housekeeping txns never put P/log, but one may have landed unseen in between (the cached list
        # would count one tx too many), so the count of txs is confirmed with a read before answering.
        # The watch ends only when the timer closes it: then False.
        return any(timeline.tx_of(rev.revision) >= tx and timeline.latest()[0] >= tx for rev in watch)
    finally:
        if timer is not None:
            timer.cancel()
        watch.close()


def times_and_notes(timeline: Timeline, revisions: Iterable[int]) -> dict[int, tuple[int, dict[str, Any] | None]]:
    """``{revision: (time_us, note)}`` of the txs written at ``revisions``, for a key's history."""
    out = {}
    for revision, record in records_at(timeline, revisions).items():
        time_us, note = ormsgpack.unpackb(record)[:2]
        out[revision] = (time_us, note)
    return out
