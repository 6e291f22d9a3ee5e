"""A plain in-memory model of a versioned store: every version of every key, nothing clever.

The property tests apply the same operations to it and to the engine and compare every read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PUT, CLEAR, DELETE = "put", "clear", "delete"


@dataclass
class Model:
    latest_tx: int = 0
    #: (namespace, key) -> [(tx, op, value)], oldest first
    versions: dict[tuple[str, str], list[tuple[int, str, Any]]] = field(default_factory=dict)

    def commit(self, ops: list[tuple[str, str, str, Any]]) -> int:
        """Apply ``(namespace, key, op, value)`` operations as the next tx (last op per key wins)."""
        self.latest_tx += 1
        final: dict[tuple[str, str], tuple[str, Any]] = {}
        for ns, key, op, value in ops:
            final[(ns, key)] = (op, value)
        for ident, (op, value) in final.items():
            self.versions.setdefault(ident, []).append((self.latest_tx, op, value))
        return self.latest_tx

    def record(self, ns: str, key: str, tx: int) -> tuple[Any, int, bool, bool] | None:
        """``(value, tx, binary, cleared)`` of a key at ``tx``, None if absent or deleted."""
        found = None
        for vtx, op, value in self.versions.get((ns, key), []):
            if vtx > tx:
                break
            found = (vtx, op, value)
        if found is None or found[1] == DELETE:
            return None
        vtx, op, value = found
        if op == CLEAR:
            return (None, vtx, False, True)
        return (value, vtx, isinstance(value, bytes), False)

    def live_tx(self, ns: str, key: str) -> int:
        rec = self.record(ns, key, self.latest_tx)
        return 0 if rec is None else rec[1]

    def keys(self, ns: str) -> list[str]:
        """Every key ever written in ``ns``, in UTF-8 byte order."""
        return sorted({k for n, k in self.versions if n == ns}, key=lambda k: k.encode())

    def scan(self, ns: str, tx: int, prefix: str, after: str | None, limit: int | None) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for key in self.keys(ns):
            if limit is not None and len(out) == limit:
                break
            if not key.startswith(prefix) or (after is not None and key.encode() <= after.encode()):
                continue
            rec = self.record(ns, key, tx)
            if rec is not None:
                out.append((key, *rec))
        return out
