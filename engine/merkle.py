"""The Merkle tree of RFC 9162 section 2.1 (Certificate Transparency v2): hashes, proofs, verification.

Pure functions, no I/O: the engine (:mod:`engine.txtree`) and the HTTP client both use them.

* ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``.
* The hash of a list of n leaves ``MTH(D[n])`` is ``SHA-256()`` for n = 0, the leaf hash for n = 1,
  and otherwise ``node_hash(MTH(D[0:k]), MTH(D[k:n]))`` with k the largest power of two below n.

**Complete subtrees.** Every range a proof needs is either a complete subtree (2**level leaves that
start at a multiple of 2**level) or a run of them. Proof generation takes a function
``subtree(level, end)`` that returns the hash of the complete subtree of 2**level leaves ending just
before leaf index ``end`` (covering ``[end - 2**level, end)``; ``end`` is a multiple of 2**level). A
store keeps exactly those hashes, so a proof costs O(log n) lookups: an inclusion or consistency
path descends the tree once, and at most one of its elements is a run of complete subtrees.

**Verification** follows RFC 9162 2.1.3.2 (inclusion) and 2.1.4.2 (consistency) to the letter and
checks every input: a hash of the wrong length, an index outside the tree, a path one element too
long or too short, all fail (return False), never raise. A proof is only as good as the root it is
checked against: the caller must take ``(size, root)`` together from a head it trusts and check that
the answer it verifies names the tx and size it asked for (a valid proof of another tx or size is
still a valid proof, of something else).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_LEN = 32
#: ``subtree(level, end)``: the hash of the complete subtree of ``2**level`` leaves ``[end - 2**level, end)``.
SubtreeHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def mth(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already hashed leaves, straight from the definition (O(n): for tests and small trees)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(mth(leaf_hashes[:k]), mth(leaf_hashes[k:]))


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(subtree: SubtreeHash, start: int, end: int) -> bytes:
    """``MTH(D[start:end])`` for a range a tree or proof uses: ``start`` a multiple of a power of two
    at least ``end - start``. It is the complete subtrees of ``end - start``'s binary digits, biggest
    first, folded from the right."""
    width = end - start
    if width & (width - 1) == 0 and width:  # one complete subtree: the common case, one lookup
        return subtree(width.bit_length() - 1, end)
    blocks: list[bytes] = []
    at = start
    for level in range((end - start).bit_length() - 1, -1, -1):
        if (end - start) >> level & 1:
            at += 1 << level
            blocks.append(subtree(level, at))
    if not blocks:
        return EMPTY_ROOT
    digest = blocks.pop()
    while blocks:
        digest = node_hash(blocks.pop(), digest)
    return digest


def root_hash(subtree: SubtreeHash, size: int) -> bytes:
    """``MTH(D[size])`` from at most ``log2(size) + 1`` complete subtrees."""
    return range_hash(subtree, 0, size)


def append_nodes(leaf: bytes, size: int, subtree: SubtreeHash) -> list[bytes]:
    """The hashes of the complete subtrees that end at leaf ``size`` (0-based) once it is appended:
    level 0 is ``leaf``, level l+1 joins level l's left neighbour (``subtree(l, size + 1 - 2**l)``)
    with level l. One per trailing one bit of ``size``, plus one: amortized two per leaf."""
    nodes = [leaf]
    end = size + 1
    level = 0
    while end >> level & 1 == 0:
        nodes.append(node_hash(subtree(level, end - (1 << level)), nodes[-1]))
        level += 1
    return nodes


def inclusion_path(subtree: SubtreeHash, index: int, size: int) -> list[bytes]:
    """``PATH(index, D[size])`` (RFC 9162 2.1.3.1), from the root down, listed leaf first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(range_hash(subtree, start + k, end))
            end = start + k
        else:
            path.append(subtree((k - 1).bit_length(), start + k))
            start += k
    path.reverse()
    return path


def consistency_path(subtree: SubtreeHash, first: int, second: int) -> list[bytes]:
    """``PROOF(first, D[second])`` (RFC 9162 2.1.4.1) for ``0 < first <= second``; empty if equal."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} leaves to {second}")
    path: list[bytes] = []
    start, end, m, complete = 0, second, first, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            path.append(range_hash(subtree, start + k, end))
            end = start + k
        else:
            path.append(subtree((k - 1).bit_length(), start + k))
            start += k
            m -= k
            complete = False
    if not complete:
        path.append(range_hash(subtree, start, end))
    path.reverse()
    return path


def _hashes_ok(*hashes: object) -> bool:
    return all(type(h) is bytes and len(h) == HASH_LEN for h in hashes)


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: whether ``path`` proves leaf hash ``leaf`` is leaf ``index`` of the tree of
    ``size`` leaves whose hash is ``root``."""
    if type(index) is not int or type(size) is not int or not 0 <= index < size:
        return False
    if not _hashes_ok(leaf, root, *path):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       path: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: whether ``path`` proves the tree of ``first`` leaves hashing to ``first_root``
    is a prefix of the tree of ``second`` leaves hashing to ``second_root``. For ``first == second``
    the proof is empty and the roots must be equal (the RFC leaves that case to the caller)."""
    if type(first) is not int or type(second) is not int or not 0 < first <= second:
        return False
    if not _hashes_ok(first_root, second_root, *path):
        return False
    if first == second:
        return not path and first_root == second_root
    if not path:
        return False
    chain = list(path)
    if first & (first - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        chain.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = chain[0]
    for c in chain[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0
