"""engine.etcd.storage.EtcdStorage on a real 3-member etcd cluster: the write path (one tx = one etcd txn,
the exact bytes stored, expect, no-op deletes, etcd's limits, retry safety), the tx numbering around
housekeeping txns, reads at any tx, scans, history and the tx log, puts with an expiry or metadata (the
records, the expiry index, the read rule at a tx's commit time and at now, ``created_at``, ``expect`` on
an expired value), with exact answers.

Every test has its own store prefix on the module's cluster. The module's cluster runs with
``--max-txn-ops 32`` so the operation limit is reached with small batches.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import ormsgpack
import pytest

from engine import Store, errors
from engine import expiry as lmdb_expiry
from engine.codec import CLEAR, CLEAR_RECORD, DELETE, DELETE_RECORD, PUT, extended_record, pack_value, rich_record
from engine.etcd import EtcdClient, Range, prefix_end
from engine.etcd.commit import EtcdLimits, commit, fingerprint, guarded_keys, newest, plan
from engine.etcd.kv import Compare, Put, Txn, TxnResult, request_json, response_of
from engine.etcd.once import commit_once
from engine.etcd.storage import EtcdStorage
from engine.etcd.txlog import TxEntry
from engine.history import Change, Version
from engine.records import Item, Limits, NamespaceInfo, ReadResult, Record
from engine.txlog import GENESIS, Operation, chain_hash
from engine.txn import prepare_puts
from tests.engine.clock import T0, Clock

from .cluster import EtcdCluster
from .lossy_proxy import AnswerDroppingProxy

MAX_TXN_OPS = 32
ETCD_ARGS = ["--max-txn-ops", str(MAX_TXN_OPS)]
US = round(T0 * 1_000_000)


@pytest.fixture
def storage(etcd: EtcdClient, request: pytest.FixtureRequest, clock: Clock) -> Iterator[EtcdStorage]:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", request.node.name)
    yield EtcdStorage.open(etcd, f"t/{name}", etcd_limits=EtcdLimits(max_txn_ops=MAX_TXN_OPS), clock=clock)


def revision(etcd: EtcdClient) -> int:
    return etcd.range(b"\0").revision


@pytest.fixture
def unswept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes record no due expiry first (engine.expiry.SWEEP_PER_WRITE = 0, which both backends read):
    for the tests of what reads and writes do while an expired value is still stored."""
    monkeypatch.setattr(lmdb_expiry, "SWEEP_PER_WRITE", 0)


def rec(key: str, value: object, tx: int, cleared: bool = False) -> Record:
    return Record(key, value, tx, type(value) is bytes, cleared)


def unhashed(entry: TxEntry | None) -> TxEntry | None:
    """``entry`` without its chain hash (tests/etcd/test_chain.py checks hashes; these check the log)."""
    return None if entry is None else dataclasses.replace(entry, hash=None)


def at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


# -- the write path ------------------------------------------------------------------------------------


def test_txs_are_numbered_from_one_and_each_is_one_etcd_revision(storage: EtcdStorage, etcd: EtcdClient) -> None:
    assert storage.latest_tx == 0
    start = revision(etcd)
    assert start == storage.timeline.base
    assert storage.put("a", {"k1": 1, "k2": "two"}) == 1
    assert storage.put("b", {"k1": b"\x00bin"}) == 2
    assert storage.clear("a", ["k1"]) == 3
    assert storage.delete("a", ["k2"]) == 4
    assert revision(etcd) == start + 4
    assert storage.latest_tx == 4


def test_records_are_the_lmdb_engines_bytes(storage: EtcdStorage, etcd: EtcdClient) -> None:
    long_key = "L" * 500  # over 497 bytes: LMDB's long form, whose record names the key
    storage.put("ns", {"plain": {"a": [1, 2.5, None]}, long_key: "v", "short": 1})
    storage.clear("ns", ["plain"])
    storage.delete("ns", [long_key, "short"])
    layout = storage.layout

    def value(key: bytes, rev: int = 0) -> bytes | None:
        kvs = etcd.range(key, revision=rev or None).kvs
        return kvs[0].value if kvs else None

    first = storage.timeline.revision_of(1)
    assert value(layout.data("ns", b"plain"), first) == pack_value({"a": [1, 2.5, None]})
    assert value(layout.data("ns", long_key.encode()), first) == extended_record(PUT, long_key, pack_value("v"))
    assert value(layout.data("ns", b"plain")) == CLEAR_RECORD
    assert value(layout.data("ns", long_key.encode())) is None  # a delete is an etcd delete
    assert value(layout.marker("ns", long_key.encode())) == extended_record(DELETE, long_key, None)
    assert value(layout.marker("ns", b"short")) == DELETE_RECORD
    assert value(layout.marker("ns", b"plain")) is None


def test_the_bookkeeping_entry_registry_and_namespace_keys(storage: EtcdStorage, etcd: EtcdClient,
                                                           clock: Clock) -> None:
    storage.put("a", {"x": 1}, note={"by": "me"})
    clock.now += 1
    with storage.transaction() as t:
        t.put("a", "y", 2)
        t.delete("a", "x")
        t.put("b", "z", 3)
    assert t.tx == 2
    start, end = storage.layout.requests
    entries = etcd.range(start, end).kvs
    assert len(entries) == 2
    log = sorted((kv.mod_revision, msgpack.unpackb(kv.value)) for kv in entries)
    r1, r2 = storage.timeline.revision_of(1), storage.timeline.revision_of(2)
    assert [r for r, _ in log] == [r1, r2]
    assert [[*e[:3], e[4]] for _, e in log] == [
        [US, {"by": "me"}, [["a", PUT, ["x"]]], None],
        [US + 1_000_000, None, [["a", PUT, ["y"]], ["a", DELETE, ["x"]], ["b", PUT, ["z"]]], None],
    ]
    assert [len(e[3]) for _, e in log] == [16, 16]  # the request's fingerprint
    registries = etcd.range(*storage.layout.registries).kvs
    registry = {kv.key: (kv.mod_revision, ormsgpack.unpackb(kv.value)) for kv in registries}
    assert registry == {storage.layout.registry("a"): (r1, {"created_us": US}),
                        storage.layout.registry("b"): (r2, {"created_us": US + 1_000_000})}
    assert etcd.range(storage.layout.updated("a")).kvs[0].mod_revision == r2
    assert etcd.range(storage.layout.updated("b")).kvs[0].mod_revision == r2
    assert storage.namespaces() == ["a", "b"]


def test_expect_conflict_is_the_lmdb_engines_and_writes_nothing(storage: EtcdStorage, etcd: EtcdClient) -> None:
    storage.put("a", {"k": 1})
    storage.put("a", {"k": 2})
    before = revision(etcd)
    with pytest.raises(errors.Conflict) as info:
        storage.put("a", {"k": 3, "n": 0}, expect={"n": 0, "k": 1, "gone": 5})
    assert info.value.message == "2 expectation(s) failed; key 'k' in 'a' was last changed at tx 2, not 1"
    assert info.value.details == {"conflicts": [{"namespace": "a", "key": "k", "expected": 1, "actual": 2},
                                                {"namespace": "a", "key": "gone", "expected": 5, "actual": 0}]}
    assert revision(etcd) == before
    with pytest.raises(errors.Conflict) as info:  # a tx beyond etcd's int64 revisions: no request can name it
        storage.put("a", {"k": 3}, expect={"k": 2**70})
    assert info.value.details == {"conflicts": [{"namespace": "a", "key": "k", "expected": 2**70, "actual": 2}]}
    assert storage.put("a", {"k": 3}, expect={"k": 2, "n": 0}) == 3
    assert storage.delete("a", ["k"], expect={"k": 3}) == 4
    assert storage.put("a", {"k": 5}, expect={"k": 0}) == 5


