"""Compaction: free the versions no read at or after the horizon can see.

**What is kept.** ``compact(H)`` makes ``H`` the *horizon*: reads at a tx >= H keep working and
return exactly what they returned before; reads below it raise ``TX_COMPACTED``. A read at T >= H
finds a key's newest version <= T: a version with tx >= H (all are kept) or the key's newest
version <= H, the one a read at H sees. So every version with tx >= H is kept; of the others,
only the newest, if no version has tx exactly H and it is not a delete (a key absent at H needs no
tombstone below H). Worked example, key ``k`` with versions put@1, put@4, delete@6, put@9:

* ``compact(5)``: a read at 5 sees put@4: keep it, free put@1. Left: put@4, delete@6, put@9.
* ``compact(6)``: a read at 6 sees delete@6 (kept: tx >= 6): free put@4. Left: delete@6, put@9.
* ``compact(8)``: a read at 8 sees delete@6, below 8: free it. Left: put@9. A read at 8 finds
  nothing (the key was deleted at 6), at 9 finds put@9, as before.

**Which keys to visit.** After a compaction to H1, each key has at most one version <= H1.
Moving the horizon to H2 can only free versions of keys that have a version in ``(H1, H2]``, or
whose one version <= H1 is a delete at exactly H1 (kept then, freeable now): keys that a tx in
``[H1, H2]`` touched, and the tx log (``txops``) lists them. So compaction walks
the log of those txs, not the versions database: its cost is O(operations in the window), and a
retention policy that moves the horizon a little at a time does a little work each time.

**Bounded chunks, resumable.** The work is done in chunks of :data:`CHUNK_KEYS` operations of the
log (and at most 8 times as many freed versions), each
in its own write transaction, so writers (which take the same LMDB writer lock) and readers (never
blocked) keep going. Progress lives in ``meta`` and moves in the same transaction as the deletions:

* ``meta.horizon`` (u64): the lowest readable tx. Raised in the first transaction, *before*
  anything is freed, so no read can ever see a half-compacted tx.
* ``meta.compaction`` (msgpack ``[next_tx, target, skip]``): txs ``[next_tx, target]`` still to
  visit, the first ``skip`` operations of ``next_tx`` done. Absent when no compaction is pending.
* ``meta.compacted_versions`` (u64): versions freed so far, so ``verify()`` can still check that
  the versions database holds exactly what the log accounts for.

A process killed mid-compaction leaves a consistent store (reads >= horizon exact, ``verify()``
passes); the freed-space work resumes with the next ``compact()`` call or retention pass, from
any process. Visiting a key twice is harmless (freeing is idempotent), which is also why two
processes compacting at once are safe: each chunk reads the progress inside its transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from . import events, schema, txlog
from .codec import is_delete
from .encoding import inv_tx, keypart, tx_of
from .errors import FutureTx
from .validation import check_tx

if TYPE_CHECKING:
    from .store import Store

HORIZON = schema.HORIZON
STATE = schema.COMPACTION
FREED = schema.COMPACTED_VERSIONS

#: Operations of the log examined per write transaction (their keys are visited), and at most
#: FREE_PER_KEY_BUDGET times as many versions freed: a few milliseconds of work, so writers barely wait.
CHUNK_KEYS = 1000
FREE_PER_KEY_BUDGET = 8

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class CompactionReport:
    """Outcome of :meth:`Store.compact`.

    ``horizon``: the lowest readable tx now. ``freed``: versions freed by this call. ``txs``: log
    entries visited. ``pending``: False once every version below the horizon that can be freed has
    been (True only if the call was told to stop early).
    """

    horizon: int
    freed: int
    txs: int
    chunks: int
    seconds: float
    pending: bool

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (for the HTTP API and the CLI)."""
        return asdict(self)


def horizon(txn: Any, meta_db: Any) -> int:
    """The lowest readable tx (0 if the store was never compacted)."""
    return schema.get_u64(txn, meta_db, HORIZON)


def status(txn: Any, meta_db: Any) -> dict[str, Any]:
    """``horizon``, ``freed_versions`` and ``pending`` (``[next_tx, target]`` or None)."""
    raw = txn.get(STATE, db=meta_db)
    pending = None if raw is None else msgpack.unpackb(raw)[:2]
    return {"horizon": horizon(txn, meta_db), "freed_versions": schema.get_u64(txn, meta_db, FREED),
            "pending": pending}


def _start(txn: Any, meta_db: Any, before_tx: int) -> None:
    """Raise the horizon to ``before_tx`` and record the txs whose keys must be visited."""
    latest = schema.get_u64(txn, meta_db, schema.LATEST_TX)
    if before_tx > latest:
        raise FutureTx(f"cannot compact before tx {before_tx}: the latest committed tx is {latest}",
                       tx=before_tx, latest_tx=latest)
    old = horizon(txn, meta_db)
    if before_tx <= old:
        return
    raw = txn.get(STATE, db=meta_db)
    # Keys already compacted to the old horizon need a visit only if a tx in [old, before_tx]
    # touched them; a pending walk from next_tx covers that window too (next_tx <= old).
    if raw is None:
        next_tx, skip = old, 0
    else:
        next_tx, _, skip = msgpack.unpackb(raw)
    txn.put(STATE, msgpack.packb([next_tx, before_tx, skip]), db=meta_db)
    schema.put_u64(txn, meta_db, HORIZON, before_tx)


