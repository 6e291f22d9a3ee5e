"""The Merkle tree's pure functions against RFC 9162 section 2.1, by hand and by property.

The known answers are computed here with hashlib from the RFC's definitions (0x00 || leaf,
0x01 || left || right) and the worked example of RFC 9162 2.1.5 (a seven-leaf tree, leaves a..g),
never with engine.merkle, so a tree that silently swapped children or skipped the prefixes
would agree with itself, not with these hashes.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import merkle


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(data: bytes) -> bytes:
    return sha(b"\x00" + data)


def node(left: bytes, right: bytes) -> bytes:
    return sha(b"\x01" + left + right)


# RFC 9162 2.1.5: leaves d0..d6; a..g their leaf hashes; the inner nodes named as in the RFC's figure.
D = [b"d0", b"d1", b"d2", b"d3", b"d4", b"d5", b"d6"]
a, b, c, d, e, f, g_ = (leaf(x) for x in D)
g = node(a, b)          # RFC's g: [a, b]
h = node(c, d)          # h: [c, d]
i = node(e, f)          # i: [e, f]
j = g_                  # j: the seventh leaf alone
k = node(g, h)          # k: [a..d]
l_ = node(i, j)         # l: [e, f, g]
ROOT7 = node(k, l_)     # m: the root of the seven-leaf tree


def table(leaves: list[bytes]) -> merkle.SubtreeHash:
    """``subtree(level, end)`` over a list of leaf hashes, by recursion on the definition."""
    def subtree(level: int, end: int) -> bytes:
        start = end - (1 << level)
        assert start >= 0 and start % (1 << level) == 0, (level, end)
        return merkle.mth(leaves[start:end])
    return subtree


TREE7 = table([a, b, c, d, e, f, g_])


def test_hashes_are_rfc_9162_prefixed_sha256() -> None:
    assert merkle.leaf_hash(b"d0") == a
    assert merkle.node_hash(a, b) == g
    sha256_of_nothing = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert sha256_of_nothing == merkle.EMPTY_ROOT
    assert merkle.leaf_hash(b"") == bytes.fromhex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")


@pytest.mark.parametrize(("size", "expected"), [
    (1, a), (2, g), (3, node(g, c)), (4, k), (5, node(k, e)), (6, node(k, i)), (7, ROOT7),
])
def test_roots_of_the_rfc_example(size: int, expected: bytes) -> None:
    assert merkle.mth([a, b, c, d, e, f, g_][:size]) == expected
    assert merkle.root_hash(TREE7, size) == expected


def test_rfc_example_inclusion_of_d() -> None:
    # RFC 9162 2.1.5: "The inclusion proof for d is [c, g, l]."
    assert merkle.inclusion_path(TREE7, 3, 7) == [c, g, l_]
    assert merkle.verify_inclusion(d, 3, 7, [c, g, l_], ROOT7)


@pytest.mark.parametrize(("index", "size", "path"), [
    (0, 1, []), (0, 2, [b]), (1, 2, [a]), (2, 3, [g]), (0, 3, [b, c]), (6, 7, [i, k]), (4, 7, [f, j, k]),
    (4, 5, [k]), (5, 6, [e, k]),
])
def test_inclusion_paths_by_hand(index: int, size: int, path: list[bytes]) -> None:
    leaves = [a, b, c, d, e, f, g_]
    assert merkle.inclusion_path(TREE7, index, size) == path
    assert merkle.verify_inclusion(leaves[index], index, size, path, merkle.mth(leaves[:size]))


@pytest.mark.parametrize(("first", "second", "path"), [
    # RFC 9162 2.1.5: from 3 leaves (root k'=[g, c]) to 7: [c, d, g, l]; from 4: [l]; from 6: [i, j, k].
    (3, 7, [c, d, g, l_]), (4, 7, [l_]), (6, 7, [i, j, k]),
    (1, 2, [b]), (2, 3, [c]), (1, 7, [b, h, l_]), (7, 7, []),
])
def test_consistency_paths_of_the_rfc_example(first: int, second: int, path: list[bytes]) -> None:
    leaves = [a, b, c, d, e, f, g_]
    assert merkle.consistency_path(TREE7, first, second) == path
    assert merkle.verify_consistency(first, second, merkle.mth(leaves[:first]), merkle.mth(leaves[:second]), path)


def test_append_nodes_are_the_complete_subtrees_ending_at_the_new_leaf() -> None:
    assert merkle.append_nodes(a, 0, TREE7) == [a]
    assert merkle.append_nodes(b, 1, TREE7) == [b, g]
    assert merkle.append_nodes(d, 3, TREE7) == [d, h, k]
    assert merkle.append_nodes(g_, 6, TREE7) == [g_]


def test_generation_refuses_what_no_tree_has() -> None:
    with pytest.raises(ValueError, match="leaf index 7 is not in a tree of 7 leaves"):
        merkle.inclusion_path(TREE7, 7, 7)
    with pytest.raises(ValueError, match="no consistency proof from 0 leaves to 7"):
        merkle.consistency_path(TREE7, 0, 7)
    with pytest.raises(ValueError, match="no consistency proof from 5 leaves to 4"):
        merkle.consistency_path(TREE7, 5, 4)


def test_verifiers_refuse_malformed_input_without_raising() -> None:
    assert not merkle.verify_inclusion(d, 3, 7, [c, g, l_[:31]], ROOT7)     # short hash
    assert not merkle.verify_inclusion(d, 3, 7, [c, g, l_, a], ROOT7)       # one element too many
    assert not merkle.verify_inclusion(d, 3, 7, [c, g], ROOT7)              # one too few
    assert not merkle.verify_inclusion(d, 7, 7, [c, g, l_], ROOT7)          # index outside the tree
    assert not merkle.verify_inclusion(d, -1, 7, [c, g, l_], ROOT7)
    assert not merkle.verify_inclusion(d, True, 7, [c, g, l_], ROOT7)       # not an int
    assert not merkle.verify_inclusion(d, 3, 7, [c, g, "00" * 32], ROOT7)  # type: ignore[list-item]
    assert not merkle.verify_inclusion(d, 3, 7, [c, g, l_], ROOT7 + b"\x00")
    assert not merkle.verify_consistency(4, 7, k, ROOT7, [])                # empty path, sizes differ
    assert not merkle.verify_consistency(4, 7, k, ROOT7, [l_, l_])          # one too many
    assert not merkle.verify_consistency(0, 7, merkle.EMPTY_ROOT, ROOT7, [])
    assert not merkle.verify_consistency(7, 4, ROOT7, k, [l_])
    assert not merkle.verify_consistency(7, 7, ROOT7, ROOT7, [a])           # equal sizes: nothing to prove
    assert not merkle.verify_consistency(7, 7, ROOT7, k, [])                # equal sizes, different roots


# -- properties ---------------------------------------------------------------------------------

def leaves_of(n: int) -> list[bytes]:
    return [leaf(b"leaf %d" % index) for index in range(n)]


_CACHE: dict[int, list[bytes]] = {}


def cached_leaves(n: int) -> list[bytes]:
    """The first n leaves of one long list (hashing 2,000 leaves once, not per example)."""
    if not _CACHE:
        _CACHE[0] = leaves_of(2000)
    return _CACHE[0][:n]


class Levels:
    """Every complete subtree of one list of leaves, level by level (what a store keeps)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.levels = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append([merkle.node_hash(below[x], below[x + 1]) for x in range(0, len(below) - 1, 2)])

    def subtree(self, level: int, end: int) -> bytes:
        assert end % (1 << level) == 0
        return self.levels[level][(end >> level) - 1]


