"""The latest-version index: each key's newest version, so reads at the latest tx are one ``get``.

``latest`` (a named LMDB database) maps a keypart (the version key without its ``inv_tx``, see
:mod:`engine.encoding`) to ``92 | record | CF | tx (u64 big-endian)``: the exact record bytes and
the tx of the key's newest version, for every key whose newest version is a put or a clear. A key
whose newest version is a delete (or that has no version) has no entry. So the index holds one
entry per live key of every namespace (a put that has expired but whose expiry is not yet recorded
counts as live, as it does for ``key_count``), and a read at the latest tx is one ``get`` on a tree
the size of the live data instead of a seek in the tree of every version.

**Why those framing bytes.** ``92`` opens a msgpack array of two elements and ``CF`` is msgpack's
uint64 tag, so the entry of a plain put (whose record is one msgpack value) *is* the msgpack of
``[value, tx]``: a read decodes the value and the tx in one C call, with no slice and no
``struct`` call (measured about 20% cheaper per key than ``tx | record``). Any other record starts
with ``C1`` at byte 1, and is ``entry[1:-9]``; the tx is always the last 8 bytes. Storing the
record, not only the tx, is what spares a read the second lookup in the tree of every version
(measured: a tx-only index made a 100-key read at the latest tx about 2x slower than this one).

**Kept exact by the one write path.** Every version is written by :func:`engine.txn.apply_batch`
(puts, clears, deletes, the expiry sweep, reverts, replays and imports, namespace drops), which
replaces the key's entry by the new version (a put or clear) or removes it (a delete) in the same
LMDB transaction; the old entry it gets back says whether the key was live, which is what keeps
``key_count`` and ``size_bytes`` exact. Compaction never frees a key's newest version unless it
is a delete (see :mod:`engine.compaction`), so it never touches the index. Streams do not use
versions.

**Stores older than the index, or written without it,** get it built when opened
(:func:`catch_up`): every tx this engine commits (stream publishes too) sets ``meta.indexed_tx``
to itself, so ``meta.indexed_tx != meta.latest_tx`` (or ``meta.layout`` below :data:`LAYOUT`)
means versions were written by an engine that does not keep the index (an older release, say
after a rollback) and the index may be stale. The build clears the index, then makes one pass
over the versions, :data:`CHUNK` keyparts per write transaction, resuming from
``meta.latest_build`` (the position to continue from) after a crash; the last chunk sets
``meta.layout`` to :data:`LAYOUT` and ``meta.indexed_tx`` to the latest tx. A store whose index is
current costs one read transaction per open; so does a new store, whose first tx sets
``meta.layout``.

:func:`check` (run by ``verify()``) compares the index with the versions, key by key.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import schema
from .codec import is_delete
from .encoding import NO_TX, TX_LEN, TX_MAX, unpack_u64_from

if TYPE_CHECKING:
    from .backend import Backend

#: ``meta.layout`` (u32): the on-disk layout version. Absent: a store written before the index (1).
LAYOUT_KEY = schema.LAYOUT
LAYOUT = 2
#: ``meta.latest_build``: where a pending migration resumes (a position in keypart order).
BUILD = b"latest_build"
#: Keyparts visited per write transaction of the migration.
CHUNK = 5000

_u64 = struct.Struct(">Q")


#: Bytes an index entry adds around the record: ``92`` before it, ``CF | tx`` after it.
HEAD = b"\x92"
TAIL_LEN = 9
#: An entry's length minus its record's.
FRAMING = len(HEAD) + TAIL_LEN


def tail(tx: int) -> bytes:
    """What follows the record in an entry of ``tx``: ``CF | tx``."""
    return b"\xcf" + _u64.pack(tx)


def entry(tx: int, record: bytes) -> bytes:
    """The index entry of a version: ``92 | record | CF | tx``."""
    return HEAD + record + tail(tx)


def split(value: bytes) -> tuple[int, bytes]:
    """``(tx, record)`` of an index entry."""
    return _u64.unpack_from(value, len(value) - TX_LEN)[0], value[1:-TAIL_LEN]


def _newest(txn: Any, versions_db: Any, pos: bytes) -> Iterator[tuple[bytes, bytes, bytes]]:
    """``(keypart, inv_tx, record)`` of each keypart's newest version, from position ``pos`` on."""
    cur = txn.cursor(db=versions_db)
    ok = cur.set_range(pos)
    while ok:
        k, rec = cur.item()
        kp = k[:-TX_LEN]
        yield kp, k[-TX_LEN:], rec
        ok = cur.set_range(kp + NO_TX)