def test_no_op_deletes_take_no_tx(storage: EtcdStorage, etcd: EtcdClient) -> None:
    storage.put("a", {"k": 1, "j": 2})
    storage.delete("a", ["j"])
    before = revision(etcd)
    assert storage.delete("a", ["j", "never"]) == 2  # only no-ops: no tx, the latest answers
    assert storage.delete("other", ["x"]) == 2  # a namespace never written
    assert revision(etcd) == before
    assert storage.delete("a", ["never", "k", "j"], note={"n": 1}) == 3
    entry = storage.tx_info(3)
    assert entry is not None
    assert (entry.note, entry.operations) == ({"n": 1}, [Operation("a", "k", "delete")])
    with storage.transaction() as t:  # the delete is left out; the neighbouring puts merge into one run
        t.put("a", "p", 1)
        t.delete("a", "never")
        t.put("a", "q", 2)
    assert t.tx == 4
    assert [(o.key, o.op) for o in storage.tx_info(4).operations] == [("p", "put"), ("q", "put")]  # type: ignore[union-attr]
    # A failed expect wins over a no-op (as on LMDB: conditions are checked first).
    with pytest.raises(errors.Conflict):
        storage.delete("a", ["never"], expect={"p": 1})


def test_bad_input_raises_the_engines_errors_and_writes_nothing(storage: EtcdStorage, etcd: EtcdClient) -> None:
    before = revision(etcd)
    with pytest.raises(errors.InvalidValue, match="value is not storable"):
        storage.put("a", {"k": float("nan")})
    with pytest.raises(errors.InvalidNamespace):
        storage.put("a/b", {"k": 1})
    with pytest.raises(errors.EmptyBatch):
        storage.delete("a", [])
    with pytest.raises(errors.KeyTooLong):
        storage.put("a", {"k" * 513: 1})
    with pytest.raises(errors.InvalidParameters, match="note must be a JSON object"):
        storage.put("a", {"k": 1}, note="x")  # type: ignore[arg-type]
    with pytest.raises(errors.EmptyBatch):
        storage.transaction().commit()
    assert revision(etcd) == before


def test_etcds_limits_are_batch_and_value_too_large_before_sending(storage: EtcdStorage, etcd: EtcdClient) -> None:
    before = revision(etcd)
    # 27 puts + bookkeeping + log index + P/u + the registry's nested txn + the housekeeping range = 32,
    # + 1 for the nesting
    with pytest.raises(errors.BatchTooLarge) as info:
        storage.put("a", {f"k{i}": i for i in range(27)})
    assert info.value.details == {"count": 27, "ops": 33, "limit": MAX_TXN_OPS}
    assert storage.put("a", {f"k{i}": i for i in range(26)}) == 1
    assert storage.timeline.registered == {"a": storage.timeline.revision_of(1)}
    with pytest.raises(errors.BatchTooLarge) as info:  # the same limit with the namespace seen registered
        storage.put("a", {f"k{i}": i for i in range(27)})
    assert info.value.details == {"count": 27, "ops": 33, "limit": MAX_TXN_OPS}
    with pytest.raises(errors.BatchTooLarge) as info:  # deletes count twice (the marker) and compare
        storage.delete("a", [f"k{i}" for i in range(14)])
    assert info.value.details["ops"] == 34
    assert storage.delete("a", [f"k{i}" for i in range(12)]) == 2
    big = "x" * (storage.etcd_limits.max_request_bytes - 8000)
    with pytest.raises(errors.ValueTooLarge) as info:
        storage.put("a", {"big": big})
    assert info.value.details["limit"] == storage.etcd_limits.max_request_bytes - 8192
    with pytest.raises(errors.BatchTooLarge):  # each fits alone, not together
        storage.put("a", {"h1": big[:800_000], "h2": big[:800_000]})
    assert revision(etcd) == before + 2


def test_a_retried_request_commits_once(storage: EtcdStorage, etcd: EtcdClient) -> None:
    batch = prepare_puts("a", {"k": 1}, Limits())
    limits = EtcdLimits(max_txn_ops=MAX_TXN_OPS)
    assert commit(storage.timeline, batch, None, US, limits, request_id=b"req-1") == 1
    before = revision(etcd)
    # The same request again (a retry after a lost answer): its first commit's tx, no second write.
    assert commit(storage.timeline, batch, None, US + 5, limits, request_id=b"req-1") == 1
    assert revision(etcd) == before
    with pytest.raises(errors.IdempotencyKeyReused):  # the id reused for another request
        commit(storage.timeline, prepare_puts("a", {"k": 2}, Limits()), None, US, limits, request_id=b"req-1")
    assert fingerprint(batch, None) != fingerprint(batch, {"n": 1})


def test_changes_read_the_log_in_windows(storage: EtcdStorage) -> None:
    for i in range(70):  # over two windows of 32 txs (the module's --max-txn-ops)
        storage.put("a" if i % 3 else "b", {f"k{i}": i})
    assert [e.tx for e in storage.changes()] == list(range(1, 71))
    assert [e.tx for e in storage.changes(5, limit=40)] == list(range(6, 46))
    assert [e.operations[0].key for e in storage.changes(namespace="b", limit=30)] == [f"k{i}" for i in range(0, 70, 3)]
    assert [e.tx for e in storage.changes(60, namespace="b")] == [61, 64, 67, 70]


def test_wait_for_a_tx_committed_by_another_writer(storage: EtcdStorage, etcd: EtcdClient) -> None:
    storage.put("a", {"k": 1})
    assert storage.wait_for(1) is True
    assert storage.wait_for(0, timeout=0) is True
    assert storage.wait_for(2, timeout=0) is False
    assert storage.wait_for(2, timeout=0.05) is False  # the timer closes the watch
    other = EtcdStorage.open(etcd, storage.layout.prefix.decode())
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(storage.wait_for, 3, 60)
        other.put("a", {"k": 2})
        other.timeline.housekeeping()  # a revision that is no tx does not wake it as tx 3
        other.put("a", {"k": 3})
        assert waiting.result() is True
    assert storage.latest_tx == 3
    with pytest.raises(errors.InvalidParameters):
        storage.wait_for(-1)


def test_concurrent_writers_get_dense_unique_txs(storage: EtcdStorage) -> None:
    def write(n: int) -> list[tuple[int, str]]:
        return [(storage.put("a", {f"w{n}-{i}": i}), f"w{n}-{i}") for i in range(5)]

    with ThreadPoolExecutor(8) as pool:
        done = [pair for pairs in pool.map(write, range(8)) for pair in pairs]
    assert sorted(tx for tx, _ in done) == list(range(1, 41))
    for tx, key in done:  # each tx is the writer's own: its log entry and its record say so
        assert storage.tx_info(tx).operations == [Operation("a", key, "put")]  # type: ignore[union-attr]
        assert storage.get("a", key, tx=tx).tx == tx  # type: ignore[union-attr]
        assert storage.get("a", key, tx=tx - 1) is None


def test_concurrent_compare_and_set_loses_no_update(storage: EtcdStorage) -> None:
    storage.put("a", {"n": 0})

    def increment(_: int) -> int:
        conflicts = 0
        for _ in range(3):
            while True:
                current = storage.get("a", "n")
                assert current is not None
                try:
                    storage.put("a", {"n": current.value + 1}, expect={"n": current.tx})
                    break
                except errors.Conflict:
                    conflicts += 1
        return conflicts

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(increment, range(4)))
    final = storage.get("a", "n")
    assert final == rec("n", 12, 13)
    assert [v.value for v in storage.history("a", "n", order="asc")] == list(range(13))


