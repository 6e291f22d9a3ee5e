"""The Merkle tree over the tx log, stored as its complete subtrees (layout: docs/design.md, "The Merkle tree").

Each tx's **tree entry** holds the hashes of the complete subtrees that end at ``tx``, level 0 (the
leaf) first: ``32 * (tz(tx) + 1)`` bytes. :func:`append` writes it in the tx's write transaction
(called from :func:`engine.txlog.append`) in the tx log's database, ``txlog[tx | 02]`` (tx as u64
big-endian), beside the tx's log entry ``txlog[tx]`` and runs ``txlog[tx | 01]``: one B-tree fewer for
every commit to write and flush. Stores written before keep the entries of their older txs in the
database ``txtree`` (key ``tx``): :func:`entry` reads there when ``txlog`` has none. The rest reads the
entries to give the root of any size and RFC 9162 inclusion and consistency proofs in O(log n) gets
(the hashing is :mod:`engine.merkle`'s).

The tree is a prefix of the log: txs ``1..size(txtree)``. It is shorter than the log only in a store
that had txs before it had a tree and has not finished building it (:mod:`engine.txtree_build`), or
cannot (compacted before the tree existed). Then proofs that need the missing leaves raise
``TX_COMPACTED`` and :class:`Head` has no root.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import merkle, schema
from .errors import FutureTx, InvalidParameters, TxCompacted

if TYPE_CHECKING:
    from .signed_head import SignedHead

_u64 = struct.Struct(">Q")
HASH_LEN = merkle.HASH_LEN
_sha256 = hashlib.sha256


class Head(tuple[int, str]):
    """What :meth:`Store.head` returns: the receipt ``(tx, hash)`` (it unpacks and compares as that
    pair) with the tree's ``size`` (= ``tx``) and ``root`` (hex; None if the tree is not built).

    ``signed``: the server's signature over this head (:mod:`engine.signed_head`), when a client
    checked one; evidence to keep, not part of equality."""

    root: str | None
    signed: SignedHead | None

    def __new__(cls, tx: int, hash: str, root: str | None, signed: SignedHead | None = None) -> Head:
        self = super().__new__(cls, (tx, hash))
        self.root = root
        self.signed = signed
        return self

    @property
    def tx(self) -> int:
        return self[0]

    @property
    def hash(self) -> str:
        return self[1]

    @property
    def size(self) -> int:
        return self[0]

    def __eq__(self, other: object) -> bool:
        """Equal to the pair ``(tx, hash)``; two heads are equal only if their roots are too."""
        if isinstance(other, Head) and other.root != self.root:
            return False
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return tuple.__hash__(self)

    def __repr__(self) -> str:
        return f"Head(tx={self[0]}, hash={self[1]!r}, root={self.root!r})"

    def to_dict(self) -> dict[str, Any]:
        out = {"tx": self[0], "hash": self[1], "size": self[0], "root": self.root}
        if self.signed is not None:
            out["signed"] = self.signed.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Tx ``tx`` is leaf ``tx - 1`` of the tree of ``size`` txs: ``leaf_hash`` and ``path`` in hex."""

    tx: int
    size: int
    leaf_hash: str
    path: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"tx": self.tx, "size": self.size, "leaf_hash": self.leaf_hash, "path": self.path}


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The tree of ``to_size`` txs extends the tree of ``from_size`` txs: ``path`` in hex."""

    from_size: int
    to_size: int
    path: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.from_size, "to": self.to_size, "path": self.path}


#: After a tx's u64 in ``txlog``: the key of its tree entry (engine/txlog.py has ``01``, its runs).
TREE = b"\x02"


def entry(txn: Any, dbs: dict[str, Any], tx: int) -> bytes | None:
    """The tree entry of ``tx`` (None if the tree lacks it): ``txlog[tx | 02]``, or in a store written
    before entries moved there, ``txtree[tx]``."""
    key = _u64.pack(tx)
    raw: bytes | None = txn.get(key + TREE, None, dbs["txlog"])  # positional, as put: cheaper
    return txn.get(key, None, dbs["txtree"]) if raw is None else raw


def append(txn: Any, dbs: dict[str, Any], tx: int, data: bytes) -> None:
    """Add tx ``tx`` (its canonical entry ``data``) to the tree, if the tree holds every tx before it."""
    append_after(txn, dbs, tx, data, entry(txn, dbs, tx - 1) if tx > 1 else b"")


def append_after(txn: Any, dbs: dict[str, Any], tx: int, data: bytes, prev: bytes | None) -> bytes | None:
    """:func:`append`, given ``prev``: the tree's entry of tx ``tx - 1`` (``b""`` for tx 1; None if the
    tree lacks it), as a writer that wrote it in this process knows it. Returns the entry written for
    ``tx`` (None if none: the tree lacks ``tx - 1``), the next tx's ``prev``."""
    if prev is None:
        return None  # an older store whose tree is still being built (or cannot be): the builder covers tx
    if len(data) < 4096:  # merkle.leaf_hash, inlined: every tx passes here
        leaf = _sha256(b"\x00" + data).digest()
    else:  # a large tx's canonical entry (about 1 MB for 10,000 items): hashed without a copy
        hashed = _sha256(b"\x00")
        hashed.update(data)
        leaf = hashed.digest()
    if tx & 1:  # an odd tx closes no subtree (its leaf is a left child): the entry is the leaf alone
        stored = leaf
    elif tx & 2:  # closes the subtree of 2 leaves only: its left neighbour is the leaf of tx - 1
        stored = leaf + merkle.node_hash(prev[:HASH_LEN], leaf)
    else:
        stored = b"".join(merkle.append_nodes(leaf, tx - 1, subtree_reader(txn, dbs, {tx - 1: prev})))
    # positional: keywords cost ~600 instructions
    txn.put(_u64.pack(tx) + TREE, stored, False, True, False, dbs["txlog"])
    return stored