LEVELS = Levels(cached_leaves(2000))


def flips(proof: list[bytes], drawn: int) -> list[list[bytes]]:
    """The proof with one bit flipped, in each element: the drawn bit, the first and the last."""
    out = []
    for at, element in enumerate(proof):
        for bit in {0, drawn, 255}:
            changed = bytearray(element)
            changed[bit // 8] ^= 1 << (bit % 8)
            out.append([*proof[:at], bytes(changed), *proof[at + 1:]])
    return out


def flip(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


sizes = st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes, st.integers(0, 255))
def test_every_inclusion_proof_verifies_and_any_change_fails(mn: tuple[int, int], bit: int) -> None:
    m, n = mn
    index = m - 1
    leaves = cached_leaves(n)
    root = merkle.root_hash(LEVELS.subtree, n)
    assert root == merkle.mth(leaves)
    path = merkle.inclusion_path(LEVELS.subtree, index, n)
    assert len(path) <= n.bit_length()
    assert merkle.verify_inclusion(leaves[index], index, n, path, root)
    for bad in flips(path, bit):
        assert not merkle.verify_inclusion(leaves[index], index, n, bad, root)
    assert not merkle.verify_inclusion(flip(leaves[index], bit), index, n, path, root)
    assert not merkle.verify_inclusion(leaves[index], index, n, path, flip(root, bit))
    for other in (index - 1, index + 1):  # a neighbour's index, with this leaf or the neighbour's
        if 0 <= other < n:
            assert not merkle.verify_inclusion(leaves[index], other, n, path, root)
            assert not merkle.verify_inclusion(leaves[other], other, n, path, root)
    for size in (n - 1, n + 1, 2 * n):  # another size, against that size's own root
        if index < size <= 2000:
            assert not merkle.verify_inclusion(leaves[index], index, size, path, merkle.root_hash(LEVELS.subtree, size))
    if path:
        assert not merkle.verify_inclusion(leaves[index], index, n, path[:-1], root)
    assert not merkle.verify_inclusion(leaves[index], index, n, [*path, root], root)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes, st.integers(0, 255))
def test_every_consistency_proof_verifies_and_any_change_fails(mn: tuple[int, int], bit: int) -> None:
    m, n = mn
    old, new = merkle.root_hash(LEVELS.subtree, m), merkle.root_hash(LEVELS.subtree, n)
    assert old == merkle.mth(cached_leaves(m))
    path = merkle.consistency_path(LEVELS.subtree, m, n)
    assert len(path) <= 2 * n.bit_length()
    assert merkle.verify_consistency(m, n, old, new, path)
    for bad in flips(path, bit):
        assert not merkle.verify_consistency(m, n, old, new, bad)
    if m < n:  # with m == n the roots are equal: flipping one bit of either already differs
        assert not merkle.verify_consistency(m, n, flip(old, bit), new, path)
        assert not merkle.verify_consistency(m, n, old, flip(new, bit), path)
        assert not merkle.verify_consistency(m, n, old, new, path[:-1])
        assert not merkle.verify_consistency(m, n, old, new, [*path, new])
    else:
        assert not merkle.verify_consistency(m, n, flip(old, bit), new, path)
    for first, second in ((m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1)):  # another size, with its roots
        if 0 < first <= second <= 2000 and (first, second) != (m, n):
            assert not merkle.verify_consistency(first, second, merkle.root_hash(LEVELS.subtree, first),
                                                 merkle.root_hash(LEVELS.subtree, second), path)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 2000))
def test_append_nodes_build_the_same_levels(n: int) -> None:
    """Appending leaf n-1 produces exactly the complete subtrees that end at it."""
    nodes = merkle.append_nodes(cached_leaves(n)[-1], n - 1, LEVELS.subtree)
    assert nodes == [LEVELS.subtree(level, n) for level in range(len(nodes))]
    assert len(nodes) == (n & -n).bit_length()
