"""Conditional writes: commit only if keys still have the versions the caller last saw.

A write may carry ``expect={key: tx, ...}`` (:meth:`engine.Namespace.put`, ``clear``, ``delete``),
the per-call form of :meth:`engine.Transaction.expect`: each key's record at the latest tx, as a
read at the commit's time shows it, must have that tx, where **0 means "no record"**: the key is
absent, deleted, or its value has expired (a value whose expiry instant is the commit time has
expired, as for reads). A cleared key has a record (its clear's tx). If any condition fails,
nothing is written (not even the expiry sweep) and :class:`~engine.errors.Conflict` is raised
with ``details["conflicts"]``: one ``{"namespace", "key", "expected", "actual"}`` per failed key,
in the order given. The check runs inside the write transaction, so no other writer can slip in
between the check and the write: this is compare-and-set, as etcd's ``Txn`` compares revisions.

The HTTP API's ``if_match: TX`` is ``expect={key: TX}`` and ``if_none_match: "*"`` is
``expect={key: 0}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import BatchTooLarge, EngineError, InvalidParameters
from .records import Limits
from .txn import Expect, _item_error, _raise_item_errors
from .validation import check_tx, key_bytes


def expects_of(namespace: str, expect: Mapping[str, int] | None, limits: Limits) -> list[Expect]:
    """The validated conditions of ``expect`` (``{key: tx}``; None: none). Raises listing every bad
    entry (its index in the mapping's order) with the code of what is wrong with it."""
    if expect is None:
        return []
    if not isinstance(expect, Mapping):
        raise InvalidParameters("expect must be a mapping of key to tx (0: the key has no record)",
                                parameter="expect")
    if len(expect) > limits.max_batch:
        raise BatchTooLarge(f"{len(expect)} conditions in one write; the limit is {limits.max_batch}",
                            count=len(expect), limit=limits.max_batch)
    out: list[Expect] = []
    errors: list[dict[str, Any]] = []
    first: EngineError | None = None
    for index, (key, tx) in enumerate(expect.items()):
        try:
            out.append(Expect(namespace, key, key_bytes(key, limits.max_key_bytes), check_tx(tx, "expect")))
        except EngineError as exc:
            first = first or exc
            errors.append(_item_error(index, key, exc))
    if first is not None:
        _raise_item_errors(errors, first)
    return out