def subtree_reader(txn: Any, dbs: dict[str, Any], known: dict[int, bytes] | None = None) -> merkle.SubtreeHash:
    """``subtree(level, end)``: the stored hash ``level`` of the tree entry of ``end`` (one get, two for
    an entry of an older layout; ``known``: entries already read). A proof makes one call per path
    element, so this is the hot path."""
    def subtree(level: int, end: int) -> bytes:
        raw = known.get(end) if known else None
        if raw is None:
            raw = entry(txn, dbs, end)
            if raw is None:
                raise TxCompacted(f"the Merkle tree has no entry for tx {end}", tx=end)
        at = level * HASH_LEN
        return bytes(raw[at:at + HASH_LEN])
    return subtree


def size(txn: Any, dbs: dict[str, Any]) -> int:
    """How many txs the tree holds (txs ``1..size``): the last tx logged when it has an entry (a store
    whose tree is whole: one or two gets), else a binary search, since the tree is a prefix of the log."""
    cur = txn.cursor(db=dbs["txlog"])
    last: int = _u64.unpack_from(cur.key())[0] if cur.last() else 0
    if last == 0 or entry(txn, dbs, last) is not None:
        return last
    lo, hi = 0, last - 1  # the size is in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if entry(txn, dbs, mid) is not None:
            lo = mid
        else:
            hi = mid - 1
    return lo


def root(txn: Any, dbs: dict[str, Any], tree_size: int) -> bytes:
    """The root of the tree of the first ``tree_size`` txs (the tree must hold them)."""
    return merkle.root_hash(subtree_reader(txn, dbs), tree_size)


def head(txn: Any, dbs: dict[str, Any], chain_head: bytes) -> Head:
    latest = schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)
    built = latest == 0 or entry(txn, dbs, latest) is not None  # the tree is a prefix of the log
    return Head(latest, chain_head.hex(), root(txn, dbs, latest).hex() if built else None)


def check_size(tree_size: int, latest: int, parameter: str) -> None:
    """A proof's tree size ``tree_size`` (query parameter ``parameter``) checked against the latest tx:
    ``INVALID_PARAMETERS`` unless a tx number of at least 1, ``FUTURE_TX`` above ``latest``. Shared with
    the etcd backend (:mod:`engine.etcd.txtree`), so both word these alike."""
    if type(tree_size) is not int or tree_size < 1:
        raise InvalidParameters(f"{parameter} must be a tx number of at least 1, not {tree_size!r}",
                                parameter=parameter)
    if tree_size > latest:
        raise FutureTx(f"{parameter} {tree_size} is above the latest committed tx ({latest})", tx=tree_size,
                       latest_tx=latest, parameter=parameter)


def empty_store(value: int, parameter: str) -> FutureTx:
    """The error of a proof asked of an empty store without a size (``value``: the ``parameter`` given)."""
    return FutureTx(f"{parameter} {value!r} is above the latest committed tx (0): the store is empty", tx=value,
                    latest_tx=0, parameter=parameter)


def check_leaf(tx: int, tree_size: int) -> None:
    """``INVALID_PARAMETERS`` unless ``tx`` is a leaf of the tree of ``tree_size`` txs."""
    if type(tx) is not int or not 1 <= tx <= tree_size:
        raise InvalidParameters(f"tx must be an integer from 1 to the size {tree_size}, not {tx!r}", parameter="tx")


def check_from(from_size: int, to_size: int) -> None:
    """``INVALID_PARAMETERS`` unless ``1 <= from_size <= to_size``."""
    if type(from_size) is not int or not 1 <= from_size <= to_size:
        raise InvalidParameters(f"from must be an integer from 1 to {to_size} (the size proved to extend it), "
                                f"not {from_size!r}", parameter="from")


def _check_size(txn: Any, dbs: dict[str, Any], tree_size: int, parameter: str) -> None:
    check_size(tree_size, schema.get_u64(txn, dbs["meta"], schema.LATEST_TX), parameter)
    if entry(txn, dbs, tree_size) is not None:  # the tree is a prefix: 1..tree_size
        return
    built = size(txn, dbs)
    if tree_size > built:
        raise TxCompacted(f"the Merkle tree covers txs 1 to {built} only: this store was compacted before it had "
                          "a tree, so the records the later leaves hash are gone (verify() still checks the chain)",
                          tx=tree_size, tree_size=built, parameter=parameter)


def inclusion_proof(txn: Any, dbs: dict[str, Any], tx: int, tree_size: int | None) -> InclusionProof:
    """Proof that ``tx`` is in the tree of ``tree_size`` txs (default: the latest tx)."""
    if tree_size is None:
        tree_size = schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)
        if tree_size == 0:
            raise empty_store(tx, "tx")
    _check_size(txn, dbs, tree_size, "size")
    check_leaf(tx, tree_size)
    subtree = subtree_reader(txn, dbs)
    path = merkle.inclusion_path(subtree, tx - 1, tree_size)
    return InclusionProof(tx, tree_size, subtree(0, tx).hex(), [h.hex() for h in path])


def consistency_proof(txn: Any, dbs: dict[str, Any], from_size: int, to_size: int | None) -> ConsistencyProof:
    """Proof that the tree of ``to_size`` txs (default: the latest tx) extends the tree of ``from_size``."""
    if to_size is None:
        to_size = schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)
        if to_size == 0:
            raise empty_store(from_size, "from")
    _check_size(txn, dbs, to_size, "to")
    check_from(from_size, to_size)
    path = merkle.consistency_path(subtree_reader(txn, dbs), from_size, to_size)
    return ConsistencyProof(from_size, to_size, [h.hex() for h in path])
