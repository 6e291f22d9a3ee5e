"""The stored Merkle tree: its leaves are the chain's canonical entries, its proofs verify, older
stores build it on open, and compaction, import and tampering keep it honest.

Known answers reuse the hand-spelled entry bytes of test_chain_vectors (never engine.txlog's
encoder): leaf(T) = SHA-256(0x00 || entry(T)).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from pathlib import Path

import lmdb
import msgpack
import pytest

from engine import Head, Store, errors, export_history, import_history, merkle, txtree_build
from engine.encoding import inv_tx, keypart, ns_prefix
from tests.engine.raw import open_raw
from tests.engine.test_chain_vectors import TX1_BODY, TX2_BODY, TX3_BODY
from tests.engine.test_chain_vectors import _build as build_three


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


LEAVES = [sha(b"\x00" + body) for body in (TX1_BODY, TX2_BODY, TX3_BODY)]
ROOT3 = sha(b"\x01" + sha(b"\x01" + LEAVES[0] + LEAVES[1]) + LEAVES[2])


def _raw(path: Path) -> lmdb.Environment:
    return open_raw(path)


def _dbs(txn: lmdb.Transaction, env: lmdb.Environment) -> dict[str, object]:
    return {name: env.open_db(name.encode(), txn=txn) for name in ("txlog", "txtree")}


def _tree_keys(txn: lmdb.Transaction, dbs: dict[str, object]) -> dict[int, tuple[object, bytes]]:
    """Every tree entry's tx -> (database, key): ``txlog[tx | 02]``, and ``txtree[tx]`` in an older layout."""
    found: dict[int, tuple[object, bytes]] = {struct.unpack(">Q", bytes(k))[0]: (dbs["txtree"], bytes(k))
                                              for k in txn.cursor(db=dbs["txtree"]).iternext(values=False)}
    for k in txn.cursor(db=dbs["txlog"]).iternext(values=False):
        if len(k) == 9 and k[8] == 2:
            found[struct.unpack(">Q", bytes(k[:8]))[0]] = (dbs["txlog"], bytes(k))
    return found


def _on_tree(where: Path | Store, run: Callable[[lmdb.Transaction, dict[str, object]], object],
             write: bool = False) -> object:
    """``run(txn, dbs)`` through the open store's environment (LMDB allows one per process), or raw LMDB."""
    if isinstance(where, Store):
        dbs = where._backend.dbs
        return (where._backend.write if write else where._backend.read)(lambda txn: run(txn, dbs))
    env = _raw(where)
    with env.begin(write=write) as txn:
        out = run(txn, _dbs(txn, env))
    env.close()
    return out


def _tree_bytes(where: Path | Store) -> dict[int, bytes]:
    """Every tree entry, tx -> bytes, wherever it is stored."""
    def run(txn: lmdb.Transaction, dbs: dict[str, object]) -> dict[int, bytes]:
        return {tx: bytes(txn.get(key, db=db)) for tx, (db, key) in _tree_keys(txn, dbs).items()}
    return _on_tree(where, run)  # type: ignore[return-value]


def _wipe_tree(where: Path | Store, keep: int = 0) -> None:
    """Make the store look older than its tree: drop every entry above tx ``keep``."""
    def run(txn: lmdb.Transaction, dbs: dict[str, object]) -> None:
        for tx, (db, key) in _tree_keys(txn, dbs).items():
            if tx > keep:
                txn.delete(key, db=db)
    _on_tree(where, run, write=True)


def _to_older_layout(where: Path | Store, upto: int) -> None:
    """Move the tree entries of txs ``1..upto`` to ``txtree[tx]``, where an older engine kept them."""
    def run(txn: lmdb.Transaction, dbs: dict[str, object]) -> None:
        for tx, (db, key) in _tree_keys(txn, dbs).items():
            if tx <= upto and db is dbs["txlog"]:
                value = bytes(txn.get(key, db=db))
                txn.delete(key, db=db)
                txn.put(key[:8], value, db=dbs["txtree"])
    _on_tree(where, run, write=True)


def test_leaves_and_root_are_the_known_answers(tmp_path: Path) -> None:
    build_three(tmp_path)
    assert _tree_bytes(tmp_path) == {1: LEAVES[0], 2: LEAVES[1] + sha(b"\x01" + LEAVES[0] + LEAVES[1]), 3: LEAVES[2]}
    with Store.open(tmp_path, sync=False) as store:
        head = store.head()
        assert head == (3, store.tx_info(3).hash)  # type: ignore[union-attr]  # still the receipt pair
        assert (head.tx, head.size, head.root) == (3, 3, ROOT3.hex())
        assert head.to_dict() == {"tx": 3, "hash": head.hash, "size": 3, "root": ROOT3.hex()}
        proof = store.inclusion_proof(2)
        assert proof.to_dict() == {"tx": 2, "size": 3, "leaf_hash": LEAVES[1].hex(),
                                   "path": [LEAVES[0].hex(), LEAVES[2].hex()]}
        assert store.consistency_proof(2, 3).to_dict() == {"from": 2, "to": 3, "path": [LEAVES[2].hex()]}
        assert store.consistency_proof(3).to_dict() == {"from": 3, "to": 3, "path": []}


