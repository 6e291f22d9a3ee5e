"""The only module that imports ``lmdb``: opening, map growth, durability, and error translation.

Rules of the road it enforces (py-lmdb's and LMDB's, made safe for Strata's users):

* **Map growth is invisible.** A write that fills the map is rolled back, the map is doubled and
  the write runs again; another process that sees ``MapResizedError`` adopts the new size. Users
  never see ``MapFullError``. Because remapping invalidates every open transaction of this process,
  growth waits on :class:`Gate` until the process's other threads leave their transactions.
* **Durability.** The environment is opened with ``metasync=False``: every commit flushes its data
  pages before writing the meta page (so the file is never corrupt, LMDB's documented guarantee),
  and a durable write then flushes the meta page with ``env.sync(True)``. A ``sync=False`` write
  skips that last flush: it survives a process crash (the OS has the pages) but a power loss may
  undo it. A store opened with ``sync=False`` skips every flush (bulk loads, tests).
* **Group commit.** Concurrent writes of this process share one LMDB write transaction, one
  commit and one flush (:meth:`Backend.write`, :mod:`engine.group_commit`): they run directly in
  it, and if one fails the group runs again with each in a nested transaction (LMDB refuses those
  with ``MDB_WRITEMAP``, which is why the environment never uses it), so each keeps its own tx,
  rollback and error, and none returns before the group's flush.
* **Aborts.** Aborting a write or nested transaction waits until the writer is alone in the
  gate (:meth:`Gate.alone`): py-lmdb's abort waits until no other thread is inside LMDB.
* **Errors.** Every ``lmdb.Error`` is translated here into an :mod:`engine.errors` class.
* **No crossing fork().** An LMDB environment must not be used in a child process: the child
  shares the parent's reader slots and locks. After ``fork()`` every backend the child inherited
  refuses to work (``STORE_CLOSED``, saying to open the store again) and its ``close()`` leaves
  the parent's environment alone.
"""

from __future__ import annotations

import os
import resource
import struct
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice, repeat, starmap
from operator import itemgetter
from typing import Any, TypeVar

import lmdb

from .errors import EngineError, StorageError, StorageFull, StoreClosed
from .group_commit import GroupCommit, Member
from .schema import HORIZON, LATEST_TX

T = TypeVar("T")

#: ``txops``, ``txtime`` and ``txtree`` hold the runs, time index and Merkle tree entries of txs logged
#: before those moved into ``txlog`` (engine/txlog.py, engine/txtree.py): no tx writes them any more, older
#: stores still read ``txops`` and ``txtree``, backups copy all three.
DB_NAMES = ("versions", "meta", "namespaces", "txlog", "txops", "txtime", "expiry", "streams", "events",
            "idempotency", "txtree", "latest")
MIN_MAP_SIZE = 1 << 20
#: Entries per write transaction of :meth:`Backend.copy_dense`.
DENSE_CHUNK = 50_000
_u64_from = struct.Struct(">Q").unpack_from  # meta's u64 entries (engine/schema.py's layout)

#: Every open backend of this process, so a forked child can disable the ones it inherited.
_open_backends: weakref.WeakSet[Backend] = weakref.WeakSet()


def _disable_inherited() -> None:
    for backend in list(_open_backends):
        backend._forked = backend._closed = True


os.register_at_fork(after_in_child=_disable_inherited)

# What a group commit attempt leaves to do (see Backend._commit_group): nothing, grow the map and
# rerun, commit each member alone, rerun with each member in a nested transaction.
_DONE, _GROW, _SPLIT, _NEST = range(4)


