"""What ``verify`` reports, exactly (tx, problem, checked, head): a damaged log below and above the
compaction horizon, a version count that no stray version explains, a rewritten head hash, and txs
committed while it runs."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import msgpack
import pytest

from engine import Store, events, schema
from engine.encoding import inv_tx, keypart
from engine.errors import FutureTx
from engine.verify import VerifyReport, verify

from .clock import T0, Clock, clock, store  # noqa: F401  (fixtures)

NO_ENTRY = "the tx log has no entry for this tx"
EARLIER = "commit time is earlier than the previous tx's"


def _ten_txs(store: Store, clock: Clock) -> None:
    """Txs 1..10, one second apart, each a put of its own key and of ``k``."""
    ns = store.namespace("t")
    for i in range(1, 11):
        clock.now = T0 + i
        ns.put({"k": i, f"only{i}": i})


def _write(store: Store, fn: Any) -> None:
    backend = store._backend
    backend.write(lambda txn: fn(txn, backend.dbs))


def _rewrite_time(store: Store, tx: int, time_us: int) -> None:
    def run(txn: Any, dbs: dict[str, Any]) -> None:
        key = struct.pack(">Q", tx)
        _, note, digest = msgpack.unpackb(txn.get(key, db=dbs["txlog"]))
        txn.put(key, msgpack.packb([time_us, note, digest], use_bin_type=True), db=dbs["txlog"])

    _write(store, run)


# tx 3 is below the horizon 6 (only its log is checked) and tx 8 above it (its hash is recomputed).
@pytest.mark.parametrize("tx", [3, 8])
def test_a_missing_log_entry_is_named_with_its_problem(store: Store, clock: Clock, tx: int) -> None:
    _ten_txs(store, clock)
    store.compact(6)
    link = store.tx_info(tx - 1).hash  # type: ignore[union-attr]
    _write(store, lambda txn, dbs: txn.delete(struct.pack(">Q", tx), db=dbs["txlog"]))
    report = store.verify()
    assert (report.ok, report.bad_tx, report.problem) == (False, tx, NO_ENTRY)
    assert (report.checked, report.head_tx, report.head_hash, report.horizon) == (tx - 1, 10, link, 6)


@pytest.mark.parametrize("tx", [3, 8])
def test_a_commit_time_before_the_previous_one_is_named_with_its_problem(store: Store, clock: Clock,
                                                                         tx: int) -> None:
    _ten_txs(store, clock)
    store.compact(6)
    link = store.tx_info(tx - 1).hash  # type: ignore[union-attr]
    _rewrite_time(store, tx, round((T0 + tx - 1) * 1_000_000) - 1)  # one microsecond before tx - 1's
    report = store.verify()
    assert (report.ok, report.bad_tx, report.problem) == (False, tx, EARLIER)
    assert (report.checked, report.head_hash, report.horizon) == (tx - 1, link, 6)


def test_commit_times_equal_to_the_previous_ones_verify_below_and_above_the_horizon(store: Store) -> None:
    """The clock does not move: every tx commits at the same microsecond, which is in order."""
    ns = store.namespace("t")
    for i in range(10):
        ns.put({"k": i, f"only{i}": i})
    assert len({store.tx_info(tx).time_us for tx in range(1, 11)}) == 1  # type: ignore[union-attr]
    store.compact(6)
    report = store.verify()
    assert (report.ok, report.checked, report.bad_tx, report.problem, report.horizon) == (True, 10, None, None, 6)


def test_a_time_moved_back_to_the_previous_one_below_the_horizon_still_verifies(store: Store, clock: Clock) -> None:
    _ten_txs(store, clock)
    store.compact(6)
    _rewrite_time(store, 3, store.tx_info(2).time_us)  # type: ignore[union-attr]
    assert store.verify().ok  # below the horizon the time is not hashed: only its order is checked


COUNT_OFF = "the version count does not match the tx log and the versions compaction freed"


def test_a_version_removed_below_the_horizon_is_reported_at_the_latest_tx(store: Store, clock: Clock) -> None:
    """Compaction kept ``only1`` (tx 1: a read at the horizon sees it); removing it leaves no version
    unaccounted for, only a count that is one short. No tx can be named, so the latest is."""
    _ten_txs(store, clock)
    store.compact(6)
    head = store.head()[1]

    def remove(txn: Any, dbs: dict[str, Any]) -> None:
        assert txn.delete(keypart(store._ns_prefix(txn, "t"), b"only1") + inv_tx(1), db=dbs["versions"])

    _write(store, remove)
    report = store.verify()
    assert (report.ok, report.bad_tx, report.problem) == (False, 10, COUNT_OFF)
    assert (report.checked, report.head_tx, report.head_hash, report.horizon) == (9, 10, head, 6)


@pytest.mark.parametrize("delta", [-1, 1])
def test_a_rewritten_count_of_compacted_versions_is_reported(store: Store, clock: Clock, delta: int) -> None:
    _ten_txs(store, clock)
    store.compact(6)

    def rewrite(txn: Any, dbs: dict[str, Any]) -> None:
        freed = schema.get_u64(txn, dbs["meta"], schema.COMPACTED_VERSIONS)
        assert freed == 5  # k's versions of txs 1..5
        schema.put_u64(txn, dbs["meta"], schema.COMPACTED_VERSIONS, freed + delta)

    _write(store, rewrite)
    report = store.verify()
    assert (report.ok, report.bad_tx, report.problem, report.checked) == (False, 10, COUNT_OFF, 9)


def _verify_while_committing(store: Store, commit: Any) -> VerifyReport:
    """``verify`` with ``commit()`` run just before its last read transaction (the totals check),
    as if another writer committed while it walked the chain."""
    backend = store._backend
    calls = 0

    def read(fn: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 5:  # latest, namespace ids, stream ids, the one chunk of txs, then the totals (and events)
            commit()
        return backend.read(fn)

    report = verify(read, backend.dbs)
    assert calls >= 5  # the commit happened, before the totals were read
    return report


def test_txs_committed_while_verify_runs_are_accounted_for(store: Store, clock: Clock) -> None:
    _ten_txs(store, clock)
    start_head = store.head()[1]
    ns = store.namespace("t")
    report = _verify_while_committing(store, lambda: ns.put({"x": 1, "y": 2, "z": 3}))
    assert store.latest_tx == 11
    assert (report.ok, report.checked, report.head_tx, report.head_hash, report.bad_tx) == (
        True, 10, 10, start_head, None)
    assert store.verify().ok


def test_a_stray_version_next_to_a_tx_committed_while_verify_runs_is_still_caught(store: Store,
                                                                                   clock: Clock) -> None:
    _ten_txs(store, clock)
    ns = store.namespace("t")

    def commit_and_smuggle() -> None:
        tx = ns.put({"x": 1})

        def smuggle(txn: Any, dbs: dict[str, Any]) -> None:
            txn.put(keypart(store._ns_prefix(txn, "t"), b"smuggled") + inv_tx(tx), b"\x01", db=dbs["versions"])

        _write(store, smuggle)

    report = _verify_while_committing(store, commit_and_smuggle)
    assert (report.ok, report.bad_tx) == (False, 11)
    assert report.problem == "a version exists that no tx log entry accounts for"


def test_a_tx_committed_while_verify_runs_without_its_log_entry_is_named(store: Store, clock: Clock) -> None:
    _ten_txs(store, clock)
    ns = store.namespace("t")

    def commit_and_unlog() -> None:
        tx = ns.put({"x": 1})
        _write(store, lambda txn, dbs: txn.delete(struct.pack(">Q", tx), db=dbs["txlog"]))

    report = _verify_while_committing(store, commit_and_unlog)
    assert (report.ok, report.bad_tx, report.problem, report.checked, report.head_tx) == (False, 11, NO_ENTRY, 10, 10)


HEAD_OFF = "the stored head hash does not match the chain"


@pytest.mark.parametrize("stored", [bytes(32), b"\x01" * 32, None])
def test_a_rewritten_or_missing_head_hash_is_reported_at_the_latest_tx(store: Store, clock: Clock,
                                                                      stored: bytes | None) -> None:
    _ten_txs(store, clock)
    head = store.head()[1]

    def rewrite(txn: Any, dbs: dict[str, Any]) -> None:
        if stored is None:
            assert txn.delete(b"head_hash", db=dbs["meta"])
        else:
            txn.put(b"head_hash", stored, db=dbs["meta"])

    _write(store, rewrite)
    report = store.verify()
    assert (report.ok, report.bad_tx, report.problem) == (False, 10, HEAD_OFF)
    assert (report.checked, report.head_tx, report.head_hash) == (9, 10, head)


def test_an_empty_store_verifies(store: Store) -> None:
    report = store.verify()
    assert (report.ok, report.checked, report.head_tx, report.head_hash, report.bad_tx, report.horizon) == (
        True, 0, 0, "00" * 32, None, 0)


def test_a_tx_naming_an_unregistered_namespace_is_named_with_its_problem(store: Store, clock: Clock) -> None:
    _ten_txs(store, clock)

    def rename(txn: Any, dbs: dict[str, Any]) -> None:
        key = struct.pack(">Q", 8) + b"\x01"  # tx 8's runs
        runs = msgpack.unpackb(txn.get(key, db=dbs["txlog"]))
        runs[0][0] = "ghost"
        txn.put(key, msgpack.packb(runs, use_bin_type=True), db=dbs["txlog"])

    _write(store, rename)
    report = store.verify()
    assert (report.ok, report.bad_tx, report.checked) == (False, 8, 7)
    assert report.problem == "namespace 'ghost' of this tx is not registered"


def test_operations_logged_past_the_latest_tx_are_not_counted(store: Store, clock: Clock) -> None:
    """The version count covers the txs up to the latest one its transaction sees. An operations entry
    past it (no commit leaves one: it is written with the tx's log entry and latest tx) is not
    counted, whether or not txs committed while verify ran."""
    _ten_txs(store, clock)

    def plant(tx: int) -> None:
        _write(store, lambda txn, dbs: txn.put(struct.pack(">Q", tx) + b"\x01", msgpack.packb([["t", 0, ["k"]]]),
                                               db=dbs["txlog"]))

    plant(11)
    assert store.verify().ok
    ns = store.namespace("t")

    def commit_and_plant() -> None:
        plant(ns.put({"x": 1}) + 1)

    assert _verify_while_committing(store, commit_and_plant).ok


def test_a_changed_value_is_named_with_its_problem(store: Store, clock: Clock) -> None:
    _ten_txs(store, clock)
    link = store.tx_info(6).hash  # type: ignore[union-attr]

    def flip(txn: Any, dbs: dict[str, Any]) -> None:
        vkey = keypart(store._ns_prefix(txn, "t"), b"only7") + inv_tx(7)
        value = bytearray(txn.get(vkey, db=dbs["versions"]))
        value[-1] ^= 0x01
        txn.put(vkey, bytes(value), db=dbs["versions"])

    _write(store, flip)
    report = store.verify()
    assert (report.ok, report.bad_tx, report.checked, report.head_hash) == (False, 7, 6, link)
    assert report.problem == "the hash does not match: a stored value or the tx log entry was changed"


def test_a_receipt_past_the_latest_tx_is_refused_with_its_parameter(store: Store, clock: Clock) -> None:
    _ten_txs(store, clock)
    with pytest.raises(FutureTx, match=r"^the receipt names tx 11, but the latest committed tx is 10$") as exc:
        store.verify(receipt=(11, "00" * 32))
    assert exc.value.details == {"tx": 11, "latest_tx": 10, "parameter": "receipt"}


def test_a_tx_committed_at_the_epoch_verifies(tmp_path: Path) -> None:
    """Time 0 (1970-01-01T00:00:00Z) is a valid commit time, in order after no tx at all."""
    with Store.open(tmp_path / "s", sync=False, clock=Clock(0.0)) as epoch:
        epoch.namespace("t").put({"k": 1})
        epoch.namespace("t").put({"k": 2})
        assert [epoch.tx_info(tx).time_us for tx in (1, 2)] == [0, 0]  # type: ignore[union-attr]
        report = epoch.verify()
        assert (report.ok, report.checked, report.bad_tx, report.horizon) == (True, 2, None, 0)


def _read_transactions(store: Store) -> int:
    backend = store._backend
    calls = 0

    def read(fn: Any) -> Any:
        nonlocal calls
        calls += 1
        return backend.read(fn)

    assert verify(read, backend.dbs).ok
    return calls


def test_verify_reads_txs_a_thousand_per_transaction(store: Store) -> None:
    """Besides the latest tx, the namespace and stream ids, the totals, the events and the
    latest-version index of up to 5,000 keys (6 read transactions), one per thousand txs: a long
    verify never holds one read transaction (and LMDB's old pages) for long."""
    assert _read_transactions(store) == 6
    ns = store.namespace("t")
    for i in range(1000):
        ns.put({"k": i})
    assert _read_transactions(store) == 7
    ns.put({"k": 1000})
    assert _read_transactions(store) == 8


def test_at_the_horizon_data_is_rehashed(store: Store, clock: Clock) -> None:
    """The horizon's own tx is re-hashed from its versions: a changed value there is named."""
    _ten_txs(store, clock)
    store.compact(6)

    def flip(txn: Any, dbs: dict[str, Any]) -> None:
        vkey = keypart(store._ns_prefix(txn, "t"), b"only6") + inv_tx(6)
        txn.put(vkey, bytes(txn.get(vkey, db=dbs["versions"]))[:-1] + b"\x00", db=dbs["versions"])

    _write(store, flip)
    report = store.verify()
    assert (report.ok, report.bad_tx, report.checked, report.horizon) == (False, 6, 5, 6)
    assert report.problem == "the hash does not match: a stored value or the tx log entry was changed"


def test_a_rewritten_hash_just_below_the_horizon_shows_at_the_horizon(store: Store, clock: Clock) -> None:
    _ten_txs(store, clock)
    store.compact(6)

    def rewrite(txn: Any, dbs: dict[str, Any]) -> None:
        key = struct.pack(">Q", 5)
        time_us, note, _ = msgpack.unpackb(txn.get(key, db=dbs["txlog"]))
        txn.put(key, msgpack.packb([time_us, note, b"\x05" * 32], use_bin_type=True), db=dbs["txlog"])

    _write(store, rewrite)
    report = store.verify()
    assert (report.ok, report.bad_tx, report.checked, report.head_hash) == (False, 6, 5, "05" * 32)


def test_a_receipt_that_no_longer_matches_is_named_with_its_problem(store: Store, clock: Clock) -> None:
    _ten_txs(store, clock)
    report = store.verify(receipt=(4, "AB" * 32))
    assert (report.ok, report.bad_tx, report.checked) == (False, 4, 3)
    assert report.problem == "the chain no longer matches the receipt: history up to it was rewritten"
    assert store.verify(receipt=(4, store.tx_info(4).hash.upper())).ok  # type: ignore[union-attr]


EVENT_OFF = "an event exists that no tx log entry accounts for"
EVENT_COUNT_OFF = "the event count does not match the tx log and the events compaction freed"


def test_events_published_while_verify_runs_are_accounted_for(store: Store, clock: Clock) -> None:
    """The event count covers the txs committed since verify started (its last transaction sees their
    events), added to those of the chain it walked."""
    _ten_txs(store, clock)
    stream = store.stream("ev")
    stream.publish(["a", "b"])  # tx 11: events the chain walk counts
    report = _verify_while_committing(store, lambda: stream.publish(["c", "d", "e"]))
    assert store.latest_tx == 12
    assert (report.ok, report.checked, report.head_tx, report.bad_tx, report.problem) == (True, 11, 11, None, None)
    assert store.verify().ok


def test_stream_runs_logged_past_the_latest_tx_are_not_counted(store: Store, clock: Clock) -> None:
    """As for versions: an operations entry past the latest tx its transaction sees adds no event."""
    _ten_txs(store, clock)
    stream = store.stream("ev")
    stream.publish(["a"])

    def plant(tx: int) -> None:
        _write(store, lambda txn, dbs: txn.put(struct.pack(">Q", tx) + b"\x01", msgpack.packb([["ev", 3, 2]]),
                                               db=dbs["txlog"]))

    plant(12)
    assert store.verify().ok
    assert _verify_while_committing(store, lambda: plant(stream.publish(["b"]) + 1)).ok


def _event_key(store: Store, tx: int, index: int) -> bytes:
    return struct.pack(">IQI", store._backend.read(lambda txn: events.ids(txn, store._backend.dbs))["ev"], tx, index)


def test_a_stray_event_is_reported_at_its_own_tx(store: Store, clock: Clock) -> None:
    """The first event (in key order) that no publish of its tx accounts for names the tx, not the
    first event of the stream."""
    _ten_txs(store, clock)
    tx = store.stream("ev").publish(["a", "b"])
    _write(store, lambda txn, dbs: txn.put(_event_key(store, 4, 0), b"\x01", db=dbs["events"]))
    report = store.verify()
    assert (report.ok, report.bad_tx, report.problem, report.checked, report.head_tx) == (False, 4, EVENT_OFF, 3, tx)


@pytest.mark.parametrize("freed", [1, 3])
def test_a_rewritten_count_of_compacted_events_is_reported_at_the_latest_tx(store: Store, clock: Clock,
                                                                            freed: int) -> None:
    """Every event is accounted for, yet the count is off: which tx lost one cannot be told, so the
    whole store is reported, as for the version count (not as a stray event: there is none)."""
    _ten_txs(store, clock)
    tx = store.stream("ev").publish(["a", "b"])
    _write(store, lambda txn, dbs: schema.put_u64(txn, dbs["meta"], events.COMPACTED_EVENTS, freed))
    report = store.verify()
    assert (report.ok, report.bad_tx, report.problem, report.checked) == (False, tx, EVENT_COUNT_OFF, tx - 1)


def test_a_stray_event_is_told_from_the_events_each_publish_accounts_for(store: Store, clock: Clock) -> None:
    """Txs 11 and 12 publish two events each; an event planted at index 2 of tx 12 (one past its
    publish's count) is the stray one, named even though txs follow it."""
    _ten_txs(store, clock)
    stream = store.stream("ev")
    stream.publish(["a", "b"])
    tx = stream.publish(["c", "d"])
    store.namespace("t").put({"after": 1})
    _write(store, lambda txn, dbs: txn.put(_event_key(store, tx, 2), b"\x01", db=dbs["events"]))
    report = store.verify()
    assert (report.ok, report.bad_tx, report.problem, report.head_tx) == (False, tx, EVENT_OFF, tx + 1)


def test_a_tx_publishing_to_two_streams_verifies_and_each_stream_is_hashed(store: Store, clock: Clock) -> None:
    """A tx may hold several stream runs (an imported history's tx does): every one of them is in its
    hash, not only the first."""
    _ten_txs(store, clock)
    runs = [events.StreamRun("one", events.PUBLISH, [b"\x01"]), events.StreamRun("two", events.PUBLISH, [b"\x02"])]
    store._backend.write(lambda txn: events.apply_runs(store, txn, runs, None))
    assert store.verify().ok
    two = struct.pack(">IQI", store._backend.read(lambda txn: events.ids(txn, store._backend.dbs))["two"], 11, 0)
    _write(store, lambda txn, dbs: txn.put(two, b"\x03", db=dbs["events"]))
    report = store.verify()
    assert (report.ok, report.bad_tx, report.checked) == (False, 11, 10)
    assert report.problem == "the hash does not match: a stored value or the tx log entry was changed"