def test_an_empty_store_has_the_empty_root(tmp_path: Path) -> None:
    with Store.open(tmp_path, sync=False) as store:
        head = store.head()
        assert (head.tx, head.hash, head.size, head.root) == (0, "00" * 32, 0, merkle.EMPTY_ROOT.hex())
        with pytest.raises(errors.FutureTx, match=r"^tx 1 is above the latest committed tx \(0\): the store is empty$"):
            store.inclusion_proof(1)
        with pytest.raises(errors.FutureTx, match=r"^from 1 is above the latest committed tx \(0\)"):
            store.consistency_proof(1)


def _mixed(store: Store, n: int) -> list[tuple[int, str]]:
    """``n`` txs of every kind (puts, clears, deletes, publishes, a stream drop); the head after each."""
    ns, stream = store.namespace("ns"), store.stream("events")
    heads = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            ns.put({f"k{i}": i, "shared": {"i": i}}, note={"i": i})
        elif kind == 1:
            ns.clear(["shared"])
        elif kind == 2:
            stream.publish([{"i": i}, b"raw"])
        elif kind == 3:
            ns.delete([f"k{i - 3}"])
        else:
            ns.put({"k" * 505: f"bucketed {i}"})  # a long key lives in a bucket; its record is still hashed
        heads.append(store.head())
    return heads


def test_every_proof_of_a_mixed_store_verifies_against_its_heads(store: Store) -> None:
    heads = _mixed(store, 40)
    store.drop_stream("events")
    heads.append(store.head())
    n = len(heads)
    roots = {h.size: bytes.fromhex(h.root) for h in heads}  # type: ignore[attr-defined,arg-type]
    for size in range(1, n + 1):
        for tx in range(1, size + 1):
            proof = store.inclusion_proof(tx, size)
            assert (proof.tx, proof.size) == (tx, size)
            assert merkle.verify_inclusion(bytes.fromhex(proof.leaf_hash), tx - 1, size,
                                           [bytes.fromhex(p) for p in proof.path], roots[size])
        for first in range(1, size + 1):
            path = [bytes.fromhex(p) for p in store.consistency_proof(first, size).path]
            assert merkle.verify_consistency(first, size, roots[first], roots[size], path)
    assert store.verify().ok


def test_a_tree_stored_in_the_older_layout_proves_the_same_and_grows(store: Store) -> None:
    """Stores written before the tree moved into the tx log's database keep their entries in ``txtree``:
    every head, proof and check answers the same over them, and the txs written next extend that tree."""
    heads = _mixed(store, 20)
    proofs = [(store.inclusion_proof(tx, size).path, store.consistency_proof(tx, size).path)
              for size in (7, 16, 20) for tx in range(1, size + 1)]
    whole = _tree_bytes(store)
    _to_older_layout(store, 16)  # txs 1..16 as an older engine stored them, 17..20 as this one
    assert store._backend.read(lambda txn: len(list(txn.cursor(db=store._backend.dbs["txtree"])))) == 16
    assert _tree_bytes(store) == whole and store.head() == heads[-1] and store.head().root == heads[-1].root
    assert proofs == [(store.inclusion_proof(tx, size).path, store.consistency_proof(tx, size).path)
                      for size in (7, 16, 20) for tx in range(1, size + 1)]
    _to_older_layout(store, 20)  # the whole tree there: the next tx reads its predecessor's entry from txtree
    more = _mixed(store, 3)
    roots = {h.size: bytes.fromhex(h.root) for h in heads + more}  # type: ignore[arg-type]
    for tx in range(1, 24):
        path = [bytes.fromhex(p) for p in store.inclusion_proof(tx, 23).path]
        assert merkle.verify_inclusion(bytes.fromhex(store.inclusion_proof(tx, 23).leaf_hash), tx - 1, 23, path,
                                       roots[23])
    assert merkle.verify_consistency(20, 23, roots[20], roots[23],
                                     [bytes.fromhex(p) for p in store.consistency_proof(20, 23).path])
    assert store.verify().ok


