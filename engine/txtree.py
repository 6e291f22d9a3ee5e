"""The Merkle tree over the tx log, stored as its complete subtrees (layout: docs/design.md, "The Merkle tree").

``txtree[tx]`` (u64 big-endian) holds the hashes of the complete subtrees that end at ``tx``, level 0
(the leaf) first: ``32 * (tz(tx) + 1)`` bytes. :func:`append` writes it in the tx's write transaction
(called from :func:`engine.txlog.append`); the rest reads it to give the root of any size and RFC 9162
inclusion and consistency proofs in O(log n) gets (the hashing is :mod:`engine.merkle`'s).

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


def append(txn: Any, db: Any, tx: int, entry: bytes) -> None:
    """Add tx ``tx`` (its canonical entry ``entry``) to the tree, if the tree holds every tx before it."""
    append_after(txn, db, tx, entry, txn.get(_u64.pack(tx - 1), db=db) if tx > 1 else b"")


def append_after(txn: Any, db: Any, tx: int, entry: bytes, prev: bytes | None) -> bytes | None:
    """:func:`append`, given ``prev``: the tree's entry of tx ``tx - 1`` (``b""`` for tx 1; None if the
    tree lacks it), as a writer that wrote it in this process knows it. Returns the entry written for
    ``tx`` (None if none: the tree lacks ``tx - 1``), the next tx's ``prev``."""
    if prev is None:
        return None  # an older store whose tree is still being built (or cannot be): the builder covers tx
    if len(entry) < 4096:  # merkle.leaf_hash, inlined: every tx passes here
        leaf = _sha256(b"\x00" + entry).digest()
    else:  # a large tx's entry (about 1 MB for 10,000 items): hashed without a copy
        hashed = _sha256(b"\x00")
        hashed.update(entry)
        leaf = hashed.digest()
    if tx & 1:  # an odd tx closes no subtree (its leaf is a left child): the entry is the leaf alone
        stored = leaf
    elif tx & 2:  # closes the subtree of 2 leaves only: its left neighbour is the leaf of tx - 1
        stored = leaf + merkle.node_hash(prev[:HASH_LEN], leaf)
    else:
        stored = b"".join(merkle.append_nodes(leaf, tx - 1, subtree_reader(txn, db, {tx - 1: prev})))
    txn.put(_u64.pack(tx), stored, False, True, False, db)  # positional: keywords cost ~600 instructions
    return stored


def subtree_reader(txn: Any, db: Any, known: dict[int, bytes] | None = None) -> merkle.SubtreeHash:
    """``subtree(level, end)`` over ``txtree``: the stored hash ``level`` of ``txtree[end]`` (one get;
    ``known``: entries already read). A proof makes one call per path element, so this is the hot path."""
    get, pack = txn.get, _u64.pack

    def subtree(level: int, end: int) -> bytes:
        raw = known.get(end) if known else None
        if raw is None:
            raw = get(pack(end), db=db)
            if raw is None:
                raise TxCompacted(f"the Merkle tree has no entry for tx {end}", tx=end)
        at = level * HASH_LEN
        return bytes(raw[at:at + HASH_LEN])
    return subtree


def size(txn: Any, db: Any) -> int:
    """How many txs the tree holds (txs ``1..size``)."""
    cur = txn.cursor(db=db)
    return _u64.unpack(cur.key())[0] if cur.last() else 0


def root(txn: Any, db: Any, tree_size: int) -> bytes:
    """The root of the tree of the first ``tree_size`` txs (the tree must hold them)."""
    return merkle.root_hash(subtree_reader(txn, db), tree_size)


def head(txn: Any, dbs: dict[str, Any], chain_head: bytes) -> Head:
    latest = schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)
    built = size(txn, dbs["txtree"]) >= latest
    return Head(latest, chain_head.hex(), root(txn, dbs["txtree"], latest).hex() if built else None)


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
    if txn.get(_u64.pack(tree_size), db=dbs["txtree"]) is not None:  # the tree is a prefix: 1..tree_size
        return
    built = size(txn, dbs["txtree"])
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
    subtree = subtree_reader(txn, dbs["txtree"])
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
    path = merkle.consistency_path(subtree_reader(txn, dbs["txtree"]), from_size, to_size)
    return ConsistencyProof(from_size, to_size, [h.hex() for h in path])