def test_a_commit_whose_answer_was_lost_is_that_tx_not_a_second_one(
        storage: EtcdStorage, etcd: EtcdClient, etcd_cluster: EtcdCluster) -> None:
    storage.put("a", {"k": 1})
    proxy = AnswerDroppingProxy(etcd_cluster.endpoints[0])
    try:
        with EtcdClient([proxy.url, *etcd_cluster.endpoints]) as lossy:
            proxy.drop = False
            other = EtcdStorage.open(lossy, storage.layout.prefix.decode())
            proxy.drop = True
            before, forwarded = revision(etcd), proxy.forwarded
            # The member commits the txn, the proxy loses the answer, commit_once asks again elsewhere and
            # finds the request key: the tx that committed, not a second one.
            assert other.put("a", {"k": 2}, note={"once": True}) == 2
            assert proxy.forwarded == forwarded + 1
    finally:
        proxy.close()
    assert revision(etcd) == before + 1
    assert [(v.tx, v.value, v.note) for v in storage.history("a", "k")] == [(2, 2, {"once": True}), (1, 1, None)]


def test_housekeeping_txns_take_no_tx_number(storage: EtcdStorage, etcd: EtcdClient) -> None:
    assert storage.put("a", {"k": 1}) == 1
    hk1 = storage.timeline.housekeeping()
    hk2 = storage.timeline.housekeeping([Put(storage.layout.prefix + b"/sys/x", b"")])
    assert (hk1, hk2) == (storage.timeline.revision_of(1) + 1, storage.timeline.revision_of(1) + 2)
    assert storage.latest_tx == 1
    assert storage.put("a", {"k": 2}) == 2
    assert storage.timeline.revision_of(2) == hk2 + 1
    hk3 = storage.timeline.housekeeping()
    assert storage.put("a", {"k": 3}, expect={"k": 2}) == 3
    # A fresh opener learns the housekeeping revisions from P/sys/hk's versions.
    other = EtcdStorage.open(etcd, storage.layout.prefix.decode())
    assert other.timeline.base == storage.timeline.base
    assert [other.timeline.revision_of(t) for t in (1, 2, 3)] == [hk1 - 1, hk2 + 1, hk3 + 1]
    assert [other.read("a", ["k"], tx=t).records for t in (1, 2, 3)] == [[rec("k", 1, 1)], [rec("k", 2, 2)],
                                                                           [rec("k", 3, 3)]]
    assert other.history("a", "k", order="asc") == storage.history("a", "k", order="asc")
    assert [v.tx for v in other.history("a", "k")] == [3, 2, 1]
    assert other.latest_tx == 3
    with pytest.raises(errors.Conflict):
        storage.timeline.housekeeping(compare=[Compare(storage.layout.meta, "VERSION", "==", 7)])


def test_opening_an_existing_store_keeps_its_base(storage: EtcdStorage, etcd: EtcdClient) -> None:
    storage.put("a", {"k": 1})
    again = EtcdStorage.open(etcd, storage.layout.prefix.decode())
    assert again.timeline.base == storage.timeline.base
    assert again.latest_tx == 1
    etcd.put(b"t/wrong/meta", ormsgpack.packb({"format": 99}))
    with pytest.raises(errors.StorageError, match="has layout format 99"):
        EtcdStorage.open(etcd, "t/wrong")


def test_namespace_info_is_the_lmdb_engines(storage: EtcdStorage, clock: Clock) -> None:
    assert storage.namespace_info("a") is None
    storage.put("a", {"k": 1, "ab": "xy"})
    # Sizes as LMDB counts them: keypart (4-byte id + key + 00 00) and record: 7 + 1 and 8 + 3.
    assert storage.namespace_info("a") == NamespaceInfo("a", at(US), at(US), 1, 2, 19)
    clock.now += 1
    storage.clear("a", ["k"])  # the clear record is 2 bytes
    clock.now += 1
    storage.put("b", {"x": 0})
    clock.now += 1
    storage.delete("a", ["ab"])
    assert storage.namespace_info("a") == NamespaceInfo("a", at(US), at(US + 3_000_000), 4, 1, 9)
    assert storage.namespace_info("b") == NamespaceInfo("b", at(US + 2_000_000), at(US + 2_000_000), 3, 1, 8)
    storage.delete("a", ["k"])
    assert storage.namespace_info("a") == NamespaceInfo("a", at(US), at(US + 3_000_000), 5, 0, 0)
    with pytest.raises(errors.InvalidNamespace):
        storage.namespace_info("a/b")


def test_creating_a_namespace_is_housekeeping_not_a_tx(storage: EtcdStorage, etcd: EtcdClient, clock: Clock) -> None:
    storage.put("a", {"k": 1})
    before = revision(etcd)
    assert storage.create_namespace("new") == NamespaceInfo("new", at(US), at(US), 0, 0, 0)
    assert revision(etcd) == before + 1  # a revision, but no tx
    assert storage.latest_tx == 1
    assert storage.namespace_info("new") == NamespaceInfo("new", at(US), at(US), 0, 0, 0)
    with pytest.raises(errors.NamespaceExists) as info:
        storage.create_namespace("a")
    assert (info.value.message, info.value.details) == ("namespace 'a' already exists", {"namespace": "a"})
    clock.now += 1
    assert storage.put("new", {"x": 1}) == 2
    assert storage.namespace_info("new") == NamespaceInfo("new", at(US), at(US + 1_000_000), 2, 1, 8)
    assert storage.timeline.revision_of(2) == before + 2
    assert storage.namespaces() == ["a", "new"]


def test_dropping_a_namespace(storage: EtcdStorage, etcd: EtcdClient, clock: Clock) -> None:
    storage.put("a", {"k": 1, "gone": 2, "k\x00": 3, "z": 4})
    storage.delete("a", ["gone"])
    storage.put("b", {"k": 0})
    clock.now += 1
    before = revision(etcd)
    assert storage.drop_namespace("a", note={"why": "test"}) == 4
    assert revision(etcd) == before + 1  # one txn, whatever the number of keys
    layout = storage.layout
    assert etcd.range(layout.data_prefix("a"), prefix_end(layout.data_prefix("a"))).kvs == []
    assert etcd.range(layout.dropped("a")).kvs[0].value == DELETE_RECORD
    assert etcd.range(layout.marker("a", b"k")).kvs == []  # no marker per key: the drop marker stands for them
    assert unhashed(storage.tx_info(4)) == TxEntry(4, at(US + 1_000_000), US + 1_000_000, {"why": "test"},
                                                   [Operation("a", k, "delete") for k in ("k", "k\x00", "z")])
    assert storage.namespace_info("a") is None
    assert storage.namespaces() == ["b"]
    assert storage.read("a", ["k", "z"]).records == []
    assert storage.read("a", ["k", "z"], tx=3).records == [rec("k", 1, 1), rec("z", 4, 1)]
    # A key's history counts the drop as its delete only if it existed just before.
    assert [(v.tx, v.op) for v in storage.history("a", "k")] == [(4, "delete"), (1, "put")]
    assert [(v.tx, v.op) for v in storage.history("a", "gone")] == [(2, "delete"), (1, "put")]
    assert [(v.tx, v.op) for v in storage.history("a", "k", order="asc")] == [(1, "put"), (4, "delete")]
    with pytest.raises(errors.NamespaceNotFound) as info:
        storage.drop_namespace("a")
    assert (info.value.message, info.value.details) == ("namespace 'a' does not exist", {"namespace": "a"})
    clock.now += 1
    assert storage.put("a", {"k": 5}) == 5  # a write brings it back, created anew
    assert storage.namespace_info("a") == NamespaceInfo("a", at(US + 2_000_000), at(US + 2_000_000), 5, 1, 8)
    assert [(v.tx, v.op) for v in storage.history("a", "k")] == [(5, "put"), (4, "delete"), (1, "put")]
    storage.delete("a", ["k"])
    assert storage.drop_namespace("a") == 6  # no live keys: forgotten without a tx
    assert storage.latest_tx == 6
    assert storage.namespaces() == ["b"]