def test_bad_sizes_get_exact_errors(store: Store) -> None:
    _mixed(store, 5)
    cases = [
        (lambda: store.inclusion_proof(6, 6), errors.FutureTx, r"^size 6 is above the latest committed tx \(5\)$"),
        (lambda: store.inclusion_proof(4, 3), errors.InvalidParameters,
         r"^tx must be an integer from 1 to the size 3, not 4$"),
        (lambda: store.inclusion_proof(0), errors.InvalidParameters, r"^tx must be an integer from 1 to the size 5, "),
        (lambda: store.inclusion_proof(1, 0), errors.InvalidParameters,
         r"^size must be a tx number of at least 1, not 0$"),
        (lambda: store.inclusion_proof(True), errors.InvalidParameters, r"not True$"),
        (lambda: store.consistency_proof(2, 9), errors.FutureTx, r"^to 9 is above the latest committed tx \(5\)$"),
        (lambda: store.consistency_proof(4, 3), errors.InvalidParameters,
         r"^from must be an integer from 1 to 3 \(the size proved to extend it\), not 4$"),
        (lambda: store.consistency_proof(0, 3), errors.InvalidParameters, r"not 0$"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


def test_an_older_store_builds_its_tree_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(tmp_path, sync=False) as store:
        _mixed(store, 23)
        root = store.head().root
    whole = _tree_bytes(tmp_path)
    _wipe_tree(tmp_path, keep=4)
    assert sorted(_tree_bytes(tmp_path)) == [1, 2, 3, 4]
    monkeypatch.setattr(txtree_build, "CHUNK", 7)  # several write transactions
    seen: list[tuple[int, int]] = []
    with Store.open(tmp_path, sync=False) as store:
        assert _tree_bytes(store) == whole
        assert store.head().root == root
        assert txtree_build.catch_up(store._backend, lambda done, latest: seen.append((done, latest))) == 0
        _wipe_tree(store)
        assert txtree_build.catch_up(store._backend, lambda done, latest: seen.append((done, latest))) == 23
        assert seen == [(7, 23), (14, 23), (21, 23), (23, 23)]
        assert _tree_bytes(store) == whole
        store.namespace("ns").put({"after": 1})  # appends continue where the build ended
        assert store.inclusion_proof(24).size == 24


def test_writes_while_the_tree_is_missing_skip_their_leaf_and_the_build_adds_it(store: Store) -> None:
    _mixed(store, 6)
    root6 = store.head().root
    _wipe_tree(store, keep=2)
    store.namespace("ns").put({"x": 1})  # tx 7: tx 6 has no tree entry, so neither does tx 7
    assert sorted(_tree_bytes(store)) == [1, 2]
    assert store.head().root is None
    with pytest.raises(errors.TxCompacted, match=r"^the Merkle tree covers txs 1 to 2 only"):
        store.inclusion_proof(1, 3)
    assert store.inclusion_proof(1, 2).size == 2  # the prefix it has still proves
    assert txtree_build.catch_up(store._backend) == 5
    assert store.consistency_proof(6, 7).from_size == 6
    roots = {6: bytes.fromhex(root6), 7: bytes.fromhex(store.head().root)}  # type: ignore[arg-type]
    path = [bytes.fromhex(p) for p in store.consistency_proof(6, 7).path]
    assert merkle.verify_consistency(6, 7, roots[6], roots[7], path)


def test_compaction_keeps_every_proof(store: Store) -> None:
    heads = _mixed(store, 20)
    before = _tree_bytes(store)
    store.compact(15)
    assert _tree_bytes(store) == before
    proof = store.inclusion_proof(3, 20)
    assert merkle.verify_inclusion(bytes.fromhex(proof.leaf_hash), 2, 20, [bytes.fromhex(p) for p in proof.path],
                                   bytes.fromhex(heads[-1].root))  # type: ignore[attr-defined]


def test_a_store_compacted_before_it_had_a_tree_builds_the_prefix_it_can(tmp_path: Path) -> None:
    with Store.open(tmp_path, sync=False) as store:
        _mixed(store, 20)
        store.compact(15)  # frees k0's put@1 (deleted at 4), shared@1 (cleared at 2), ...
        head = store.head()
    _wipe_tree(tmp_path)
    with Store.open(tmp_path, sync=False) as store:
        assert sorted(_tree_bytes(store)) == []  # tx 1's record of "shared" is gone: no leaf 1
        again = store.head()
        assert (again.tx, again.hash, again.root) == (head.tx, head.hash, None)
        with pytest.raises(errors.TxCompacted, match=r"^the Merkle tree covers txs 1 to 0 only: this store was "
                                                     r"compacted before it had a tree"):
            store.consistency_proof(1, 20)
        assert store.verify().ok  # the chain is untouched


def test_the_build_refuses_a_record_the_chain_does_not_certify(tmp_path: Path) -> None:
    with Store.open(tmp_path, sync=False) as store:
        _mixed(store, 10)
    _wipe_tree(tmp_path)
    env = _raw(tmp_path)
    with env.begin(write=True) as txn:
        entry = msgpack.unpackb(txn.get(b"ns", db=env.open_db(b"namespaces", txn=txn)))
        versions = env.open_db(b"versions", txn=txn)
        key = keypart(ns_prefix(entry[0]), b"k5") + inv_tx(6)
        txn.put(key, msgpack.packb(666), db=versions)  # tx 6 put k5 = 5
    env.close()
    with Store.open(tmp_path, sync=False) as store:
        assert sorted(_tree_bytes(store)) == [1, 2, 3, 4, 5]
        assert store.head().root is None
        assert store.verify().bad_tx == 6


def test_a_replayed_history_has_the_same_tree(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a", sync=False) as source:
        _mixed(source, 17)
        rows = list(export_history(source))
        head = source.head()
    with Store.open(tmp_path / "b", sync=False) as copy:
        import_history(copy, rows)
        assert copy.head().root == head.root and copy.head() == head
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")


def _rewrite_tree(store: Store, tx: int, change: Callable[[bytes], bytes]) -> None:
    def run(txn: lmdb.Transaction, dbs: dict[str, object]) -> None:
        db, key = _tree_keys(txn, dbs)[tx]
        txn.put(key, change(bytes(txn.get(key, db=db))), db=db)
    _on_tree(store, run, write=True)


def _rebuild_above(store: Store, tx: int, leaf: bytes) -> None:
    """Replace tx's leaf and recompute every stored node from there on: a consistent forged tree."""
    whole = _tree_bytes(store)
    leaves = [whole[t][:32] for t in sorted(whole)]
    leaves[tx - 1] = leaf
    forged: dict[int, bytes] = {}

    def subtree(level: int, end: int) -> bytes:
        return forged[end][32 * level:32 * level + 32]
    for t in range(1, len(leaves) + 1):
        forged[t] = b"".join(merkle.append_nodes(leaves[t - 1], t - 1, subtree))
    def run(txn: lmdb.Transaction, dbs: dict[str, object]) -> None:
        where = _tree_keys(txn, dbs)
        for t, v in forged.items():
            txn.put(where[t][1], v, db=where[t][0])
    _on_tree(store, run, write=True)


def test_verify_checks_the_tree_leaf_by_leaf_and_node_by_node(store: Store) -> None:
    _mixed(store, 12)
    assert store.verify().ok
    _rewrite_tree(store, 8, lambda raw: raw[:40] + bytes([raw[40] ^ 1]) + raw[41:])  # node over txs 7..8
    report = store.verify()
    assert (report.ok, report.bad_tx, report.checked) == (False, 8, 7)
    assert report.problem == "a Merkle tree node ending at this tx is not the hash of its children"
    _rebuild_above(store, 8, _tree_bytes(store)[8][:32])  # repaired
    assert store.verify().ok
    _rebuild_above(store, 5, bytes(32))  # a forged leaf with every node above it recomputed
    report = store.verify()
    assert (report.ok, report.bad_tx) == (False, 5)
    assert report.problem == "the Merkle leaf does not match the tx's log entry and records"
    _rewrite_tree(store, 3, lambda raw: raw + raw)
    assert store.verify().problem == "the Merkle tree entry of this tx is 64 bytes, not 32"


def test_verify_checks_the_tree_below_the_horizon_by_its_nodes(store: Store) -> None:
    _mixed(store, 12)
    store.compact(11)
    assert store.verify().ok  # leaves below 11 cannot be recomputed (records freed), nodes still are
    _rewrite_tree(store, 4, lambda raw: bytes(32) + raw[32:])
    report = store.verify()
    assert (report.ok, report.bad_tx) == (False, 4)
    assert report.problem == "a Merkle tree node ending at this tx is not the hash of its children"


def test_a_head_is_the_receipt_pair_and_heads_differ_by_root() -> None:
    a, b = Head(3, "ab" * 32, "01" * 32), Head(3, "ab" * 32, "02" * 32)
    pair = (3, "ab" * 32)
    assert a == pair and pair == a and tuple(a) == pair
    assert a != b and (a == b) is False and a == Head(3, "ab" * 32, "01" * 32)
    assert repr(a) == f"Head(tx=3, hash={'ab' * 32!r}, root={'01' * 32!r})"
    tx, digest = a
    assert (tx, digest, a.size, a.tx, a.hash) == (3, "ab" * 32, 3, 3, "ab" * 32)
