"""The Strata-level operations a storage backend implements: the boundary the backend seam will cut.

LMDB is driven today through Strata's own key layout by nine modules; etcd is versioned natively, so the
boundary sits higher, at these operations (docs/design.md, "Strata on etcd"). :class:`StorageOps` states
the ones built so far, with the answers every backend owes (the LMDB engine's own: the differential test
``tests/etcd/test_differential.py`` holds the etcd backend to them). :class:`engine.etcd.storage.EtcdStorage`
implements it (mypy checks that); ``Store.open("etcd://...")`` returns :class:`engine.etcd.store.EtcdStore`,
the ``Store`` API over it. The LMDB :class:`engine.Store` does not go through it.

Still to add as they are built: streams, proofs, compaction, backup (the expiry sweep, the hash chain,
idempotency keys and ``tx_at`` are built on etcd; some are not in this protocol yet).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from .history import Change, Version
from .records import Limits, NamespaceInfo, ReadResult
from .txlog import Operation
from .txn import Batch


class LogEntry(Protocol):
    """A committed tx as the log tells it (the hash is not part of the boundary yet)."""

    @property
    def tx(self) -> int: ...
    @property
    def time(self) -> datetime: ...
    @property
    def time_us(self) -> int: ...
    @property
    def note(self) -> dict[str, Any] | None: ...
    @property
    def operations(self) -> list[Operation]: ...


class StorageOps(Protocol):
    """What a backend does at the Strata level. Every method raises the engine's errors
    (:mod:`engine.errors`) with the LMDB engine's codes, messages and details."""

    limits: Limits

    @property
    def latest_tx(self) -> int:
        """The latest committed tx (0 for an empty store)."""
        ...

    def commit(self, batch: Batch, *, note: dict[str, Any] | None = None) -> int:
        """Write a validated batch as the next tx: expects first (``CONFLICT``; a value expired at the commit
        time counts as absent), no-op deletes dropped, no tx for a write left with nothing (the latest tx
        answers); puts with an expiry or metadata (``Run.opts``) store the rich record (engine.codec)."""
        ...

    def read(self, namespace: str, keys: Iterable[str], *, tx: int | None = None, metadata: bool = False,
             fields: Iterable[str] | None = None) -> ReadResult:
        """Records of ``keys`` at ``tx`` (latest if None), request order, absent and expired keys left out
        (engine.expiry's read rule); ``metadata`` and ``fields`` fill those fields of each record."""
        ...

    def scan(self, namespace: str, prefix: str = "", *, tx: int | None = None, after: str | None = None,
             limit: int | None = None, metadata: bool = False, fields: Iterable[str] | None = None) -> ReadResult:
        """Records of keys starting with ``prefix`` after ``after``, at most ``limit``, in UTF-8 byte order
        (expired values left out; ``metadata`` and ``fields`` as for :meth:`read`)."""
        ...

    def history(self, namespace: str, key: str, *, before: int | None = None, after: int | None = None,
                limit: int = 100, order: str = "desc") -> list[Version]:
        """Versions of ``key`` with ``after < tx < before``, newest (``desc``) or oldest first."""
        ...

    def diff(self, namespace: str, from_tx: int, to_tx: int) -> Iterable[Change]:
        """Keys whose content differs between the snapshots at ``from_tx`` and ``to_tx``, in key order."""
        ...

    def tx_info(self, tx: int) -> LogEntry | None:
        """The log entry of ``tx``; None if it was not committed."""
        ...

    def tx_at(self, time_us: int) -> int:
        """The last tx whose commit time (clamped: never before the previous tx's) is at or before
        ``time_us`` (UTC microseconds, already checked); 0 if none."""
        ...

    def changes(self, since: int = 0, *, limit: int = 1000, namespace: str | None = None) -> Sequence[LogEntry]:
        """Committed txs after ``since`` in tx order, at most ``limit``; with ``namespace``, only the txs
        that touched it, with only its operations."""
        ...

    def wait_for(self, tx: int, timeout: float | None = None) -> bool:
        """Block until ``tx`` is committed (by any process); False if ``timeout`` seconds pass first."""
        ...

    def namespaces(self) -> list[str]:
        """The names of the namespaces that exist, in name order."""
        ...

    def namespace_info(self, name: str) -> NamespaceInfo | None:
        """What ``name`` holds at the latest tx, or None if it does not exist."""
        ...

    def create_namespace(self, name: str) -> NamespaceInfo:
        """Create an empty namespace, taking no tx; ``NAMESPACE_EXISTS`` if it exists."""
        ...

    def drop_namespace(self, name: str, *, note: dict[str, Any] | None = None) -> int:
        """Delete every live key of ``name`` in one tx (none if it has none) and forget the namespace."""
        ...
