"""Stream txs in history exports and imports of a store on etcd: :mod:`engine.stream_transfer`'s rows.

An exported stream tx is the LMDB export's row (``{"stream", "op": "publish", "events": [...]}`` or
``{"stream", "op": "drop"}`` per run), read from the tx's log entry and its stream tx keys
(:mod:`engine.etcd.stream_log`); the header's ``streams`` lists the streams that exist at the export's
end. An imported stream tx is replayed as the same stream tx, at its tx number and commit time (guarded
by :class:`~engine.etcd.replay_guard.NextTx`, as a storage tx), so the chain, and ``head()``, come out
as the source's; the header's ``streams`` is applied at the end without a tx, as on LMDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ormsgpack

from .. import errors
from ..events import PUBLISH, StreamRun
from ..stream_transfer import event_row
from ..txlog import check_replay
from ..validation import check_namespace
from . import stream_log
from .kv import Put, Range, RangeResult
from .replay_guard import NextTx
from .stream_log import Entry, for_write, registry_guard
from .txlog import records_at

if TYPE_CHECKING:
    from .storage import EtcdStorage


def stream_runs(storage: EtcdStorage, tx: int) -> list[list[Any]]:
    """The stream runs ``[stream, op, count, seq]`` tx ``tx`` logged (empty for a storage tx)."""
    timeline = storage.timeline
    revision = timeline.revision_of(tx)
    logged = records_at(timeline, [revision]).get(revision)
    runs = [] if logged is None else ormsgpack.unpackb(logged)[2]
    return [run for run in runs if stream_log.is_stream_run(run)]


def history_ops(storage: EtcdStorage, tx: int, runs: list[list[Any]]) -> list[dict[str, Any]]:
    """The export ops of the stream runs ``runs`` of ``tx`` (:func:`engine.stream_transfer.history_ops`)."""
    timeline = storage.timeline
    revision = timeline.revision_of(tx)
    answers = timeline.client.txn((), [Range(timeline.layout.stream_tx(name, seq), revision=revision)
                                       for name, _, _, seq in runs]).responses
    out: list[dict[str, Any]] = []
    for (name, op, _, _), answer in zip(runs, answers, strict=True):
        if op != PUBLISH:
            out.append({"stream": name, "op": "drop"})
            continue
        assert isinstance(answer, RangeResult)
        rows = [event_row(record) for record in stream_log.records_of(answer.kvs[0].value)]
        out.append({"stream": name, "op": "publish", "events": rows})
    return out


def names(storage: EtcdStorage) -> list[str]:
    """The streams that exist now, sorted by their UTF-8 bytes (an export header's ``streams``)."""
    timeline = storage.timeline
    start, end = timeline.layout.streams
    found = timeline.client.range(start, end)
    return sorted((timeline.layout.stream_of_registry(kv.key) for kv in found.kvs
                   if not Entry.decode(kv.value).dropped), key=str.encode)


def replay(storage: EtcdStorage, runs: list[StreamRun], note: dict[str, Any] | None, tx: int, time_us: int) -> int:
    """Write ``runs`` as tx ``tx`` committed at ``time_us`` (:meth:`engine.etcd.storage.EtcdStorage.replay`'s
    rules and errors: the next tx, at a time not before the latest tx's; no expiry sweep)."""
    latest = storage.latest_tx
    last = storage.tx_info(latest) if latest else None
    check_replay(latest + 1, 0 if last is None else last.time_us, tx, time_us)
    return stream_log.commit_runs(storage.timeline, runs, note, time_us, storage.etcd_limits,
                                  claim=NextTx(storage.timeline, tx, time_us))


def renumbered(storage: EtcdStorage, runs: list[StreamRun], note: dict[str, Any] | None) -> int:
    """Write ``runs`` as the next tx, now (a renumbered import: no expiry sweep first, as on LMDB)."""
    return stream_log.commit_runs(storage.timeline, runs, note, storage._now_us(), storage.etcd_limits)


def check_names(wanted: Any) -> set[str] | None:
    """The header's ``streams`` as a set of checked names (None when it lists none)."""
    if type(wanted) is not list:
        return None
    return {check_namespace(name) for name in wanted}


def apply_names(storage: EtcdStorage, wanted: set[str], may_drop: bool) -> None:
    """Create the streams of ``wanted`` that do not exist; with ``may_drop``, forget the others that hold
    no event (housekeeping txns, no tx), as :func:`engine.stream_transfer.apply_names`."""
    timeline = storage.timeline
    start, end = timeline.layout.streams
    existing = {timeline.layout.stream_of_registry(kv.key): kv for kv in timeline.client.range(start, end).kvs}
    now = storage._now_us()
    for name in sorted(wanted):
        kv = existing.get(name)
        if kv is None or Entry.decode(kv.value).dropped:
            _put(storage, name, kv, for_write(kv, now))
    if not may_drop:
        return
    for name, kv in sorted(existing.items()):
        entry = Entry.decode(kv.value)
        if not entry.dropped and not entry.event_count and name not in wanted:
            entry.dropped = True
            _put(storage, name, kv, entry)


def _put(storage: EtcdStorage, name: str, kv: Any, entry: Entry) -> None:
    key = storage.timeline.layout.stream(name)
    try:
        storage.timeline.housekeeping([Put(key, entry.encode())], [registry_guard(key, kv)])
    except errors.Conflict:
        raise errors.StorageError(f"stream {name!r} was written while an import applied its header: import "
                                  "into a store no one else writes", stream=name) from None
