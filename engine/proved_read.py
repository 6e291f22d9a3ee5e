"""Reads with proofs: each record with what a client needs to check it against the Merkle tree itself
(docs/design.md, "Proof reads").

A tx's Merkle leaf hashes its whole canonical entry (:func:`engine.txlog.canonical_entry`), and the
entry holds the exact version record bytes the tx stored for each key. So a record is proven by
sending, once per distinct tx the read saw (deduplicated), that tx's canonical entry and its RFC 9162
inclusion path to the head of the same snapshot. The client decodes the entry, finds the key's record
in it, checks it is the record it was answered (value, binary, cleared, metadata, expiry, the tx and
its commit time), hashes the entry into the leaf and verifies the path against a head it trusts.
Nothing of the chain's or the tree's hashed bytes changes: any store with a tree serves proof reads.

**What is proven.** For every requested key whose read saw a version (a put, a clear, a delete, or a
put that has expired): that the tx named wrote exactly that record, and that this tx is in the log of
the head. **What is not** (a log tree proves what was written, not what was not): that no later tx at
or before the read tx wrote the key again (freshness), and that a key with no version is absent.
A server can still answer a stale version, or call a key absent; it cannot forge, alter or misplace one.

**Cost.** The entry is rebuilt from the stored records: one get per key (or event) the tx wrote and the
entry's bytes, plus ``O(log n)`` gets for the path. A key written in a tx of 10,000 keys costs 10,000
gets and that tx's whole entry; the sum of the entries one read answers is capped by
``Limits.max_proof_bytes`` (``PROOF_TOO_LARGE`` past it, before anything is sent). An entry whose
records were compacted away (a key last written below the horizon by a tx whose other keys changed
since) cannot be rebuilt: ``TX_COMPACTED``, naming the tx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import events, merkle, txlog, txtree
from .encoding import inv_tx, keypart, ns_prefix
from .errors import ProofTooLarge, TxCompacted
from .expiry import ReadView
from .records import Record
from .schema import NamespaceEntry
from .snapshot import read_keys, resolve_read, version_at
from .txtree import Head

if TYPE_CHECKING:
    from .store import Store


@dataclass(frozen=True, slots=True)
class ProvedEntry:
    """Tx ``tx``'s canonical entry (its Merkle leaf data) and its inclusion path (hex) to the head."""

    tx: int
    entry: bytes
    path: list[str]


@dataclass(frozen=True, slots=True)
class ProvedRead:
    """What :meth:`engine.Namespace.proved_read` returns.

    ``records`` and ``tx`` are what ``read`` returns. ``head`` is the head of the same snapshot, the
    tree every path leads to. ``versions`` has one ``(key, tx)`` per requested key (each once, in
    request order): the tx of the version the read saw (a delete or an expired put too), None if the
    key has no version (never written: not proven). ``entries``: one per distinct tx of ``versions``,
    ascending.
    """

    records: list[Record]
    tx: int
    head: Head
    versions: list[tuple[str, int | None]]
    entries: list[ProvedEntry]


def proved_read(store: Store, name: str, keys: list[str], raws: list[bytes], tx: int | None, metadata: bool,
                fields: frozenset[str]) -> ProvedRead:
    """The read of ``keys`` (unique; ``raws`` their UTF-8) of namespace ``name`` at ``tx``, with proofs,
    in one read transaction."""
    backend = store._backend
    dbs = backend.dbs
    limit = store.limits.max_proof_bytes

    def run(txn: Any) -> ProvedRead:
        snap = resolve_read(backend, txn, tx)
        head = txtree.head(txn, dbs, bytes(txn.get(txlog.HEAD_HASH, db=dbs["meta"]) or txlog.GENESIS))
        prefix = store._ns_prefix(txn, name)
        if prefix is None or not keys:
            return ProvedRead([], snap, head, [(k, None) for k in keys], [])
        if head.root is None:
            raise TxCompacted("this store's Merkle tree does not reach its latest tx (it was compacted before it had "
                              "a tree): no proofs", tx=head.size)

        def view() -> ReadView:
            return ReadView.for_read(txn, dbs, snap, tx is None, store._now_us, metadata=metadata, fields=fields)
        records = read_keys(txn, backend.versions, prefix, keys, raws, snap, view, not fields)
        cur = txn.cursor(db=backend.versions)
        versions: list[tuple[str, int | None]] = []
        for key, raw in zip(keys, raws, strict=True):
            found = version_at(cur, keypart(prefix, raw), snap)
            versions.append((key, None if found is None else found[0]))
        subtree = txtree.subtree_reader(txn, dbs)
        entries, total = [], 0
        for vtx in sorted({v for _, v in versions if v is not None}):
            entry = _entry(txn, dbs, vtx, total, limit)
            total += len(entry)
            path = merkle.inclusion_path(subtree, vtx - 1, head.size)
            entries.append(ProvedEntry(vtx, entry, [p.hex() for p in path]))
        return ProvedRead(records, snap, head, versions, entries)
    return backend.read(run)


def _entry(txn: Any, dbs: dict[str, Any], tx: int, used: int, limit: int) -> bytes:
    """Tx ``tx``'s canonical entry rebuilt from the log and the stored records; ``PROOF_TOO_LARGE`` as
    soon as its records and the ``used`` bytes of the read's other entries pass ``limit``,
    ``TX_COMPACTED`` if a record is gone."""
    found = txlog.entry(txn, dbs, tx)
    runs = txlog.all_runs_of(txn, dbs, tx)
    if found is None:
        raise TxCompacted(f"tx {tx} is not in the log", tx=tx)
    time_us, note, _ = found
    records: list[list[bytes]] = []
    size = used
    suffix = inv_tx(tx)
    ids: dict[str, int] = {}
    stream_ids: dict[str, int] | None = None
    for run in runs:
        name, op = run[0], run[1]
        if op >= txlog.FIRST_STREAM_OP:
            stream_ids = events.ids(txn, dbs) if stream_ids is None else stream_ids
            got = events.run_records(txn, dbs, stream_ids, tx, run)
            recs = None if isinstance(got, str) else got
        else:
            if name not in ids:
                raw_entry = txn.get(name.encode(), db=dbs["namespaces"])
                ids[name] = -1 if raw_entry is None else NamespaceEntry.decode(raw_entry).id
            recs = None if ids[name] < 0 else _run_records(txn, dbs, ns_prefix(ids[name]), run[2], suffix)
        if recs is None:
            raise TxCompacted(f"tx {tx}'s records were compacted away (or its namespace dropped), so its Merkle leaf "
                              "cannot be rebuilt to prove a record it wrote", tx=tx)
        size += sum(map(len, recs))
        if size > limit:
            raise ProofTooLarge(f"proving this read needs the whole log entry of tx {tx}, and the entries it needs "
                                f"pass {limit} bytes (Limits.max_proof_bytes): read fewer keys at a time, or read "
                                "keys written by large txs without proofs", tx=tx, limit=limit)
        records.append(recs)
    return txlog.canonical_entry(tx, time_us, note, runs, records)


def _run_records(txn: Any, dbs: dict[str, Any], prefix: bytes, keys: list[str], suffix: bytes) -> list[bytes] | None:
    out = []
    for key in keys:
        rec = txn.get(keypart(prefix, key.encode()) + suffix, db=dbs["versions"])
        if rec is None:
            return None
        out.append(bytes(rec))
    return out
