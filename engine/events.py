"""Stream events on disk: their byte layout, the stream registry, and the write path of a publish.

Two named databases (see ``docs/design.md``, "Streams")::

    streams   name (ASCII) -> msgpack [id, created_us, updated_us, tx, event_count, size_bytes, dropped, base_tx]
    events    stream_id (u32) | tx (u64) | index (u32), big-endian -> msgpack(data)

Events sort by stream, then tx ascending, then index: the events after tx T are one seek and a
walk. A publish of N events is one tx whose ``txops`` run is ``[stream, 3, N]``; dropping a
stream that has events is a tx with ``[stream, 4, 0]``. A tx holds stream runs or storage runs,
never both. The chain hash covers the run and its event records (in index order) exactly as it
covers a storage run and its version records, so :func:`engine.verify.verify` checks events too.

Readers see only events with ``tx > base_tx`` (the tx of the stream's last drop, 0 if none) and
``tx >= horizon`` (compaction frees events below the horizon: :func:`free_below`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgpack
from ormsgpack import unpackb

from . import schema, txlog
from .codec import pack_value, unpack_value
from .errors import BatchTooLarge, EmptyBatch, EngineError, InvalidParameters, ValueTooLarge
from .records import Limits

if TYPE_CHECKING:
    from .store import Store

PUBLISH = 3
DROP_STREAM = 4
STREAM_OP_NAMES = {PUBLISH: "publish", DROP_STREAM: "drop"}
NEXT_STREAM_ID = b"next_stream_id"
COMPACTED_EVENTS = b"compacted_events"
#: Events freed per write transaction by compaction.
FREE_PER_WRITE = 8000
KEY_LEN = 16

_id = struct.Struct(">I")
_id_tx = struct.Struct(">IQ")
_key = struct.Struct(">IQI")


def event_key(stream_id: int, tx: int, index: int) -> bytes:
    """The 16-byte key of event ``index`` of ``tx`` in stream ``stream_id``."""
    return _key.pack(stream_id, tx, index)


def split_key(key: bytes) -> tuple[int, int, int]:
    """``(stream_id, tx, index)`` of an event key."""
    stream_id, tx, index = _key.unpack(key)
    return stream_id, tx, index


@dataclass(frozen=True, slots=True)
class Event:
    """One published event: the tx that published it, its index within that publish, its data
    (a JSON value, or ``bytes``) and whether it is binary."""

    tx: int
    index: int
    data: Any
    binary: bool = False


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a stream holds: ``event_count`` events readers can see, ``size_bytes`` (16 bytes of key
    plus the record per event), ``tx`` the stream's last publish or drop (0 if none)."""

    name: str
    created_at: datetime
    updated_at: datetime
    tx: int
    event_count: int
    size_bytes: int


@dataclass(slots=True)
class StreamEntry:
    """A stream's registry record, mutable while a write transaction updates it."""

    id: int
    created_us: int
    updated_us: int
    tx: int
    event_count: int
    size_bytes: int
    dropped: bool
    base_tx: int

    @classmethod
    def decode(cls, raw: bytes) -> StreamEntry:
        return cls(*unpackb(raw))

    def encode(self) -> bytes:
        return msgpack.packb([self.id, self.created_us, self.updated_us, self.tx,  # type: ignore[no-any-return]
                              self.event_count, self.size_bytes, self.dropped, self.base_tx])

    def info(self, name: str) -> StreamInfo:
        return StreamInfo(name, schema.time_of(self.created_us), schema.time_of(self.updated_us), self.tx,
                          self.event_count, self.size_bytes)


@dataclass(slots=True)
class StreamRun:
    """One stream operation of a tx: a publish of ``records`` (encoded events) or a drop."""

    stream: str
    op: int
    records: list[bytes]


