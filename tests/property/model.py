"""A plain in-memory model of a versioned store: every version of every key, nothing clever.

The property tests apply the same operations to it and to the engine and compare every read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.encoding import keypart

PUT, CLEAR, DELETE = "put", "clear", "delete"


#: A version: (tx, op, value, expire_us or None, metadata or None)
Version = tuple[int, str, Any, Any, Any]


@dataclass
class Model:
    latest_tx: int = 0
    #: (namespace, key) -> versions, oldest first
    versions: dict[tuple[str, str], list[Version]] = field(default_factory=dict)
    #: tx -> commit time (UTC microseconds)
    times: dict[int, int] = field(default_factory=lambda: {0: 0})
    #: stream -> events (tx, index, data), in publish order
    events: dict[str, list[tuple[int, int, Any]]] = field(default_factory=dict)
    #: size -> the Merkle root the store's head had at that size: append-only, so it never changes
    roots: dict[int, bytes] = field(default_factory=dict)
    #: the expiry index: (expire_us, namespace, key) of every expiring put not swept yet (stale ones too)
    index: set[tuple[int, str, str]] = field(default_factory=set)
    #: namespace -> its number, in the order namespaces were first written (the sweep's order)
    ns_ids: dict[str, int] = field(default_factory=dict)

    def publish(self, stream: str, data: list[Any], now_us: int = 0) -> int:
        """A stream publish: the next tx, holding ``data`` as events 0, 1, ..."""
        self.latest_tx += 1
        self.times[self.latest_tx] = max(now_us, self.times[self.latest_tx - 1])
        self.events.setdefault(stream, []).extend((self.latest_tx, i, d) for i, d in enumerate(data))
        return self.latest_tx

    def stream_events(self, stream: str, start_tx: int, end_tx: int) -> list[tuple[int, int, Any]]:
        """The events of ``stream`` with ``start_tx < tx <= end_tx``."""
        return [e for e in self.events.get(stream, []) if start_tx < e[0] <= end_tx]

    def commit(self, ops: list[tuple[str, str, str, Any]], now_us: int = 0,
               extra: dict[tuple[str, str], tuple[Any, Any]] | None = None) -> int:
        """Apply ``(namespace, key, op, value)`` operations as the next tx (last op per key wins),
        committed at ``now_us``; ``extra`` gives puts their ``(expire_us, metadata)``.

        The no-op rule: a delete of a key whose newest version is absent or a delete changes
        nothing and is left out; if nothing is left, no tx is taken and the latest tx returned.
        """
        final = {(ns, key): (op, value) for ns, key, op, value in self.changes(ops)}
        if not final:
            return self.latest_tx
        self.latest_tx += 1
        self.times[self.latest_tx] = max(now_us, self.times[self.latest_tx - 1])
        for ident, (op, value) in final.items():
            expire_us, metadata = (extra or {}).get(ident, (None, None)) if op == PUT else (None, None)
            self.versions.setdefault(ident, []).append((self.latest_tx, op, value, expire_us, metadata))
            self.ns_ids.setdefault(ident[0], len(self.ns_ids))
            if expire_us is not None:
                self.index.add((expire_us, *ident))
        return self.latest_tx

    def changes(self, ops: list[tuple[str, str, str, Any]]) -> list[tuple[str, str, str, Any]]:
        """The operations of ``ops`` that change something: the last one per key, without the
        deletes of keys whose newest version is absent or a delete (what the tx log will name)."""
        final: dict[tuple[str, str], tuple[str, Any]] = {}
        for ns, key, op, value in ops:
            final[(ns, key)] = (op, value)
        return [(ns, key, op, value) for (ns, key), (op, value) in final.items()
                if op != DELETE or (self.versions.get((ns, key)) or [(0, DELETE)])[-1][1] != DELETE]

    def sweep(self, now_us: int, limit: int) -> tuple[int | None, bool]:
        """What the engine's expiry sweep does at ``now_us``: take the first ``limit`` index entries due
        (by expiry, then namespace number, then the engine's key order), and delete, in a tx of their own,
        each of their keys whose newest version is still that put. Returns that tx (None if every entry
        taken was stale) and whether entries are still due."""
        due = sorted((e for e in self.index if e[0] <= now_us),
                     key=lambda e: (e[0], self.ns_ids[e[1]], keypart(b"", e[2].encode())))
        taken = due[:limit]
        self.index.difference_update(taken)
        live = [(ns, key) for expire_us, ns, key in taken
                if (v := self.versions[(ns, key)][-1])[1] == PUT and v[3] == expire_us]
        tx = self.commit([(ns, key, DELETE, None) for ns, key in live], now_us) if live else None
        return tx, len(due) > limit

    def expire(self, now_us: int, limit: int) -> list[int]:
        """What ``Store.expire()`` does at ``now_us``: sweeps of ``limit`` entries until none is due;
        the txs they took."""
        txs = []
        more = True
        while more:
            tx, more = self.sweep(now_us, limit)
            txs += [] if tx is None else [tx]
        return txs

    def version(self, ns: str, key: str, tx: int, eval_us: int | None = None) -> Version | None:
        """The live version of a key at ``tx`` with expiry evaluated at ``eval_us`` (default: the
        tx's commit time), None if absent, deleted or expired."""
        found = None
        for v in self.versions.get((ns, key), []):
            if v[0] > tx:
                break
            found = v
        when = self.times[tx] if eval_us is None else eval_us
        if found is None or found[1] == DELETE or (found[3] is not None and found[3] <= when):
            return None
        return found

    def version_tx(self, ns: str, key: str, tx: int) -> int | None:
        """The tx of a key's newest version at or before ``tx`` of any kind (a delete, an expired put),
        None if it has none: what a read with proofs proves."""
        txs = [v[0] for v in self.versions.get((ns, key), []) if v[0] <= tx]
        return txs[-1] if txs else None

    def record(self, ns: str, key: str, tx: int, eval_us: int | None = None) -> tuple[Any, int, bool, bool] | None:
        """``(value, tx, binary, cleared)`` of a key at ``tx``, None if absent, deleted or expired."""
        found = self.version(ns, key, tx, eval_us)
        if found is None:
            return None
        vtx, op, value = found[:3]
        if op == CLEAR:
            return (None, vtx, False, True)
        return (value, vtx, isinstance(value, bytes), False)

    def live_tx(self, ns: str, key: str, now_us: int = 0) -> int:
        rec = self.record(ns, key, self.latest_tx, max(now_us, self.times[self.latest_tx]))
        return 0 if rec is None else rec[1]

    def counted(self, ns: str) -> int:
        """The namespace's key_count: keys whose newest version is not a delete (expired keys count
        until their expiry is recorded)."""
        return sum(1 for (n, _), vs in self.versions.items() if n == ns and vs[-1][1] != DELETE)

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

    def revert_plan(self, ns: str, to_tx: int, keys: list[str] | None, prefix: str | None,
                    eval_us: int) -> list[tuple[str, str, Any, Any, Any]]:
        """What a revert of ``ns`` to ``to_tx`` writes at time ``eval_us``: ``(key, op, value,
        expire_us, metadata)`` for each key in scope whose live version at ``to_tx`` differs (by
        op, exact value, expiry and metadata) from its live version now, both judged at ``eval_us``
        (a value expired by then counts as absent); in UTF-8 key order."""
        names = self.keys(ns) if keys is None else sorted(set(keys), key=lambda k: k.encode())
        out = []
        for key in names:
            if prefix is not None and not key.startswith(prefix):
                continue
            then = self.version(ns, key, to_tx, eval_us)
            now = self.version(ns, key, self.latest_tx, eval_us)
            if repr(then and then[1:]) == repr(now and now[1:]):
                continue
            out.append((key, DELETE, None, None, None) if then is None else (key, *then[1:]))
        return out

    def revert(self, ns: str, to_tx: int, keys: list[str] | None, prefix: str | None, now_us: int) -> int:
        """Apply what :meth:`revert_plan` says, as one tx committed at ``now_us`` (no tx if nothing)."""
        eval_us = max(now_us, self.times[self.latest_tx])
        plan = self.revert_plan(ns, to_tx, keys, prefix, eval_us)
        extra = {(ns, key): (expire_us, metadata) for key, op, _, expire_us, metadata in plan if op == PUT}
        return self.commit([(ns, key, op, value) for key, op, value, _, _ in plan], now_us, extra)
