"""A Strata store on an etcd cluster, with :class:`engine.Store`'s API: what ``Store.open("etcd://...")`` returns.

:class:`EtcdStore` is a facade over :class:`~engine.etcd.storage.EtcdStorage` (the Strata-level operations,
held to the LMDB engine's answers by ``tests/etcd/test_differential.py``): the same calls with the same
arguments, answers and errors as the LMDB store for what the etcd backend does, and for the rest one error,
``NOT_SUPPORTED`` (:class:`engine.errors.NotSupported`, HTTP 501), naming the operation, raised before
anything is read or written. The LMDB classes stay untouched: no call on an LMDB store goes through here.

Supported: namespaces (``namespace(name)`` with put, get, read, scan, delete, clear, history, diff,
info), multi-namespace ``transaction``, ``latest_tx``, ``tx_info`` and ``changes`` (each entry with its
chain hash, the LMDB store's for the same history, and the commit time clamped as LMDB clamps it),
``head`` (tx, hash and the Merkle root), ``verify``, ``inclusion_proof`` and ``consistency_proof``
(:mod:`engine.etcd.chain`, :mod:`engine.etcd.verify`, :mod:`engine.etcd.txtree`),
``tx_at`` and reads by time (``at=``: a bisection over the sealed, clamped commit times,
:mod:`engine.etcd.timeseek`), ``wait_for`` (a watch), ``namespaces``,
``namespace_info``, ``create_namespace``, ``drop_namespace``, ``expire``, ``next_expiry``, ``stats``
(``latest_tx`` and the cluster's database size), ``sync`` (nothing to do: etcd makes every txn durable on a
quorum before it answers), ``compact``, ``horizon``, ``compaction_status``, retention (``retention=`` and
``apply_retention``: :mod:`engine.etcd.compaction`, :mod:`engine.etcd.retention`), ``close`` and the
context manager. Namespaces' ``revert`` is :mod:`engine.etcd.revert`.

Streams (``stream``, ``streams``, ``stream_info``, ``create_stream``, ``drop_stream``: :mod:`engine.etcd.stream`).
``backup`` and ``restore`` are :mod:`engine.etcd.backup`; history and snapshot export and import
(``engine.export_history`` and the rest take a store on etcd) are :mod:`engine.etcd.history_export`,
:mod:`engine.etcd.replay` and :mod:`engine.etcd.snapshot`. Idempotency keys
(``idempotency=``) are stored with the write (:mod:`engine.etcd.idempotency`).

The store owns its etcd client and a background sealer thread (:mod:`engine.etcd.sealer`); after
:meth:`close` every call raises ``STORE_CLOSED``. Thread-safe (the client and storage are); it may cross a
``fork`` only if it was not used before it (like any HTTP pool), and the child runs no sealer thread (its
readers seal what they ask for).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from .. import idempotency as _idempotency
from ..backup import BackupInfo, restore
from ..compaction import CHUNK_KEYS, CompactionReport
from ..errors import InvalidParameters, NotSupported, StorageUnavailable, StoreClosed
from ..events import StreamInfo
from ..records import Limits, NamespaceInfo
from ..retention import Retention, RetentionThread
from ..txtree import ConsistencyProof, Head, InclusionProof
from ..validation import check_namespace, check_tx, time_us
from ..verify import VerifyReport
from . import compacted, compaction
from . import stream as _stream
from . import txtree as _txtree
from .client import EtcdClient
from .idempotency import run as run_claimed
from .namespace import EtcdNamespace
from .sealer import INTERVAL as SEAL_INTERVAL
from .sealer import Sealer
from .storage import EtcdStorage
from .stream import EtcdStream
from .transaction import EtcdTransaction
from .txlog import TxEntry
from .url import EtcdUrl

#: Seconds a call keeps trying other members before ``STORAGE_UNAVAILABLE`` (the client's default).
RETRY_TIMEOUT = 10.0
#: Read timeout of one attempt: writes go through the retry-safe commit, so giving up early is safe, and
#: it bounds the stall when the leader dies (docs/design.md, "Strata on etcd").
REQUEST_TIMEOUT = 2.0


class EtcdStore:
    """A Strata store under a prefix of an etcd cluster; see the module docstring. Open it with
    ``Store.open("etcd://h1:2379,h2:2379,h3:2379/PREFIX")`` or :meth:`open`."""

    #: Which backend holds the store (``"lmdb"`` on :class:`engine.Store`).
    backend = "etcd"

    def __init__(self, url: EtcdUrl, client: EtcdClient, storage: EtcdStorage, idempotency_ttl_us: int,
                 sealer: Sealer | None = None, retention_policy: Retention | None = None) -> None:
        self.url = url
        self._sealer = sealer
        self.path = str(url)
        self._client = client
        self._storage: EtcdStorage | None = storage
        self.limits: Limits = storage.limits
        self.retention: Retention | None = retention_policy
        self.idempotency_ttl_us = idempotency_ttl_us
        self._lock = threading.Lock()
        self._retention_thread: RetentionThread | None = None
        if retention_policy is not None:
            self._retention_thread = RetentionThread(self, retention_policy)  # type: ignore[arg-type]
            self._retention_thread.start()

    @classmethod
    def open(cls, url: str, *, sync: bool = True, limits: Limits | None = None,
             retention: Retention | int | timedelta | None = None, clock: Callable[[], float] | None = None,
             idempotency_ttl: float | timedelta = _idempotency.DEFAULT_TTL_SECONDS,
             retry_timeout: float = RETRY_TIMEOUT, seal_interval: float | None = SEAL_INTERVAL) -> EtcdStore:
        """Open (creating if the prefix holds none) the store ``url`` names (see :mod:`engine.etcd.url`; its
        query gives the cluster's ``--max-txn-ops`` and ``--max-request-bytes``, :mod:`engine.etcd.limits`).

        ``INVALID_PARAMETERS`` for a bad URL or option (nothing contacted); ``retention`` as for
        :meth:`engine.Store.open` (a background thread compacts etcd, :mod:`engine.etcd.retention`);
        ``STORAGE_UNAVAILABLE`` when no member answers within ``retry_timeout`` seconds
        (the message names the URL, ``details["endpoints"]`` what each member said). ``sync`` is accepted
        (etcd is always durable); ``limits``, ``clock`` and ``idempotency_ttl`` as for :meth:`engine.Store.open`.
        ``seal_interval``: the most seconds the oldest unsealed tx waits for others to be sealed with it
        by the background sealer (:mod:`engine.etcd.sealer`, which also seals at once when
        :data:`~engine.etcd.sealer.BATCH` txs wait); None runs none (readers then seal what they ask for themselves)."""
        from ..store import check_open_options  # the LMDB store's own checks (store imports this module lazily)

        ttl_us = check_open_options(clock, idempotency_ttl)
        policy = Retention.of(retention)
        parsed = EtcdUrl.parse(url)
        client = EtcdClient(parsed.endpoints, request_timeout=REQUEST_TIMEOUT, retry_timeout=retry_timeout,
                            max_request_bytes=parsed.limits.max_request_bytes)
        try:
            storage = EtcdStorage.open(client, parsed.prefix, limits=limits, etcd_limits=parsed.limits, clock=clock)
        except StorageUnavailable as exc:
            client.close()
            raise StorageUnavailable(f"cannot open the store {parsed}: {exc.message}", url=str(parsed),
                                     **exc.details) from None
        except BaseException:
            client.close()
            raise
        sealer = None if seal_interval is None else Sealer(storage.timeline, seal_interval).start()
        return cls(parsed, client, storage, ttl_us, sealer, policy)

    def storage(self) -> EtcdStorage:
        """The storage underneath; ``STORE_CLOSED`` once the store is closed."""
        storage = self._storage
        if storage is None:
            raise StoreClosed("the store is closed; open it again to use it")
        return storage

    def __enter__(self) -> EtcdStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EtcdStore({self.path!r})"

    def close(self) -> None:
        """Close the store and its client; later calls raise ``STORE_CLOSED``. Closing twice is fine."""
        with self._lock:
            if self._storage is not None:
                if self._retention_thread is not None:
                    self._retention_thread.stop()  # between two steps: the store stays consistent
                self._storage = None
                if self._sealer is not None:
                    self._sealer.close()
                self._client.close()

    # -- namespaces ---------------------------------------------------------------------------

    def namespace(self, name: str) -> EtcdNamespace:
        """The namespace called ``name`` (validated; nothing is created until it is written)."""
        return EtcdNamespace(self, check_namespace(name))

    def namespaces(self) -> list[NamespaceInfo]:
        """Every namespace that exists (created or written, not dropped), by name."""
        storage = self.storage()
        infos = (storage.namespace_info(name) for name in storage.namespaces())
        return [info for info in infos if info is not None]

    def namespace_info(self, name: str) -> NamespaceInfo | None:
        """What ``name`` holds at the latest tx, or None if it does not exist."""
        return self.storage().namespace_info(name)

    def create_namespace(self, name: str, *, idempotency: _idempotency.Claim | None = None) -> NamespaceInfo:
        """Create an empty namespace (no tx is consumed); ``NAMESPACE_EXISTS`` if it exists."""
        return run_claimed(self, idempotency, lambda claim: self.storage().create_namespace(name, claim=claim))

    def drop_namespace(self, name: str, *, note: dict[str, Any] | None = None, sync: bool | None = None,
                       idempotency: _idempotency.Claim | None = None) -> int:
        """Delete every live key of ``name`` in one tx and forget the namespace; returns the tx
        (``NAMESPACE_NOT_FOUND`` if it does not exist), as :meth:`engine.Store.drop_namespace`."""
        return run_claimed(self, idempotency, lambda claim: self.storage().drop_namespace(name, note=note, claim=claim))

    # -- transactions and the timeline ---------------------------------------------------------

    def transaction(self, *, note: dict[str, Any] | None = None, sync: bool | None = None,
                    idempotency: _idempotency.Claim | None = None) -> EtcdTransaction:
        """Several operations on several namespaces as one tx, as :meth:`engine.Store.transaction`."""
        transaction = self.storage().transaction(note=note)
        if idempotency is not None:
            transaction.idempotent(self, idempotency)
        return transaction

    @property
    def latest_tx(self) -> int:
        """The latest committed tx (0 for an empty store)."""
        return self.storage().latest_tx

    def tx_info(self, tx: int) -> TxEntry | None:
        """Commit time, note, operations and chain hash of ``tx``; None if it was not committed."""
        return self.storage().tx_info(tx)

    def tx_at(self, at: datetime | float) -> int:
        """The latest tx committed at or before ``at`` (aware datetime or epoch seconds); 0 if none, as
        :meth:`engine.Store.tx_at` (same checks, same errors). Commit times are the clamped ones ``tx_info``
        shows; the chain is sealed up to the latest tx first if it is not yet (:mod:`engine.etcd.timeseek`)."""
        when = time_us(at)
        return self.storage().tx_at(when)

    def changes(self, since: int = 0, *, limit: int = 1000, namespace: str | None = None) -> list[TxEntry]:
        """Committed txs after ``since``, in tx order, as :meth:`engine.Store.changes`."""
        return self.storage().changes(since, limit=limit, namespace=namespace)

    def wait_for(self, tx: int, timeout: float | None = None) -> bool:
        """Block until ``tx`` is committed (by any process); False if ``timeout`` seconds pass first."""
        return self.storage().wait_for(tx, timeout)

    # -- the hash chain ------------------------------------------------------------------------

    def head(self) -> Head:
        """``(latest tx, its chain hash in hex)``: a receipt an auditor can keep and :meth:`verify` later,
        the same as the LMDB store's for the same history. Seals the chain up to the latest tx first (see
        :mod:`engine.etcd.chain`), with the Merkle tree's ``size`` and ``root``: LMDB's for the same
        history (:mod:`engine.etcd.txtree`)."""
        storage = self.storage()
        tx, digest = storage.head()
        return Head(tx, digest, _txtree.root(storage.timeline, tx).hex())

    def inclusion_proof(self, tx: int, size: int | None = None) -> InclusionProof:
        """RFC 9162 proof that ``tx`` is leaf ``tx - 1`` of the tree of ``size`` txs (default: the latest),
        as :meth:`engine.Store.inclusion_proof` (same checks, errors and bytes). Seals up to ``size`` first
        if it is not sealed yet (:mod:`engine.etcd.txtree`)."""
        return _txtree.inclusion_proof(self.storage().timeline, tx, size)

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        """RFC 9162 proof that the tree of ``second`` txs (default: the latest) extends the tree of
        ``first`` txs, as :meth:`engine.Store.consistency_proof`; seals up to ``second`` first if needed."""
        return _txtree.consistency_proof(self.storage().timeline, first, second)

    def verify(self, receipt: tuple[int, str] | None = None) -> VerifyReport:
        """Re-derive every tx's hash from the log and the stored records and compare it with the sealed
        chain; report the first bad tx, as :meth:`engine.Store.verify` (see :mod:`engine.etcd.verify`).
        With ``receipt``, the chain must still pass through it (``FUTURE_TX`` above the latest tx)."""
        if receipt is not None:
            check_tx(receipt[0], "receipt")
        return self.storage().verify(receipt)

    # -- expiry and housekeeping ---------------------------------------------------------------

    def expire(self, *, sync: bool | None = None) -> int:
        """Record every expiry that is due as a delete; return how many keys it deleted."""
        return self.storage().expire()

    def next_expiry(self) -> datetime | None:
        """When the earliest expiry not yet recorded falls due (None if none is pending)."""
        return self.storage().next_expiry()

    def stats(self) -> dict[str, int]:
        """``latest_tx``, and the cluster member's ``db_size`` (bytes) as ``map_size`` and its
        ``db_size_in_use`` as ``used_bytes`` (the whole cluster's, not this prefix's alone)."""
        storage = self.storage()
        status = self._client.status()
        return {"latest_tx": storage.latest_tx, "map_size": status.db_size, "used_bytes": status.db_size_in_use}

    def sync(self) -> None:
        """Nothing to flush: etcd makes every txn durable on a quorum before it answers."""
        self.storage()

    # -- compaction and retention ------------------------------------------------------------

    def compact(self, before_tx: int | None = None, *, progress: Callable[[int, int], None] | None = None,
                chunk_keys: int = CHUNK_KEYS) -> CompactionReport:
        """Make ``before_tx`` the horizon (reads below it raise ``TX_COMPACTED``) and compact etcd there, as
        :meth:`engine.Store.compact` (same checks, errors and report; ``chunks`` is 1, ``chunk_keys`` is
        accepted and unused: etcd compacts in one call). ``NOT_SUPPORTED`` when the cluster holds keys
        outside the store's prefix (etcd's compaction is cluster-wide). See :mod:`engine.etcd.compaction`."""
        return compaction.compact(self.storage(), before_tx, progress=progress)

    @property
    def horizon(self) -> int:
        """The lowest tx reads can target (0 until the store is compacted)."""
        storage = self.storage()
        return compacted.read_state(storage.client, storage.layout)[0].horizon

    def compaction_status(self) -> dict[str, Any]:
        """``horizon``, ``freed_versions`` (ever) and ``pending`` (``[from_tx, target]`` of a compaction whose
        etcd compaction is not done yet, or None), as :meth:`engine.Store.compaction_status`."""
        storage = self.storage()
        state, _ = compacted.read_state(storage.client, storage.layout)
        pending = None if state.pending is None else list(state.pending)
        return {"horizon": state.horizon, "freed_versions": state.freed, "pending": pending}

    def apply_retention(self, policy: Retention | int | timedelta | None = None) -> CompactionReport | None:
        """One retention pass now, with ``policy`` or the store's own; None if there was nothing to do."""
        self.storage()
        chosen = Retention.of(policy) or self.retention
        if chosen is None:
            raise InvalidParameters("no retention policy: pass one, or open the store with retention=...",
                                    parameter="policy")
        from .retention import apply

        return apply(self, chosen)

    # -- writes served from coroutines ---------------------------------------------------------

    #: etcd commits each write as it is made (one txn, one WAL flush, grouped by etcd itself):
    #: nothing parks, so :meth:`parking` leaves every write to wait as usual.
    parks_writes = False

    def parking(self, park: Any) -> AbstractContextManager[None]:
        """A context in which writes wait as usual: on etcd a write is never handed to ``park``."""
        return nullcontext()

    def commit_parked(self, writes: list[Any], *, defer_flush: bool = False) -> None:
        """Nothing to commit: no write parks on etcd (``NOT_SUPPORTED`` if given any)."""
        if writes:
            raise NotSupported.needs_lmdb("commit_parked")

    # -- streams (engine.etcd.stream) ----------------------------------------------------------

    def stream(self, name: str) -> EtcdStream:
        """The stream called ``name`` (validated; nothing is created until it is published to), as
        :meth:`engine.Store.stream` (:mod:`engine.etcd.stream`)."""
        return EtcdStream(self, check_namespace(name))

    def streams(self) -> list[StreamInfo]:
        """Every stream that exists (created or published to, not dropped), by name."""
        return _stream.streams(self)

    def stream_info(self, name: str) -> StreamInfo | None:
        """What stream ``name`` holds, or None if it does not exist."""
        return _stream.stream_info(self, name)

    def create_stream(self, name: str, *, idempotency: _idempotency.Claim | None = None) -> StreamInfo:
        """Create an empty stream (no tx is consumed); ``NAMESPACE_EXISTS`` if it exists."""
        return _stream.create_stream(self, name, idempotency=idempotency)

    def drop_stream(self, name: str, *, note: dict[str, Any] | None = None, sync: bool | None = None,
                    idempotency: _idempotency.Claim | None = None) -> int:
        """Forget stream ``name`` and its events; the tx of the drop (:func:`engine.etcd.stream.drop_stream`)."""
        return _stream.drop_stream(self, name, note=note, sync=sync, idempotency=idempotency)

    # -- backup and restore (engine.etcd.backup) ---------------------------------------------------

    def backup(self, path: str | os.PathLike[str]) -> BackupInfo:
        """The whole history, up to the latest tx when it starts, as an LMDB store in the new directory
        ``path``, while writers continue (:mod:`engine.etcd.backup`)."""
        from .backup import backup

        return backup(self, path)

    @staticmethod
    def restore(backup_path: str | os.PathLike[str], data_dir: str | os.PathLike[str], *,
                verify: bool = True) -> BackupInfo:
        """Restore a backup into a new directory or an empty store on etcd (an ``etcd://`` URL), as
        :func:`engine.restore`."""
        return restore(backup_path, data_dir, verify=verify)
