"""The tx log: one entry per committed tx, written in the same LMDB transaction as its versions.

Entry (``txlog`` database, key = tx as u64 big-endian): msgpack ``[time_us, note, ops]`` where
``time_us`` is the commit time in UTC microseconds (never earlier than the previous tx's, even if
the clock steps back), ``note`` is the caller's JSON object or None, and ``ops`` lists the operations
in the order applied as runs ``[namespace, op, [key, ...]]`` (op: 0 put, 1 clear, 2 delete): a
put of 10,000 keys is one run, which keeps the entry small and cheap to write.

The log is what makes a tx inspectable after the fact ("who changed what, when") and what history,
diffs and change feeds are built from without scanning unchanged keys.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgpack

from . import schema
from .codec import OP_NAMES, pack_value
from .errors import InvalidParameters

_u64 = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class Operation:
    """One key a tx touched: ``op`` is ``"put"``, ``"clear"`` or ``"delete"``."""

    namespace: str
    key: str
    op: str


@dataclass(frozen=True, slots=True)
class TxInfo:
    """A committed tx: when, the caller's note, and what it touched, in order."""

    tx: int
    time: datetime
    time_us: int
    note: dict[str, Any] | None
    operations: list[Operation]


def check_note(note: Any, max_bytes: int) -> dict[str, Any] | None:
    """A note is None or a JSON object whose encoding fits ``max_bytes``."""
    if note is None:
        return None
    if type(note) is not dict:
        raise InvalidParameters(f"note must be a JSON object (dict) or None, not {type(note).__name__}",
                                parameter="note")
    size = len(pack_value(note))
    if size > max_bytes:
        raise InvalidParameters(f"note is {size} bytes encoded; the limit is {max_bytes}", parameter="note")
    return note


def commit_time(txn: Any, meta_db: Any) -> int:
    """Now in UTC microseconds, but never before the previous tx's time."""
    now = time.time_ns() // 1000
    last = schema.get_u64(txn, meta_db, schema.LAST_TIME_US)
    now = max(now, last)
    schema.put_u64(txn, meta_db, schema.LAST_TIME_US, now)
    return now


def append(txn: Any, txlog_db: Any, tx: int, time_us: int, note: dict[str, Any] | None,
           runs: list[list[Any]]) -> None:
    """Write the entry of ``tx``. Must run in the write transaction that commits ``tx``."""
    txn.put(_u64.pack(tx), msgpack.packb([time_us, note, runs], use_bin_type=True), db=txlog_db)


def read(txn: Any, txlog_db: Any, tx: int) -> TxInfo | None:
    """The entry of ``tx``, or None if no such tx was committed."""
    raw = txn.get(_u64.pack(tx), db=txlog_db)
    if raw is None:
        return None
    time_us, note, ops = msgpack.unpackb(raw)
    return TxInfo(
        tx=tx,
        time=schema.time_of(time_us),
        time_us=time_us,
        note=note,
        operations=[Operation(ns, key, OP_NAMES[op]) for ns, op, keys in ops for key in keys],
    )
