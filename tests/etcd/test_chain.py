"""The hash chain on etcd (engine.etcd.chain, engine.etcd.verify, engine.etcd.sealer) on a real 3-member cluster.

The known-answer vectors of tests/engine/test_chain_vectors.py hash alike on etcd; sealed segments are laid
out as documented (with a small segment size, so a few txs cross segments and seals); commit times are
clamped as LMDB clamps them and the hashes stay LMDB's; concurrent sealers agree; ``verify`` names the tx
of each tampering done through the raw client (a rewritten log entry, a record written outside Strata, a
rewritten sealed hash) and checks receipts; the background sealer catches up on its own.

Every test has its own store prefix on the module's one cluster (tests run one after another, so nothing
else writes the cluster while one runs: the tx numbering needs that).
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import ormsgpack
import pytest

from engine import Store, errors
from engine.etcd import EtcdClient, chain, prefix_end, txtree
from engine.etcd.chain import Link
from engine.etcd.kv import Range
from engine.etcd.sealer import Sealer
from engine.etcd.seat import Seat
from engine.etcd.storage import EtcdStorage
from engine.etcd.store import EtcdStore
from engine.etcd.tail import Memo, Seen
from engine.etcd.timeline import count_of
from engine.verify import VerifyReport
from tests.engine.clock import Clock
from tests.engine.test_chain_vectors import H1, H2, H3

from .cluster import EtcdCluster


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return "chain/" + re.sub(r"[^A-Za-z0-9._-]", "_", request.node.name)


@pytest.fixture
def storage(etcd: EtcdClient, name: str, clock: Clock) -> EtcdStorage:
    return EtcdStorage.open(etcd, name, clock=clock)


@pytest.fixture
def lmdb(clock: Clock) -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as tmp, Store.open(tmp, sync=False, clock=clock) as store:
        yield store


def housekeeping_count(storage: EtcdStorage) -> int:
    return count_of(storage.client.range(storage.layout.housekeeping).kvs)


def segments(storage: EtcdStorage) -> dict[int, list[Any]]:
    """The sealed segments as stored: first tx -> its entries ``[hash, time_us]``."""
    start = storage.layout.segment(0)[:-16]
    found = storage.client.range(start, prefix_end(start)).kvs
    return {int(kv.key[-16:], 16): ormsgpack.unpackb(kv.value) for kv in found if kv.key != storage.layout.seal_head}


def shown(entry: Any) -> tuple[Any, ...] | None:
    """What a tx's entry shows (etcd's TxEntry and LMDB's TxInfo are two classes with these fields)."""
    return None if entry is None else (entry.tx, entry.time, entry.time_us, entry.note, entry.operations, entry.hash)


def both(storage: EtcdStorage, lmdb: Store, clock: Clock, writes: int, step: float = 1) -> None:
    """``writes`` puts, each on both stores at the same clock, the clock moving ``step`` before each."""
    for i in range(writes):
        clock.now += step
        assert storage.put("a", {f"k{i % 3}": i}) == lmdb.namespace("a").put({f"k{i % 3}": i})


def test_the_known_answer_vectors_hash_alike_on_etcd(storage: EtcdStorage, clock: Clock) -> None:
    clock.now = 1.0
    assert storage.put("ns", {"a": 1}) == 1
    clock.now = 2.0
    assert storage.clear("ns", ["a"], note={"by": "x"}) == 2
    clock.now = 3.0
    assert storage.put("ns", {"b": 2, "c": "x"}) == 3
    assert [e.hash for e in storage.changes()] == [H1.hex(), H2.hex(), H3.hex()]
    assert storage.head() == (3, H3.hex())
    assert storage.verify() == VerifyReport(True, 3, 3, H3.hex())


