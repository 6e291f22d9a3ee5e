"""Streams in history exports and imports (export format version 3; see :mod:`engine.transfer`).

A tx that published is exported with one op per stream run::

    {"stream": "orders", "op": "publish", "events": [{"data": {"id": 1}}, {"data": "AAE=", "binary": true}]}
    {"stream": "orders", "op": "drop"}

and the header's ``streams`` lists the streams that exist at the export's end. A replay writes the
same event keys and records, so the hash chain comes out identical.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from . import events
from .codec import pack_value, unpack_value
from .errors import InvalidParameters, ValueTooLarge
from .events import StreamEntry, StreamRun
from .records import Limits
from .validation import check_namespace

if TYPE_CHECKING:
    from .store import Store


def history_ops(txn: Any, dbs: dict[str, Any], tx: int, runs: list[list[Any]]) -> list[dict[str, Any]]:
    """The export ops of the stream runs ``runs`` of ``tx``."""
    stream_ids = events.ids(txn, dbs)
    out: list[dict[str, Any]] = []
    for name, op, count in runs:
        if op != events.PUBLISH:
            out.append({"stream": name, "op": "drop"})
            continue
        rows = []
        for index in range(count):
            rows.append(event_row(txn.get(events.event_key(stream_ids[name], tx, index), db=dbs["events"])))
        out.append({"stream": name, "op": "publish", "events": rows})
    return out


def event_row(record: bytes) -> dict[str, Any]:
    """An event's row in a history export, from its stored record (binary data in base64)."""
    data = unpack_value(record)
    if type(data) is bytes:
        return {"data": base64.b64encode(data).decode("ascii"), "binary": True}
    return {"data": data}


def is_stream_tx(ops: Any) -> bool:
    """Whether the ops of an exported tx are stream ops (a tx holds storage or stream ops)."""
    return type(ops) is list and bool(ops) and type(ops[0]) is dict and "stream" in ops[0]


def parse_ops(ops: list[Any], limits: Limits) -> list[StreamRun]:
    """The stream runs of an exported tx's ops. ``INVALID_PARAMETERS`` for a second op on one stream: a tx
    holds one op per stream (a publish, or a drop), as every export writes it; two would give the tx's
    events one index twice (the second publish's would overwrite the first's) or a publish its own drop
    hides, so neither backend can store them as the row says."""
    runs = []
    seen: set[str] = set()
    for op_row in ops:
        if type(op_row) is not dict or "stream" not in op_row:
            raise InvalidParameters("a tx holds storage ops or stream ops, not both", parameter="ops")
        name = check_namespace(op_row.get("stream"))
        if name in seen:
            raise InvalidParameters(f"stream {name!r} has two ops in this tx; a tx holds one op per stream (a "
                                    "publish or a drop), as every export writes it", parameter="ops", stream=name)
        seen.add(name)
        if op_row.get("op") == "drop":
            runs.append(StreamRun(name, events.DROP_STREAM, []))
            continue
        rows = op_row.get("events")
        if op_row.get("op") != "publish" or type(rows) is not list:
            raise InvalidParameters('a stream op is {"stream", "op": "publish", "events": [...]} or '
                                    '{"stream", "op": "drop"}', parameter="op")
        runs.append(StreamRun(name, events.PUBLISH, [_record(row, limits) for row in rows]))
    return runs


def _record(row: Any, limits: Limits) -> bytes:
    if type(row) is not dict or "data" not in row:
        raise InvalidParameters('an event is {"data": ..., "binary"?: true}', parameter="events")
    data = row["data"]
    if row.get("binary"):
        try:
            data = base64.b64decode(data, validate=True) if type(data) is str else None
        except binascii.Error:
            data = None
        if data is None:
            raise InvalidParameters("a binary event's data must be base64", parameter="events")
    record = pack_value(data)
    if len(record) > limits.max_value_bytes:
        raise ValueTooLarge(f"event is {len(record)} bytes encoded; the limit is {limits.max_value_bytes}")
    return record


def names(txn: Any, dbs: dict[str, Any]) -> list[str]:
    """The streams that exist in ``txn``'s view, sorted."""
    return sorted((bytes(k).decode() for k, v in txn.cursor(db=dbs["streams"]) if not StreamEntry.decode(v).dropped),
                  key=str.encode)


def apply_names(store: Store, wanted: list[Any], may_drop: bool) -> None:
    """Create the streams of ``wanted`` that do not exist; with ``may_drop``, forget the others
    that hold no event (neither takes a tx), as the source did."""
    wanted_names = {check_namespace(name) for name in wanted}
    dbs = store._backend.dbs

    def run(txn: Any) -> None:
        now = store._now_us()
        for name in sorted(wanted_names):
            entry = events.entry_of(txn, dbs, name)
            if entry is None or entry.dropped:
                txn.put(name.encode(), events.entry_for_write(txn, dbs, name, now).encode(), db=dbs["streams"])
        if not may_drop:
            return
        for raw_name, raw in list(txn.cursor(db=dbs["streams"])):
            entry = StreamEntry.decode(raw)
            if not entry.dropped and not entry.event_count and bytes(raw_name).decode() not in wanted_names:
                entry.dropped = True
                txn.put(raw_name, entry.encode(), db=dbs["streams"])
    store._backend.write(run)
