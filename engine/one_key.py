"""The write path of the commonest write, a plain put (or clear) of one short key: fewer steps, same bytes.

:func:`prepare` validates ``{key: value}`` as :func:`engine.txn.prepare_puts` does, and :func:`apply`
writes such a run as :func:`engine.txn.apply_batch` does, without the lists, cursors and loops a
batch of many keys, runs and namespaces needs. Both are shortcuts, never a second behaviour: the
store, the tx, its log entry, its chain hash and Merkle leaf, the namespace's counts and every error
are those of the general path, byte for byte (a hypothesis differential test,
``tests/engine/test_one_key.py``, runs the same writes both ways and compares the stores). Anything
outside the common case (a delete, whose no-op rule needs a lookup first; an expiry or metadata; a
long key or one holding a NUL, whose keypart is escaped; a replayed tx) takes the general path.

Successive puts of this path in one process also skip reading what the previous one wrote (the
latest tx, its time, chain hash and Merkle entry, the namespace's registry entry, the expiry index's
first due time): :attr:`engine.backend.Backend.tail`, trusted only while no other write ran since,
in this process (:attr:`~engine.backend.Backend.members_run`) or another (LMDB's consecutive
transaction ids); see :func:`apply`.

:data:`ENABLED` switches the shortcut off (the differential test's general side).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import latest as latest_index
from . import schema, txlog, txtree
from . import txn as general  # which imports this module: its names are looked up when called
from .codec import CLEAR, CLEAR_RECORD, PUT, pack_value
from .encoding import SHORT_MAX, TERMINATOR, TX_MAX, ns_prefix, pack_u64, unpack_u64_from
from .errors import EngineError
from .latest import FRAMING, HEAD

if TYPE_CHECKING:
    from .records import Limits
    from .store import Store

#: Whether :func:`engine.txn.apply_batch` and :meth:`engine.namespace.Namespace.put` take this path.
ENABLED = True


def prepare(items: dict[str, Any], limits: Limits) -> tuple[str, bytes, bytes] | None:
    """``(key, its UTF-8, its packed value)`` of a valid one-item dict, or None for anything the
    general validation must look at (it then raises exactly what it raises for the item)."""
    if not ENABLED or limits.max_batch < 1:
        return None
    ((key, value),) = items.items()
    if type(key) is not str:
        return None
    try:
        raw = key.encode()
        packed = pack_value(value)
    except (UnicodeError, EngineError):
        return None
    if not 0 < len(raw) <= limits.max_key_bytes or len(packed) > limits.max_value_bytes:
        return None
    return key, raw, packed


def commit(store: Store, name: str, key: str, raw: bytes, packed: bytes, sync: bool | None) -> int:
    """:func:`engine.txn.commit` of the put :func:`prepare` validated (no note, no expect, no
    idempotency): record the expiries due first, as every write does, then write the put."""
    backend = store._backend
    expiry_db = backend.dbs["expiry"]
    op = [name, PUT, [key]]

    def write(txn: Any) -> int:
        now = store._now_us()
        txnid = txn.id()
        known = backend.tail
        if known is not None and (known[1] != backend.members_run - 1 or not 0 <= txnid - known[0] <= 1):
            known = None  # not left by the write function just before this one, or another process wrote since
        due = known[8] if known is not None else 0
        if due is None or due > now:
            pass  # the expiry index is as the last put saw it: empty, or nothing due before `due`
        else:
            due = general.sweep_due(store, txn, expiry_db, now)
            if due == 0:
                known = None  # the sweep wrote a tx of its own
        if 0 in raw or len(raw) > SHORT_MAX:  # an escaped or long keypart: the general path
            batch = general.Batch([general.Run(name, PUT, [key], [raw], [packed])])
            return general.apply_batch(store, txn, batch, None, now_us=now)
        return apply(store, txn, op, raw, packed, None, now, known, (txnid, due))

    return backend.write(write, sync=sync, cost=1)


def applies(run: general.Run) -> bool:
    """Whether :func:`apply` writes ``run`` (the only run of a tx that is not a replay)."""
    if not ENABLED or run.op > CLEAR or run.opts is not None or len(run.raws) != 1:
        return False
    raw = run.raws[0]
    return 0 not in raw and len(raw) <= SHORT_MAX


def apply_run(store: Store, txn: Any, run: general.Run, note: dict[str, Any] | None, now_us: int) -> int:
    """:func:`apply` of ``run``, a run :func:`applies` to."""
    return apply(store, txn, [run.namespace, run.op, run.keys], run.raws[0], run.packed[0] if run.op == PUT else b"",
                 note, now_us)


def apply(store: Store, txn: Any, op: list[Any], raw: bytes, packed: bytes, note: dict[str, Any] | None,
          now_us: int, known: tuple[Any, ...] | None = None, stamp: tuple[int, int | None] | None = None) -> int:
    """Write ``op`` (the tx log's run ``[namespace, PUT or CLEAR, [key]]``; ``raw``: the key's UTF-8,
    short and free of NULs; ``packed``: a put's value) as the next tx inside the write transaction
    ``txn``, at ``now_us`` or the previous tx's time if later; return the tx. The steps of
    :func:`engine.txn.apply_batch`, in the same order.

    **The tail.** What a put reads first (the latest tx, its time, its chain hash and Merkle tree
    entry, the namespace's registry entry) is what the previous put of this path wrote. ``known``,
    :attr:`engine.backend.Backend.tail` as that put left it, skips those reads; the caller passes it
    only if it is still true: it was left by the write function that ran just before this one in this
    process (:attr:`~engine.backend.Backend.members_run`), in this LMDB write transaction or in the
    one committed just before it (LMDB numbers write transactions consecutively across processes, and
    an aborted one clears the tail), and nothing wrote since in this one. ``stamp``: ``(this write
    transaction's id, when the first indexed expiry is due or None)``, to leave the tail for the next
    put; without it none is left."""
    backend = store._backend
    meta = backend.meta
    put = txn.put  # called positionally (key, value, dupdata, overwrite, append, db): keywords cost ~600 instructions
    name = op[0]
    if known is None:
        get = txn.get  # positional (key, default, db), as put
        raw_tx = get(schema.LATEST_TX, None, meta)
        latest = unpack_u64_from(raw_tx)[0] if raw_tx is not None else 0
        raw_time = get(schema.LAST_TIME_US, None, meta)
        last = unpack_u64_from(raw_time)[0] if raw_time is not None else 0
        prev_hash = get(txlog.HEAD_HASH, None, meta) or txlog.GENESIS
        tree_prev = txtree.entry(txn, backend.dbs, latest) if latest else b""
        entry = None
    else:
        latest, last, prev_hash, tree_prev = known[2:6]
        entry = known[7] if known[6] == name else None
    tx = latest + 1
    now = max(now_us, last)
    put(schema.LAST_TIME_US, pack_u64(now), False, True, False, meta)
    if latest == 0:  # a new store: its layout has the latest-version index from the start
        schema.put_u32(txn, meta, schema.LAYOUT, latest_index.LAYOUT)

    if entry is None:
        entry = store._entry_for_write(txn, name, now)
    kp = ns_prefix(entry.id) + raw + TERMINATOR
    record = packed if op[1] == PUT else CLEAR_RECORD
    packed_tx = pack_u64(tx)
    put(kp + pack_u64(TX_MAX - tx), record, False, True, False, backend.versions)
    # The index entry the version replaces keeps the namespace's key_count and size_bytes exact.
    old = txn.replace(kp, HEAD + record + b"\xcf" + packed_tx, backend.latest)
    if old is None:
        entry.key_count += 1
        entry.size_bytes += len(kp) + len(record)
    else:
        entry.size_bytes += len(record) + FRAMING - len(old)
    entry.tx = tx
    entry.updated_us = now
    put(name.encode(), entry.encode(), False, True, False, backend.namespaces)
    digest, tree = txlog.append_one(txn, backend.dbs, tx, now, note, op, record, prev_hash, tree_prev)
    put(schema.LATEST_TX, packed_tx, False, True, False, meta)
    put(schema.INDEXED_TX, packed_tx, False, True, False, meta)  # the latest-version index is exact at tx
    if stamp is not None:
        backend.tail = (stamp[0], backend.members_run, tx, now, digest, tree, name, entry, stamp[1])
    return tx