def test_sealing_fills_segments_in_seals_of_at_most_max_seal(storage: EtcdStorage, lmdb: Store, clock: Clock,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain, "SEGMENT", 4)
    monkeypatch.setattr(chain, "MAX_SEAL", 8)
    assert storage.head() == (0, bytes(32).hex()) and housekeeping_count(storage) == 0  # nothing to seal
    both(storage, lmdb, clock, 11)
    before = housekeeping_count(storage)
    info = storage.tx_info(3)  # seals txs 1-3: one housekeeping txn
    assert info is not None and info.hash == lmdb.tx_info(3).hash  # type: ignore[union-attr]
    assert housekeeping_count(storage) == before + 1
    assert {start: len(entries) for start, entries in segments(storage).items()} == {1: 3}
    assert chain.sealed_head(storage.timeline)[0] == Link(3, bytes.fromhex(info.hash), info.time_us)
    assert storage.head() == tuple(lmdb.head())  # txs 4-11: one seal of 8, extending segment 1
    assert housekeeping_count(storage) == before + 2
    assert {start: len(entries) for start, entries in segments(storage).items()} == {1: 4, 5: 4, 9: 3}
    assert [[bytes(h).hex(), t] for entries in segments(storage).values() for h, t in entries] == [
        [i.hash, i.time_us] for i in lmdb.changes()]
    both(storage, lmdb, clock, 9)
    assert shown(storage.tx_info(20)) == shown(lmdb.tx_info(20))  # txs 12-20: seals of 8 and 1
    assert housekeeping_count(storage) == before + 4
    assert shown(storage.tx_info(20)) == shown(lmdb.tx_info(20))
    assert housekeeping_count(storage) == before + 4  # sealed: only read
    assert storage.verify() == lmdb.verify()


def test_commit_times_are_clamped_as_on_lmdb_and_hashed_clamped(storage: EtcdStorage, lmdb: Store,
                                                               clock: Clock) -> None:
    both(storage, lmdb, clock, 2)
    written_at = clock.us
    both(storage, lmdb, clock, 2, step=-5)  # the clock steps back: LMDB clamps tx 3 and 4 to tx 2's time
    assert [e.time_us for e in storage.changes()] == [e.time_us for e in lmdb.changes()] == [
        written_at - 1_000_000, written_at, written_at, written_at]
    assert [shown(e) for e in storage.changes()] == [shown(e) for e in lmdb.changes()]
    assert storage.verify() == lmdb.verify()