def _members_own(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a group member's function, is that member's own failure (its
    error to raise, the others unaffected) rather than the whole group's business: a full map or
    transaction (the group grows or splits) or an interrupt."""
    return isinstance(exc, Exception) and not isinstance(exc, lmdb.MapFullError | lmdb.TxnFullError)


class Gate:
    """A readers-writer gate: many transactions at once, or one map resize alone.

    Every read passes through it, so entering and leaving take no lock: a thread inside holds a
    token in ``_inside`` (a deque, whose ``append`` and ``pop`` are single C calls, atomic under the
    GIL). A thread that needs the others out (a resize, :meth:`alone`) sets its flag under
    ``_lock``, then waits on ``_cond`` until few enough tokens are left. The order of the steps makes
    that safe: an entering thread appends its token *before* it looks at the flags (and backs out,
    to wait for them to clear, if one is set), and a leaving thread pops its token *before* it looks
    at them (and wakes the waiters if one is set). So a flag set before a thread looked is seen by
    it, and a token appended before a waiter counted is counted; the GIL orders each step. (A lock
    acquired and released twice per read cost about 0.3 us more.)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._inside: deque[None] = deque()  # one token per thread inside
        self._resizing = False
        self._alone = False  # a thread inside waits to be the only one (see alone())
        #: The thread holding the write transaction (0: none), set by the committer while inside.
        self.writer = 0

    def enter(self) -> None:
        self._inside.append(None)
        if self._resizing or self._alone:
            self.back_out()

    def back_out(self) -> None:
        """For a thread that just appended its token and then saw a flag: leave, wait until no
        resize or :meth:`alone` is under way, and enter again.

        Except the thread holding the write transaction (:attr:`writer`), already inside: code it
        runs while holding it (the writes a scheduler parks late, see
        :meth:`Backend.commit_parked`) may read, and waiting would wait for itself (a resize waits
        for its token). It stays in with both tokens: its first one holds the resize back anyway."""
        if self.writer == threading.get_ident():
            return
        self.leave()
        with self._lock:
            while self._resizing or self._alone:
                self._cond.wait()
            self._inside.append(None)  # under the lock, flags clear: a new flag will count this token

    def leave(self) -> None:
        self._inside.pop()
        if self._resizing or self._alone:
            with self._lock:
                self._cond.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        """For a thread inside the gate: wait until no other thread is, keeping newcomers out.

        Unlike leaving and taking :meth:`exclusive`, no resize can slip in meanwhile (one waiting
        for ``exclusive`` keeps waiting for this thread to leave), so a write transaction this
        thread holds open stays valid. One thread at a time may use it (the committing writer).
        """
        with self._lock:
            self._alone = True
            while len(self._inside) > 1:
                self._cond.wait()
        try:
            yield
        finally:
            with self._lock:
                self._alone = False
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._lock:
            while self._resizing:
                self._cond.wait()
            self._resizing = True
            while self._inside:
                self._cond.wait()
        try:
            yield
        finally:
            with self._lock:
                self._resizing = False
                self._cond.notify_all()


def _out_of_space(path: str) -> bool:
    """Whether the file cannot grow: a nearly full filesystem or the RLIMIT_FSIZE ceiling.

    LMDB reports a short write as EIO, so this is how a full disk is told from a failing one.
    """
    try:
        st = os.statvfs(path)
        if st.f_bavail * st.f_frsize < 16 << 20:
            return True
        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        size = os.path.getsize(os.path.join(path, "data.mdb"))
        return soft != resource.RLIM_INFINITY and size + (16 << 20) > soft
    except OSError:
        return False


def translate(exc: lmdb.Error, path: str | None = None) -> EngineError:
    """The Strata error for an LMDB error (``path``: the store, to tell a full disk from a bad one)."""
    text = str(exc)
    full = isinstance(exc, lmdb.DiskError) or "No space left" in text or "File too large" in text
    if full or (path is not None and "Input/output error" in text and _out_of_space(path)):
        return StorageFull(
            "the disk refused to grow the store; free space, then retry (the store is intact)",
            lmdb_error=text,
        )
    return StorageError(f"storage error: {text}", lmdb_error=text)


class Backend:
    """One LMDB environment with Strata's named databases, shared by the threads of a process."""

    def __init__(self, path: str, *, sync: bool, map_size: int, max_readers: int) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.sync = sync
        try:
            self.env = self._open_env(path, map_size, max_readers, sync)
            self.dbs = self._open_dbs()
        except lmdb.Error as exc:
            raise translate(exc) from None
        self.versions = self.dbs["versions"]
        self.meta = self.dbs["meta"]
        self.namespaces = self.dbs["namespaces"]
        self.txlog = self.dbs["txlog"]
        self.latest = self.dbs["latest"]  # each key's newest version (engine/latest.py)
        self._gate = Gate()
        self._groups = GroupCommit(self._commit_group, self._flush_group)
        #: Since opening, in this process: LMDB write commits, flushes (``env.sync``) made for
        #: durable writes, and writes committed. ``writes / commits`` is the mean group size.
        self.commits = self.syncs = self.writes = 0
        self._syncs_lock = threading.Lock()
        self._flushed_through = 0  # every commit of this process up to this count is flushed
        #: Called after a group of several writes was rolled back as a whole (to be run again, or
        #: failed): caches filled from inside its transaction may name what never committed.
        self.on_group_rollback: list[Callable[[], None]] = []
        #: Write functions started in this process's write transactions (each group member, each
        #: attempt): a write function tells by it whether another one ran since it left :attr:`tail`.
        self.members_run = 0
        #: What the last write function that ran left for the next one to skip reading (its own
        #: format, :mod:`engine.one_key`'s), or None; cleared whenever a transaction is aborted.
        self.tail: Any = None
        self._closed = False
        self._forked = False  # True in a child process that inherited this backend
        #: (LMDB snapshot id, latest tx, horizon) of the last read transaction that asked (read_txs).
        self._read_txs: tuple[int, int, int] = (-1, 0, 0)
        _open_backends.add(self)

    @staticmethod
    def _open_env(path: str, map_size: int, max_readers: int, sync: bool) -> Any:
        def attempt() -> Any:
            return lmdb.open(path, map_size=max(map_size, MIN_MAP_SIZE), max_dbs=len(DB_NAMES) + 2,
                             max_readers=max_readers, sync=sync, metasync=False, readahead=False, subdir=True)

        # Opening reads the map size from the file and then begins a transaction: a process that
        # grows the map in between makes that fail with MDB_MAP_RESIZED. Opening again adopts it.
        for _ in range(100):
            try:
                return attempt()
            except lmdb.MapResizedError:
                continue
        return attempt()

    def _open_dbs(self) -> dict[str, Any]:
        # Another process may grow the map while this one opens: adopt its size and try again.
        for _ in range(100):
            try:
                return {name: self.env.open_db(name.encode()) for name in DB_NAMES}
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)
        return {name: self.env.open_db(name.encode()) for name in DB_NAMES}

    # -- transactions -------------------------------------------------------------------------

    def _begin(self, write: bool, db: Any = None) -> Any:
        for _ in range(100):  # another process may grow the map again between two attempts
            try:
                return self.env.begin(write=write, db=db)
            except lmdb.MapResizedError:
                self._gate.leave()
                try:
                    with self._gate.exclusive():
                        self.env.set_mapsize(0)  # adopt the size another process grew the map to
                finally:
                    self._gate.enter()
        return self.env.begin(write=write, db=db)

    def _unusable(self) -> StoreClosed:
        if self._forked:
            return StoreClosed("this store was opened before the process forked, and an LMDB environment must not "
                               "cross fork(): open the store again in this process", forked=True)
        return StoreClosed("the store is closed")

    def read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(txn)`` in a read transaction and return its result."""
        if self._closed:
            raise self._unusable()
        gate = self._gate
        # Gate.enter and Gate.leave inlined: every read passes here, and the method calls were a
        # measurable share of a point read (same token, same order of steps, same waits).
        inside = gate._inside
        inside.append(None)
        if gate._resizing or gate._alone:
            gate.back_out()
        try:
            try:
                txn = self.env.begin()
            except lmdb.MapResizedError:
                txn = self._begin(False)
            try:
                return fn(txn)
            finally:
                txn.abort()
        except lmdb.Error as exc:
            raise translate(exc) from None
        finally:
            inside.pop()  # Gate.leave, inlined
            if gate._resizing or gate._alone:
                with gate._lock:
                    gate._cond.notify_all()

    def get(self, db: Any, key: bytes) -> bytes | None:
        """``key``'s value in ``db`` (None if absent), read in a read transaction of its own: a whole
        point read at the latest tx in one call. :meth:`read` with the function inlined (same gate,
        same errors): a point read is the commonest call, and a function call per layer was a
        measurable share of it."""
        if self._closed:
            raise self._unusable()
        gate = self._gate
        inside = gate._inside  # Gate.enter, inlined as in read()
        inside.append(None)
        if gate._resizing or gate._alone:
            gate.back_out()
        try:
            try:
                txn = self.env.begin()
            except lmdb.MapResizedError:
                txn = self._begin(False)
            try:
                return txn.get(key, None, db)  # type: ignore[no-any-return]
            finally:
                txn.abort()
        except lmdb.Error as exc:
            raise translate(exc) from None
        finally:
            inside.pop()  # Gate.leave, inlined
            if gate._resizing or gate._alone:
                with gate._lock:
                    gate._cond.notify_all()

    def get_latest(self, db: Any, key: bytes) -> tuple[bytes | None, int]:
        """:meth:`get`, with the latest tx of the transaction that read it (:meth:`read_txs`): a
        whole ``read([key])`` at the latest tx in one call."""
        if self._closed:
            raise self._unusable()
        gate = self._gate
        inside = gate._inside  # Gate.enter, inlined as in read()
        inside.append(None)
        if gate._resizing or gate._alone:
            gate.back_out()
        try:
            try:
                txn = self.env.begin()
            except lmdb.MapResizedError:
                txn = self._begin(False)
            try:
                found = txn.get(key, None, db)
                cached = self._read_txs  # read_txs's remembered snapshot, inlined
                return found, cached[1] if cached[0] == txn.id() else self.read_txs(txn)[0]
            finally:
                txn.abort()
        except lmdb.Error as exc:
            raise translate(exc) from None
        finally:
            inside.pop()  # Gate.leave, inlined
            if gate._resizing or gate._alone:
                with gate._lock:
                    gate._cond.notify_all()

    def get_each(self, db: Any, keys: list[bytes]) -> tuple[list[bytes | None], int]:
        """Each key's value in ``db`` (None if absent), in order, read in one read transaction of
        its own, with that transaction's latest tx (:meth:`read_txs`): a whole plain batch read at
        the latest tx in one call. :meth:`get`'s gate and errors."""
        found, latest, _ = self._each(db, keys, _gets)
        return found, latest

    def seek_each(self, db: Any, keys: list[bytes]) -> tuple[list[tuple[bytes, bytes]], int, int]:
        """For each key, in order, the first entry of ``db`` at or after it (``(b"", b"")`` past the
        end), read in one read transaction of its own, with that transaction's latest tx and
        horizon (:meth:`read_txs`): a whole plain batch read at a past tx in one call. :meth:`get`'s
        gate and errors."""
        return self._each(db, keys, _seeks)

    def _each(self, db: Any, keys: list[bytes],
              each: Callable[[Any, list[bytes]], list[Any]]) -> tuple[list[Any], int, int]:
        """``each(txn, keys)`` in one read transaction begun with ``db`` as its default database (so
        each ``txn.get`` or cursor step takes the key alone: measured about 140 instructions less per
        key than passing ``db`` with every key), with the snapshot's latest tx and horizon."""
        if self._closed:
            raise self._unusable()
        gate = self._gate
        inside = gate._inside  # Gate.enter, inlined as in read()
        inside.append(None)
        if gate._resizing or gate._alone:
            gate.back_out()
        try:
            try:
                txn = self.env.begin(db)  # positional: measured 600 instructions cheaper than db=db
            except lmdb.MapResizedError:
                txn = self._begin(False, db)
            try:
                found = each(txn, keys)
                cached = self._read_txs  # read_txs's remembered snapshot, inlined
                if cached[0] == txn.id():
                    return found, cached[1], cached[2]
                return (found, *self.read_txs(txn))
            finally:
                txn.abort()
        except lmdb.Error as exc:
            raise translate(exc) from None
        finally:
            inside.pop()  # Gate.leave, inlined
            if gate._resizing or gate._alone:
                with gate._lock:
                    gate._cond.notify_all()

    def seek(self, db: Any, key: bytes) -> tuple[tuple[bytes, bytes] | None, int, int]:
        """The first entry of ``db`` at or after ``key`` (None past the end), read in a read
        transaction of its own, with that transaction's latest tx and horizon (:meth:`read_txs`):
        a whole point read at a past tx in one call. :meth:`get`'s gate and errors, for the same
        reason (a function call per layer was a measurable share of a point read)."""
        if self._closed:
            raise self._unusable()
        gate = self._gate
        inside = gate._inside  # Gate.enter, inlined as in read()
        inside.append(None)
        if gate._resizing or gate._alone:
            gate.back_out()
        try:
            try:
                txn = self.env.begin()
            except lmdb.MapResizedError:
                txn = self._begin(False)
            try:
                cur = txn.cursor(db)
                found = cur.item() if cur.set_range(key) else None
                cached = self._read_txs  # read_txs's remembered snapshot, inlined
                if cached[0] == txn.id():
                    return found, cached[1], cached[2]
                return (found, *self.read_txs(txn))
            finally:
                txn.abort()
        except lmdb.Error as exc:
            raise translate(exc) from None
        finally:
            inside.pop()  # Gate.leave, inlined
            if gate._resizing or gate._alone:
                with gate._lock:
                    gate._cond.notify_all()

    def read_txs(self, txn: Any) -> tuple[int, int]:
        """``(latest tx, compaction horizon)`` of the read transaction ``txn`` (horizon 0: none).

        Remembered per LMDB snapshot: LMDB gives every committed write transaction the next id, and
        a read transaction sees exactly the state of the commit its id names, so two read
        transactions with one id see the same meta entries. A hit costs one ``txn.id()`` instead
        of two ``get``s. Only read transactions may ask (a write transaction's id names state that
        may still be rolled back).
        """
        snap_id = txn.id()
        cached = self._read_txs
        if cached[0] == snap_id:
            return cached[1], cached[2]
        meta = self.meta
        raw = txn.get(LATEST_TX, db=meta)
        latest = _u64_from(raw)[0] if raw is not None else 0
        raw = txn.get(HORIZON, db=meta)
        horizon = _u64_from(raw)[0] if raw is not None else 0
        self._read_txs = (snap_id, latest, horizon)  # one tuple: threads see all of it or none
        return latest, horizon

    def write(self, fn: Callable[[Any], T], *, sync: bool | None = None, cost: int | None = None) -> T:
        """Run ``fn(txn)`` in a write transaction and commit; grow the map and rerun if it is full.

        ``fn`` must be safe to run again (it is, in Strata: it derives everything from its inputs
        and the transaction). An exception from ``fn`` rolls back what ``fn`` wrote and is raised
        here: nothing of it is written.

        **Group commit.** Writes that threads of this process submit while another write is
        committing wait in a queue; the next commit takes all of them, and before committing the
        ones that queued while they ran (at most
        :data:`engine.group_commit.MAX_GROUP_COST` operations, by ``cost``: the number of items
        the write stores; None, unknown, commits the write alone) in one LMDB write transaction,
        each ``fn`` in queue order directly in it, then commits once and flushes once if any
        member asked for a flush. Each member gets its own result or exception and returns only
        after that flush. A failing ``fn`` rolls back alone: the attempt is aborted and the group
        runs again, each ``fn`` in a nested transaction of its own (so ``fn`` may run twice; its
        outcome is the committed attempt's). A full map aborts the whole group; the map grows and
        the group runs again. A lone write (nothing waiting) is a group of one, as without grouping.
        ``fn`` must not start another write (that raises ``RuntimeError``).
        """
        if self._closed:
            raise self._unusable()
        return self._groups.submit(fn, sync=self.sync if sync is None else sync, cost=cost)

    def parking(self, park: Callable[[Member[Any]], bool]) -> Any:
        """A context in which this thread's writes are handed to ``park`` instead of waiting (see
        :meth:`engine.group_commit.GroupCommit.parking`); commit them with :meth:`commit_parked`."""
        return self._groups.parking(park)

    def commit_parked(self, members: list[Member[Any]], *, defer_flush: bool = False,
                      late: Callable[[], list[Member[Any]]] | None = None) -> Callable[[], None] | None:
        """Commit parked writes together, as :meth:`write` commits a group: each its own tx,
        outcome and error, one commit, one flush if any asked for one; returns when
        every outcome is final, or with ``defer_flush`` once committed, with the flush to call;
        ``late()`` adds the writes parked meanwhile once the write transaction is held (see
        :meth:`engine.group_commit.GroupCommit.submit_all`). Their functions run while this thread
        holds the transaction, and the parking code that runs in ``late()`` may read (the
        gate lets this thread in while it holds it, see :meth:`Gate.back_out`)."""
        if self._closed:
            closed = self._unusable()
            for member in members:
                member.fail(closed)
            return None
        return self._groups.submit_all(members, defer_flush=defer_flush, late=late)

    def _commit_group(self, group: list[Member[Any]]) -> int:
        """Commit ``group`` and set every member's outcome; if it now needs :meth:`_flush_group`,
        the count of this process's commits once it committed (the flush's token), else 0."""
        nested = False  # members run directly in the group's transaction until one fails
        while True:
            if self._closed:
                closed = self._unusable()
                for member in group:
                    member.fail(closed)
                return 0
            try:
                then = self._attempt(group, nested)
            except lmdb.Error as exc:  # beginning the transaction failed: every member's error
                error = translate(exc, self.path)
                for member in group:
                    member.fail(error)
                return 0
            if then == _DONE:
                if len(group) == 1:
                    return self.commits if group[0].sync and group[0].done else 0
                return self.commits if any(member.sync and member.done for member in group) else 0
            for member in group:  # the attempt is discarded: so are the outcomes it set
                member.reset()
            if then == _NEST:
                nested = True
            elif then == _GROW:
                self._grow()
            else:  # _SPLIT: too many dirty pages for one transaction: one commit each
                return max([self._commit_group([member]) for member in group])

    def _flush_group(self, group: list[Member[Any]], commit: int) -> None:
        """Flush the committed ``group`` to disk (the meta page: :meth:`_commit_group`'s commit
        already flushed the data pages); ``commit`` is its token, the count of this process's
        commits once it committed. Runs while the next group commits: LMDB allows a flush beside
        a write transaction, and a flush covers every commit that returned before it started, so
        a group whose commit a successful flush already covered is not flushed again (flushes
        queued behind a slow one collapse into it)."""
        if self._flushed_through >= commit:
            return
        gate = self._gate
        gate.enter()  # no remap or close while flushing
        try:
            through = self.commits  # every commit counted here has returned: this flush covers it
            self.env.sync(True)
        except lmdb.Error as exc:  # committed, but not known to be durable: acknowledge none
            error = translate(exc, self.path)
            for member in group:
                member.fail(error)
            return
        finally:
            gate.leave()
        with self._syncs_lock:  # two groups' flushes may overlap
            self.syncs += 1
            self._flushed_through = max(self._flushed_through, through)

    def _flushed_before(self, commit: int) -> None:
        """This process's commit number ``commit`` flushed its data pages (a synced environment's
        commit that wrote: LMDB writes the meta page, which names the new txnid, only after that
        flush; an empty commit writes and flushes nothing, hence the txnid check by the caller).
        That flush also carried the meta page of every earlier commit of this process, each of
        which returned before it began: those are durable now, with no flush of their own."""
        with self._syncs_lock:
            self._flushed_through = max(self._flushed_through, commit - 1)

    def _attempt(self, group: list[Member[Any]], nested: bool) -> int:
        """One try at committing ``group``; what to do next (:data:`_DONE`, :data:`_GROW`, ...).

        Not ``nested`` (the first try), every member runs directly in the group's transaction:
        no nested transaction to begin and merge per member, which cost about a third of a
        grouped one-key put (callgrind: 231k instructions per member nested, 161k direct). If
        one of several members raises an error of its own, the whole attempt is rolled back and
        :data:`_NEST` asks for a rerun with each member in a nested transaction of its own,
        where its failure is its own."""
        gate = self._gate
        gate._inside.append(None)  # Gate.enter, inlined as in read(): every write passes here
        if gate._resizing or gate._alone:
            gate.back_out()
        try:
            try:
                txn = self.env.begin(None, None, True)  # (db, parent, write): positional is cheaper
            except lmdb.MapResizedError:
                txn = self._begin(True)
            gate.writer = threading.get_ident()
            running = True  # until the members have run: an exception is one member's own
            try:
                if len(group) == 1:  # a lone write (the usual case), without a call per layer
                    self.members_run += 1
                    group[0].succeed(group[0].fn(txn))
                else:
                    self._run(txn, group, nested)
                ran = len(group)
                groups = self._groups
                if (groups._queue or groups._late is not None) and groups.more(group):
                    self._run(txn, group[ran:], nested)  # writes that queued while these ran join the commit
                running = False
                txnid = txn.id()
                txn.commit()
            except BaseException as exc:
                self._abort(txn)
                if len(group) > 1:
                    for forget in self.on_group_rollback:
                        forget()
                    if running and not nested and _members_own(exc):
                        return _NEST
                return self._after_abort(group, exc)
            self.commits += 1  # only the committing leader counts these: no lock
            # Only an earlier commit still unflushed gains from knowing this one flushed (a lone
            # durable writer's was flushed before it returned): then ask LMDB whether this one wrote.
            if self.sync and self._flushed_through < self.commits - 1 and self.env.info()["last_txnid"] >= txnid:
                self._flushed_before(self.commits)
            self.writes += group[0].done if len(group) == 1 else sum(member.done for member in group)
            return _DONE
        finally:
            gate.writer = 0
            gate._inside.pop()  # Gate.leave, inlined
            if gate._resizing or gate._alone:
                with gate._lock:
                    gate._cond.notify_all()

    def _run(self, txn: Any, members: list[Member[Any]], nested: bool) -> None:
        """Run ``members`` in order in the group's transaction ``txn``, directly or each nested."""
        if nested:
            for member in members:
                self._run_nested(txn, member)
        else:
            for member in members:
                self.members_run += 1
                member.succeed(member.fn(txn))

    def _run_nested(self, txn: Any, member: Member[Any]) -> None:
        """Run one member of a group in a nested transaction of ``txn``: its failure is its own."""
        child = self.env.begin(write=True, parent=txn)
        try:
            self.members_run += 1
            result = member.fn(child)
            child.commit()
        except BaseException as exc:
            self._abort(child)
            if not _members_own(exc):
                raise  # the whole group's business
            member.fail(translate(exc, self.path) if isinstance(exc, lmdb.Error) else exc)
            return
        member.succeed(result)

    def _abort(self, txn: Any) -> None:
        """Abort a write (or nested) transaction once no other thread is inside the gate.

        py-lmdb's abort of any write transaction waits until no other thread of the process is
        inside an LMDB call, and busy readers can starve it for seconds: :meth:`Gate.alone` keeps
        newcomers out meanwhile. This thread stays inside, so the group's transaction stays valid
        while one of its nested transactions is aborted.
        """
        self.tail = None  # it may describe what the abort undoes
        with self._gate.alone():
            txn.abort()

    def _after_abort(self, group: list[Member[Any]], exc: BaseException) -> int:
        """What an aborted attempt means: grow, split, rerun, or (set the members' errors) done."""
        if isinstance(exc, lmdb.MapFullError):
            return _GROW
        if isinstance(exc, lmdb.TxnFullError) and len(group) > 1:
            return _SPLIT
        if not isinstance(exc, Exception):
            raise exc  # an interrupt: GroupCommit tells the members
        error = translate(exc, self.path) if isinstance(exc, lmdb.Error) else exc
        for member in group:  # a lone write's own error, or a group's failed commit
            if member.error is None:
                member.fail(error)
        return _DONE

    def _grow(self) -> None:
        """Make room after MDB_MAP_FULL: adopt a map another process already grew, else double ours.

        Doubling the adopted size instead would compound across processes and reopens (every
        opener that fills its small map doubles a size it never used) until mmap fails.
        """
        with self._gate.exclusive():
            try:
                own = self.env.info()["map_size"]
                self.env.set_mapsize(0)
                if self.env.info()["map_size"] <= own:
                    self.env.set_mapsize(own * 2)
            except lmdb.Error as exc:
                raise translate(exc) from None

    # -- housekeeping -------------------------------------------------------------------------

    def info(self) -> dict[str, int]:
        """Map size and bytes in use (pages in use times page size)."""
        if self._closed:
            raise self._unusable()
        try:
            info = self.env.info()
            stat = self.env.stat()
        except lmdb.Error as exc:
            raise translate(exc) from None
        used = (info["last_pgno"] + 1) * stat["psize"]
        return {"map_size": info["map_size"], "used_bytes": used, "readers": info["num_readers"]}

    def copy_dense(self, txn: Any, path: str) -> None:
        """Write every database as the read transaction ``txn`` sees it into a new environment in
        the directory ``path`` (its ``data.mdb`` only: no lock file), each database in key order
        with ``MDB_APPEND``.

        Appending splits a full page by starting a new one, so every page but the last of each
        B-tree level is full; LMDB's compacting copy (``mdb_env_copy2``) keeps each page as it was,
        about two thirds full after years of random inserts. Written in write transactions of up
        to :data:`DENSE_CHUNK` entries (one huge transaction would hit LMDB's dirty-page limit, and
        one per database would leave the pages each commit frees in a small copy); the caller
        flushes the copy.
        """
        try:
            dst = lmdb.open(path, map_size=max(self.env.info()["map_size"], MIN_MAP_SIZE), max_dbs=len(DB_NAMES) + 2,
                            sync=False, metasync=False, lock=False, readahead=False, subdir=True)
        except lmdb.Error as exc:
            raise translate(exc, path) from None
        try:
            out = dst.begin(write=True)  # one transaction per DENSE_CHUNK entries, across databases
            try:
                for name in DB_NAMES:
                    target = dst.open_db(name.encode(), txn=out)
                    entries = txn.cursor(db=self.dbs[name]).iternext()
                    while out.cursor(db=target).putmulti(islice(entries, DENSE_CHUNK), append=True)[0] == DENSE_CHUNK:
                        out.commit()
                        out = dst.begin(write=True)
                out.commit()
            except BaseException:
                out.abort()
                raise
        except lmdb.Error as exc:
            raise translate(exc, path) from None
        finally:
            dst.close()

    def flush(self) -> None:
        """Force every committed write to disk."""
        if self._closed:
            raise self._unusable()
        try:
            self.env.sync(True)
        except lmdb.Error as exc:
            raise translate(exc) from None

    def close(self) -> None:
        # A forked child only forgets its copy: closing it would act on the parent's environment.
        if not self._closed:
            self._closed = True
            with self._gate.exclusive():
                self.env.close()


def _gets(txn: Any, keys: list[bytes]) -> list[bytes | None]:
    return list(map(txn.get, keys))


def _seeks(txn: Any, keys: list[bytes]) -> list[tuple[bytes, bytes]]:
    cur = txn.cursor()
    # zip asks its iterators in order, so each item() follows its own set_range: every step a C
    # call. An unpositioned cursor's item() is (b"", b"").
    steps = zip(map(cur.set_range, keys), starmap(cur.item, repeat((), len(keys))), strict=True)
    return list(map(itemgetter(1), steps))