def prepare(events: Iterable[Any], limits: Limits) -> list[bytes]:
    """The records of a publish; raise listing every bad event (index, code, message)."""
    if isinstance(events, str | bytes | dict):
        raise InvalidParameters("events must be a list of values, not a single value", parameter="events")
    items = list(events)
    if not items:
        raise EmptyBatch("a publish needs at least one event")
    if len(items) > limits.max_batch:
        raise BatchTooLarge(f"{len(items)} events in one publish; the limit is {limits.max_batch}",
                            count=len(items), limit=limits.max_batch)
    records: list[bytes] = []
    errors: list[dict[str, Any]] = []
    first: EngineError | None = None
    for index, data in enumerate(items):
        try:
            record = pack_value(data)
            if len(record) > limits.max_value_bytes:
                raise ValueTooLarge(f"event is {len(record)} bytes encoded; the limit is {limits.max_value_bytes}")
            records.append(record)
        except EngineError as exc:
            first = first or exc
            errors.append({"index": index, "code": exc.code, "message": exc.message})
    if first is not None:
        message = first.message if len(errors) == 1 else f"{len(errors)} events are invalid; the first: {first.message}"
        raise type(first)(message, errors=errors)
    return records


def entry_of(txn: Any, dbs: dict[str, Any], name: str) -> StreamEntry | None:
    raw = txn.get(name.encode(), db=dbs["streams"])
    return None if raw is None else StreamEntry.decode(raw)


def entry_for_write(txn: Any, dbs: dict[str, Any], name: str, now: int) -> StreamEntry:
    """The registry entry of ``name``, created (or brought back after a drop) for a write."""
    entry = entry_of(txn, dbs, name)
    if entry is None:
        stream_id = schema.get_u32(txn, dbs["meta"], NEXT_STREAM_ID) + 1
        schema.put_u32(txn, dbs["meta"], NEXT_STREAM_ID, stream_id)
        return StreamEntry(stream_id, now, now, 0, 0, 0, False, 0)
    if entry.dropped:
        entry.dropped, entry.created_us = False, now
    return entry


def apply_runs(store: Store, txn: Any, runs: list[StreamRun], note: dict[str, Any] | None,
               replay: tuple[int, int] | None = None) -> int:
    """Write ``runs`` as the next tx inside the write transaction ``txn``; return the tx.

    ``replay=(tx, time_us)`` (imports of an exported history) commits it as that tx at that time.
    """
    dbs = store._backend.dbs
    meta, events_db = dbs["meta"], dbs["events"]
    tx = schema.get_u64(txn, meta, schema.LATEST_TX) + 1
    last = schema.get_u64(txn, meta, schema.LAST_TIME_US)
    now = txlog.replay_time(txn, meta, tx, *replay) if replay is not None else max(store._now_us(), last)
    schema.put_u64(txn, meta, schema.LAST_TIME_US, now)
    entries: dict[str, StreamEntry] = {}
    for run in runs:
        entry = entries.get(run.stream) or entry_for_write(txn, dbs, run.stream, now)
        entries[run.stream] = entry
        if run.op == PUBLISH:
            entry.dropped = False
            prefix = _id_tx.pack(entry.id, tx)
            for index, record in enumerate(run.records):
                txn.put(prefix + _id.pack(index), record, db=events_db)
            entry.event_count += len(run.records)
            entry.size_bytes += KEY_LEN * len(run.records) + sum(map(len, run.records))
        else:
            entry.dropped, entry.base_tx, entry.event_count, entry.size_bytes = True, tx, 0, 0
        entry.tx, entry.updated_us = tx, now
    for name, entry in entries.items():
        txn.put(name.encode(), entry.encode(), db=dbs["streams"])
    txlog.append(txn, dbs, tx, now, note, [[run.stream, run.op, len(run.records)] for run in runs],
                 [run.records for run in runs])
    schema.put_u64(txn, meta, schema.LATEST_TX, tx)
    schema.put_u64(txn, meta, schema.INDEXED_TX, tx)  # no version written: the latest-version index stays exact
    return tx


