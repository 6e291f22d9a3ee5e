"""The Merkle tree on etcd: the LMDB store's tree (:mod:`engine.txtree`), stored by the sealer beside the chain.

The leaves are LMDB's: leaf ``tx - 1`` is ``leaf_hash`` of tx ``tx``'s canonical entry with its clamped
commit time (:func:`engine.txlog.canonical_entry`, the bytes the chain hashes after the previous hash),
so the tree, its roots and its proofs are byte for byte those of an LMDB store with the same history.

**Where it lives** (docs/design.md, "Strata on etcd: key layout"). The tree is stored as LMDB stores it:
for each tx, the hashes of the complete subtrees that end at it, level 0 (the leaf) first, ``32 *
(tz(tx) + 1)`` bytes (LMDB's ``txtree[tx]`` value). Those entries are grouped in **tree segments**
``P/tree/<first_tx:016x>``, msgpack ``[entry, ...]`` of the same txs as the chain's sealed segment of
that ``first_tx`` (:data:`engine.etcd.chain.SEGMENT` txs, ``first_tx`` one past a multiple of it), and
``P/tree/head`` holds msgpack ``[size, root]``: how many txs the tree holds and its root.

**Who writes it.** Every seal (:func:`engine.etcd.chain.seal`) adds the txs it seals to the tree in the
same housekeeping txn (:func:`extension`): the tree segments it extends and the tree head, guarded by
the tree head's mod revision as well as the sealed head's. So the tree always holds exactly the sealed
txs, and sealers that race write the same bytes, one of them winning. A store whose chain was sealed
before the tree existed gets its tree built from the log first (:func:`catch_up`: each leaf only if its
tx still hashes to its sealed chain hash, so the tree never certifies what the chain does not).

**Reads.** A root or proof needs O(log n) subtree hashes: their tx numbers depend on the sizes alone, so
:func:`_fetched` computes them first and reads every segment holding one in one txn (more past the
cluster's ``--max-txn-ops``), then computes the answer. A proof of a size that is not sealed yet seals
up to it first (:func:`ensure`), as ``head()`` and ``tx_info`` do for the chain: a bounded wait (the
unsealed window the background sealer leaves, one batch interval in steady state), never an answer of
a tree that differs from LMDB's. A size the chain cannot be sealed to (a tx that cannot be hashed)
answers the sealer's ``STORAGE_ERROR`` naming that tx.

**Checking.** ``verify()`` walks the stored tree beside the chain (:class:`TreeCheck`), as LMDB's
:func:`engine.txtree_build.check` does, and reports the first bad entry once the chain checks out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import ormsgpack

from .. import errors, merkle
from ..txlog import canonical_entry
from ..txtree import ConsistencyProof, InclusionProof, check_from, check_leaf, check_size, empty_store
from . import chain
from .chain import GENESIS_LINK, Link, Material, segment_start
from .kv import Compare, Put, Range, RangeResult
from .timeline import Timeline, count_of

HASH_LEN = merkle.HASH_LEN
_Answer = TypeVar("_Answer")


@dataclass(frozen=True, slots=True)
class TreeHead:
    """The stored tree: it holds txs ``1..size`` and hashes to ``root``; ``mod_revision`` of ``P/tree/head``
    (0 when the key is absent: no tree yet)."""

    size: int
    root: bytes
    mod_revision: int


def tree_head(timeline: Timeline) -> TreeHead:
    """The stored tree head (size 0 and the empty tree's root when nothing is stored)."""
    return _head_of(timeline.client.range(timeline.layout.tree_head))


def _head_of(found: RangeResult) -> TreeHead:
    if not found.kvs:
        return TreeHead(0, merkle.EMPTY_ROOT, 0)
    size, root = ormsgpack.unpackb(found.kvs[0].value)
    return TreeHead(size, root, found.kvs[0].mod_revision)


def leaf_data(m: Material, link: Link) -> bytes:
    """What tx ``m.tx``'s leaf hashes: its canonical entry at the clamped commit time the chain hashes."""
    return canonical_entry(m.tx, link.time_us, m.note, m.runs, m.records)


def seal_limit(timeline: Timeline) -> int:
    """Txs one seal may add so that its txn (two segments and a head per ``chain.SEGMENT`` txs, one more
    segment each for a partly filled one, the housekeeping put) stays within ``--max-txn-ops``."""
    return min(chain.MAX_SEAL, chain.SEGMENT * max(1, (timeline.max_txn_ops - 5) // 2 - 1))


# -- the stored entries --------------------------------------------------------------------------


def frontier(size: int) -> list[int]:
    """The txs at which the complete subtrees making up the tree of ``size`` txs end (``size`` last)."""
    ends, at = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            at += 1 << level
            ends.append(at)
    return ends


def entries(timeline: Timeline, txs: Iterable[int], size: int) -> dict[int, bytes]:
    """The stored entries of every tx up to ``size`` of the tree segments holding ``txs``: one txn of
    ranges (more past ``--max-txn-ops``). Segments are only appended to, so entries up to a stored size
    are what they were when that size was stored."""
    return _read(timeline, txs, size)[2]


def _read(timeline: Timeline, txs: Iterable[int], size: int) -> tuple[int, TreeHead, dict[int, bytes]]:
    """The sealed tx, the tree head, and :func:`entries`, read in one txn (more past ``--max-txn-ops``
    ranges)."""
    ranges = [Range(timeline.layout.seal_head), Range(timeline.layout.tree_head)]
    starts = sorted({segment_start(t) for t in txs})
    ranges += [Range(timeline.layout.tree_segment(s)) for s in starts]
    answers: list[RangeResult] = []
    step = timeline.max_txn_ops
    for at in range(0, len(ranges), step):
        result = timeline.client.txn((), ranges[at:at + step])
        answers += [r for r in result.responses if isinstance(r, RangeResult)]
    out: dict[int, bytes] = {}
    for start, answer in zip(starts, answers[2:], strict=True):
        if answer.kvs:
            for i, raw in enumerate(ormsgpack.unpackb(answer.kvs[0].value)[: max(0, size - start + 1)]):
                out[start + i] = raw
    return _sealed_tx(answers[0]), _head_of(answers[1]), out


def _sealed_tx(found: RangeResult) -> int:
    return int(ormsgpack.unpackb(found.kvs[0].value)[0]) if found.kvs else 0


def reader(known: dict[int, bytes]) -> merkle.SubtreeHash:
    """``subtree(level, end)`` over entries read with :func:`entries` (``STORAGE_ERROR`` for a missing one)."""

    def subtree(level: int, end: int) -> bytes:
        raw = known.get(end)
        if type(raw) is not bytes or len(raw) < (level + 1) * HASH_LEN:
            raise errors.StorageError(f"the Merkle tree on etcd has no level-{level} node for tx {end}: its tree "
                                      "segment is missing or was changed", tx=end)
        return raw[level * HASH_LEN:(level + 1) * HASH_LEN]
    return subtree


def _placeholder(wanted: set[int]) -> merkle.SubtreeHash:
    def subtree(level: int, end: int) -> bytes:
        wanted.add(end)
        return bytes(HASH_LEN)
    return subtree


def _fetched(timeline: Timeline, size: int, compute: Callable[[merkle.SubtreeHash], _Answer]) -> _Answer:
    """``compute(subtree)`` over the tree of ``size`` txs (stored): first over placeholders, to learn which
    entries it reads (they depend on the sizes alone), then over those entries, read at once."""
    wanted: set[int] = set()
    compute(_placeholder(wanted))
    return compute(reader(entries(timeline, wanted, size)))


# -- writing -------------------------------------------------------------------------------------


def _grow(timeline: Timeline, tree: TreeHead, known: dict[int, bytes], found: list[Material],
          links: list[Link], leaves: list[bytes] | None = None) -> list[Put]:
    """The puts that add ``found`` (the txs right after ``tree.size``, chained as ``links``) to the tree:
    each tree segment they extend, whole, and the tree head. ``known``: the entries of the tree's
    :func:`frontier` (so of the partly filled segment too: the frontier ends at ``tree.size``).
    ``leaves``: each tx's :func:`leaf_data` if the caller has it (:func:`engine.etcd.chain.chained`)."""
    layout = timeline.layout
    subtree = reader(known)
    for i, (m, link) in enumerate(zip(found, links, strict=True)):
        leaf = leaf_data(m, link) if leaves is None else leaves[i]
        known[m.tx] = b"".join(merkle.append_nodes(merkle.leaf_hash(leaf), m.tx - 1, subtree))
    size = tree.size + len(found)
    step = chain.SEGMENT
    puts = [Put(layout.tree_segment(start), _packed(known, start, min(start + step, size + 1)))
            for start in range(segment_start(tree.size + 1), size + 1, step)]
    return [*puts, Put(layout.tree_head, ormsgpack.packb([size, merkle.root_hash(subtree, size)]))]


def _packed(known: dict[int, bytes], start: int, stop: int) -> bytes:
    return ormsgpack.packb([known[t] for t in range(start, stop)])


def extension(timeline: Timeline, sealed: int, found: list[Material], links: list[Link],
              tail: tuple[int, dict[int, bytes]] | None = None,
              leaves: list[bytes] | None = None) -> tuple[list[Put], Compare, dict[int, bytes]] | None:
    """What a seal adding ``found`` (chained as ``links``) after the sealed tx ``sealed`` writes to the tree,
    the compare on the tree head that guards it, and the entries it read and added. None when the tree
    does not hold exactly the sealed txs: short of them (sealed before the tree existed) it needs
    :func:`catch_up` first; ahead of them, another sealer sealed meanwhile (the seal's compare on the
    sealed head fails: it reads again), unless it is ahead of the sealed head read with it:
    ``STORAGE_ERROR`` (written outside Strata), where a seal would otherwise go round forever.
    ``tail``: ``(revision, entries)`` kept from this process's last seal (:mod:`engine.etcd.tail`), which
    wrote the tree head at ``revision`` with ``sealed`` txs and the entries :func:`kept_for_next` keeps:
    nothing is read (the returned compare fails if the tree head moved since). ``leaves``: each tx's
    :func:`leaf_data`, if the caller has it."""
    if tail is not None:
        tree, known = TreeHead(sealed, b"", tail[0]), tail[1]
    else:
        sealed_now, tree, known = _read(timeline, frontier(sealed), sealed)
        if tree.size > sealed_now:
            raise errors.StorageError(f"the Merkle tree's head names {tree.size} txs, more than the {sealed_now} "
                                      "sealed: it was written outside Strata", tx=tree.size)
        if tree.size != sealed:
            return None
    return _grow(timeline, tree, known, found, links, leaves), _guard(timeline, tree), known


def kept_for_next(known: dict[int, bytes], size: int) -> dict[int, bytes]:
    """Of the entries of a tree of ``size`` txs, those a seal growing it reads: the :func:`frontier`'s
    (the subtrees new leaves join) and those of the partly filled tree segment (rewritten whole)."""
    return {t: known[t] for t in {*frontier(size), *range(segment_start(size + 1), size + 1)}}


def _guard(timeline: Timeline, tree: TreeHead) -> Compare:
    return Compare(timeline.layout.tree_head, "MOD", "==", tree.mod_revision)


def catch_up(timeline: Timeline, upto: int, fence: Compare | None = None) -> TreeHead:
    """Build the tree up to the sealed tx ``upto`` where the chain was sealed before the tree existed:
    from the log and the records, as the sealer does, :func:`seal_limit` txs per housekeeping txn, each
    leaf only if its tx still hashes to its sealed chain hash (else ``STORAGE_ERROR`` naming it: the
    tree never certifies what the chain does not; ``verify()`` says what changed). ``fence`` as for
    :func:`engine.etcd.chain.seal`. Returns the tree head, at or past ``upto``."""
    while True:
        tree = tree_head(timeline)
        if tree.size >= upto:
            return tree
        txs = range(tree.size + 1, min(upto, tree.size + seal_limit(timeline)) + 1)
        sealed = chain.sealed_links(timeline, max(1, tree.size), txs[-1])
        prev = sealed[tree.size] if tree.size else GENESIS_LINK
        found, broken = chain.materials(timeline, txs)
        links: list[Link] = []
        for m in found:
            prev = chain.next_link(prev, m)
            if sealed.get(m.tx) != prev:
                broken = chain.Broken(m.tx, "its log entry and records no longer hash to its sealed chain hash")
                found = found[:len(links)]
                break
            links.append(prev)
        if not found and broken is not None:
            raise errors.StorageError(f"the Merkle tree cannot be built past tx {broken.tx - 1}: tx {broken.tx}: "
                                      f"{broken.problem}", tx=broken.tx)
        compare = [_guard(timeline, tree), *([] if fence is None else [fence])]
        try:
            known = entries(timeline, frontier(tree.size), tree.size)
            timeline.housekeeping(_grow(timeline, tree, known, found, links), compare)
        except errors.Conflict:
            if fence is not None and not chain.holds(timeline, fence):
                raise
            # another process grew the tree meanwhile: go on from its head


def state(timeline: Timeline) -> tuple[int, int, TreeHead]:
    """``(latest tx, sealed tx, tree head)``, read in one txn (what every proof looks at first)."""
    layout = timeline.layout
    result = timeline.client.txn((), [Range(layout.housekeeping), Range(layout.seal_head), Range(layout.tree_head)])
    hk, sealed, tree = (r for r in result.responses if isinstance(r, RangeResult))
    count = count_of(hk.kvs)
    timeline.learn(count, result.revision)
    return result.revision - timeline.base - count, _sealed_tx(sealed), _head_of(tree)


def ensure(timeline: Timeline, size: int, seen: tuple[int, TreeHead] | None = None) -> TreeHead:
    """The tree head once the chain, and the tree with it, hold the committed tx ``size``: seals up to it
    first if it is not sealed yet (:func:`engine.etcd.chain.seal`; ``STORAGE_ERROR`` if it cannot be).
    ``seen``: the sealed tx and tree head :func:`state` read, if the caller has them (no read then
    when both hold ``size``)."""
    if seen is not None and seen[0] >= size and seen[1].size >= size:
        return seen[1]
    chain.seal(timeline, size)
    tree = tree_head(timeline)
    return tree if tree.size >= size else catch_up(timeline, size)


# -- reading -------------------------------------------------------------------------------------


def root(timeline: Timeline, size: int) -> bytes:
    """The root of the tree of the first ``size`` committed txs (sealing up to ``size`` first if needed)."""
    tree = tree_head(timeline)
    if tree.size < size:
        tree = ensure(timeline, size)
    if tree.size == size:
        return tree.root
    return _fetched(timeline, size, lambda subtree: merkle.root_hash(subtree, size))


def inclusion_paths(timeline: Timeline, txs: list[int], size: int) -> list[list[bytes]]:
    """The inclusion path of each of ``txs`` in the stored tree of ``size`` txs (all of them in one read)."""
    return _fetched(timeline, size, lambda subtree: [merkle.inclusion_path(subtree, tx - 1, size) for tx in txs])


def inclusion_proof(timeline: Timeline, tx: int, size: int | None) -> InclusionProof:
    """:meth:`engine.Store.inclusion_proof` on etcd: the same checks, errors and answer."""
    latest, sealed, tree = state(timeline)
    if size is None:
        if latest == 0:
            raise empty_store(tx, "tx")
        size = latest
    check_size(size, latest, "size")
    check_leaf(tx, size)
    ensure(timeline, size, (sealed, tree))

    def prove(subtree: merkle.SubtreeHash) -> tuple[bytes, list[bytes]]:
        return subtree(0, tx), merkle.inclusion_path(subtree, tx - 1, size)
    leaf, path = _fetched(timeline, size, prove)
    return InclusionProof(tx, size, leaf.hex(), [h.hex() for h in path])


def consistency_proof(timeline: Timeline, first: int, second: int | None) -> ConsistencyProof:
    """:meth:`engine.Store.consistency_proof` on etcd: the same checks, errors and answer."""
    latest, sealed, tree = state(timeline)
    if second is None:
        if latest == 0:
            raise empty_store(first, "from")
        second = latest
    check_size(second, latest, "to")
    check_from(first, second)
    ensure(timeline, second, (sealed, tree))
    path = _fetched(timeline, second, lambda subtree: merkle.consistency_path(subtree, first, second))
    return ConsistencyProof(first, second, [h.hex() for h in path])


# -- checking ------------------------------------------------------------------------------------


class TreeCheck:
    """``verify()``'s walk of the stored tree, beside its walk of the chain (:mod:`engine.etcd.verify`):
    :meth:`add` each tx in order with its recomputed link; the first problem is kept, not raised, since
    the chain is checked first (as on LMDB: :func:`engine.txtree_build.check`), and :meth:`finish` gives
    it. Every entry up to the tree head's size must have its ``tz(tx) + 1`` hashes, a leaf that is the
    hash of the tx's recomputed canonical entry and nodes that hash their children; the head's root must
    be the root of those entries. Reads one tree segment per :data:`engine.etcd.chain.SEGMENT` txs and
    keeps only the tree's frontier (O(log n) entries)."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.head = tree_head(timeline)
        self.problem: tuple[int, str] | None = None
        self._frontier: dict[int, bytes] = {}
        self._stored: dict[int, bytes] = {}

    def add(self, m: Material, link: Link) -> None:
        """Check tx ``m.tx``'s stored entry (txs beyond the tree head's size have none yet)."""
        raw = self._entry(m.tx)
        if raw is None:
            return
        if merkle.leaf_hash(leaf_data(m, link)) != raw[:HASH_LEN]:
            self.problem = (m.tx, "the Merkle leaf does not match the tx's log entry and records")
            return
        self._nodes(m.tx, raw)

    def add_compacted(self, tx: int) -> None:
        """Check tx ``tx``'s stored entry below the horizon, as LMDB does: its records are freed, so its
        leaf cannot be recomputed; its nodes must still hash their children."""
        raw = self._entry(tx)
        if raw is not None:
            self._nodes(tx, raw)

    def _entry(self, tx: int) -> bytes | None:
        """The stored entry of ``tx`` if it has the right size, else None (and the problem kept)."""
        if self.problem is not None or tx > self.head.size:
            return None
        if tx not in self._stored:
            self._stored = entries(self.timeline, [tx], self.head.size)
        raw = self._stored.get(tx)
        levels = (tx & -tx).bit_length()
        if type(raw) is not bytes:
            self.problem = (tx, "the Merkle tree has no entry for this tx")
            return None
        if len(raw) != HASH_LEN * levels:
            self.problem = (tx, f"the Merkle tree entry of this tx is {len(raw)} bytes, not {HASH_LEN * levels}")
            return None
        return raw

    def _nodes(self, tx: int, raw: bytes) -> None:
        if b"".join(merkle.append_nodes(raw[:HASH_LEN], tx - 1, reader(self._frontier))) != raw:
            self.problem = (tx, "a Merkle tree node ending at this tx is not the hash of its children")
            return
        self._frontier[tx] = raw
        self._frontier = {end: self._frontier[end] for end in frontier(tx)}

    def finish(self) -> tuple[int, str] | None:
        """The first problem (its tx and what is wrong), or None; checks the head's root last."""
        if self.problem is None and merkle.root_hash(reader(self._frontier), self.head.size) != self.head.root:
            self.problem = (self.head.size, "the Merkle tree head's root is not the root of the stored tree")
        return self.problem
