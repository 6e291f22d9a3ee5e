"""Several operations on several namespaces as one tx on etcd: :class:`engine.Transaction`'s twin.

Same calls, same validation (the engine's own functions: same errors for bad input), same batch: later
operations on a key replace earlier ones, runs are built in application order. Only the commit differs
(:func:`engine.etcd.commit.commit`). When the backend seam is cut, :class:`engine.Transaction` builds
its batch with one shared function and this class goes away.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import expiry
from ..codec import CLEAR, DELETE, PUT, pack_value
from ..errors import BatchTooLarge, EmptyBatch, InvalidParameters, ValueTooLarge
from ..txlog import check_note
from ..txn import Batch, Expect, Run
from ..validation import check_namespace, check_tx, key_bytes
from .idempotency import run as run_claimed

if TYPE_CHECKING:
    from ..idempotency import Claim
    from .storage import EtcdStorage
    from .store import EtcdStore


class EtcdTransaction:
    """``with storage.transaction(note=...) as t: t.put(ns, k, v); t.delete(ns, k); t.expect(ns, k, tx=3)``;
    after the block, :attr:`tx` holds the committed tx (see :class:`engine.Transaction`); ``put`` takes
    ``ttl``, ``expiration`` and ``metadata`` as :meth:`engine.Transaction.put` does."""

    def __init__(self, storage: EtcdStorage, *, note: dict[str, Any] | None = None) -> None:
        self._storage = storage
        self._note = check_note(note, storage.limits.max_note_bytes)
        self._ops: dict[tuple[str, str], tuple[int, bytes, bytes | None, expiry.Opts | None]] = {}
        self._expects: dict[tuple[str, str], Expect] = {}
        self.tx: int | None = None
        self._claimed: tuple[EtcdStore, Claim] | None = None

    def idempotent(self, store: EtcdStore, claim: Claim) -> None:
        """Make the commit idempotent under ``claim`` (:mod:`engine.etcd.idempotency`; ttl from ``store``)."""
        self._claimed = (store, claim)

    def _key(self, namespace: str, key: str) -> bytes:
        if self.tx is not None:
            raise InvalidParameters("this transaction has already committed")
        check_namespace(namespace)
        return key_bytes(key, self._storage.limits.max_key_bytes)

    def _add(self, namespace: str, key: str, op: tuple[int, bytes, bytes | None, expiry.Opts | None]) -> None:
        ident = (namespace, key)
        self._ops.pop(ident, None)  # keep application order: the key moves to its latest position
        self._ops[ident] = op
        limit = self._storage.limits.max_batch
        if len(self._ops) > limit:
            raise BatchTooLarge(f"more than {limit} operations in one transaction", limit=limit)

    def put(self, namespace: str, key: str, value: Any, *, ttl: float | None = None,
            expiration: float | None = None, metadata: Any = None) -> None:
        """Store ``value``; ``ttl``/``expiration``/``metadata`` as for :meth:`EtcdStorage.put`."""
        raw = self._key(namespace, key)
        packed = pack_value(value)
        limits = self._storage.limits
        if len(packed) > limits.max_value_bytes:
            raise ValueTooLarge(f"value is {len(packed)} bytes encoded; the limit is {limits.max_value_bytes}",
                                key=key)
        opts = None
        if ttl is not None or expiration is not None or metadata is not None:
            opts = expiry.check_opts(ttl, expiration, metadata, limits, self._storage._now_us())
        self._add(namespace, key, (PUT, raw, packed, opts))

    def clear(self, namespace: str, key: str) -> None:
        self._add(namespace, key, (CLEAR, self._key(namespace, key), None, None))

    def delete(self, namespace: str, key: str) -> None:
        self._add(namespace, key, (DELETE, self._key(namespace, key), None, None))

    def expect(self, namespace: str, key: str, *, tx: int) -> None:
        raw = self._key(namespace, key)
        self._expects[(namespace, key)] = Expect(namespace, key, raw, check_tx(tx))

    def batch(self) -> Batch:
        """The batch this transaction commits (runs of consecutive operations of one namespace and op)."""
        batch = Batch(expects=list(self._expects.values()))
        for (namespace, key), (op, raw, packed, opts) in self._ops.items():
            if not batch.runs or batch.runs[-1].namespace != namespace or batch.runs[-1].op != op:
                batch.runs.append(Run(namespace, op))
            run = batch.runs[-1]
            if opts is not None and run.opts is None:
                run.opts = [None] * len(run.keys)
            run.keys.append(key)
            run.raws.append(raw)
            if packed is not None:
                run.packed.append(packed)
            if run.opts is not None:
                run.opts.append(opts)
        return batch

    def commit(self) -> int:
        """Commit now (the ``with`` block does this for you). Returns the tx."""
        if self.tx is not None:
            return self.tx
        if not self._ops:
            raise EmptyBatch("a transaction needs at least one put, clear or delete")
        batch = self.batch()
        if self._claimed is None:
            self.tx = self._storage.commit(batch, note=self._note)
        else:
            store, claim = self._claimed
            self.tx = run_claimed(store, claim, lambda guard: self._storage.commit(batch, note=self._note, claim=guard))
        return self.tx

    def __enter__(self) -> EtcdTransaction:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
