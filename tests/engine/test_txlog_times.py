"""Commit times in the tx log: the floor every commit time respects, and ``tx_at`` at the edges of u64."""

from __future__ import annotations

from pathlib import Path

import lmdb
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine import Store, merkle, txlog
from engine.schema import MAX_TIME_US, time_of

from .clock import T0, Clock, clock, store  # noqa: F401  (fixtures)

U64_MAX = (1 << 64) - 1


def test_a_namespace_is_created_at_the_store_clock(store: Store, clock: Clock) -> None:
    clock.now = T0 + 10
    assert store.create_namespace("n").created_at == time_of(clock.us)


def test_a_namespace_is_never_created_before_the_last_commit(store: Store, clock: Clock) -> None:
    tx = store.namespace("n").put({"a": 1})
    clock.now = T0 - 100  # the clock steps back
    assert store.create_namespace("m").created_at == store.tx_info(tx).time  # type: ignore[union-attr]


def test_creating_a_namespace_raises_the_floor_of_the_next_commit(store: Store, clock: Clock) -> None:
    clock.now = T0 + 10
    created = store.create_namespace("m").created_at
    clock.now = T0 + 5  # the clock steps back
    tx = store.namespace("n").put({"a": 1})
    assert store.tx_info(tx).time == created  # type: ignore[union-attr]
    assert store.tx_info(tx).time_us == round((T0 + 10) * 1_000_000)  # type: ignore[union-attr]


def _tx_at(store: Store, time_us: int) -> int:
    return store._backend.read(lambda txn: txlog.tx_at(txn, store._backend.dbs, time_us))


def test_tx_at_the_last_microseconds_of_u64(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s", sync=False)
    # A replayed history may carry commit times up to the last microsecond of the year 9999.
    put = [{"namespace": "t", "op": "put", "key": "a", "value": 1}]
    engine.import_history(store, [{"tx": 1, "time_us": MAX_TIME_US - 1, "note": None, "ops": put},
                                  {"tx": 2, "time_us": MAX_TIME_US, "note": None, "ops": put}])
    try:
        assert [_tx_at(store, t) for t in (0, MAX_TIME_US - 2, MAX_TIME_US - 1, MAX_TIME_US)] == [0, 0, 1, 2]
        # Up to and past u64 (epoch seconds whose microseconds overflow): the latest tx, not an error.
        assert [_tx_at(store, t) for t in (U64_MAX - 1, U64_MAX, 1 << 64)] == [2, 2, 2]
        assert store.tx_at(1.8446744073709552e13) == 2
    finally:
        store.close()


def test_tx_at_on_an_empty_log_is_zero_at_every_time(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s", sync=False)
    try:
        assert [_tx_at(store, t) for t in (0, round(T0 * 1_000_000), U64_MAX, 1 << 64)] == [0, 0, 0, 0]
    finally:
        store.close()


def test_the_log_holds_each_txs_entry_runs_and_tree_entry_side_by_side(store: Store, clock: Clock) -> None:
    # docs/design.md documents txlog byte for byte: tx (u64 big-endian) -> [time_us, note, hash],
    # tx | 01 -> runs, tx | 02 -> the Merkle tree entry; nothing in txops, txtime or txtree any more.
    first = store.namespace("n").put({"a": 1})
    clock.now = T0 + 1
    second = store.namespace("n").put({"b": 2}, note={"by": "me"})
    us = round(T0 * 1_000_000)
    dbs = store._backend.dbs
    rows = store._backend.read(lambda txn: [(bytes(k), bytes(v)) for k, v in txn.cursor(db=dbs["txlog"])])
    hashes = {tx: bytes.fromhex(store.tx_info(tx).hash) for tx in (first, second)}  # type: ignore[union-attr]
    leaves = {tx: bytes.fromhex(store.inclusion_proof(tx).leaf_hash) for tx in (first, second)}
    assert (first, second) == (1, 2)
    kinds = (b"", b"\x01", b"\x02")
    assert [key for key, _ in rows] == [tx.to_bytes(8, "big") + kind for tx in (1, 2) for kind in kinds]
    assert [msgpack.unpackb(value) for key, value in rows if len(key) == 8] == [
        [us, None, hashes[1]], [us + 1_000_000, {"by": "me"}, hashes[2]]]
    assert [msgpack.unpackb(value) for key, value in rows if key[8:] == b"\x01"] == [
        [["n", 0, ["a"]]], [["n", 0, ["b"]]]]
    # tx 1 closes no subtree: its leaf alone; tx 2 closes the subtree of two leaves: leaf, then node.
    assert [value for key, value in rows if key[8:] == b"\x02"] == [
        leaves[1], leaves[2] + merkle.node_hash(leaves[1], leaves[2])]
    empty = store._backend.read(lambda txn: [list(txn.cursor(db=dbs[name])) for name in ("txops", "txtime", "txtree")])
    assert empty == [[], [], []]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=40),
       probes=st.lists(st.integers(min_value=-5, max_value=130), max_size=30))