def _build_chunk(txn: Any, dbs: dict[str, Any]) -> bool:
    """Index up to :data:`CHUNK` keyparts from the saved position; whether the index is complete."""
    meta, latest = dbs["meta"], dbs["latest"]
    if _current(txn, meta):
        return True  # another process finished it
    pos: bytes | None = txn.get(BUILD, db=meta)
    if pos is None:  # a new build: entries of keys that have no version left must go too
        txn.drop(latest, delete=False)
        pos = b""
    for n, (kp, inv, rec) in enumerate(_newest(txn, dbs["versions"], pos)):
        if n >= CHUNK:
            txn.put(BUILD, kp, db=meta)
            return False
        if is_delete(bytes(rec)):
            txn.delete(kp, db=latest)
        else:
            txn.put(kp, entry(TX_MAX - unpack_u64_from(inv)[0], rec), db=latest)
    txn.delete(BUILD, db=meta)
    schema.put_u32(txn, meta, LAYOUT_KEY, LAYOUT)
    schema.put_u64(txn, meta, schema.INDEXED_TX, schema.get_u64(txn, meta, schema.LATEST_TX))
    return True


def _current(txn: Any, meta: Any) -> bool:
    """Whether the index is exact: the layout has it and no tx was committed without keeping it.
    A store with no tx has no version to index (its first tx sets the layout)."""
    latest = schema.get_u64(txn, meta, schema.LATEST_TX)
    if latest == 0:
        return True
    return schema.get_u32(txn, meta, LAYOUT_KEY) >= LAYOUT and schema.get_u64(txn, meta, schema.INDEXED_TX) == latest


def catch_up(backend: Backend) -> bool:
    """Build the index of a store written before it; whether there was anything to do."""
    dbs = backend.dbs
    if backend.read(lambda txn: _current(txn, dbs["meta"])):
        return False
    # sync=False: a lost chunk (power loss) is redone at the next open; the marker commits last.
    while not backend.write(lambda txn: _build_chunk(txn, dbs), sync=False):
        pass
    return True


def check(txn: Any, dbs: dict[str, Any], pos: bytes = b"") -> tuple[tuple[int, str] | None, bytes | None]:
    """Compare the index with the versions for up to :data:`CHUNK` keyparts from position ``pos``:
    ``(first disagreement as (tx, problem) or None, where to continue or None when done)``. The tx
    named is the key's newest version's (the index entry's, for an entry of a key with no version).
    Each call is exact for its transaction; a range checked in one is never half changed."""
    latest_cur = txn.cursor(db=dbs["latest"])
    have = latest_cur.set_range(pos)
    stray = "the latest-version index has an entry for a key with no version"
    for n, (kp, inv, rec) in enumerate(_newest(txn, dbs["versions"], pos)):
        if have and latest_cur.key() < kp:
            return (split(latest_cur.value())[0], stray), None
        if n >= CHUNK:
            return None, kp
        tx = TX_MAX - unpack_u64_from(inv)[0]
        if is_delete(bytes(rec)):
            if have and latest_cur.key() == kp:
                return (tx, "the latest-version index lists a key whose newest version is a delete"), None
            continue
        if not have or latest_cur.key() != kp:
            return (tx, "the latest-version index has no entry for a key's newest version"), None
        if latest_cur.value() != entry(tx, rec):
            return (tx, "the latest-version index entry does not match the key's newest version"), None
        have = latest_cur.next()
    if have:
        return (split(latest_cur.value())[0], stray), None
    return None, None