def _free_old_versions(cur: Any, kp: bytes, horizon: int, cap: int) -> tuple[int, bool]:
    """Free up to ``cap`` versions of keypart ``kp`` that no read at a tx >= ``horizon`` can see.
    Returns (how many, whether the key is done)."""
    if not cur.set_range(kp + inv_tx(horizon)):  # the newest version <= horizon: what a read there sees
        return 0, True
    k, rec = cur.item()
    if not k.startswith(kp):
        return 0, True
    # A tombstone below the horizon hides nothing once the older versions are gone: it goes last,
    # so that a chunk stopping halfway never leaves an older version looking visible.
    tombstone = bytes(k) if tx_of(k) < horizon and is_delete(rec) else None
    freed = 0
    if cur.next():
        while cur.key().startswith(kp):  # an exhausted cursor's key is b"", which starts with nothing
            if freed >= cap:
                return freed, False
            cur.delete()
            freed += 1
    if tombstone is not None:
        cur.set_key(tombstone)
        cur.delete()
        freed += 1
    return freed, True


def _chunk(store: Store, txn: Any, budget: int) -> tuple[int, int, bool, tuple[int, int]]:
    """Visit the keys of up to ``budget`` operations of the pending window, freeing at most
    ``FREE_PER_KEY_BUDGET * budget`` versions. Returns (freed, txs done, finished, (next_tx, target)).

    If the freeing cap is reached, the progress is not advanced: the next chunk collects the same
    keys again and continues (keys already done cost one seek each), so even a key with a million
    versions is freed a bounded amount at a time.
    """
    backend = store._backend
    meta = backend.meta
    raw = txn.get(STATE, db=meta)
    if raw is None:
        return 0, 0, True, (1, 0)  # no walk pending: an empty window (next_tx > target), no tx to do
    first_tx, target, first_skip = msgpack.unpackb(raw)
    next_tx, skip = first_tx, first_skip
    todo: dict[bytes, None] = {}
    examined = 0
    while next_tx <= target and examined < budget:
        ops = [(ns, key) for ns, _, keys in txlog.runs_of(txn, backend.dbs, next_tx) for key in keys]
        take = ops[skip:skip + budget - examined]
        for ns, key in take:
            prefix = store._ns_prefix(txn, ns)
            if prefix is not None:
                todo[keypart(prefix, key.encode())] = None
        examined += len(take)
        skip += len(take)
        if skip >= len(ops):
            next_tx, skip = next_tx + 1, 0
    cur = txn.cursor(db=backend.versions)
    cap = FREE_PER_KEY_BUDGET * budget
    freed, complete = 0, True
    for kp in sorted(todo):
        n, complete = _free_old_versions(cur, kp, target, cap - freed)
        freed += n
        if not complete:
            next_tx, skip = first_tx, first_skip  # not all keys done: the same window again
            break
    if next_tx > target:
        txn.delete(STATE, db=meta)
    else:
        txn.put(STATE, msgpack.packb([next_tx, target, skip]), db=meta)
    if freed:
        schema.put_u64(txn, meta, FREED, schema.get_u64(txn, meta, FREED) + freed)
    return freed, next_tx - first_tx, next_tx > target, (next_tx, target)


def compact(store: Store, before_tx: int | None, *, progress: Progress | None = None,
            chunk_keys: int = CHUNK_KEYS, should_stop: Callable[[], bool] | None = None) -> CompactionReport:
    """Raise the horizon to ``before_tx`` (if higher) and free what it allows; with None, only
    finish a pending compaction. ``progress(done_txs, total_txs)`` is called after each chunk;
    ``should_stop()`` is asked between chunks (a retention thread stops when the store closes)."""
    backend = store._backend
    started = time.perf_counter()
    if before_tx is not None:
        check_tx(before_tx, "before_tx")
        backend.write(lambda txn: _start(txn, backend.meta, before_tx), sync=False)
    freed = txs = chunks = 0
    finished = False
    total: int | None = None
    while not finished:
        if should_stop is not None and should_stop():
            break
        n, done, finished, (next_tx, target) = backend.write(lambda txn: _chunk(store, txn, chunk_keys), sync=False)
        freed, txs, chunks = freed + n, txs + done, chunks + 1
        if total is None:
            total = target - next_tx + 1 + done
        if progress is not None:
            progress(txs, max(total, txs))
    # Stream events below the horizon (see engine/events.py; the events database is its own progress):
    # counted in meta.compacted_events, not in this report's versions.
    target = backend.read(lambda txn: horizon(txn, backend.meta))
    done = not backend.read(lambda txn: events.any_below(txn, backend.dbs, target))
    while not done and not (should_stop is not None and should_stop()):
        _, done = backend.write(lambda txn: events.free_below(txn, backend.dbs, target), sync=False)
        chunks = chunks or 1  # something was written: flush it below
    if chunks and backend.sync:
        backend.flush()
    now = backend.read(lambda txn: (horizon(txn, backend.meta), txn.get(STATE, db=backend.meta) is not None))
    return CompactionReport(now[0], freed, txs, chunks, time.perf_counter() - started, now[1])