def test_concurrent_sealers_seal_each_tx_once_with_the_same_hashes(etcd: EtcdClient, storage: EtcdStorage,
                                                                   lmdb: Store, clock: Clock, name: str) -> None:
    both(storage, lmdb, clock, 12)
    sealers = [EtcdStorage.open(etcd, name, clock=clock) for _ in range(4)]  # a timeline each, as processes
    start = threading.Barrier(len(sealers))
    heads: list[Link] = []

    def seal(sealer: EtcdStorage) -> None:
        start.wait()
        heads.append(chain.seal(sealer.timeline, 12))

    threads = [threading.Thread(target=seal, args=(s,)) for s in sealers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {(h.tx, h.hash.hex()) for h in heads} == {tuple(lmdb.head())}
    assert [bytes(h).hex() for h, _ in segments(storage)[1]] == [i.hash for i in lmdb.changes()]
    assert storage.latest_tx == 12 and storage.verify() == lmdb.verify()


def test_verify_names_a_log_entry_rewritten_through_the_raw_client(storage: EtcdStorage, lmdb: Store,
                                                                   clock: Clock) -> None:
    both(storage, lmdb, clock, 3)
    assert storage.head() == tuple(lmdb.head())  # sealed
    log = storage.client.range(storage.layout.log, revision=storage.timeline.revision_of(2)).kvs[0].value
    key = storage.layout.request(log)
    entry = ormsgpack.unpackb(storage.client.range(key).kvs[0].value)
    storage.client.put(key, ormsgpack.packb([entry[0], {"forged": True}, *entry[2:]]))
    assert storage.verify() == VerifyReport(
        False, 1, 4, lmdb.tx_info(1).hash, 2,  # type: ignore[union-attr]
        "the hash does not match the sealed one: a stored value, the tx log entry or the sealed hash was changed")
    # The put took a revision of its own: the tx numbering counts it as tx 4 (see the next test).


def test_verify_names_a_record_written_outside_strata_and_the_sealer_stops_there(storage: EtcdStorage,
                                                                                 lmdb: Store, clock: Clock) -> None:
    both(storage, lmdb, clock, 3)
    revision = storage.client.put(storage.layout.data("a", b"k0"), ormsgpack.packb("forged")).revision
    assert storage.latest_tx == 4 and storage.get("a", "k0").value == "forged"  # type: ignore[union-attr]
    assert storage.verify() == VerifyReport(
        False, 3, 4, lmdb.tx_info(3).hash, 4,  # type: ignore[union-attr]
        f"revision {revision} holds no tx log entry: a write to the cluster that is no Strata tx (the tx "
        "numbering is broken from here)")
    assert storage.tx_info(4) is None  # no log entry: no tx there
    assert storage.put("a", {"k9": 9}) == 5
    with pytest.raises(errors.StorageError) as raised:
        storage.tx_info(5)
    assert raised.value.message.startswith("the hash chain cannot be sealed past tx 3: tx 4: revision ")
    assert shown(storage.tx_info(3)) == shown(lmdb.tx_info(3))  # sealed before the broken tx: still answered


def test_verify_names_a_sealed_hash_rewritten_through_the_raw_client(storage: EtcdStorage, lmdb: Store,
                                                                     clock: Clock) -> None:
    both(storage, lmdb, clock, 3)
    storage.head()
    key = storage.layout.segment(1)
    entries = ormsgpack.unpackb(storage.client.range(key).kvs[0].value)
    entries[1][0] = bytes(32)
    storage.client.put(key, ormsgpack.packb(entries))
    report = storage.verify()
    assert (report.ok, report.bad_tx, report.checked, report.head_hash) == (
        False, 2, 1, lmdb.tx_info(1).hash)  # type: ignore[union-attr]


def test_verify_checks_receipts_and_seals_nothing(storage: EtcdStorage, lmdb: Store, clock: Clock) -> None:
    both(storage, lmdb, clock, 3)
    count = housekeeping_count(storage)
    receipt = (2, lmdb.tx_info(2).hash)  # type: ignore[union-attr]
    assert storage.verify(receipt) == lmdb.verify(receipt) == VerifyReport(True, 3, 3, lmdb.head().hash)
    # Unsealed txs are hashed, not sealed: verify writes nothing.
    assert housekeeping_count(storage) == count and chain.sealed_head(storage.timeline)[0].tx == 0
    wrong = (2, "00" * 32)
    assert storage.verify(wrong) == lmdb.verify(wrong) == VerifyReport(
        False, 1, 3, lmdb.tx_info(2).hash, 2,  # type: ignore[union-attr]
        "the chain no longer matches the receipt: history up to it was rewritten")
    with pytest.raises(errors.FutureTx) as raised:
        storage.verify((4, "00" * 32))
    assert raised.value.to_dict() == {"code": "FUTURE_TX", "message": "the receipt names tx 4, but the latest "
                                      "committed tx is 3", "tx": 4, "latest_tx": 3, "parameter": "receipt"}


def test_the_background_sealer_seals_on_its_own_and_stops_with_the_store(etcd_cluster: EtcdCluster, name: str,
                                                                        etcd: EtcdClient) -> None:
    url = "etcd://" + ",".join(e.removeprefix("http://") for e in etcd_cluster.endpoints) + "/" + name
    store = EtcdStore.open(url)
    layout = store.storage().layout
    head = etcd.range(layout.seal_head)
    watch = etcd.watch(layout.seal_head, None, head.revision + 1)
    timer = threading.Timer(30, watch.close)  # a bound on a failing run, not a wait: the watch wakes the test
    timer.start()
    try:
        tx = store.namespace("a").put({"k": 1})
        sealed = next(t for t, _, _ in (ormsgpack.unpackb(rev.events[0].kv.value) for rev in watch) if t >= tx)
        assert sealed == tx == 1
    finally:
        timer.cancel()
        watch.close()
    thread = store._sealer._thread  # type: ignore[union-attr]
    assert thread.is_alive()
    store.close()
    assert not thread.is_alive()
    with EtcdStore.open(url, seal_interval=None) as quiet:
        assert quiet._sealer is None
        tx = quiet.namespace("a").put({"k": 2})
        assert quiet.head() == (tx, quiet.tx_info(tx).hash)  # type: ignore[union-attr]


def sealed_heads(etcd: EtcdClient, storage: EtcdStorage) -> tuple[Iterator[int], Callable[[], None]]:
    """The txs of the sealed head, one per seal from now on (a watch on it), and what closes the watch."""
    key = storage.layout.seal_head
    watch = etcd.watch(key, None, etcd.range(key).revision + 1)
    timer = threading.Timer(30, watch.close)  # a bound on a failing run, not a wait: the watch wakes the test
    timer.start()

    def close() -> None:
        timer.cancel()
        watch.close()
    return (ormsgpack.unpackb(rev.events[0].kv.value)[0] for rev in watch), close


def test_the_background_sealer_seals_at_once_when_batch_txs_wait_and_close_ends_its_wait(
        etcd: EtcdClient, storage: EtcdStorage) -> None:
    for i in range(3):
        storage.put("a", {"k": i})  # waiting when the sealer starts
    heads, stop = sealed_heads(etcd, storage)
    count = housekeeping_count(storage)
    sealer = Sealer(storage.timeline, interval=3600, batch=3).start()  # only the count can make it seal
    try:
        assert next(heads) == 3  # txs 1-3 in one seal
        assert storage.put("a", {"k": 3}) == 4  # one waiting: due in an hour
        assert housekeeping_count(storage) == count + 2  # the seat and the one seal
    finally:
        stop()
        sealer.close()  # ends the wait at once
    assert not sealer._thread.is_alive()
    assert chain.sealed_head(storage.timeline)[0].tx == 3
    assert [link.tx for link in chain.sealed_links(storage.timeline, 1, 3).values()] == [1, 2, 3]


def test_the_background_sealer_seals_what_waited_its_interval_without_a_full_batch(etcd: EtcdClient,
                                                                                  storage: EtcdStorage) -> None:
    heads, stop = sealed_heads(etcd, storage)
    sealer = Sealer(storage.timeline, interval=0, batch=1000).start()  # interval 0: each tx once seen
    try:
        assert storage.put("a", {"k": 1}) == 1
        assert next(heads) == 1
        assert storage.put("a", {"k": 2}) == 2
        assert next(heads) == 2
    finally:
        stop()
        sealer.close()


class CountedSeat(Seat):
    """A real seat that counts its holder's looks (each one a keepalive once the seat is held)."""

    looks = 0

    def hold(self) -> bool:
        self.looks += 1
        return super().hold()


def test_the_background_sealer_renews_its_lease_once_per_third_of_the_ttl_not_per_seal(
        etcd: EtcdClient, storage: EtcdStorage) -> None:
    heads, stop = sealed_heads(etcd, storage)
    seat = CountedSeat(storage.timeline, ttl=3600)  # a third of the TTL outlasts the test
    sealer = Sealer(storage.timeline, interval=0, seat=seat).start()
    try:
        for tx in range(1, 4):
            assert storage.put("a", {"k": tx}) == tx
            assert next(heads) == tx  # three seals, each after a look at the log
    finally:
        stop()
        sealer.close()
    assert seat.looks == 1  # taking the seat; no keepalive since


def test_each_tx_maps_to_its_revision_among_many_housekeeping_txns(storage: EtcdStorage, etcd: EtcdClient,
                                                                   name: str) -> None:
    revisions = {}
    for i in range(6):  # seals and namespace creations (housekeeping) between txs, two in a row at times
        tx = storage.put("a", {"k": i})
        revisions[tx] = etcd.range(storage.layout.log).kvs[0].mod_revision
        storage.head()
        if i % 2:
            storage.create_namespace(f"n{i}")
    fresh = EtcdStorage.open(etcd, name)  # learns the housekeeping revisions by reading them
    for timeline in (storage.timeline, fresh.timeline):
        assert {tx: timeline.revision_of(tx) for tx in revisions} == revisions
        assert {timeline.tx_of(r): r for r in revisions.values()} == revisions


def test_one_process_holds_the_sealer_seat_and_a_replaced_holder_cannot_seal(storage: EtcdStorage, etcd: EtcdClient,
                                                                            name: str) -> None:
    first, second = Seat(storage.timeline), Seat(EtcdStorage.open(etcd, name).timeline)
    count = housekeeping_count(storage)
    assert first.hold() and housekeeping_count(storage) == count + 1  # taking the seat: a housekeeping txn
    assert first.hold() and not second.hold() and housekeeping_count(storage) == count + 1  # renewing: none
    holder, lease = ormsgpack.unpackb(etcd.range(storage.layout.sealer).kvs[0].value)
    assert (holder, lease) == (first.holder, first.lease) and etcd.lease_ttl(lease) > 0
    storage.put("a", {"k": 1})
    assert chain.seal(storage.timeline, 1, first.fence).tx == 1  # the holder seals, fenced
    first.step_down()  # revokes the lease: the seat is free at once
    assert etcd.lease_ttl(lease) == -1 and etcd.lease_keepalive(lease) == 0  # a revoked lease stays so
    assert second.hold() and not first.hold()
    storage.put("a", {"k": 2})
    with pytest.raises(errors.Conflict):
        chain.seal(storage.timeline, 2, first.fence)  # replaced: its seal fails on the fence, writes nothing
    assert chain.sealed_head(storage.timeline)[0].tx == 1
    assert chain.seal(storage.timeline, 2, second.fence).tx == 2
    second.step_down()



def test_a_seal_takes_the_txs_this_process_committed_from_memory_byte_for_byte_as_read_back(
        storage: EtcdStorage, lmdb: Store, clock: Clock) -> None:
    long_key = "L" * 505  # over LMDB's inline key limit: its record is the extended one naming the key
    lns = lmdb.namespace("a")
    for write in [lambda ns: ns.put({"k": 1, long_key: [1, 2]}, note={"by": "me"}),
                  lambda ns: ns.put({"m": "x"}, ttl=3600, metadata={"tag": 1}),  # the 6-field record, an expiry
                  lambda ns: ns.delete(["k", long_key, "absent"]),  # a no-op delete is dropped from the tx
                  lambda ns: ns.clear(["m"])]:
        clock.now += 1
        assert write(_Namespace(storage, "a")) == write(lns)
    with storage.transaction() as tx:  # several runs and namespaces in one tx
        tx.put("a", "t", 1)
        tx.delete("a", "t0")  # absent: dropped
        tx.put("c", "t", 2)
    with lmdb.transaction() as ltx:
        ltx.put("a", "t", 1)
        ltx.delete("a", "t0")
        ltx.put("c", "t", 2)
    timeline = storage.timeline
    assert len(timeline.written) == 5  # every tx this process committed, none read back yet
    read_back, broken = chain.materials(timeline, range(1, 6))
    assert broken is None and len(read_back) == 5
    assert chain.materials(timeline, range(1, 6), timeline.written) == (read_back, None)
    assert len(timeline.written) == 0  # handed out once
    clock.now += 1
    assert storage.put("a", {"n": 1}) == lns.put({"n": 1}) == 6
    assert len(timeline.written) == 1
    assert storage.head() == tuple(lmdb.head())  # the seal (txs 1-6) took tx 6 from memory, LMDB's hashes
    assert len(timeline.written) == 0
    assert storage.verify() == lmdb.verify()


class _Namespace:
    """``storage``'s namespace ``name`` with the calls of :class:`engine.Namespace` the test above makes."""

    def __init__(self, storage: EtcdStorage, name: str) -> None:
        self.storage, self.name = storage, name

    def put(self, items: dict[str, Any], **options: Any) -> int:
        return self.storage.put(self.name, items, **options)

    def delete(self, keys: list[str]) -> int:
        return self.storage.delete(self.name, keys)

    def clear(self, keys: list[str]) -> int:
        return self.storage.clear(self.name, keys)


class Reads:
    """The keys ``client`` reads from now on: each ``range`` call's key, each read-only txn's range keys
    (a txn that writes is listed as ``"write"``). A spy on the real client: every call still goes to etcd."""

    def __init__(self, client: EtcdClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[Any] = []
        real_range, real_txn = client.range, client.txn

        def range_(key: bytes, *args: Any, **kwargs: Any) -> Any:
            self.calls.append(key)
            return real_range(key, *args, **kwargs)

        def txn(compare: Any = (), success: Any = (), failure: Any = ()) -> Any:
            reads = all(isinstance(op, Range) for op in success) and not compare
            self.calls.append([op.key for op in success] if reads else "write")
            return real_txn(compare, success, failure)
        monkeypatch.setattr(client, "range", range_)
        monkeypatch.setattr(client, "txn", txn)


def look(storage: EtcdStorage) -> tuple[int, Seen]:
    """The background sealer's look: the latest tx and the heads, in one read txn."""
    layout = storage.layout
    latest, revision, (hk, head, tree) = storage.timeline.latest_with(
        [Range(layout.housekeeping), Range(layout.seal_head), Range(layout.tree_head)])
    return latest, Seen(revision, hk, head, tree)


def test_a_seal_from_the_last_seals_tail_reads_nothing_and_stores_what_a_seal_reading_everything_does(
        storage: EtcdStorage, lmdb: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain, "SEGMENT", 4)  # seals that fill, cross and start segments
    memo = Memo()
    both(storage, lmdb, clock, 2)
    assert chain.seal(storage.timeline, 2).tx == 2  # sealed without a memo (by another process, say)
    both(storage, lmdb, clock, 1)
    reads = Reads(storage.client, monkeypatch)
    latest, seen = look(storage)
    assert chain.seal(storage.timeline, latest, seen=seen, memo=memo).tx == 3
    first = reads.calls[1:]  # no tail yet: the stored segment and tree read (besides the look's own read)
    assert first == [[storage.layout.seal_head, storage.layout.tree_head, storage.layout.tree_segment(1)],
                     storage.layout.segment(1), "write"]
    assert memo.tail is not None and (memo.tail.tx, len(memo.tail.segment)) == (3, 3)
    for writes in (1, 3, 4, 5, 2):  # ends at tx 18
        both(storage, lmdb, clock, writes)
        reads.calls.clear()
        latest, seen = look(storage)
        assert chain.seal(storage.timeline, latest, seen=seen, memo=memo).tx == latest
        assert reads.calls[1:] == ["write"]  # the seal txn alone: heads from the look, the rest from the tail
        assert memo.tail.tx == latest and memo.tail.segment == segments(storage)[chain.segment_start(latest)]
    assert storage.head() == tuple(lmdb.head())
    assert [[bytes(h).hex(), t] for entries in segments(storage).values() for h, t in entries] == [
        [i.hash, i.time_us] for i in lmdb.changes()]
    assert storage.verify() == lmdb.verify()  # the chain and the Merkle tree, each entry and the root
    assert txtree.consistency_proof(storage.timeline, 3, 18) == lmdb.consistency_proof(3, 18)


def test_a_tail_another_seal_went_past_is_dropped_and_the_seal_reads_what_is_stored(
        etcd: EtcdClient, storage: EtcdStorage, lmdb: Store, clock: Clock, name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain, "SEGMENT", 4)
    memo = Memo()
    both(storage, lmdb, clock, 3)
    latest, seen = look(storage)
    chain.seal(storage.timeline, latest, seen=seen, memo=memo)
    tail = memo.tail
    both(storage, lmdb, clock, 2)
    other = EtcdStorage.open(etcd, name, clock=clock)  # another process's sealer seals txs 4-5
    assert chain.seal(other.timeline, 5).tx == 5
    both(storage, lmdb, clock, 2)
    reads = Reads(storage.client, monkeypatch)
    latest, seen = look(storage)
    assert chain.seal(storage.timeline, latest, seen=seen, memo=memo).tx == 7
    assert storage.layout.segment(5) in reads.calls  # the tail (tx 3) was dropped: the stored segment read
    assert memo.tail is not None and memo.tail != tail and memo.tail.tx == 7
    stale = Seen(seen.revision, seen.housekeeping, seen.head, seen.tree)  # the heads as they were before tx 7 sealed
    both(storage, lmdb, clock, 1)
    assert chain.seal(storage.timeline, 8, seen=stale, memo=memo).tx == 8  # its guard fails: read again, seal
    assert storage.head() == tuple(lmdb.head())
    assert storage.verify() == lmdb.verify()


def test_writers_learn_a_new_housekeeping_revision_from_their_commit_without_reading_it(
        etcd: EtcdClient, storage: EtcdStorage, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.put("a", {"k": 0})
    other = EtcdStorage.open(etcd, name)
    revision = other.timeline.housekeeping()  # another process's housekeeping txn (a seal, say)
    reads = Reads(storage.client, monkeypatch)
    assert storage.put("a", {"k": 1}) == 2
    assert reads.calls == ["write"]  # the commit's own answer named the housekeeping revision
    assert storage.timeline.housekeeping_revisions()[-1] == revision
    assert storage.timeline.housekeeping_revisions() == EtcdStorage.open(etcd, name).timeline.housekeeping_revisions()


def test_threads_that_see_one_new_housekeeping_count_at_once_refresh_it_once(
        etcd: EtcdClient, storage: EtcdStorage, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.put("a", {"k": 0})
    other = EtcdStorage.open(etcd, name)
    other.timeline.housekeeping()
    other.timeline.housekeeping()  # two housekeeping txns this process has not seen
    latest, revision = other.timeline.latest()
    assert latest == 1
    timeline = storage.timeline
    seen_count = len(other.timeline.housekeeping_revisions())
    reads = Reads(storage.client, monkeypatch)
    checked = threading.Semaphore(0)
    real_count_below = timeline.count_below

    def count_below(at: int) -> int:
        found = real_count_below(at)
        checked.release()
        return found
    monkeypatch.setattr(timeline, "count_below", count_below)
    threads = [threading.Thread(target=timeline.learn, args=(seen_count, revision)) for _ in range(8)]
    with timeline._lock:  # every thread finds the count unknown before any of them can refresh
        for t in threads:
            t.start()
        for _ in threads:
            checked.acquire()
    for t in threads:
        t.join()
    assert reads.calls == [storage.layout.housekeeping] * 2  # one refresh (its two versions), not one per thread
    assert timeline.housekeeping_revisions() == other.timeline.housekeeping_revisions()


def test_the_background_sealers_looks_are_serializable_reads_and_its_seals_still_land(
        etcd: EtcdClient, storage: EtcdStorage, lmdb: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    looks: list[bool] = []
    real_txn = storage.client.txn

    def txn(compare: Any = (), success: Any = (), failure: Any = ()) -> Any:
        if threading.current_thread().name == "strata-etcd-sealer" and not compare and success and all(
                isinstance(op, Range) for op in success) and success[0].key == storage.layout.housekeeping:
            looks.append(all(op.serializable for op in success))  # a look (the first seal's reads are not)
        return real_txn(compare, success, failure)
    monkeypatch.setattr(storage.client, "txn", txn)
    heads, stop = sealed_heads(etcd, storage)
    sealer = Sealer(storage.timeline, interval=0, batch=1000).start()
    try:
        both(storage, lmdb, clock, 1)
        assert next(heads) == 1
        both(storage, lmdb, clock, 1)
        assert next(heads) == 2
    finally:
        stop()
        sealer.close()
    assert looks and all(looks)  # no quorum round for the cluster per look
    assert storage.head() == tuple(lmdb.head()) and storage.verify() == lmdb.verify()