def test_a_namespace_seen_registered_is_asserted_by_a_compare_not_a_nested_txn(storage: EtcdStorage,
                                                                               etcd: EtcdClient) -> None:
    layout, timeline = storage.layout, storage.timeline
    assert timeline.registered == {}
    storage.put("a", {"k": 1})  # its nested txn created the registry: this process knows it now
    assert timeline.registered == {"a": timeline.revision_of(1)}
    runs = prepare_puts("a", {"k": 2}, Limits()).runs
    known = plan(timeline, runs, {}, None, US, b"r" * 16, b"f" * 16, timeline.registered)
    assert Compare(layout.registry("a"), "CREATE", "==", timeline.revision_of(1)) in known.compare
    assert not any(isinstance(op, Txn) for op in known.success)
    assert known.registered == ["a"]
    assert known.failure == [Range(layout.housekeeping)]  # the registry is read only after a failure
    assert known.deferred == [Range(layout.registry("a"), keys_only=True)]
    unknown = plan(timeline, runs, {}, None, US, b"r" * 16, b"f" * 16)
    assert [op for op in unknown.success if isinstance(op, Txn)] == [
        Txn((Compare(layout.registry("a"), "CREATE", "==", 0),),
            (Put(layout.registry("a"), ormsgpack.packb({"created_us": US})),),
            (Range(layout.registry("a"), keys_only=True),))]
    other = EtcdStorage.open(etcd, layout.prefix.decode(), etcd_limits=EtcdLimits(max_txn_ops=MAX_TXN_OPS))
    other.put("b", {"k": 1})  # the registry was there: its nested txn's failure branch read it
    assert other.timeline.registered == {"b": timeline.revision_of(2)}
    other.put("a", {"k": 1})
    assert other.timeline.registered == {"a": timeline.revision_of(1), "b": timeline.revision_of(2)}


def test_a_write_after_another_process_dropped_the_namespace_creates_it_anew(storage: EtcdStorage, etcd: EtcdClient,
                                                                              clock: Clock) -> None:
    timeline = storage.timeline
    other = EtcdStorage.open(etcd, storage.layout.prefix.decode(), etcd_limits=EtcdLimits(max_txn_ops=MAX_TXN_OPS),
                             clock=clock)
    storage.put("a", {"k": 1})
    assert storage.put("a", {"k": 2}) == 2
    r1 = timeline.revision_of(1)
    clock.now += 1
    assert other.drop_namespace("a") == 3
    assert timeline.registered == {"a": r1}  # this process has not seen the drop
    clock.now += 1
    before = revision(etcd)
    assert storage.put("a", {"k": 3}) == 4  # the compare on the registry failed; sent again with a nested txn
    assert revision(etcd) == before + 1  # the failed attempt wrote nothing
    assert storage.namespace_info("a") == NamespaceInfo("a", at(US + 2_000_000), at(US + 2_000_000), 4, 1, 8)
    assert timeline.registered == {"a": timeline.revision_of(4)}
    clock.now += 1
    assert other.drop_namespace("a") == 5
    assert other.create_namespace("a") == NamespaceInfo("a", at(US + 3_000_000), at(US + 3_000_000), 5, 0, 0)
    created = etcd.range(storage.layout.registry("a")).kvs[0].create_revision
    clock.now += 1
    assert storage.put("a", {"k": 4}) == 6  # the registry another process created is kept, not written over
    assert storage.namespace_info("a") == NamespaceInfo("a", at(US + 3_000_000), at(US + 4_000_000), 6, 1, 8)
    assert timeline.registered == {"a": created}
    assert [(t.tx, [o.key for o in t.operations]) for t in storage.changes(0, limit=10)] == [
        (1, ["k"]), (2, ["k"]), (3, ["k"]), (4, ["k"]), (5, ["k"]), (6, ["k"])]


