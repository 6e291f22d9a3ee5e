"""The named LMDB databases and the records in them, besides versions (see ``docs/design.md``).

* ``meta``: ``b"latest_tx"`` and ``b"last_time_us"`` (u64 big-endian), ``b"next_ns_id"`` (u32);
  ``b"horizon"``, ``b"compaction"``, ``b"compacted_versions"`` (compaction's progress).
* ``namespaces``: namespace name (ASCII) -> msgpack ``[id, created_us, updated_us, tx, key_count,
  size_bytes, dropped]``. Ids are never reused, so a namespace's versions outlive a drop.
* ``txlog``: tx (u64 big-endian) -> msgpack ``[time_us, note, ops]`` with ``ops`` a list of
  ``[namespace, key, op]`` in the order they were applied (see :mod:`engine.txlog`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ormsgpack import unpackb  # the engine's msgpack decoder (see engine/codec.py)

from .codec import packb_exact
from .records import NamespaceInfo

LATEST_TX = b"latest_tx"
LAST_TIME_US = b"last_time_us"
NEXT_NS_ID = b"next_ns_id"
#: Compaction (see :mod:`engine.compaction`): the lowest readable tx (u64), the pending walk
#: (msgpack ``[next_tx, target, skip]``, absent when none) and the versions freed so far (u64).
HORIZON = b"horizon"
COMPACTION = b"compaction"
COMPACTED_VERSIONS = b"compacted_versions"
#: The latest-version index (see :mod:`engine.latest`): the layout version (u32) and the tx the
#: index was last kept exact at (u64), which every tx this engine commits sets to itself.
LAYOUT = b"layout"
INDEXED_TX = b"indexed_tx"

_u64 = struct.Struct(">Q")
_u32 = struct.Struct(">I")


def get_u64(txn: Any, db: Any, key: bytes) -> int:
    raw = txn.get(key, db=db)
    return _u64.unpack(raw)[0] if raw is not None else 0


def put_u64(txn: Any, db: Any, key: bytes, value: int) -> None:
    txn.put(key, _u64.pack(value), db=db)


def get_u32(txn: Any, db: Any, key: bytes) -> int:
    raw = txn.get(key, db=db)
    return _u32.unpack(raw)[0] if raw is not None else 0


def put_u32(txn: Any, db: Any, key: bytes, value: int) -> None:
    txn.put(key, _u32.pack(value), db=db)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The last microsecond a datetime can show (9999-12-31T23:59:59.999999Z): no stored time may pass it.
MAX_TIME_US = 253_402_300_799_999_999


def time_of(us: int) -> datetime:
    """A stored microsecond timestamp as an aware UTC datetime."""
    # Integer arithmetic: a float of the seconds rounds the last microseconds of year 9999 into 10000.
    # Positional (days, seconds, microseconds): the keyword form measured 0.17 µs more per call, and
    # a history builds one time per version.
    return _EPOCH + timedelta(0, 0, us)


@dataclass(slots=True)
class NamespaceEntry:
    """A namespace's registry record, mutable while a write transaction updates it."""

    id: int
    created_us: int
    updated_us: int
    tx: int
    key_count: int
    size_bytes: int
    dropped: bool

    @classmethod
    def decode(cls, raw: bytes) -> NamespaceEntry:
        return cls(*unpackb(raw))

    def encode(self) -> bytes:
        return packb_exact(
            [self.id, self.created_us, self.updated_us, self.tx, self.key_count, self.size_bytes, self.dropped]
        )

    def info(self, name: str) -> NamespaceInfo:
        return NamespaceInfo(
            name=name,
            created_at=time_of(self.created_us),
            updated_at=time_of(self.updated_us),
            tx=self.tx,
            key_count=self.key_count,
            size_bytes=self.size_bytes,
        )
