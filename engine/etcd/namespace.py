"""A namespace of a store on etcd: :class:`engine.Namespace`'s API over :class:`~engine.etcd.storage.EtcdStorage`.

Same calls, same arguments, same answers and errors as the LMDB namespace (the differential test holds
the storage underneath to the LMDB engine's answers; the input checks are the engine's own functions,
called by the storage). What the etcd backend does not do yet raises ``NOT_SUPPORTED``
(:class:`engine.errors.NotSupported`) naming the operation, before anything is read or written.
``proved_read`` is :mod:`engine.etcd.proved_read`'s, ``revert`` :mod:`engine.etcd.revert`'s. A read by
time (``at=``) reads at the tx :meth:`EtcdStore.tx_at` finds for it (:mod:`engine.etcd.timeseek`), after
the LMDB namespace's checks in the LMDB namespace's order. Idempotency keys (``idempotency=``) are
stored with the write (:mod:`engine.etcd.idempotency`). ``sync`` is accepted and changes nothing: etcd
makes every txn durable on a quorum before it answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameters
from ..expiry import check_fields
from ..history import Change, Version
from ..idempotency import Claim
from ..proved_read import ProvedRead
from ..records import Item, NamespaceInfo, ReadResult, Record
from ..revert import RevertResult
from ..validation import check_prefix, time_us
from .idempotency import run as run_claimed
from .proved_read import proved_read
from .reads import check_page, read_keys_of
from .revert import revert

if TYPE_CHECKING:
    from .store import EtcdStore


class EtcdScan:
    """What :meth:`EtcdNamespace.scan` returns: an iterable of :class:`~engine.records.Record` in UTF-8 byte
    order of keys, read at tx :attr:`tx` (as :class:`engine.scan.Scan`). The records were read when the scan
    was made (paged at one etcd revision), so iterating it twice gives the same records."""

    __slots__ = ("_records", "tx")

    def __init__(self, result: ReadResult) -> None:
        self._records = result.records
        self.tx = result.tx

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"EtcdScan(tx={self.tx}, records={len(self._records)})"


class EtcdNamespace:
    """Reads and writes of one namespace of a store on etcd; get one with :meth:`EtcdStore.namespace`.
    See :class:`engine.Namespace` for every method's contract and the module docstring for what differs."""

    __slots__ = ("_store", "name")

    def __init__(self, store: EtcdStore, name: str) -> None:
        self._store = store
        self.name = name

    def __repr__(self) -> str:
        return f"EtcdNamespace({self.name!r})"

    # -- writes -------------------------------------------------------------------------------

    def put(self, items: Mapping[str, Any] | Iterable[Item | tuple[str, Any]], *,
            note: dict[str, Any] | None = None, sync: bool | None = None, ttl: float | None = None,
            expiration: float | None = None, metadata: Any = None, expect: Mapping[str, int] | None = None,
            idempotency: Claim | None = None) -> int:
        """:meth:`engine.Namespace.put`."""
        return run_claimed(self._store, idempotency, lambda claim: self._store.storage().put(
            self.name, items, note=note, ttl=ttl, expiration=expiration, metadata=metadata, expect=expect,
            claim=claim))

    def clear(self, keys: Iterable[str], *, note: dict[str, Any] | None = None, sync: bool | None = None,
              expect: Mapping[str, int] | None = None, idempotency: Claim | None = None) -> int:
        """:meth:`engine.Namespace.clear`."""
        return run_claimed(self._store, idempotency, lambda claim: self._store.storage().clear(
            self.name, keys, note=note, expect=expect, claim=claim))

    def delete(self, keys: Iterable[str], *, note: dict[str, Any] | None = None, sync: bool | None = None,
               expect: Mapping[str, int] | None = None, idempotency: Claim | None = None) -> int:
        """:meth:`engine.Namespace.delete`."""
        return run_claimed(self._store, idempotency, lambda claim: self._store.storage().delete(
            self.name, keys, note=note, expect=expect, claim=claim))

    # -- reads --------------------------------------------------------------------------------

    def read(self, keys: Iterable[str], *, tx: int | None = None, at: datetime | float | None = None,
             metadata: bool = False, fields: Iterable[str] | None = None) -> ReadResult:
        """:meth:`engine.Namespace.read`."""
        if at is not None:  # the LMDB namespace's order: the time, the fields, the keys, then tx-or-at
            when = time_us(at)
            check_fields(fields)
            read_keys_of(keys, self._store.limits)
            tx = self._tx_at(tx, when)
        return self._store.storage().read(self.name, keys, tx=tx, metadata=metadata, fields=fields)

    def get(self, key: str, *, tx: int | None = None, at: datetime | float | None = None,
            metadata: bool = False, fields: Iterable[str] | None = None) -> Record | None:
        """:meth:`engine.Namespace.get`."""
        if at is not None:  # as the LMDB namespace: a read of [key]
            records = self.read([key], tx=tx, at=at, metadata=metadata, fields=fields).records
            return records[0] if records else None
        return self._store.storage().get(self.name, key, tx=tx, metadata=metadata, fields=fields)

    def scan(self, prefix: str = "", *, tx: int | None = None, after: str | None = None,
             limit: int | None = None, at: datetime | float | None = None, metadata: bool = False,
             fields: Iterable[str] | None = None) -> EtcdScan:
        """:meth:`engine.Namespace.scan`."""
        if at is not None:  # the LMDB namespace's order: fields, prefix, the time, after and limit, tx-or-at
            check_fields(fields)
            check_prefix(prefix)
            when = time_us(at)
            check_page(after, limit, self._store.limits)
            tx = self._tx_at(tx, when)
        return EtcdScan(self._store.storage().scan(self.name, prefix, tx=tx, after=after, limit=limit,
                                                   metadata=metadata, fields=fields))

    def _tx_at(self, tx: int | None, when: int) -> int:
        """The tx a read at time ``when`` (microseconds) reads at; ``INVALID_PARAMETERS`` if ``tx`` is given
        too (the LMDB engine's error)."""
        if tx is not None:
            raise InvalidParameters("give tx or at, not both", parameter="at")
        return self._store.storage().tx_at(when)

    def proved_read(self, keys: Iterable[str], *, tx: int | None = None, metadata: bool = False,
                    fields: Iterable[str] | None = None) -> ProvedRead:
        """:meth:`engine.Namespace.proved_read`: the same checks, errors and answer (:mod:`engine.etcd.proved_read`)."""
        chosen = check_fields(fields)
        unique, raws = read_keys_of(keys, self._store.limits)
        return proved_read(self._store.storage(), self.name, unique, raws, tx, bool(metadata), chosen)

    def history(self, key: str, *, before: int | None = None, after: int | None = None, limit: int = 100,
                order: str = "desc") -> list[Version]:
        """:meth:`engine.Namespace.history`."""
        return self._store.storage().history(self.name, key, before=before, after=after, limit=limit, order=order)

    def diff(self, from_tx: int, to_tx: int) -> Iterator[Change]:
        """:meth:`engine.Namespace.diff`."""
        return iter(self._store.storage().diff(self.name, from_tx, to_tx))

    def revert(self, to_tx: int, *, keys: Iterable[str] | None = None, prefix: str | None = None,
               dry_run: bool = False, note: dict[str, Any] | None = None, sync: bool | None = None,
               idempotency: Claim | None = None) -> RevertResult:
        """:meth:`engine.Namespace.revert` (see :mod:`engine.etcd.revert`)."""
        return revert(self._store, self.name, to_tx, keys=keys, prefix=prefix, dry_run=dry_run, note=note,
                      idempotency=idempotency)

    def info(self) -> NamespaceInfo | None:
        """:meth:`engine.Namespace.info`."""
        return self._store.namespace_info(self.name)

    # -- what needs the LMDB backend -----------------------------------------------------------

