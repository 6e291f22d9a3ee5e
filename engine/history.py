"""A key's versions over time, and what changed in a namespace between two txs.

* :func:`history` walks one key's versions with a cursor, newest first (their order on disk) or
  oldest first, starting with one seek: O(versions returned), not O(all versions).
* :func:`diff` reads the tx log of the txs in ``(from_tx, to_tx]`` to learn which keys changed,
  then compares those keys only, at both txs: keys that did not change are never read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import schema, txlog
from .codec import CLEAR, DELETE, OP_NAMES, decode_rich, put_value
from .encoding import TX_MAX, inv_tx, keypart, unpack_u64_from
from .expiry import ReadView, tx_time
from .records import Record
from .snapshot import check_horizon, decode_version, version_at

DIFF_CHUNK = 512


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a key: the tx that wrote it, when, the operation, the value of a put, and
    the note the writer attached to that tx (who changed it, if they said)."""

    tx: int
    time: datetime
    op: str
    value: Any = None
    binary: bool = False
    note: dict[str, Any] | None = None
    #: The metadata stored with a put, and when it expires (None: never).
    metadata: Any = None
    expire_time: datetime | None = None

    @property
    def cleared(self) -> bool:
        return self.op == "clear"

    @property
    def deleted(self) -> bool:
        return self.op == "delete"


_set_tx, _set_time, _set_op, _set_value, _set_binary, _set_note, _set_metadata, _set_expire = (
    getattr(Version, name).__set__
    for name in ("tx", "time", "op", "value", "binary", "note", "metadata", "expire_time"))
_new_object = object.__new__


def _new_version(tx: int, time: datetime, op: str, value: Any, binary: bool, note: dict[str, Any] | None,
                 metadata: Any, expire_time: datetime | None) -> Version:
    """``Version(...)`` at half the cost: a frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` per field, and a history builds one per version. The slots are set
    through their descriptors; the instance is as frozen as any other."""
    version = _new_object(Version)
    _set_tx(version, tx)
    _set_time(version, time)
    _set_op(version, op)
    _set_value(version, value)
    _set_binary(version, binary)
    _set_note(version, note)
    _set_metadata(version, metadata)
    _set_expire(version, expire_time)
    return version


@dataclass(frozen=True, slots=True)
class Change:
    """A key whose content differs between two snapshots.

    ``kind``: ``added`` (absent before), ``deleted`` (absent after), ``cleared`` (had a value, now
    cleared) or ``changed`` (anything else: a new value, or a value after a clear).
    """

    key: str
    kind: str
    before: Record | None
    after: Record | None


def history(txn: Any, dbs: dict[str, Any], prefix: bytes, raw: bytes, *, before: int | None, after: int | None,
            limit: int, newest_first: bool) -> list[Version]:
    """Versions of one key with ``after < tx < before``, at most ``limit``, in the order asked."""
    kp = keypart(prefix, raw)
    hi = TX_MAX - 1 if before is None else before - 1
    lo = 1 if after is None else after + 1
    out: list[Version] = []
    if hi < lo or limit == 0:
        return out
    cur = txn.cursor(db=dbs["versions"])
    if newest_first:
        ok = cur.set_range(kp + inv_tx(hi))
        walk = cur.iternext
    else:
        ok = cur.set_range(kp + inv_tx(lo - 1)) if lo > 1 else cur.set_range(kp + b"\xff" * 8)
        ok = cur.prev() if ok else cur.last()
        walk = cur.iterprev
    if not ok:  # an unpositioned cursor's iterator would start at the first key of the database
        return out
    entry = txlog.entry_reader(txn, dbs)
    width = len(kp)
    # The cursor's own iterator yields the current item, then steps: one C call per version where
    # item() and next() were two.
    for k, raw_rec in walk():
        if not k.startswith(kp):
            break
        tx = TX_MAX - unpack_u64_from(k, width)[0]
        if not lo <= tx <= hi:
            break
        out.append(_version(entry(tx), tx, raw_rec))
        if len(out) == limit:
            break
    return out


