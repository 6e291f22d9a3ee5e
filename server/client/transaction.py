"""A transaction of a remote store: :class:`engine.Transaction`'s surface, committed as one write request.

Over HTTP one request is one tx, and the write routes take one namespace each: ``/write`` takes puts
and clears (with per-item conditions), ``/delete`` deletes (with per-key conditions). So a remote
transaction commits one namespace's puts and clears, or one namespace's deletes; ``expect`` becomes
the ``if_match``/``if_none_match`` of the item it guards, so it must name a key the transaction
writes. Anything else raises :class:`~engine.errors.InvalidParameters` at commit, before anything
is sent (the engine's embedded transaction has no such limits).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from engine import errors
from engine.records import Item
from engine.validation import check_namespace

from . import writes

if TYPE_CHECKING:
    from .store import RemoteStore

PUT, CLEAR, DELETE = "put", "clear", "delete"


class RemoteTransaction:
    """Operations collected by ``put``/``clear``/``delete``/``expect`` and sent by :meth:`commit`
    (the ``with`` block commits when it ends without an exception). :attr:`tx` is the committed tx."""

    def __init__(self, store: RemoteStore, *, note: dict[str, Any] | None = None, sync: bool | None = None,
                 idempotency_key: str | None = None) -> None:
        self._store = store
        self._note = note
        self._key = idempotency_key
        self._ops: dict[tuple[str, str], tuple[str, Any, tuple[Any, Any, Any] | None]] = {}
        self._expects: dict[tuple[str, str], int] = {}
        self.tx: int | None = None

    def _check(self, namespace: str) -> None:
        if self.tx is not None:
            raise errors.InvalidParameters("this transaction has already committed")
        check_namespace(namespace)

    def _add(self, namespace: str, key: str, op: tuple[str, Any, tuple[Any, Any, Any] | None]) -> None:
        self._check(namespace)
        self._ops.pop((namespace, key), None)  # a later operation on a key replaces the earlier one
        self._ops[(namespace, key)] = op

    def put(self, namespace: str, key: str, value: Any, *, ttl: float | None = None,
            expiration: float | None = None, metadata: Any = None) -> None:
        self._add(namespace, key, (PUT, value, (ttl, expiration, metadata)))

    def clear(self, namespace: str, key: str) -> None:
        self._add(namespace, key, (CLEAR, None, None))

    def delete(self, namespace: str, key: str) -> None:
        self._add(namespace, key, (DELETE, None, None))

    def expect(self, namespace: str, key: str, *, tx: int) -> None:
        """Commit only if ``key``'s record at the latest tx has tx ``tx`` (0: it has none)."""
        self._check(namespace)
        writes.condition(tx)
        self._expects[(namespace, key)] = tx

    def commit(self) -> int:
        """Send the transaction as one write and return its tx (again on a second call)."""
        if self.tx is not None:
            return self.tx
        if not self._ops:
            raise errors.EmptyBatch("a transaction needs at least one put, clear or delete")
        names = {ns for ns, _ in self._ops} | {ns for ns, _ in self._expects}
        kinds = {op for op, _, _ in self._ops.values()}
        if len(names) > 1 or (DELETE in kinds and len(kinds) > 1):
            raise errors.InvalidParameters(
                "over HTTP a transaction writes one namespace, with puts and clears or with deletes only "
                f"(this one has {', '.join(sorted(kinds))} in {', '.join(sorted(names))})")
        (namespace,) = names
        expect = {key: tx for (_, key), tx in self._expects.items()}
        target = self._store.namespace(namespace)
        if kinds == {DELETE}:
            keys = [key for _, key in self._ops]
            self.tx = target.delete(keys, note=self._note, expect=expect, idempotency_key=self._key)
            return self.tx
        items = [Item(key, value, opts[1], opts[0], opts[2]) if op == PUT and opts is not None
                 else (key, writes.CLEAR_ITEM) for (_, key), (op, value, opts) in self._ops.items()]
        self.tx = target.put(items, note=self._note, expect=expect, idempotency_key=self._key)
        return self.tx

    def __enter__(self) -> RemoteTransaction:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
