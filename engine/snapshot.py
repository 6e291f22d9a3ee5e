"""Point reads at one tx: the read path every ``read`` and ``get`` takes.

A read at tx T of a key is one cursor seek to ``keypart | inv_tx(T)`` (see :mod:`engine.encoding`):
the entry found, if it belongs to the key, is its newest version with tx <= T. Versions are never
rewritten, so the same T gives the same answer in any LMDB transaction, from any process, forever.
"""

from __future__ import annotations

from typing import Any

from . import schema, txlog
from .codec import CLEAR, DELETE, MARK, decode_record, is_delete, unpack_value
from .encoding import SHORT_MAX, TERMINATOR, TX_MAX, inv_tx, keypart, unpack_u64_from
from .errors import FutureTx, InvalidParameters, TxCompacted
from .records import Record


def resolve_tx(txn: Any, meta_db: Any, tx: Any, at_us: int | None = None, dbs: dict[str, Any] | None = None) -> int:
    """The tx a read sees: the latest for ``None``, else ``tx`` checked against the latest; with
    ``at_us`` (a time, exclusive with ``tx``), the last tx committed at or before it."""
    latest = schema.get_u64(txn, meta_db, schema.LATEST_TX)
    if at_us is not None:
        if tx is not None:
            raise InvalidParameters("give tx or at, not both", parameter="at")
        assert dbs is not None
        return check_horizon(txn, meta_db, txlog.tx_at(txn, dbs, at_us))
    if tx is None:
        return latest  # the latest tx is never below the horizon
    if type(tx) is not int or tx < 0:
        raise InvalidParameters(f"tx must be a non-negative integer or None, not {tx!r}", parameter="tx")
    if tx > latest:
        raise FutureTx(f"tx {tx} is in the future: the latest committed tx is {latest}", tx=tx, latest_tx=latest)
    return check_horizon(txn, meta_db, tx)


def check_horizon(txn: Any, meta_db: Any, tx: int) -> int:
    """``tx`` if it is at or above the compaction horizon, else raise :class:`TxCompacted`."""
    raw = txn.get(schema.HORIZON, db=meta_db)
    if raw is not None:
        horizon = unpack_u64_from(raw)[0]
        if tx < horizon:
            raise TxCompacted(f"tx {tx} was compacted away: the oldest readable tx is {horizon}",
                              tx=tx, horizon=horizon)
    return tx


def decode_version(key: str, vtx: int, raw: bytes) -> Record | None:
    """The record a version shows at a read, or None for a delete."""
    if raw[0] != MARK:
        value = unpack_value(raw)
        return Record(key, value, vtx, type(value) is bytes, False)
    op, packed, _ = decode_record(raw)
    if op == DELETE:
        return None
    if op == CLEAR:
        return Record(key, None, vtx, False, True)
    value = unpack_value(packed)
    return Record(key, value, vtx, type(value) is bytes, False)


def read_keys(txn: Any, versions_db: Any, prefix: bytes, keys: list[str], raws: list[bytes], at: int) -> list[Record]:
    """Records of ``keys`` (UTF-8 in ``raws``) at tx ``at``, in order, absent and deleted left out."""
    cur = txn.cursor(db=versions_db)
    seek = inv_tx(at)
    set_range, item = cur.set_range, cur.item
    out: list[Record] = []
    append = out.append
    new = tuple.__new__  # Record(...) would run NamedTuple's Python-level __new__ per record
    for key, raw in zip(keys, raws, strict=True):
        kp = keypart(prefix, raw) if b"\x00" in raw or len(raw) > SHORT_MAX else prefix + raw + TERMINATOR
        if not set_range(kp + seek):
            continue
        k, rec = item()
        if not k.startswith(kp):
            continue
        vtx = TX_MAX - unpack_u64_from(k, len(kp))[0]
        if rec[0] != MARK:  # the hot path: a plain put of a short key
            value = unpack_value(rec)
            append(new(Record, (key, value, vtx, type(value) is bytes, False)))
            continue
        found = decode_version(key, vtx, rec)
        if found is not None:
            append(found)
    return out


def read_one(backend: Any, store: Any, name: str, key: str, raw: bytes, tx: Any, txn: Any) -> Record | None:
    """One key at ``tx`` (latest if None): :func:`read_keys` without the batch bookkeeping."""
    at = resolve_tx(txn, backend.meta, tx)
    prefix = store._ns_prefix(txn, name)
    if prefix is None:
        return None
    kp = keypart(prefix, raw)
    cur = txn.cursor(db=backend.versions)
    if not cur.set_range(kp + inv_tx(at)):
        return None
    k, rec = cur.item()
    if not k.startswith(kp):
        return None
    return decode_version(key, TX_MAX - unpack_u64_from(k, len(kp))[0], rec)


def current_tx(txn: Any, versions_db: Any, prefix: bytes, raw: bytes) -> tuple[int, bytes | None]:
    """The tx of a key's newest version and its record (``(0, None)`` if it has none)."""
    cur = txn.cursor(db=versions_db)
    kp = keypart(prefix, raw)
    if cur.set_range(kp):
        k, rec = cur.item()
        if k.startswith(kp):
            return TX_MAX - unpack_u64_from(k, len(kp))[0], rec
    return 0, None


def live_tx(txn: Any, versions_db: Any, prefix: bytes, raw: bytes) -> int:
    """The tx of the key's record at the latest tx as a read shows it (0 if absent or deleted)."""
    vtx, rec = current_tx(txn, versions_db, prefix, raw)
    if rec is None or is_delete(rec):
        return 0
    return vtx

