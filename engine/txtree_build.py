"""Building the Merkle tree of a store that had txs before it had a tree, and checking it (see
:mod:`engine.txtree`).

:func:`catch_up` runs when a store is opened: if the tree ends before the latest tx, it recomputes
the missing leaves from the log and the stored records (as ``verify()`` does) and appends them,
:data:`CHUNK` txs per write transaction, until the tree reaches the latest tx. Writers that commit
meanwhile skip their own leaf (``txtree.append`` needs the previous one), and the builder, which
runs to the latest tx of each chunk's transaction, adds it. One pass, O(total operations); a store
whose tree is complete pays one read transaction per open.

A leaf is only built if the tx's canonical entry still hashes to the chain hash logged for it: the
tree never certifies a record the chain does not. Building stops at the first tx whose records are
gone (compacted before the tree existed) or do not match the chain; the tree then stays a prefix,
and proofs beyond it raise ``TX_COMPACTED``. Every open tries again from there (one tx's work).

:func:`check` (run by ``Store.verify()`` once the chain checks out) walks the stored tree: every
entry has its ``tz(tx) + 1`` hashes, each node is the hash of its two children, and each leaf at or
above the compaction horizon is the hash of the tx's canonical entry recomputed from the records.
So a rewritten leaf or node, even with every node above it recomputed, is named by its tx.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import events, merkle, schema, txlog, txtree
from .encoding import inv_tx, keypart, ns_prefix
from .schema import NamespaceEntry

if TYPE_CHECKING:
    from .backend import Backend

CHUNK = 1000


def _records(txn: Any, dbs: dict[str, Any], ids: dict[str, int], stream_ids: dict[str, int], tx: int,
             runs: list[list[Any]]) -> list[list[bytes]] | None:
    """The records ``tx`` stored, run by run; None if any is gone."""
    out: list[list[bytes]] = []
    suffix = inv_tx(tx)
    for run in runs:
        name, op, keys = run
        if op >= txlog.FIRST_STREAM_OP:
            found = events.run_records(txn, dbs, stream_ids, tx, run)
            if isinstance(found, str):
                return None
            out.append(found)
            continue
        if name not in ids:
            return None
        prefix = ns_prefix(ids[name])
        recs = []
        for key in keys:
            rec = txn.get(keypart(prefix, key.encode()) + suffix, db=dbs["versions"])
            if rec is None:
                return None
            recs.append(bytes(rec))
        out.append(recs)
    return out


def _chunk(txn: Any, dbs: dict[str, Any]) -> tuple[int, bool]:
    """Append up to CHUNK missing leaves; return (leaves added, whether the tree is done or stuck)."""
    latest = schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)
    start = txtree.size(txn, dbs) + 1
    ids = {bytes(k).decode(): NamespaceEntry.decode(v).id for k, v in txn.cursor(db=dbs["namespaces"])}
    stream_ids = events.ids(txn, dbs)
    prev_entry = txlog.entry(txn, dbs, start - 1) if start > 1 else None
    prev = bytes(prev_entry[2]) if prev_entry is not None else txlog.GENESIS
    stop = min(latest, start + CHUNK - 1)
    for tx in range(start, stop + 1):
        found = txlog.entry(txn, dbs, tx)
        runs = txlog.all_runs_of(txn, dbs, tx)
        records = None if found is None else _records(txn, dbs, ids, stream_ids, tx, runs)
        if found is None or records is None:
            return tx - start, True
        time_us, note, stored = found
        data = txlog.canonical_entry(tx, time_us, note, runs, records)
        if hashlib.sha256(prev + data).digest() != stored:
            return tx - start, True
        txtree.append(txn, dbs, tx, data)
        prev = bytes(stored)
    return stop - start + 1, stop >= latest


def catch_up(backend: Backend, progress: Callable[[int, int], None] | None = None) -> int:
    """Build the tree up to the latest tx; return how many leaves were added. ``progress(done,
    latest)`` is called after each chunk."""
    dbs = backend.dbs

    def behind(txn: Any) -> tuple[int, int]:
        return txtree.size(txn, dbs), schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)

    built, latest = backend.read(behind)
    if built >= latest:
        return 0
    added = 0
    while True:
        count, finished = backend.write(lambda txn: _chunk(txn, dbs))
        added += count
        if progress is not None:
            progress(*backend.read(behind))
        if finished:
            return added


def _check_chunk(txn: Any, dbs: dict[str, Any], start: int, stop: int, horizon: int) -> tuple[int, str] | None:
    ids = {bytes(k).decode(): NamespaceEntry.decode(v).id for k, v in txn.cursor(db=dbs["namespaces"])}
    stream_ids = events.ids(txn, dbs)
    subtree = txtree.subtree_reader(txn, dbs)
    for tx in range(start, stop + 1):
        raw = txtree.entry(txn, dbs, tx)
        if raw is None:
            return tx, "the Merkle tree has no entry for this tx"
        levels = (tx & -tx).bit_length()
        if len(raw) != merkle.HASH_LEN * levels:
            return tx, f"the Merkle tree entry of this tx is {len(raw)} bytes, not {merkle.HASH_LEN * levels}"
        leaf = bytes(raw[:merkle.HASH_LEN])
        if tx >= horizon:
            found = txlog.entry(txn, dbs, tx)
            runs = txlog.all_runs_of(txn, dbs, tx)
            records = None if found is None else _records(txn, dbs, ids, stream_ids, tx, runs)
            if found is None or records is None:
                return tx, "the tx's records are missing, so its Merkle leaf cannot be checked"
            if merkle.leaf_hash(txlog.canonical_entry(tx, found[0], found[1], runs, records)) != leaf:
                return tx, "the Merkle leaf does not match the tx's log entry and records"
        if b"".join(merkle.append_nodes(leaf, tx - 1, subtree)) != bytes(raw):
            return tx, "a Merkle tree node ending at this tx is not the hash of its children"
    return None


def check(backend: Backend, latest: int, horizon: int) -> tuple[int, str] | None:
    """The first tx (up to ``latest``) whose stored tree entry is wrong, and what is wrong; None if
    none is. A store whose tree stops early (compacted before it had one) is checked as far as it goes."""
    dbs = backend.dbs
    built = min(latest, backend.read(lambda txn: txtree.size(txn, dbs)))
    for start in range(1, built + 1, CHUNK):
        stop = min(built, start + CHUNK - 1)

        def run(txn: Any, start: int = start, stop: int = stop) -> tuple[int, str] | None:
            return _check_chunk(txn, dbs, start, stop, horizon)
        bad = backend.read(run)
        if bad is not None:
            return bad
    return None
