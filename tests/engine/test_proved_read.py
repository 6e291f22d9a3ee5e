"""Reads with proofs (engine/proved_read.py): each version's tx, its rebuilt canonical entry (the very
leaf the tree holds) and an inclusion path that verifies; deduplication; the limits and refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from engine import Limits, Store, errors, merkle
from engine.proved_read import ProvedRead
from engine.records import Record
from tests.engine.clock import Clock

LONG = "long:" + "x" * 300  # a key kept in a bucket (past the short-key length)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "store", sync=False, clock=clock) as s:
        yield s


def _fill(s: Store, clock: Clock) -> None:
    ledger = s.namespace("ledger")
    ledger.put({"a": 1, "b": {"x": [1, 2]}, "bin": b"\x00\x01"}, note={"by": "alice"})  # tx 1
    ledger.put({"c": "three"}, metadata={"m": 1})                                      # tx 2
    ledger.clear(["a"])                                                                 # tx 3
    ledger.delete(["b"])                                                                # tx 4
    with s.transaction() as t:                                                          # tx 5: two namespaces
        t.put("ledger", LONG, 5)
        t.put("other", "c", "other's c")
    s.stream("events").publish([{"e": 1}])                                              # tx 6: a stream run
    ledger.put({"soon": 1}, ttl=10)                                                     # tx 7
    clock.now += 11                                                                     # soon expires


def _check(result: ProvedRead) -> None:
    """Every entry is the leaf the tree holds for its tx and its path verifies against the head."""
    root = bytes.fromhex(result.head.root)  # type: ignore[arg-type]
    for e in result.entries:
        leaf = merkle.leaf_hash(e.entry)
        assert merkle.verify_inclusion(leaf, e.tx - 1, result.head.size, [bytes.fromhex(p) for p in e.path], root)


def test_each_key_gets_its_version_tx_and_each_tx_its_entry_once(store: Store, clock: Clock) -> None:
    _fill(store, clock)
    keys = ["a", "b", "bin", "c", LONG, "soon", "never"]
    result = store.namespace("ledger").proved_read(keys)
    assert result.tx == 7 and result.head == store.head() and result.head.size == 7
    assert result.records == store.namespace("ledger").read(keys).records == [
        Record("a", None, 3, False, True), Record("bin", b"\x00\x01", 1, True), Record("c", "three", 2),
        Record(LONG, 5, 5)]
    assert result.versions == [("a", 3), ("b", 4), ("bin", 1), ("c", 2), (LONG, 5), ("soon", 7), ("never", None)]
    assert [e.tx for e in result.entries] == [1, 2, 3, 4, 5, 7]
    for e in result.entries:
        assert merkle.leaf_hash(e.entry).hex() == store.inclusion_proof(e.tx).leaf_hash
        assert e.path == store.inclusion_proof(e.tx).path
    _check(result)
    tx1 = msgpack.unpackb(result.entries[0].entry)
    assert tx1[:3] == [1, tx1[1], {"by": "alice"}] and tx1[3][0][:3] == ["ledger", 0, ["a", "b", "bin"]]
    assert tx1[3][0][3][2] == msgpack.packb(b"\x00\x01")  # the exact record bytes the tx stored


def test_an_old_tx_is_proven_to_the_latest_head(store: Store, clock: Clock) -> None:
    _fill(store, clock)
    at2 = store.namespace("ledger").proved_read(["a", "c", "b"], tx=2, metadata=True, fields=["updated_at"])
    assert at2.tx == 2 and at2.head.size == 7  # read at tx 2, proven in today's tree
    assert at2.versions == [("a", 1), ("c", 2), ("b", 1)] and [e.tx for e in at2.entries] == [1, 2]
    assert at2.records[1].metadata == {"m": 1} and at2.records[1].updated_at is not None
    _check(at2)


def test_nothing_to_prove(store: Store, clock: Clock) -> None:
    empty = store.namespace("ledger").proved_read(["a"])
    assert (empty.records, empty.tx, empty.versions, empty.entries) == ([], 0, [("a", None)], [])
    _fill(store, clock)
    assert store.namespace("nowhere").proved_read(["a"]).versions == [("a", None)]
    assert store.namespace("ledger").proved_read([]).entries == []
    with pytest.raises(errors.FutureTx):
        store.namespace("ledger").proved_read(["a"], tx=8)
    with pytest.raises(errors.InvalidParameters, match="keys must be a list of str"):
        store.namespace("ledger").proved_read("a")
    with pytest.raises(errors.BatchTooLarge):
        store.namespace("ledger").proved_read([f"k{i}" for i in range(store.limits.max_read_keys + 1)])


def test_a_read_whose_entries_pass_the_limit_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path, sync=False, limits=Limits(max_proof_bytes=1000)) as s:
        s.namespace("ns").put({f"k{i}": "v" * 100 for i in range(20)})  # one tx of about 2 KB
        s.namespace("ns").put({"small": 1})
        assert [e.tx for e in s.namespace("ns").proved_read(["small"]).entries] == [2]
        with pytest.raises(errors.ProofTooLarge) as refused:
            s.namespace("ns").proved_read(["small", "k3"])
        assert refused.value.code == "PROOF_TOO_LARGE"
        assert refused.value.details == {"tx": 1, "limit": 1000}
        assert refused.value.message.startswith("proving this read needs the whole log entry of tx 1, and the "
                                                "entries it needs pass 1000 bytes (Limits.max_proof_bytes)")


def test_an_entry_whose_records_were_compacted_cannot_be_proven(tmp_path: Path) -> None:
    with Store.open(tmp_path, sync=False) as s:
        ns = s.namespace("ns")
        ns.put({"kept": 1, "changed": 1})  # tx 1
        ns.put({"changed": 2})             # tx 2
        ns.put({"other": 3})               # tx 3
        s.compact(3)  # tx 1's version of "changed" is freed; "kept" still reads tx 1's version
        assert ns.read(["kept"]).records == [Record("kept", 1, 1)]
        with pytest.raises(errors.TxCompacted, match=r"^tx 1's records were compacted away"):
            ns.proved_read(["kept"])
        assert [e.tx for e in ns.proved_read(["changed", "other"]).entries] == [2, 3]


def test_a_dropped_namespace_proves_its_drop(tmp_path: Path) -> None:
    with Store.open(tmp_path, sync=False) as s:
        ns = s.namespace("ns")
        ns.put({"a": 1, "b": 2})  # tx 1
        s.drop_namespace("ns")    # tx 2: deletes a and b
        ns.put({"a": 3})          # tx 3
        for tx, versions, entries in ((1, [("a", 1), ("b", 1)], [1]), (2, [("a", 2), ("b", 2)], [2]),
                                      (3, [("a", 3), ("b", 2)], [2, 3])):
            result = ns.proved_read(["a", "b"], tx=tx)
            assert result.records == ns.read(["a", "b"], tx=tx).records
            assert (result.versions, [e.tx for e in result.entries]) == (versions, entries)
            _check(result)