def test_a_nested_txn_in_json_and_back() -> None:
    nested = Txn((Compare(b"k", "CREATE", "==", 0),), (Put(b"k", b"v"),), (Range(b"k"),))
    assert request_json(nested) == {"request_txn": {
        "compare": [{"key": "aw==", "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
        "success": [{"request_put": {"key": "aw==", "value": "dg=="}}],
        "failure": [{"request_range": {"key": "aw=="}}]}}
    assert nested.ops == 1
    answer = {"response_txn": {"succeeded": True, "responses": [{"response_put": {}}]}}
    assert response_of(answer, 9) == TxnResult(True, 9, [response_of({"response_put": {}}, 9)])


# -- reads ---------------------------------------------------------------------------------------------


def test_reads_at_every_tx(storage: EtcdStorage) -> None:
    storage.put("a", {"k": 1, "j": "x"})
    storage.put("a", {"k": b"\x01"})
    storage.clear("a", ["j"])
    storage.delete("a", ["k"])
    keys = ["k", "j", "none", "k"]
    assert [storage.read("a", keys, tx=t) for t in range(5)] == [
        ReadResult([], 0),
        ReadResult([rec("k", 1, 1), rec("j", "x", 1)], 1),
        ReadResult([rec("k", b"\x01", 2), rec("j", "x", 1)], 2),
        ReadResult([rec("k", b"\x01", 2), rec("j", None, 3, cleared=True)], 3),
        ReadResult([rec("j", None, 3, cleared=True)], 4),
    ]
    assert storage.read("a", keys) == ReadResult([rec("j", None, 3, cleared=True)], 4)
    assert storage.read("b", keys, tx=2) == ReadResult([], 2)
    assert storage.get("a", "k", tx=2) == rec("k", b"\x01", 2)
    assert storage.get("a", "k") is None


def test_read_errors_are_the_engines(storage: EtcdStorage) -> None:
    storage.put("a", {"k": 1})
    with pytest.raises(errors.FutureTx) as info:
        storage.read("a", ["k"], tx=2)
    assert (info.value.message, info.value.details) == (
        "tx 2 is in the future: the latest committed tx is 1", {"tx": 2, "latest_tx": 1})
    with pytest.raises(errors.FutureTx, match="the latest committed tx is 1"):
        storage.read("a", ["k"], tx=2**70)
    for bad in (-1, True, "1"):
        with pytest.raises(errors.InvalidParameters, match="tx must be a non-negative integer or None"):
            storage.read("a", ["k"], tx=bad)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidParameters, match="keys must be a list of str"):
        storage.read("a", "k")
    with pytest.raises(errors.InvalidKey):
        storage.read("a", [""])
    with pytest.raises(errors.BatchTooLarge):
        EtcdStorage(storage.client, storage.layout, storage.timeline.base,
                    limits=Limits(max_read_keys=2)).read("a", ["a", "b", "c"])


def test_a_read_of_more_keys_than_one_txn_holds_is_one_snapshot(storage: EtcdStorage) -> None:
    for start in range(0, 300, 25):
        storage.put("a", {f"k{i:03d}": i for i in range(start, start + 25)})
    keys = [f"k{i:03d}" for i in range(299, -1, -1)]
    result = storage.read("a", keys, tx=6)
    assert result == ReadResult([rec(f"k{i:03d}", i, i // 25 + 1) for i in range(149, -1, -1)], 6)
    assert len(storage.read("a", keys).records) == 300


def test_scans_with_prefix_after_and_limit_at_a_tx(storage: EtcdStorage) -> None:
    storage.put("a", {"b1": 1, "a1": 2, "b2": 3, "b\x00": 4, "bé": 5, "c": 6})
    storage.delete("a", ["b2"])
    storage.put("ab", {"b9": 0})  # another namespace whose name starts with "a"
    assert [r.key for r in storage.scan("a", tx=1).records] == ["a1", "b\x00", "b1", "b2", "bé", "c"]
    assert storage.scan("a", "b", tx=2) == ReadResult([rec("b\x00", 4, 1), rec("b1", 1, 1), rec("bé", 5, 1)], 2)
    assert [r.key for r in storage.scan("a", "b", after="b\x00").records] == ["b1", "bé"]
    assert [r.key for r in storage.scan("a", after="b1", limit=2, tx=1).records] == ["b2", "bé"]
    assert storage.scan("a", limit=0) == ReadResult([], 3)
    assert storage.scan("zz") == ReadResult([], 3)
    with pytest.raises(errors.InvalidParameters, match="limit must be a non-negative integer"):
        storage.scan("a", limit=-1)
    with pytest.raises(errors.FutureTx):
        storage.scan("a", tx=4)


def test_a_scan_pages_past_a_thousand_keys_at_one_tx(storage: EtcdStorage) -> None:
    for start in range(0, 1050, 25):
        storage.put("a", {f"k{i:04d}": i for i in range(start, start + 25)})
    storage.delete("a", ["k0000"])
    found = storage.scan("a", tx=42).records
    assert [r.value for r in found] == list(range(1050))
    assert [r.value for r in storage.scan("a", after="k0010", limit=1010).records] == list(range(11, 1021))
    assert len(storage.scan("a").records) == 1049


# -- history and the log -------------------------------------------------------------------------------


def test_history_both_orders_with_deletes(storage: EtcdStorage, clock: Clock) -> None:
    storage.put("a", {"k": 1}, note={"n": 1})
    clock.now += 1
    storage.put("a", {"other": 1})
    clock.now += 1
    storage.delete("a", ["k"])
    clock.now += 1
    storage.put("a", {"k": b"\x02"})
    clock.now += 1
    storage.clear("a", ["k"])
    v = [Version(1, at(US), "put", 1, False, {"n": 1}), Version(3, at(US + 2_000_000), "delete"),
         Version(4, at(US + 3_000_000), "put", b"\x02", True), Version(5, at(US + 4_000_000), "clear")]
    assert storage.history("a", "k") == v[::-1]
    assert storage.history("a", "k", order="asc") == v
    assert storage.history("a", "k", before=5, after=1) == [v[2], v[1]]
    assert storage.history("a", "k", after=1, limit=2, order="asc") == [v[1], v[2]]
    assert storage.history("a", "k", before=99, limit=1) == [v[3]]
    assert storage.history("a", "k", after=5) == []
    assert storage.history("a", "k", limit=0) == []
    assert storage.history("a", "none") == []
    assert storage.history("zz", "k", order="asc") == []
    with pytest.raises(errors.InvalidParameters, match="order must be 'asc' or 'desc'"):
        storage.history("a", "k", order="up")
    with pytest.raises(errors.InvalidParameters, match="limit must be an integer from 0 to 10000"):
        storage.history("a", "k", limit=10_001)


def test_oldest_first_past_the_walk_watches_forward(storage: EtcdStorage, clock: Clock) -> None:
    for i in range(20):
        clock.now += 1
        if i % 7 == 6:
            storage.delete("a", ["k"], note={"i": i})
        else:
            storage.put("a", {"k": i}, note={"i": i})
    versions = storage.history("a", "k", limit=100)
    assert [(v.tx, v.op, v.note) for v in versions] == [
        (20 - i, "delete" if (19 - i) % 7 == 6 else "put", {"i": 19 - i}) for i in range(20)]
    assert [v.time for v in versions] == [at(US + (20 - i) * 1_000_000) for i in range(20)]
    assert storage.history("a", "k", order="asc") == versions[::-1]  # 20 versions: past the walk, a watch
    assert storage.history("a", "k", order="asc", after=1, limit=3) == versions[::-1][1:4]
    assert storage.history("a", "k", order="asc", after=2, before=20, limit=100) == versions[::-1][2:19]


def test_diff_between_two_txs(storage: EtcdStorage) -> None:
    storage.put("a", {"same": 1, "gone": 2, "cl": 3, "ch": 4})
    storage.put("a", {"same": 1, "new": 5, "ch": 6})  # "same" is put again with its value: no change
    storage.delete("a", ["gone"])
    storage.clear("a", ["cl"])
    storage.put("b", {"new": 0})
    assert storage.diff("a", 1, 5) == [
        Change("ch", "changed", rec("ch", 4, 1), rec("ch", 6, 2)),
        Change("cl", "cleared", rec("cl", 3, 1), rec("cl", None, 4, cleared=True)),
        Change("gone", "deleted", rec("gone", 2, 1), None),
        Change("new", "added", None, rec("new", 5, 2)),
    ]
    assert [(c.key, c.kind) for c in storage.diff("a", 0, 2)] == [
        ("ch", "added"), ("cl", "added"), ("gone", "added"), ("new", "added"), ("same", "added")]
    assert storage.diff("a", 4, 5) == storage.diff("a", 3, 3) == storage.diff("zz", 0, 5) == []
    with pytest.raises(errors.FutureTx):
        storage.diff("a", 0, 6)
    assert storage.history("a", "ch", before=2**70, after=2**65) == []
    assert storage.tx_info(2**70) is None
    with pytest.raises(errors.InvalidParameters, match=r"from_tx \(2\) is after to_tx \(1\)"):
        storage.diff("a", 2, 1)


def test_the_tx_log(storage: EtcdStorage, clock: Clock) -> None:
    storage.put("a", {"x": 1, "y": 2}, note={"who": "w"})
    clock.now += 2.5
    with storage.transaction(note={"t": [1]}) as t:
        t.clear("a", "x")
        t.put("b", "z", None)
    # The chain hash of each, from the formula (engine.txlog.chain_hash) over the records as LMDB stores them.
    h1 = chain_hash(GENESIS, 1, US, {"who": "w"}, [["a", PUT, ["x", "y"]]], [[pack_value(1), pack_value(2)]])
    h2 = chain_hash(h1, 2, US + 2_500_000, {"t": [1]}, [["a", CLEAR, ["x"]], ["b", PUT, ["z"]]],
                    [[CLEAR_RECORD], [pack_value(None)]])
    assert storage.tx_info(1) == TxEntry(1, at(US), US, {"who": "w"}, [Operation("a", "x", "put"),
                                                                       Operation("a", "y", "put")], h1.hex())
    assert storage.tx_info(2) == TxEntry(2, at(US + 2_500_000), US + 2_500_000, {"t": [1]},
                                         [Operation("a", "x", "clear"), Operation("b", "z", "put")], h2.hex())
    assert storage.tx_info(0) is None
    assert storage.tx_info(3) is None
    assert storage.changes() == [storage.tx_info(1), storage.tx_info(2)]
    assert storage.changes(1) == [storage.tx_info(2)]
    assert storage.changes(limit=1) == [storage.tx_info(1)]
    assert storage.changes(namespace="b") == [TxEntry(2, at(US + 2_500_000), US + 2_500_000, {"t": [1]},
                                                      [Operation("b", "z", "put")], h2.hex())]
    assert storage.changes(2) == storage.changes(namespace="c") == []
    with pytest.raises(errors.InvalidParameters, match="limit must be an integer from 1 to 10000"):
        storage.changes(limit=0)
    with pytest.raises(errors.InvalidParameters):
        storage.tx_info(-1)


# -- expiry and metadata -------------------------------------------------------------------------------

S = 1_000_000  # one second in microseconds


def test_puts_with_options_store_lmdbs_rich_records_and_index_their_expiry(storage: EtcdStorage,
                                                                           etcd: EtcdClient, clock: Clock) -> None:
    long_key = "L" * 500
    assert storage.put("a", {"k": 1, long_key: "v"}, ttl=5, metadata={"m": 1}) == 1
    clock.now += 1
    assert storage.put("a", [Item("j", b"\x01", expiration=T0 + 30), Item("m", 2, metadata=[1])]) == 2
    clock.now += 1
    with storage.transaction() as t:
        t.put("a", "k", 3, metadata="x")  # created_us: the key's life began at tx 1
        t.put("a", "plain", 4)
    layout = storage.layout

    def value(key: bytes) -> bytes:
        return etcd.range(key).kvs[0].value

    assert value(layout.data("a", long_key.encode())) == rich_record(long_key, pack_value("v"), US + 5 * S,
                                                                     {"m": 1}, US)
    assert value(layout.data("a", b"j")) == rich_record(None, pack_value(b"\x01"), US + 30 * S, None, US + S)
    assert value(layout.data("a", b"m")) == rich_record(None, pack_value(2), None, [1], US + S)
    assert value(layout.data("a", b"k")) == rich_record(None, pack_value(3), None, "x", US)
    assert value(layout.data("a", b"plain")) == pack_value(4)
    index = etcd.range(storage.layout.prefix + b"/x/", prefix_end(storage.layout.prefix + b"/x/")).kvs
    assert [(kv.key, kv.value, kv.mod_revision) for kv in index] == [
        (layout.expiry(US + 5 * S, "a", long_key.encode()), b"", storage.timeline.revision_of(1)),
        (layout.expiry(US + 5 * S, "a", b"k"), b"", storage.timeline.revision_of(1)),
        (layout.expiry(US + 30 * S, "a", b"j"), b"", storage.timeline.revision_of(2)),
    ]


def test_reads_at_a_tx_apply_the_read_rule_at_its_commit_time(storage: EtcdStorage, clock: Clock,
                                                              unswept: None) -> None:
    storage.put("a", {"k": 1}, ttl=2, metadata={"m": 1})  # tx 1 at T0, expires at T0 + 2
    clock.now += 2 - 0.000001
    storage.put("a", {"o": 1})  # tx 2, 1 us before the expiry
    clock.now += 0.000001
    storage.put("a", {"o": 2})  # tx 3, at the expiry: gone
    full = Record("k", 1, 1, False, False, {"m": 1}, at(US), at(US), at(US + 2 * S))
    assert storage.read("a", ["k"], tx=1).records == [rec("k", 1, 1)]
    assert storage.read("a", ["k", "o"], tx=2, metadata=True, fields=["created_at", "updated_at", "expire_time"]) == \
        ReadResult([full, Record("o", 1, 2, updated_at=at(US + 2 * S - 1))._replace(
            created_at=at(US + 2 * S - 1))], 2)
    assert storage.read("a", ["k"], tx=3) == ReadResult([], 3)
    assert storage.get("a", "k", tx=2, metadata=True) == rec("k", 1, 1)._replace(metadata={"m": 1})
    assert storage.get("a", "k", tx=3) is None
    assert storage.scan("a", tx=2).records == [rec("k", 1, 1), rec("o", 1, 2)]
    assert storage.scan("a", tx=3).records == [rec("o", 2, 3)]
    # As on LMDB, a diff compares the keys the txs in between touched: an expiry is no tx until swept.
    assert storage.diff("a", 2, 3) == [Change("o", "changed", rec("o", 1, 2), rec("o", 2, 3))]
    assert storage.diff("a", 0, 3) == [Change("o", "added", None, rec("o", 2, 3))]
    assert storage.history("a", "k") == [Version(1, at(US), "put", 1, False, None, {"m": 1}, at(US + 2 * S))]


def test_a_latest_read_evaluates_expiry_at_now(storage: EtcdStorage, clock: Clock) -> None:
    storage.put("a", {"k": "v", "n": 0}, ttl=3)  # tx 1, expires at T0 + 3
    clock.now = T0 + 3 - 0.000001
    assert storage.read("a", ["k"]) == ReadResult([rec("k", "v", 1)], 1)
    assert [r.key for r in storage.scan("a").records] == ["k", "n"]
    clock.now = T0 + 3
    assert storage.read("a", ["k", "n"]) == ReadResult([], 1)  # the latest tx still is 1: no write needed
    assert storage.scan("a") == ReadResult([], 1)
    assert storage.read("a", ["k"], tx=1).records == [rec("k", "v", 1)]  # at tx 1's time it was there


def test_created_at_is_the_start_of_the_keys_current_life(storage: EtcdStorage, clock: Clock,
                                                          unswept: None) -> None:
    def created(key: str = "k") -> datetime | None:
        found = storage.get("a", key, fields=["created_at"])
        assert found is not None
        return found.created_at

    storage.put("a", {"k": 1})  # tx 1 at T0
    clock.now += 1
    storage.clear("a", ["k"])  # a clear continues the life
    clock.now += 1
    storage.put("a", {"k": 2})
    assert created() == at(US)  # walked back through plain versions to the first put
    clock.now += 1
    storage.put("a", {"k": 3}, metadata=1)  # stores created_us = T0
    clock.now += 1
    storage.put("a", {"k": 4})
    assert created() == at(US)  # found in the rich record on the way back
    clock.now += 1
    storage.delete("a", ["k"])
    clock.now += 1
    storage.put("a", {"k": 5}, ttl=1)  # tx 7: a new life at T0 + 6, expires at T0 + 7
    assert storage.get("a", "k", fields=["created_at"]) == Record("k", 5, 7, created_at=at(US + 6 * S))
    clock.now += 2
    storage.put("a", {"k": 6})  # the previous value expired before this put: a new life at T0 + 8
    assert created() == at(US + 8 * S)
    clock.now += 1
    storage.put("a", {"k": 7}, metadata=2)  # its record says so
    assert storage.get("a", "k", metadata=True, fields=["created_at", "updated_at"]) == Record(
        "k", 7, 9, metadata=2, created_at=at(US + 8 * S), updated_at=at(US + 9 * S))
    assert storage.get("a", "k", tx=8, fields=["created_at"]) == Record("k", 6, 8, created_at=at(US + 8 * S))


def test_expect_counts_an_expired_but_unswept_value_as_absent(storage: EtcdStorage, etcd: EtcdClient,
                                                              clock: Clock, unswept: None) -> None:
    storage.put("a", {"k": 1}, ttl=1)  # tx 1, expires at T0 + 1
    clock.now += 1
    before = revision(etcd)
    with pytest.raises(errors.Conflict) as info:
        storage.put("a", {"k": 2}, expect={"k": 1})  # its stored tx: the value reads as absent now
    assert info.value.details == {"conflicts": [{"namespace": "a", "key": "k", "expected": 1, "actual": 0}]}
    assert revision(etcd) == before
    assert storage.put("a", {"k": 2}, ttl=5, expect={"k": 0}) == 2
    assert storage.get("a", "k", fields=["created_at"]) == Record("k", 2, 2, created_at=at(US + S))
    clock.now += 5
    assert storage.delete("a", ["k"]) == 3  # not a no-op: the expired version is still stored, as on LMDB
    assert storage.delete("a", ["k"]) == 3  # now it is one


def test_a_put_with_options_is_guarded_by_the_version_it_read(storage: EtcdStorage, etcd: EtcdClient) -> None:
    storage.put("a", {"k": 1})
    key = storage.layout.data("a", b"k")
    batch = prepare_puts("a", {"k": 2, "new": 3}, storage.limits, (None, None, {"m": 1}))
    seen = newest(storage.timeline, guarded_keys(storage.timeline, batch))
    assert seen[key] is not None
    assert seen[storage.layout.data("a", b"new")] is None
    p = plan(storage.timeline, batch.runs, seen, None, US, b"id", b"fp")
    assert p.compare == [Compare(key, "MOD", "==", storage.timeline.revision_of(1)),
                         Compare(storage.layout.data("a", b"new"), "VERSION", "==", 0)]
    assert p.checked == [key, storage.layout.data("a", b"new")]
    storage.put("a", {"k": 9})  # another writer, between the read and the commit: the txn fails
    before = revision(etcd)
    request = storage.layout.request(b"id")
    assert not commit_once(etcd, request, p.entry, p.compare, p.success, p.failure).succeeded
    assert revision(etcd) == before
    assert storage.commit(batch) == 3  # reads again, then commits
    assert storage.get("a", "k", metadata=True) == Record("k", 2, 3, metadata={"m": 1})


def test_bad_options_raise_the_engines_errors_and_write_nothing(storage: EtcdStorage, etcd: EtcdClient) -> None:
    before = revision(etcd)
    with pytest.raises(errors.InvalidExpirationTtl, match="ttl must be a number of seconds from 1 to"):
        storage.put("a", {"k": 1}, ttl=0.5)
    with pytest.raises(errors.InvalidExpiration, match="expiration must be epoch seconds at least 1 s"):
        storage.put("a", {"k": 1}, expiration=T0)
    with pytest.raises(errors.MetadataTooLarge, match="metadata is 1027 bytes as JSON; the limit is 1024"):
        storage.put("a", {"k": 1}, metadata="x" * 1025)
    with pytest.raises(errors.InvalidMetadata), storage.transaction() as t:
        t.put("a", "k", 1, metadata=b"raw")
    with pytest.raises(errors.InvalidParameters, match="unknown fields"):
        storage.read("a", ["k"], fields=["size"])
    assert revision(etcd) == before


def test_options_are_part_of_the_request_fingerprint(storage: EtcdStorage) -> None:
    plain = prepare_puts("a", {"k": 1}, storage.limits)
    tagged = prepare_puts("a", {"k": 1}, storage.limits, (None, None, {"m": 1}))
    assert fingerprint(plain, None) != fingerprint(tagged, None)
    assert storage.commit(tagged, request_id=b"r1") == 1
    with pytest.raises(errors.IdempotencyKeyReused):
        storage.commit(plain, request_id=b"r1")
    assert storage.commit(tagged, request_id=b"r1") == 1


# -- the expiry sweep ----------------------------------------------------------------------------------

EXPIRED = {"expired": True}
LONG_KEY = "L" * 500


def index_of(storage: EtcdStorage, etcd: EtcdClient) -> list[bytes]:
    start = storage.layout.prefix + b"/x/"
    return [kv.key for kv in etcd.range(start, prefix_end(start)).kvs]


def sweep_history(target: Any, clock: Clock) -> list[Any]:
    """The writes of the per-write sweep test, on either backend (``Store`` or ``EtcdStorage``)."""
    def put(ns: str, items: dict[str, Any], **opts: Any) -> Any:
        if isinstance(target, Store):
            return target.namespace(ns).put(items, **opts)
        return target.put(ns, items, **opts)

    out = [put("b", {"x": 1}, ttl=2)]  # tx 1 at T0: b (LMDB's namespace id 1) expires at T0 + 2
    clock.now += 1
    out.append(put("a", {"k": 1, "j": 2, LONG_KEY: 3}, ttl=1))  # tx 2 at T0 + 1: expires at T0 + 2 too
    clock.now += 0.5
    out.append(put("a", {"j": 4}))  # tx 3: j overwritten, its index entry is stale
    clock.now += 0.5
    try:
        put("a", {"n": 0}, expect={"n": 5})
    except errors.Conflict as exc:
        out.append(exc.details)  # a refused write records nothing, not even the sweep
    out.append(put("a", {"n": 0}))  # the sweep is tx 4 at T0 + 2, the write tx 5
    return out


def test_a_write_first_records_due_expiries_as_a_tx_of_its_own(storage: EtcdStorage, etcd: EtcdClient,
                                                                clock: Clock, tmp_path: Path) -> None:
    answers = sweep_history(storage, clock)
    conflict_details = {"conflicts": [{"namespace": "a", "key": "n", "expected": 5, "actual": 0}]}
    assert answers == [1, 2, 3, conflict_details, 5]
    swept = TxEntry(4, at(US + 2 * S), US + 2 * S, EXPIRED,
                    [Operation("b", "x", "delete"), Operation("a", LONG_KEY, "delete"), Operation("a", "k", "delete")])
    assert unhashed(storage.tx_info(4)) == swept
    assert [unhashed(e) for e in storage.changes(3)] == [
        swept, TxEntry(5, at(US + 2 * S), US + 2 * S, None, [Operation("a", "n", "put")])]
    assert storage.history("a", "k", limit=1) == [Version(4, at(US + 2 * S), "delete", note=EXPIRED)]
    assert [c.key for c in storage.diff("a", 3, 4)] == [LONG_KEY, "k"]
    assert storage.read("a", ["k", "j", "n"], tx=4).records == [rec("j", 4, 3)]
    assert etcd.range(storage.layout.marker("a", b"k")).kvs[0].value == DELETE_RECORD
    assert index_of(storage, etcd) == []
    assert storage.next_expiry() is None
    info = storage.namespace_info("a")
    assert info is not None and info.key_count == 2  # j and n: exact after the sweep
    lmdb_clock = Clock()
    with Store.open(str(tmp_path), sync=False, clock=lmdb_clock) as store:  # the LMDB engine, same writes
        assert sweep_history(store, lmdb_clock) == answers
        assert [(e.tx, e.time_us, e.note, e.operations) for e in store.changes()] == [
            (e.tx, e.time_us, e.note, e.operations) for e in storage.changes()]
        assert store.namespace("a").history("k") == storage.history("a", "k")
        assert list(store.namespace("a").diff(3, 4)) == storage.diff("a", 3, 4)
        assert store.namespace_info("a") == storage.namespace_info("a")


def test_expire_records_everything_due_in_txs_the_cluster_holds(storage: EtcdStorage, etcd: EtcdClient,
                                                                clock: Clock) -> None:
    storage.put("a", {f"k{i}": i for i in range(10)}, ttl=1)  # tx 1
    storage.put("a", {"later": 1}, ttl=9)  # tx 2
    assert storage.next_expiry() == at(US + S)
    before = revision(etcd)
    assert storage.expire() == 0  # nothing due: no revision
    assert revision(etcd) == before
    clock.now += 1
    assert storage.expire() == 10  # --max-txn-ops 32: 8 keys per sweep txn
    assert [(e.tx, e.note, [o.key for o in e.operations]) for e in storage.changes(2)] == [
        (3, EXPIRED, [f"k{i}" for i in range(8)]), (4, EXPIRED, ["k8", "k9"])]
    assert storage.next_expiry() == at(US + 9 * S)
    assert index_of(storage, etcd) == [storage.layout.expiry(US + 9 * S, "a", b"later")]
    info = storage.namespace_info("a")
    assert info is not None and info.key_count == 1
    assert storage.expire() == 0 and storage.latest_tx == 4


def test_a_stale_entry_is_dropped_without_a_tx(storage: EtcdStorage, etcd: EtcdClient, clock: Clock) -> None:
    storage.put("a", {"k": 1, "j": 1}, ttl=1)  # tx 1
    storage.put("a", {"k": 2})  # tx 2: k no longer expires
    storage.delete("a", ["j"])  # tx 3
    clock.now += 1
    assert storage.expire() == 0
    assert storage.latest_tx == 3 and index_of(storage, etcd) == []
    assert storage.put("a", {"n": 1}) == 4  # the housekeeping txn took no tx number
    assert storage.get("a", "k") == rec("k", 2, 2)


def test_concurrent_sweepers_record_each_expiry_once(storage: EtcdStorage, etcd: EtcdClient, clock: Clock) -> None:
    storage.put("a", {f"k{i}": i for i in range(12)}, ttl=1)  # tx 1
    clock.now += 1
    others = [EtcdStorage.open(etcd, storage.layout.prefix.decode(), etcd_limits=EtcdLimits(max_txn_ops=MAX_TXN_OPS),
                               clock=clock) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda s: s.expire(), others))
    assert sum(counts) == 12
    storage.timeline.refresh()
    deleted = [o.key for e in storage.changes(1) for o in e.operations]
    assert sorted(deleted) == sorted(f"k{i}" for i in range(12))
    assert all(e.note == EXPIRED for e in storage.changes(1))
    assert storage.read("a", [f"k{i}" for i in range(12)]).records == []
    assert index_of(storage, etcd) == []


def test_a_sweep_across_many_namespaces_fits_the_txn_limit(storage: EtcdStorage, clock: Clock) -> None:
    for first, ttl in ((0, 2), (4, 1)):  # txs 1 and 2: one key in each of 8 namespaces, all expiring at T0 + 2
        with storage.transaction() as t:
            for i in range(first, first + 4):
                t.put(f"n{i}", "k", i, ttl=ttl)
        clock.now += 1
    assert storage.expire() == 8  # 3 operations per key, 2 per namespace, 6 more: 5 keys per txn at 32
    assert [[o.namespace for o in e.operations] for e in storage.changes(2)] == [
        ["n0", "n1", "n2", "n3", "n4"], ["n5", "n6", "n7"]]


# -- the write's expiry guard (engine.etcd.due) --------------------------------------------------------


@pytest.fixture
def calls(etcd: EtcdClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of every request the module's client sends from now on (the transport, counted)."""
    sent: list[str] = []
    real = etcd.transport.call

    def counted(path: str, body: dict[str, Any], **kwargs: Any) -> Any:
        sent.append(path)
        return real(path, body, **kwargs)

    monkeypatch.setattr(etcd.transport, "call", counted)
    return sent


def test_a_write_when_nothing_is_due_is_one_round_trip(storage: EtcdStorage, etcd: EtcdClient, clock: Clock,
                                                      calls: list[str]) -> None:
    storage.put("a", {"k": 1}, ttl=2)  # tx 1: k expires at T0 + 2
    clock.now += 1
    calls.clear()
    assert storage.put("a", {"n": 1}) == 2  # k is not due at T0 + 1: one txn, its compare proves it
    assert calls == ["/v3/kv/txn"]
    clock.now += 0.999999
    calls.clear()
    assert storage.delete("a", ["n"]) == 3  # due at T0 + 2, not a microsecond before
    assert calls == ["/v3/kv/txn"]
    assert index_of(storage, etcd) == [storage.layout.expiry(US + 2 * S, "a", b"k")]


def test_a_write_when_an_expiry_fell_due_sweeps_then_sends_again(storage: EtcdStorage, etcd: EtcdClient,
                                                                clock: Clock, calls: list[str],
                                                                tmp_path: Path) -> None:
    def writes(put: Any, clk: Clock) -> list[Any]:
        out = [put("a", {"k": 1, "j": 2}, ttl=1), put("b", {"x": 1}, ttl=1)]  # txs 1 and 2 at T0
        clk.now += 1
        calls.clear()
        out.append(put("a", {"n": 0}))  # all three due at T0 + 1: the sweep is tx 3, the write tx 4
        return out

    assert writes(storage.put, clock) == [1, 2, 4]
    # The guarded txn failed (a txn), then read the registry and the first due entry (a txn); the sweep read
    # the due entries (a range), the two namespaces' order (a txn) and the data keys (a txn) and committed
    # (a txn); the write was sent again (a txn).
    assert calls == ["/v3/kv/txn", "/v3/kv/txn", "/v3/kv/range", "/v3/kv/txn", "/v3/kv/txn", "/v3/kv/txn",
                     "/v3/kv/txn"]
    assert [(e.tx, e.note, [(o.namespace, o.key, o.op) for o in e.operations]) for e in storage.changes(2)] == [
        (3, EXPIRED, [("a", "j", "delete"), ("a", "k", "delete"), ("b", "x", "delete")]),
        (4, None, [("a", "n", "put")])]
    assert index_of(storage, etcd) == []
    lmdb_clock = Clock()
    with Store.open(str(tmp_path), sync=False, clock=lmdb_clock) as store:  # the LMDB engine, same writes
        assert writes(lambda ns, items, **opts: store.namespace(ns).put(items, **opts), lmdb_clock) == [1, 2, 4]
        assert [(e.tx, e.time_us, e.note, e.operations) for e in store.changes()] == [
            (e.tx, e.time_us, e.note, e.operations) for e in storage.changes()]


def test_a_write_refused_by_a_change_its_txn_meets_sweeps_nothing(
        storage: EtcdStorage, etcd: EtcdClient, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.put("a", {"k": 1})  # tx 1
    storage.put("b", {"x": 1}, ttl=1)  # tx 2: due at T0 + 1
    other = EtcdStorage.open(etcd, storage.layout.prefix.decode(), etcd_limits=EtcdLimits(max_txn_ops=MAX_TXN_OPS),
                             clock=Clock())  # still at T0: nothing is due for it
    clock.now += 1
    real_txn = storage.client.txn
    changed: list[int] = []

    def txn(compare: Any = (), success: Any = (), failure: Any = ()) -> Any:
        if compare and not changed:  # the guarded txn, after the expect's key was read: another writer first
            changed.append(0)  # (the other writer's own txn goes through here too)
            changed[0] = other.put("a", {"k": 2})
        return real_txn(compare, success, failure)

    monkeypatch.setattr(storage.client, "txn", txn)
    before = revision(etcd)
    with pytest.raises(errors.Conflict) as info:  # its txn failed on the key and on the due entry
        storage.put("a", {"k": 5}, expect={"k": 1})
    assert changed == [3]
    assert info.value.details == {"conflicts": [{"namespace": "a", "key": "k", "expected": 1, "actual": 3}]}
    assert revision(etcd) == before + 1  # the other writer's tx alone: a refusal sweeps nothing, as on LMDB
    assert storage.latest_tx == 3
    assert storage.put("a", {"n": 0}) == 5  # the next write sweeps first (tx 4)
    assert [(e.tx, e.note, [(o.namespace, o.key, o.op) for o in e.operations]) for e in storage.changes(3)] == [
        (4, EXPIRED, [("b", "x", "delete")]), (5, None, [("a", "n", "put")])]


def test_concurrent_writers_and_due_expiries_record_each_once_before_any_write(
        storage: EtcdStorage, etcd: EtcdClient, clock: Clock) -> None:
    storage.put("a", {f"k{i}": i for i in range(6)}, ttl=1)  # tx 1: six keys expire at T0 + 1
    clock.now += 1
    writers = [EtcdStorage.open(etcd, storage.layout.prefix.decode(), etcd_limits=EtcdLimits(max_txn_ops=MAX_TXN_OPS),
                                clock=clock) for _ in range(4)]

    def write(n: int) -> list[int]:
        return [writers[n].put("w", {f"w{n}-{i}": i}) for i in range(2)]

    with ThreadPoolExecutor(4) as pool:
        txs = sorted(tx for got in pool.map(write, range(4)) for tx in got)
    assert txs == list(range(3, 11))  # tx 2 is the one sweep, whichever writer made it
    storage.timeline.refresh()
    entries = list(storage.changes(1))
    assert [(e.tx, e.note, [o.key for o in e.operations]) for e in entries[:1]] == [
        (2, EXPIRED, [f"k{i}" for i in range(6)])]
    assert all(e.note is None and [o.namespace for o in e.operations] == ["w"] for e in entries[1:])
    assert storage.read("a", [f"k{i}" for i in range(6)]).records == []
    assert index_of(storage, etcd) == []


def test_a_write_leaves_what_one_sweep_cannot_hold_due(storage: EtcdStorage, etcd: EtcdClient, clock: Clock) -> None:
    storage.put("a", {f"k{i}": i for i in range(10)}, ttl=1)  # tx 1
    clock.now += 1
    assert storage.put("a", {"n": 1}) == 3  # --max-txn-ops 32: the sweep (tx 2) holds 8; the write leaves 2 due
    assert [(e.tx, e.note, [o.key for o in e.operations]) for e in storage.changes(1)] == [
        (2, EXPIRED, [f"k{i}" for i in range(8)]), (3, None, ["n"])]
    assert index_of(storage, etcd) == [storage.layout.expiry(US + S, "a", f"k{i}".encode()) for i in (8, 9)]
    assert storage.put("a", {"n": 2}) == 5  # the next write records them first (tx 4)
    assert index_of(storage, etcd) == []