def test_tx_at_is_the_last_tx_at_or_before_each_time(tmp_path_factory: pytest.TempPathFactory,
                                                     steps: list[int], probes: list[int]) -> None:
    """Against a model: the commit times (the clock moves by ``steps`` seconds, back too, so several
    txs share a time), then tx_at at every time around them is the last tx whose time is <= it."""
    clock = Clock(T0)
    with Store.open(tmp_path_factory.mktemp("s"), sync=False, clock=clock) as store:
        ns, times = store.namespace("n"), {}
        for i, step in enumerate(steps):
            clock.now += step
            tx = ns.put({f"k{i}": i})
            times[tx] = store.tx_info(tx).time_us  # type: ignore[union-attr]
        base = round(T0 * 1_000_000)
        for t in [base + p * 1_000_000 + d for p in probes for d in (-1, 0, 1)] + [0, *times.values()]:
            want = max((tx for tx, at in times.items() if at <= t), default=0)
            assert _tx_at(store, t) == want, t


def test_a_store_in_the_older_log_layout_reads_the_same_and_takes_new_txs(tmp_path: Path, clock: Clock) -> None:
    """Stores written before the one-database log kept each tx's runs in ``txops``, a time index in
    ``txtime`` and the Merkle tree in ``txtree``: opened now, every read of the log answers as before,
    and txs written after mix in."""
    path = tmp_path / "s"
    with Store.open(path, sync=False, clock=clock) as store:
        ns = store.namespace("n")
        for i in range(12):
            clock.now += 1
            ns.put({f"k{i % 5}": i}, note={"i": i})
            if i % 4 == 3:
                ns.delete([f"k{i % 5}"])
        store.stream("ev").publish(["a", "b"])
        latest = store.head().tx
        before = _log_answers(store, latest)
    env = lmdb.open(str(path), max_dbs=32, subdir=True)  # rewrite the log as an older engine wrote it
    with env.begin(write=True) as txn:
        log, ops, times, tree = (env.open_db(n, txn=txn) for n in (b"txlog", b"txops", b"txtime", b"txtree"))
        for key, value in list(txn.cursor(db=log)):
            if len(key) == 9:  # tx | 01, its runs, went to txops[tx]; tx | 02, its tree entry, to txtree[tx]
                txn.delete(key, db=log)
                txn.put(key[:8], value, db=ops if key[8] == 1 else tree)
            else:
                txn.put(msgpack.unpackb(value)[0].to_bytes(8, "big") + key, b"", db=times)
    env.close()
    with Store.open(path, sync=False, clock=clock) as store:
        assert _log_answers(store, latest) == before
        assert store.verify().ok
        clock.now += 1
        tx = store.namespace("n").put({"new": 1})
        assert store.tx_info(tx).operations[0].key == "new"  # type: ignore[union-attr]
        assert [v.tx for v in store.namespace("n").history("new")] == [tx]
        assert _log_answers(store, latest) == before
        assert store.tx_at(clock.now) == tx
        assert store.verify().ok


def _log_answers(store: Store, latest: int) -> list[object]:
    """Everything the log answers about txs 1..latest: each tx's info, each key's history, tx_at at
    each commit time and just before it, the exported history of those txs, and Merkle proofs."""
    infos = [store.tx_info(tx) for tx in range(1, latest + 1)]
    times = [info.time_us for info in infos if info is not None]
    at = [_tx_at(store, t + d) for t in times for d in (-1, 0)]
    history = [[(v.tx, v.op) for v in store.namespace("n").history(f"k{i}", before=latest + 1)] for i in range(5)]
    rows = list(engine.export_history(store, until=latest))[1:]  # the header names namespaces only at the latest tx
    proofs = [(store.inclusion_proof(tx, latest).path, store.consistency_proof(tx, latest).path)
              for tx in range(1, latest + 1)]
    return [infos, at, history, rows, proofs]


def test_tx_at_in_a_log_missing_entries_answers_from_the_entries_there_are(store: Store, clock: Clock) -> None:
    """A damaged log (verify names it) still answers time lookups exactly over the entries left: a
    missing entry's place is taken by the next tx's, whose time is no earlier."""
    times = {}
    for i in range(40):
        clock.now += 1 + (i % 3 == 0) * 50  # uneven gaps: interpolation overshoots, bisection takes over
        tx = store.namespace("n").put({f"k{i}": i})
        times[tx] = store.tx_info(tx).time_us  # type: ignore[union-attr]
    gone = {1, 2, 17, 18, 19, 33, 40}
    dbs = store._backend.dbs
    store._backend.write(lambda txn: [txn.delete(tx.to_bytes(8, "big"), db=dbs["txlog"]) for tx in gone])
    left = {tx: at for tx, at in times.items() if tx not in gone}
    for t in sorted({at + d for at in times.values() for d in (-1, 0, 1)}):
        want = max((tx for tx, at in left.items() if at <= t), default=0)
        assert _tx_at(store, t) == want, t