def _version(found: tuple[int, dict[str, Any] | None, bytes] | None, tx: int, raw: bytes) -> Version:
    """The version ``tx`` wrote (``raw``, its stored record), with its log entry ``found``."""
    when = schema.time_of(found[0] if found else 0)
    note = found[1] if found else None
    op, packed, _, expire_us, metadata, _ = decode_rich(raw)
    if op != 0:
        return _new_version(tx, when, OP_NAMES[op], None, False, note, None, None)
    value = put_value(packed)
    expires = None if expire_us is None else schema.time_of(expire_us)
    return _new_version(tx, when, "put", value, type(value) is bytes, note, metadata, expires)


def changed_keys(txn: Any, dbs: dict[str, Any], namespace: str, from_tx: int, to_tx: int) -> list[str]:
    """Keys of ``namespace`` touched by a tx in ``(from_tx, to_tx]``, in UTF-8 byte order."""
    touched: set[str] = set()
    for tx in range(from_tx + 1, to_tx + 1):
        for ns, _, keys in txlog.runs_of(txn, dbs, tx):
            if ns == namespace:
                touched.update(keys)
    return sorted(touched, key=lambda k: k.encode())


def _state(txn: Any, dbs: dict[str, Any], prefix: bytes, key: str, tx: int) -> tuple[Record | None, tuple[Any, ...]]:
    """The record of ``key`` at ``tx`` (expiry evaluated at the tx's commit time, as a read at it
    does) and a comparable content ``(op, encoded value, expiry, metadata)``."""
    kp = keypart(prefix, key.encode())
    found = version_at(txn.cursor(db=dbs["versions"]), kp, tx)
    if found is not None:
        vtx, raw = found
        op, packed, _, expire_us, metadata, _ = decode_rich(raw)
        if op != DELETE:
            view = None if expire_us is None else ReadView(txn, dbs, lambda: tx_time(txn, dbs, tx))
            rec = decode_version(key, vtx, raw, view, kp)
            if rec is not None:
                return rec, (op, packed, expire_us, metadata)
    return None, (DELETE, None, None, None)


def _states(txn: Any, dbs: dict[str, Any], prefix: bytes, keys: list[str], from_tx: int,
            to_tx: int) -> list[tuple[Any, Any]]:
    # A compaction may have raised the horizon since the previous chunk: refuse, never half-answer.
    check_horizon(txn, dbs["meta"], from_tx)
    return [(_state(txn, dbs, prefix, k, from_tx), _state(txn, dbs, prefix, k, to_tx)) for k in keys]


def diff(read: Any, dbs: dict[str, Any], namespace: str, prefix: bytes | None, from_tx: int,
         to_tx: int) -> Iterator[Change]:
    """Changes of ``namespace`` from the snapshot at ``from_tx`` to the one at ``to_tx``."""
    if prefix is None or from_tx == to_tx:
        return
    keys = read(lambda txn: changed_keys(txn, dbs, namespace, from_tx, to_tx))
    for start in range(0, len(keys), DIFF_CHUNK):
        chunk = keys[start:start + DIFF_CHUNK]
        pairs = read(lambda txn, chunk=chunk: _states(txn, dbs, prefix, chunk, from_tx, to_tx))
        for key, ((before, was), (after, now)) in zip(chunk, pairs, strict=True):
            if was != now:
                yield Change(key, change_kind(before, after, now), before, after)


def change_kind(before: Any, after: Any, now: Any) -> str:
    """A changed key's kind in a diff, from its record before and after and its stored state after
    (both backends' diffs name kinds by this one rule)."""
    if before is None:
        return "added"
    if after is None:
        return "deleted"
    if now[0] == CLEAR:
        return "cleared"
    return "changed"
