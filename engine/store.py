"""The store: one LMDB environment, one timeline of txs, many namespaces."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, cast

from . import backup as _backup
from . import compaction, expiry, feed, retention, schema, txlog, txtree, txtree_build
from . import idempotency as _idempotency
from . import latest as latest_index
from . import stream as _stream
from .backend import Backend
from .codec import DELETE
from .compaction import CompactionReport
from .encoding import SHORT_MAX, TERMINATOR, ns_prefix
from .errors import InvalidParameters, NamespaceExists, NamespaceNotFound
from .events import StreamInfo
from .group_commit import Member as ParkedWrite
from .namespace import Namespace
from .records import Limits, NamespaceInfo
from .retention import Retention
from .scan import live_keys
from .stream import Stream
from .txlog import TxInfo
from .txn import Batch, Run, Transaction, apply_batch, record_due_expiries
from .txtree import ConsistencyProof, Head, InclusionProof
from .validation import check_namespace, check_tx, time_us
from .verify import VerifyReport, verify


def _ttl_us(ttl: Any) -> int:
    """An idempotency ttl (seconds or a timedelta, 1 s to 10 years) in microseconds."""
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if type(seconds) not in (int, float) or not 1 <= seconds <= 10 * 366 * 86400:
        raise InvalidParameters(f"idempotency_ttl must be 1 second to 10 years, not {ttl!r}",
                                parameter="idempotency_ttl")
    return round(seconds * 1_000_000)


def check_open_options(clock: Any, idempotency_ttl: Any) -> int:
    """``INVALID_PARAMETERS`` for a ``clock`` or ``idempotency_ttl`` :meth:`Store.open` cannot take (any
    backend); else the ttl in microseconds."""
    if clock is not None and not callable(clock):
        raise InvalidParameters("clock must be a function returning epoch seconds", parameter="clock")
    return _ttl_us(idempotency_ttl)


#: Namespace handles kept for reuse by :meth:`Store.namespace`. A server asks for whatever name a
#: request carries, existing or not; an unbounded cache grew a worker by 20 MiB per 100,000 names.
#: Beyond the bound the oldest handle is dropped (a handle is just the store and a validated name).
MAX_NAMESPACE_HANDLES = 1024


class Store:
    """A transactional, versioned key-value store in one directory.

    Every committed write gets the next tx (1, 2, 3, ... with no gaps, across processes); every
    version is kept, and every read can target the latest state or the exact state at any past
    tx. Open the same directory from several processes at once: LMDB serialises their writers and
    never blocks readers. A ``Store`` object may be shared by the threads of one process; do not
    share it across ``fork`` (open it in the child).

    ``Store.open(path)`` creates the directory if needed. Options:

    * ``sync`` (default True): every write is flushed to disk before it returns, so a returned tx
      survives ``kill -9`` and power loss. ``sync=False`` makes flushing the caller's business
      (:meth:`sync`): a crashed process still loses nothing, a power loss may lose recent txs.
      Single writes can also pass ``sync=False``.
    * ``map_size``: the initial LMDB map; it grows by itself when full.
    * ``limits``: a :class:`~engine.records.Limits` (batch size, key and value size, note size).
    * ``retention``: how much history to keep (see :mod:`engine.retention`): None keeps
      everything; an ``int`` N keeps the last N txs readable; a ``timedelta`` keeps every tx of
      that span; a :class:`~engine.retention.Retention` says both. A daemon thread applies it.
    * ``clock``: a function returning now as epoch seconds (default ``time.time``): commit times
      expiry and retention's time spans are evaluated with it. For tests (and simulations) that must not sleep.
    * ``idempotency_ttl``: how long an idempotent write's answer is kept for its retries (seconds or
      a ``timedelta``; default 24 hours; see :mod:`engine.idempotency`).
    """

    #: Which backend holds the store (``"etcd"`` on :class:`engine.etcd.store.EtcdStore`).
    backend = "lmdb"

    def __init__(self, backend: Backend, limits: Limits, retention_policy: Retention | None = None,
                 clock: Callable[[], float] | None = None,
                 idempotency_ttl: float | timedelta = _idempotency.DEFAULT_TTL_SECONDS) -> None:
        self._backend = backend
        self._clock = clock
        #: How long (microseconds) an idempotent write's answer is kept (see :mod:`engine.idempotency`).
        self.idempotency_ttl_us = _ttl_us(idempotency_ttl)
        self._ns_names: dict[bytes, str] = {}
        self.limits = limits
        self.path = backend.path
        self._ns_ids: dict[str, int] = {}
        self._prefixes: dict[str, bytes] = {}
        #: ``(prefix, 00 00)`` per name, kept with ``_prefixes``: ``raw.join(head)`` is a short key's
        #: keypart in one call, what the point-read paths build per key (engine/encoding.py).
        self._heads: dict[str, tuple[bytes, bytes]] = {}
        #: Longest key (UTF-8 bytes) the lean read paths take: short (one keypart form) and within the limit.
        self._lean_key_max = min(SHORT_MAX, limits.max_key_bytes)
        #: The same for ``read([key])`` (0 when a read may not take even one key: the general path says so).
        self._lean_read_max = self._lean_key_max if limits.max_read_keys >= 1 else 0
        self._handles: dict[str, Namespace] = {}  # at most MAX_NAMESPACE_HANDLES, oldest dropped first
        self._handles_lock = threading.Lock()
        # A group commit's member may cache the id of a namespace an earlier member created; if
        # the whole group is rolled back, that id may go to another name on the rerun.
        backend.on_group_rollback.append(self._forget_namespace_ids)
        latest_index.catch_up(backend)  # a store older than the latest-version index: build it
        txtree_build.catch_up(backend)  # a store older than its Merkle tree: build the missing leaves
        self.retention = retention_policy
        self._retention_thread: retention.RetentionThread | None = None
        if retention_policy is not None:
            self._retention_thread = retention.RetentionThread(self, retention_policy)
            self._retention_thread.start()

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, sync: bool = True, map_size: int = 1 << 30,
             max_readers: int = 1024, limits: Limits | None = None,
             retention: Retention | int | timedelta | None = None,
             clock: Callable[[], float] | None = None,
             idempotency_ttl: float | timedelta = _idempotency.DEFAULT_TTL_SECONDS) -> Store:
        """Open (creating if needed) the store in directory ``path``.

        An ``etcd://h1:2379,h2:2379,h3:2379/PREFIX`` URL instead opens (creating if needed) the store at
        ``PREFIX`` on that etcd cluster: an :class:`engine.etcd.store.EtcdStore`, with this class's API,
        where what the etcd backend does not support yet raises ``NOT_SUPPORTED`` (see docs/scale-out.md;
        ``map_size`` and ``max_readers`` are LMDB's and do not apply)."""
        if type(path) is str and path.startswith("etcd:"):
            from .etcd.store import EtcdStore  # imported only for etcd stores: the LMDB path loads none of it

            # The facade has this class's public API (tests/etcd/test_store_open.py checks every member).
            return cast(Store, EtcdStore.open(path, sync=sync, limits=limits, retention=retention, clock=clock,
                                              idempotency_ttl=idempotency_ttl))
        policy = Retention.of(retention)
        check_open_options(clock, idempotency_ttl)  # checked before the directory is touched
        backend = Backend(os.fspath(path), sync=sync, map_size=map_size, max_readers=max_readers)
        return cls(backend, limits or Limits(), policy, clock, idempotency_ttl)

    def _now_us(self) -> int:
        """Now, in UTC microseconds, by the store's clock."""
        clock = self._clock
        return time.time_ns() // 1000 if clock is None else round(clock() * 1_000_000)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    # -- namespaces ---------------------------------------------------------------------------

    def namespace(self, name: str) -> Namespace:
        """The namespace called ``name`` (validated; nothing is created until it is written)."""
        handle = self._handles.get(name)
        if handle is None:
            handle = Namespace(self, check_namespace(name))
            with self._handles_lock:
                while len(self._handles) >= MAX_NAMESPACE_HANDLES:
                    del self._handles[next(iter(self._handles))]
                self._handles[name] = handle
        return handle

    def namespaces(self) -> list[NamespaceInfo]:
        """Every namespace that exists (created or written, not dropped), by name."""
        def run(txn: Any) -> list[NamespaceInfo]:
            out = []
            for raw_name, raw in txn.cursor(db=self._backend.namespaces):
                entry = schema.NamespaceEntry.decode(raw)
                if not entry.dropped:
                    out.append(entry.info(bytes(raw_name).decode()))
            return out
        return self._backend.read(run)

    def namespace_info(self, name: str) -> NamespaceInfo | None:
        """What ``name`` holds at the latest tx, or None if it does not exist."""
        check_namespace(name)

        def run(txn: Any) -> NamespaceInfo | None:
            raw = txn.get(name.encode(), db=self._backend.namespaces)
            if raw is None:
                return None
            entry = schema.NamespaceEntry.decode(raw)
            return None if entry.dropped else entry.info(name)
        return self._backend.read(run)

    def create_namespace(self, name: str, *, idempotency: _idempotency.Claim | None = None) -> NamespaceInfo:
        """Create an empty namespace (no tx is consumed). Raises NAMESPACE_EXISTS if it exists.

        ``idempotency``: a :class:`~engine.idempotency.Claim`, recorded with the creation (a retry
        under its key raises :class:`~engine.idempotency.Replay`)."""
        check_namespace(name)

        def run(txn: Any) -> NamespaceInfo:
            raw = txn.get(name.encode(), db=self._backend.namespaces)
            if raw is not None and not schema.NamespaceEntry.decode(raw).dropped:
                raise NamespaceExists(f"namespace {name!r} already exists", namespace=name)
            now = txlog.commit_time(txn, self._backend.meta, self._now_us())
            entry = self._entry_for_write(txn, name, now)
            txn.put(name.encode(), entry.encode(), db=self._backend.namespaces)
            return entry.info(name)
        return _idempotency.run(self, idempotency, run)

    def drop_namespace(self, name: str, *, note: dict[str, Any] | None = None, sync: bool | None = None,
                       idempotency: _idempotency.Claim | None = None) -> int:
        """Delete every live key of ``name`` in one tx and forget the namespace. Returns the tx.

        Versions are kept: reads at earlier txs still see the namespace's data. Writing to the
        name again brings it back with a new ``created_at``. A namespace with no live keys is
        forgotten without a tx (nothing any read sees changes): the latest tx is returned and
        ``note`` is discarded. ``idempotency`` as for :meth:`create_namespace`.
        """
        check_namespace(name)
        note = txlog.check_note(note, self.limits.max_note_bytes)
        backend = self._backend

        def drop(txn: Any) -> int:
            raw = txn.get(name.encode(), db=backend.namespaces)
            if raw is None or schema.NamespaceEntry.decode(raw).dropped:
                raise NamespaceNotFound(f"namespace {name!r} does not exist", namespace=name)
            record_due_expiries(self, txn)
            keys = live_keys(txn, backend.latest, ns_prefix(schema.NamespaceEntry.decode(raw).id))
            if keys:
                tx = apply_batch(self, txn, Batch([Run(name, DELETE, keys, [k.encode() for k in keys])]), note)
            else:
                tx = schema.get_u64(txn, backend.meta, schema.LATEST_TX)
            entry = schema.NamespaceEntry.decode(txn.get(name.encode(), db=backend.namespaces))
            entry.dropped, entry.key_count, entry.size_bytes = True, 0, 0
            if keys:
                entry.tx = tx
            txn.put(name.encode(), entry.encode(), db=backend.namespaces)
            return tx
        return _idempotency.run(self, idempotency, drop, sync=sync)

    # -- streams (events on the same timeline; see engine/stream.py) ---------------------------

    def stream(self, name: str) -> Stream:
        """The stream called ``name`` (validated; nothing is created until it is published to)."""
        return Stream(self, check_namespace(name))

    def streams(self) -> list[StreamInfo]:
        """Every stream that exists (created or published to, not dropped), by name."""
        return _stream.streams(self)

    def stream_info(self, name: str) -> StreamInfo | None:
        """What stream ``name`` holds at the latest tx, or None if it does not exist."""
        return _stream.stream_info(self, name)

    def create_stream(self, name: str, *, idempotency: _idempotency.Claim | None = None) -> StreamInfo:
        """Create an empty stream (no tx is consumed). Raises NAMESPACE_EXISTS if it exists.
        ``idempotency`` as for :meth:`create_namespace`."""
        return _stream.create_stream(self, name, idempotency=idempotency)

    def drop_stream(self, name: str, *, note: dict[str, Any] | None = None, sync: bool | None = None,
                    idempotency: _idempotency.Claim | None = None) -> int:
        """Forget stream ``name`` and its events (one tx if it has any); see :func:`engine.stream.drop_stream`.
        ``idempotency`` as for :meth:`create_namespace`."""
        return _stream.drop_stream(self, name, note=note, sync=sync, idempotency=idempotency)

    # -- transactions and the timeline ---------------------------------------------------------

    def transaction(self, *, note: dict[str, Any] | None = None, sync: bool | None = None,
                    idempotency: _idempotency.Claim | None = None) -> Transaction:
        """Several operations on several namespaces as one tx: ``with store.transaction() as t:``
        (``idempotency``: see :mod:`engine.idempotency`)."""
        return Transaction(self, note=note, sync=sync, idempotency=idempotency)

    @property
    def latest_tx(self) -> int:
        """The latest committed tx (0 for an empty store)."""
        backend = self._backend
        return backend.read(lambda txn: schema.get_u64(txn, backend.meta, schema.LATEST_TX))

    def tx_info(self, tx: int) -> TxInfo | None:
        """Commit time, note and operations of ``tx``; None if it was not committed."""
        check_tx(tx)
        return self._backend.read(lambda txn: txlog.read(txn, self._backend.dbs, tx))

    def tx_at(self, at: datetime | float) -> int:
        """The latest tx committed at or before ``at`` (aware datetime or epoch seconds); 0 if none."""
        when = time_us(at)
        return self._backend.read(lambda txn: txlog.tx_at(txn, self._backend.dbs, when))

    def head(self) -> Head:
        """``(latest tx, its chain hash in hex)``: a receipt an auditor can keep and verify later.

        It also carries the Merkle tree's ``size`` (the latest tx) and ``root`` (hex), read in the
        same transaction: what :meth:`inclusion_proof` and :meth:`consistency_proof` prove against.
        """
        dbs = self._backend.dbs

        def run(txn: Any) -> Head:
            return txtree.head(txn, dbs, bytes(txn.get(txlog.HEAD_HASH, db=dbs["meta"]) or txlog.GENESIS))
        return self._backend.read(run)

    def inclusion_proof(self, tx: int, size: int | None = None) -> InclusionProof:
        """RFC 9162 proof that ``tx`` is leaf ``tx - 1`` of the tree of ``size`` txs (default: the
        latest). ``FUTURE_TX`` if ``size`` is above the latest tx; ``INVALID_PARAMETERS`` unless
        ``1 <= tx <= size``. O(log n) reads."""
        return self._backend.read(lambda txn: txtree.inclusion_proof(txn, self._backend.dbs, tx, size))

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        """RFC 9162 proof that the tree of ``second`` txs (default: the latest) extends the tree of
        ``first`` txs unchanged. ``FUTURE_TX`` if ``second`` is above the latest tx;
        ``INVALID_PARAMETERS`` unless ``1 <= first <= second``. O(log n) reads."""
        return self._backend.read(lambda txn: txtree.consistency_proof(txn, self._backend.dbs, first, second))

    def verify(self, receipt: tuple[int, str] | None = None) -> VerifyReport:
        """Re-derive every tx's hash from the stored versions and the log; report the first bad tx.

        With ``receipt`` (a ``(tx, hash)`` from :meth:`head`), also check the chain still passes
        through it; a receipt for a tx above the latest raises ``FUTURE_TX`` (no store issued
        it). ``checked`` never exceeds the latest tx. Reads every version the log names:
        O(total operations). Once the chain checks out, the Merkle tree is checked too: each leaf
        against the recomputed log entry (at or above the horizon), each node against its children.
        """
        if receipt is not None:
            check_tx(receipt[0], "receipt")
        report = verify(self._backend.read, self._backend.dbs, receipt)
        if report.ok:  # then the Merkle tree over the same log (see engine.txtree_build.check)
            bad = txtree_build.check(self._backend, report.head_tx, report.horizon)
            if bad is not None:
                report = dataclasses.replace(report, ok=False, checked=bad[0] - 1, bad_tx=bad[0], problem=bad[1])
        return report

    def changes(self, since: int = 0, *, limit: int = 1000, namespace: str | None = None) -> list[TxInfo]:
        """Committed txs after ``since``, in tx order, each with its operations (at most ``limit``).

        With ``namespace``, only txs that touched it, with only its operations.
        """
        check_tx(since, "since")
        if type(limit) is not int or not 1 <= limit <= 10_000:
            raise InvalidParameters(f"limit must be an integer from 1 to 10000, not {limit!r}", parameter="limit")
        if namespace is not None:
            check_namespace(namespace)
        return self._backend.read(lambda txn: feed.changes(txn, self._backend.dbs, since, limit, namespace))

    def wait_for(self, tx: int, timeout: float | None = None) -> bool:
        """Block until ``tx`` is committed (by any process); False if ``timeout`` seconds pass first."""
        check_tx(tx)
        return feed.wait_for(lambda: self.latest_tx, tx, timeout)

    # -- expiry -------------------------------------------------------------------------------

    def expire(self, *, sync: bool | None = None) -> int:
        """Record every expiry that is due as a delete; return how many keys it deleted.

        Expired values are already invisible to reads; this writes their deletes into the history
        (txs of up to 1,000 deletes with note ``{"expired": true}``), so namespace ``key_count``
        and ``size_bytes`` become exact and history, diff and the change feed show them. Every
        write also records up to 64 due expiries before its own tx. See :mod:`engine.expiry`.
        """
        total = 0
        while True:
            def run(txn: Any) -> tuple[int, bool]:
                now = self._now_us()
                batch, more = expiry.sweep(self, txn, now, expiry.SWEEP_PER_TX)
                if batch is None:
                    return 0, more
                apply_batch(self, txn, batch, expiry.EXPIRED_NOTE, now_us=now)
                return sum(len(r.keys) for r in batch.runs), more
            count, more = self._backend.write(run, sync=sync)
            total += count
            if not more:
                return total

    def next_expiry(self) -> datetime | None:
        """When the earliest expiry not yet recorded falls due (None if none is pending)."""
        return self._backend.read(lambda txn: expiry.next_expiry(txn, self._backend.dbs))

    # -- writes served from coroutines ---------------------------------------------------------

    #: Whether writes made inside :meth:`parking` park (True here; a store on etcd commits each
    #: write as it is made, so its writes never park and wait as usual).
    parks_writes = True

    def parking(self, park: Callable[[ParkedWrite[Any]], bool]) -> AbstractContextManager[None]:
        """For a thread that serves many requests at once, each in a coroutine (a greenlet): while
        inside, a write this thread makes does not wait for its commit; it is handed to
        ``park(write)``, which switches back to the thread's scheduler and returns True once the
        scheduler has committed it with :meth:`commit_parked` (or False at once: the write then
        waits as usual). The write then returns its own tx or raises its own error, exactly as
        it would have. See :mod:`engine.group_commit`."""
        return cast(AbstractContextManager[None], self._backend.parking(park))

    def commit_parked(self, writes: list[ParkedWrite[Any]], *, defer_flush: bool = False,
                      late: Callable[[], list[ParkedWrite[Any]]] | None = None) -> Callable[[], None] | None:
        """Commit parked writes together (in order, each its own tx, rollback and error; one
        commit, and one flush if any of them is durable), after the commit in progress; returns
        when every outcome is final and flushed.

        With ``defer_flush``, returns once they are committed, with a function to call (from any
        thread) before using any of their outcomes: it flushes. Meanwhile the next commit may
        run, so a scheduler can commit its next batch while this one flushes.

        ``late()``, if given, is called once this commit holds the store's write lock and returns
        the writes parked since (by requests that arrived while it waited): they join this commit."""
        return self._backend.commit_parked(writes, defer_flush=defer_flush, late=late)

    # -- housekeeping -------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """``latest_tx``, ``map_size``, ``used_bytes`` and ``readers`` of the environment, and this
        process's write counters since the store was opened: ``writes`` (acknowledged),
        ``commits`` (LMDB commits: concurrent writes share one, see :mod:`engine.group_commit`)
        and ``syncs`` (flushes made for durable writes)."""
        backend = self._backend
        counters = {"writes": backend.writes, "commits": backend.commits, "syncs": backend.syncs}
        return {"latest_tx": self.latest_tx, **backend.info(), **counters}

    def compact(self, before_tx: int | None = None, *, progress: Callable[[int, int], None] | None = None,
                chunk_keys: int = compaction.CHUNK_KEYS) -> CompactionReport:
        """Free every version no read at a tx >= ``before_tx`` can see; reads below it then raise
        ``TX_COMPACTED``. See :mod:`engine.compaction`.

        Runs in chunks of about ``chunk_keys`` keys, each its own write transaction, so readers and
        writers keep going. The horizon is raised first, so a compaction killed midway leaves a
        consistent store; ``compact()`` with no tx (or any later call) finishes it.
        ``progress(done_txs, total_txs)`` is called after every chunk. ``before_tx`` above the
        latest tx: ``FUTURE_TX``; at or below the current horizon: nothing new to free.
        """
        return compaction.compact(self, before_tx, progress=progress, chunk_keys=chunk_keys)

    @property
    def horizon(self) -> int:
        """The lowest tx reads can target (0 until the store is compacted)."""
        return self._backend.read(lambda txn: compaction.horizon(txn, self._backend.meta))

    def compaction_status(self) -> dict[str, Any]:
        """``horizon``, ``freed_versions`` (ever) and ``pending`` (``[next_tx, target]`` or None)."""
        return self._backend.read(lambda txn: compaction.status(txn, self._backend.meta))

    def apply_retention(self, policy: Retention | int | timedelta | None = None) -> CompactionReport | None:
        """One retention pass now, with ``policy`` or the store's own; None if there was nothing to do."""
        chosen = Retention.of(policy) or self.retention
        if chosen is None:
            raise InvalidParameters("no retention policy: pass one, or open the store with retention=...",
                                    parameter="policy")
        return retention.apply(self, chosen)

    def backup(self, path: str | os.PathLike[str]) -> _backup.BackupInfo:
        """A consistent hot copy of the whole store into the new directory ``path``.

        The copy holds the store as of the latest tx when it starts (``BackupInfo.tx`` and
        ``.hash``); readers and writers keep working meanwhile. It is a dense rebuild (every
        database appended in key order), so it holds only full pages in use. Refuses a ``path``
        that exists and is not an empty directory.
        """
        return _backup.backup(self, path)

    @staticmethod
    def restore(backup_path: str | os.PathLike[str], data_dir: str | os.PathLike[str], *,
                verify: bool = True) -> _backup.BackupInfo:
        """Restore a backup into the new (or empty) directory ``data_dir``; see :func:`engine.restore`."""
        return _backup.restore(backup_path, data_dir, verify=verify)

    def sync(self) -> None:
        """Flush every committed write to disk (for stores opened with ``sync=False``)."""
        self._backend.flush()

    def close(self) -> None:
        """Close the store; later calls raise STORE_CLOSED. Closing twice is fine."""
        if self._retention_thread is not None:
            self._retention_thread.stop()  # between two chunks: the store stays consistent
        self._backend.close()

    # -- internals shared by Namespace and the write path ---------------------------------------

    def _ns_id(self, txn: Any, name: str) -> int | None:
        ns_id = self._ns_ids.get(name)
        if ns_id is None:
            raw = txn.get(name.encode(), db=self._backend.namespaces)
            if raw is None:
                return None
            # Ids are assigned once per name and never change, so caching is safe across processes.
            ns_id = self._ns_ids[name] = schema.NamespaceEntry.decode(raw).id
            prefix = self._prefixes[name] = ns_prefix(ns_id)
            self._heads[name] = (prefix, TERMINATOR)
        return ns_id

    def _forget_namespace_ids(self) -> None:
        self._ns_ids.clear()
        self._prefixes.clear()
        self._heads.clear()
        self._ns_names.clear()

    def _ns_name(self, txn: Any, prefix: bytes) -> str | None:
        """The name of the namespace whose 4-byte id prefix is ``prefix`` (None if unknown)."""
        name = self._ns_names.get(prefix)
        if name is None:
            for raw_name, raw in txn.cursor(db=self._backend.namespaces):
                found = bytes(raw_name).decode()
                self._ns_names[ns_prefix(schema.NamespaceEntry.decode(raw).id)] = found
            name = self._ns_names.get(prefix)
        return name

    def _ns_prefix(self, txn: Any, name: str) -> bytes | None:
        prefix = self._prefixes.get(name)
        if prefix is None and self._ns_id(txn, name) is not None:
            prefix = self._prefixes[name]
        return prefix

    def _entry_for_write(self, txn: Any, name: str, now: int) -> schema.NamespaceEntry:
        """The registry entry of ``name``, created (or revived after a drop) for a write."""
        raw = txn.get(name.encode(), None, self._backend.namespaces)  # positional: cheaper than db=
        if raw is not None:
            entry = schema.NamespaceEntry.decode(raw)
            if entry.dropped:
                entry.dropped, entry.created_us = False, now
                if entry.tx == 0:  # never written: updated when (re)created, as a new namespace is
                    entry.updated_us = now
            return entry
        meta = self._backend.meta
        ns_id = schema.get_u32(txn, meta, schema.NEXT_NS_ID) + 1
        schema.put_u32(txn, meta, schema.NEXT_NS_ID, ns_id)
        return schema.NamespaceEntry(ns_id, now, now, 0, 0, 0, False)