def read_after(txn: Any, dbs: dict[str, Any], stream_id: int, after: tuple[int, int | None], end_tx: int,
               limit: int) -> tuple[list[Event], bool, bool]:
    """Events of ``stream_id`` after position ``after`` (``(tx, None)``: after all of tx; ``(tx,
    i)``: after event i of tx) up to ``end_tx``, at most ``limit``; whether more follow; and
    whether the next one is of the same tx as the last returned (the page split a publish)."""
    tx, index = after
    start = event_key(stream_id, tx, index + 1) if index is not None else event_key(stream_id, tx + 1, 0)
    cur = txn.cursor(db=dbs["events"])
    out: list[Event] = []
    if not cur.set_range(start):
        return out, False, False
    for key, record in cur.iternext():
        sid, etx, eindex = _key.unpack(key)
        if sid != stream_id or etx > end_tx:
            return out, False, False
        if len(out) >= limit:
            return out, True, etx == out[-1].tx
        data = unpack_value(record)
        out.append(Event(etx, eindex, data, type(data) is bytes))
    return out, False, False


def free_below(txn: Any, dbs: dict[str, Any], horizon: int, budget: int = FREE_PER_WRITE) -> tuple[int, bool]:
    """Free up to ``budget`` events with tx < ``horizon``, from every stream; return (how many,
    whether none is left). The stream's counters drop for the events readers could still see."""
    cur = txn.cursor(db=dbs["events"])
    freed = 0
    for raw_name, raw in list(txn.cursor(db=dbs["streams"])):
        entry = StreamEntry.decode(raw)
        before = freed
        if not cur.set_range(_id.pack(entry.id)):
            continue
        while freed < budget:
            key = cur.key()
            if len(key) != KEY_LEN:
                break
            sid, tx, _ = _key.unpack(key)
            if sid != entry.id or tx >= horizon:
                break
            if tx > entry.base_tx:
                entry.event_count -= 1
                entry.size_bytes -= KEY_LEN + len(cur.value())
            cur.delete()
            freed += 1
        if freed > before:
            txn.put(raw_name, entry.encode(), db=dbs["streams"])
        if freed >= budget:
            break
    if freed:
        meta = dbs["meta"]
        schema.put_u64(txn, meta, COMPACTED_EVENTS, schema.get_u64(txn, meta, COMPACTED_EVENTS) + freed)
    return freed, freed < budget


def any_below(txn: Any, dbs: dict[str, Any], horizon: int) -> bool:
    """Whether some stream still holds an event with tx < ``horizon`` (one seek per stream)."""
    cur = txn.cursor(db=dbs["events"])
    for _, raw in txn.cursor(db=dbs["streams"]):
        stream_id = StreamEntry.decode(raw).id
        if cur.set_range(_id.pack(stream_id)):
            sid, tx, _ = _key.unpack(cur.key())
            if sid == stream_id and tx < horizon:
                return True
    return False


def ids(txn: Any, dbs: dict[str, Any]) -> dict[str, int]:
    """Every stream's id by name (dropped ones included: their events are still on disk)."""
    return {bytes(k).decode(): StreamEntry.decode(v).id for k, v in txn.cursor(db=dbs["streams"])}


def run_records(txn: Any, dbs: dict[str, Any], stream_ids: dict[str, int], tx: int,
                run: list[Any]) -> list[bytes] | str:
    """The stored records of the stream run ``run`` of ``tx``, or what is wrong (for verify)."""
    name, op, count = run
    if name not in stream_ids:
        return f"stream {name!r} of this tx is not registered"
    if op != PUBLISH:
        return []
    records = []
    for index in range(count):
        rec = txn.get(event_key(stream_ids[name], tx, index), db=dbs["events"])
        if rec is None:
            return f"event {index} of stream {name!r} written by this tx is missing"
        records.append(bytes(rec))
    return records


def logged_events(runs: list[list[Any]]) -> int:
    """How many events the stream runs among ``runs`` published."""
    return sum(run[2] for run in runs if run[1] == PUBLISH)
