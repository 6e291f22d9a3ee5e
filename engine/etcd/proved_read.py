"""Reads with proofs on etcd: :meth:`engine.Namespace.proved_read`'s answer, byte for byte, from a store on etcd.

The contract is :mod:`engine.proved_read`'s (what is proven and what is not, the cost, the limits): the
records a read returns, the head of the read's snapshot, the tx of the version each key's read saw, and
once per such tx its canonical entry (rebuilt from the log and the records at the tx's revision, with the
clamped commit time the chain hashes: :func:`engine.etcd.txtree.leaf_data`) and its inclusion path to
that head. On etcd:

* **The read** is :meth:`~engine.etcd.storage.EtcdStorage.read`'s, with its checks and errors. The head
  is the tree of the read's tx for a latest read (as on LMDB, where both are one snapshot), and of the
  latest tx, read after the read, for a read at a tx. Both are sealed first if they are not yet
  (:func:`engine.etcd.txtree.ensure`: a bounded wait, the unsealed window).
* **The version each key saw**: the newest of its data key, its delete marker and its namespace's drop
  marker at the read's revision (a few keys per txn), a drop counting only if the key existed just
  before it, as :mod:`engine.etcd.history` counts it.
* **The entries** are rebuilt :data:`CHUNK` txs at a time, with the reads a seal of those txs makes (a
  few txns per chunk), so ``PROOF_TOO_LARGE`` (as on LMDB: the records of the entries the read needs
  pass ``Limits.max_proof_bytes``) stops the reads, not only the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errors
from ..proved_read import ProvedEntry, ProvedRead
from ..txlog import GENESIS
from ..txtree import Head
from . import chain, txtree
from .history import _walk_back
from .kv import Range, RangeResult
from .timeline import Timeline

if TYPE_CHECKING:
    from .storage import EtcdStorage

#: Txs whose entries are rebuilt per batch of reads.
CHUNK = 32


def versions(timeline: Timeline, namespace: str, keys: list[str], raws: list[bytes], snap: int) -> list[int | None]:
    """The tx of the version of each key a read at tx ``snap`` saw (a delete too); None for none."""
    if snap == 0:
        return [None] * len(keys)
    layout, revision = timeline.layout, timeline.revision_of(snap)
    dropped = layout.dropped(namespace)
    per_txn = max(1, timeline.max_txn_ops // 3)
    out: list[int | None] = []
    for at in range(0, len(keys), per_txn):
        chunk = list(zip(keys[at:at + per_txn], raws[at:at + per_txn], strict=True))
        ops = [Range(k, revision=revision) for _, raw in chunk
               for k in (layout.data(namespace, raw), layout.marker(namespace, raw), dropped)]
        answers = [r for r in timeline.client.txn((), ops).responses if isinstance(r, RangeResult)]
        for i, (key, raw) in enumerate(chunk):
            found = [(kv.mod_revision, slot == 2) for slot, answer in enumerate(answers[3 * i:3 * i + 3])
                     for kv in answer.kvs]
            newest, is_drop = max(found, default=(0, False))
            if is_drop:  # the key's version only if it existed just before the drop: the history walk decides
                walked = _walk_back(timeline, key, raw, namespace, revision, timeline.revision_of(1), 1)
                newest = walked[0][0] if walked else 0
            out.append(timeline.tx_of(newest) if newest else None)
    return out


def _entries(timeline: Timeline, txs: list[int], limit: int) -> list[bytes]:
    """The canonical entries of ``txs`` (ascending, sealed), each rebuilt as the sealer hashed it;
    ``PROOF_TOO_LARGE`` once their records pass ``limit`` bytes."""
    links = chain.links(timeline, txs)
    out: list[bytes] = []
    used = 0
    for at in range(0, len(txs), CHUNK):  # a chunk at a time: the limit stops the reads, not only the answer
        chunk = txs[at:at + CHUNK]
        found, broken = chain.materials(timeline, chunk)  # what a seal of those txs reads: a few txns
        if len(found) < len(chunk):
            tx = chunk[len(found)]
            problem = broken.problem if broken is not None else "it has no log entry"
            raise errors.StorageError(f"tx {tx}'s log entry cannot be rebuilt to prove a record it wrote: {problem}",
                                      tx=tx)
        for m in found:
            size = used
            for records in m.records:
                size += sum(map(len, records))
                if size > limit:
                    raise errors.ProofTooLarge(
                        f"proving this read needs the whole log entry of tx {m.tx}, and the entries it needs pass "
                        f"{limit} bytes (Limits.max_proof_bytes): read fewer keys at a time, or read keys written "
                        "by large txs without proofs", tx=m.tx, limit=limit)  # fmt: skip
            entry = txtree.leaf_data(m, links[m.tx])
            used += len(entry)
            out.append(entry)
    return out


def head(timeline: Timeline, size: int) -> Head:
    """The head of the tree of ``size`` committed txs: chain hash and root, sealed up to ``size`` first."""
    if size == 0:
        return Head(0, GENESIS.hex(), txtree.root(timeline, 0).hex())
    root = txtree.root(timeline, size)
    return Head(size, chain.links(timeline, [size])[size].hash.hex(), root.hex())


def proved_read(storage: EtcdStorage, namespace: str, keys: list[str], raws: list[bytes], tx: int | None,
                metadata: bool, fields: frozenset[str]) -> ProvedRead:
    """The read of ``keys`` (unique, checked; ``raws`` their UTF-8) of ``namespace`` at ``tx`` (latest if
    None), with proofs (see the module docstring)."""
    timeline = storage.timeline
    result = storage.read(namespace, keys, tx=tx, metadata=metadata, fields=sorted(fields) if fields else None)
    size = result.tx if tx is None else timeline.latest()[0]
    tree_head = head(timeline, size)
    seen = versions(timeline, namespace, keys, raws, result.tx)
    txs = sorted({v for v in seen if v is not None})
    found = _entries(timeline, txs, storage.limits.max_proof_bytes)
    paths = txtree.inclusion_paths(timeline, txs, size)
    return ProvedRead(result.records, result.tx, tree_head, list(zip(keys, seen, strict=True)),
                      [ProvedEntry(t, entry, [h.hex() for h in path])
                       for t, entry, path in zip(txs, found, paths, strict=True)])
