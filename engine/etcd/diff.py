"""What changed in a namespace between two txs, on etcd: :meth:`engine.Namespace.diff`'s answers.

As on LMDB, the tx log says which keys a tx in ``(from_tx, to_tx]`` touched (:func:`changed_keys`: the
log entries of those txs, read through the log index, two txns per ``--max-txn-ops`` txs), and only
those keys are compared, at both txs (one read txn per chunk of keys at each tx). Two states are the
same when their stored content is: operation, value bytes, expiry and metadata (not the tx that wrote
it), so a key put again with the same value is no change. Either tx below the compaction horizon:
``TX_COMPACTED`` (``to_tx`` checked first, as on LMDB).
"""

from __future__ import annotations

from typing import Any

import ormsgpack

from .. import errors
from ..codec import DELETE, decode_rich
from ..history import Change, change_kind
from ..records import Record
from ..snapshot import check_readable
from ..validation import check_tx
from . import compacted
from .expiry import View
from .kv import Range, RangeResult
from .reads import compacted_error, snapshot
from .timeline import Timeline
from .txlog import records_at, storage_runs

#: Keys compared per read txn pair (as the LMDB diff's chunk).
DIFF_CHUNK = 512


def changed_keys(timeline: Timeline, namespace: str, from_tx: int, to_tx: int) -> list[str]:
    """Keys of ``namespace`` touched by a tx in ``(from_tx, to_tx]``, in UTF-8 byte order."""
    touched: set[str] = set()
    revisions = [timeline.revision_of(tx) for tx in range(from_tx + 1, to_tx + 1)]
    for record in records_at(timeline, revisions).values():
        for ns, _, keys in storage_runs(ormsgpack.unpackb(record)[2]):
            if ns == namespace:
                touched.update(keys)
    return sorted(touched, key=lambda k: k.encode())


def _states(timeline: Timeline, namespace: str, keys: list[str], tx: int) -> list[tuple[Record | None, Any]]:
    """Each key's record at ``tx`` and its comparable content ``(op, value bytes, expiry, metadata)``."""
    layout = timeline.layout
    data_keys = [layout.data(namespace, k.encode()) for k in keys]
    _, _, answers = snapshot(timeline, tx, [Range(k) for k in data_keys])
    view = View(timeline, tx)  # expiry at the tx's commit time, as a read at it
    out: list[tuple[Record | None, Any]] = []
    for key, data_key, answer in zip(keys, data_keys, answers, strict=True):
        assert isinstance(answer, RangeResult)
        if answer.kvs:
            kv = answer.kvs[0]
            op, packed, _, expire_us, metadata, _ = decode_rich(kv.value)
            rec = view.record(key, data_key, kv)
            if rec is not None:
                out.append((rec, (op, packed, expire_us, metadata)))
                continue
        out.append((None, (DELETE, None, None, None)))
    return out


def diff(timeline: Timeline, namespace: str, from_tx: int, to_tx: int) -> list[Change]:
    """Changes of ``namespace`` from the snapshot at ``from_tx`` to the one at ``to_tx``, in key order,
    checked as :meth:`engine.Namespace.diff` checks them (same errors)."""
    check_tx(from_tx, "from_tx")
    check_tx(to_tx, "to_tx")
    if from_tx > to_tx:
        raise errors.InvalidParameters(f"from_tx ({from_tx}) is after to_tx ({to_tx})", parameter="from_tx")
    latest, _ = timeline.latest()
    check_readable(to_tx, latest)
    horizon = compacted.read_state(timeline.client, timeline.layout)[0].horizon
    for tx in (to_tx, from_tx):  # LMDB's order
        if tx < horizon:
            raise compacted_error(tx, horizon)
    if from_tx == to_tx:
        return []
    keys = changed_keys(timeline, namespace, from_tx, to_tx)
    out: list[Change] = []
    for start in range(0, len(keys), DIFF_CHUNK):
        chunk = keys[start:start + DIFF_CHUNK]
        befores = _states(timeline, namespace, chunk, from_tx)
        afters = _states(timeline, namespace, chunk, to_tx)
        for key, (before, was), (after, now) in zip(chunk, befores, afters, strict=True):
            if was != now:
                out.append(Change(key, change_kind(before, after, now), before, after))
    return out
