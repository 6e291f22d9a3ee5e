"""The tx log on etcd: each tx's bookkeeping put ``P/tx/<request id>`` is its log entry.

The entry is msgpack ``[time_us, note, runs, fingerprint, answer]`` (runs as the LMDB log stores them:
``[namespace, op, [key, ...]]``, op 0 put, 1 clear, 2 delete), written in the tx's own txn, so its mod
revision is the tx's revision. Its key is named after the request, not the tx (a writer cannot know its
tx before etcd applies the txn), so the entry of tx T is found by revision: a watch on ``P/tx/`` from
``revision(T)`` yields exactly one event per tx, in order, and the first one is T's. etcd's watch reads
its history by revision, so this costs one short stream however long the log is.

:class:`TxEntry` is :class:`engine.txlog.TxInfo` without the hash: the hash chain is computed after the
fact by the sealer (not built yet), so no entry carries one. Times are the writer's clock as written;
the LMDB backend clamps a commit time to never precede the previous tx's, which writers on several
machines cannot do inside their txn: the sealer will apply that clamp (not built yet either).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ormsgpack

from .. import schema
from ..codec import OP_NAMES
from ..txlog import Operation
from ..validation import check_tx
from .kv import KeyValue
from .timeline import Timeline


@dataclass(frozen=True, slots=True)
class TxEntry:
    """A committed tx: when (the writer's clock), the caller's note, and what it touched, in order."""

    tx: int
    time: datetime
    time_us: int
    note: dict[str, Any] | None
    operations: list[Operation]


def decode(tx: int, value: bytes) -> TxEntry:
    """The entry of ``tx`` from its bookkeeping record."""
    time_us, note, runs = ormsgpack.unpackb(value)[:3]
    operations = [Operation(ns, key, OP_NAMES[op]) for ns, op, keys in runs for key in keys]
    return TxEntry(tx, schema.time_of(time_us), time_us, note, operations)


def record_at(timeline: Timeline, revision: int) -> KeyValue | None:
    """The bookkeeping key-value written at ``revision`` (None if no tx was written there): the first
    event of a watch on the log from ``revision``."""
    start, end = timeline.layout.requests
    with timeline.client.watch(start, end, revision) as watch:
        for rev in watch:
            if rev.revision != revision:
                return None
            return rev.events[0].kv
    return None  # pragma: no cover - a watch ends only when closed


def entry(timeline: Timeline, tx: int) -> TxEntry | None:
    """The log entry of ``tx``, or None if it was not committed (0, or above the latest tx)."""
    check_tx(tx)
    latest, _ = timeline.latest()
    if not 1 <= tx <= latest:
        return None
    kv = record_at(timeline, timeline.revision_of(tx))
    return None if kv is None else decode(tx, kv.value)


def time_and_note(timeline: Timeline, revision: int) -> tuple[int, dict[str, Any] | None]:
    """``(time_us, note)`` of the tx written at ``revision``, for a version's history entry."""
    kv = record_at(timeline, revision)
    if kv is None:
        return 0, None
    time_us, note = ormsgpack.unpackb(kv.value)[:2]
    return time_us, note
