"""Expiry (TTL): the read rule, recorded expiries, validation. Time comes from an injected clock."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engine import Item, Limits, Record, Store, errors, export_history, import_history
from tests.engine.clock import T0, Clock, clock, store  # noqa: F401 (fixtures)


def test_ttl_hides_the_value_the_moment_it_expires(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    tx = ns.put({"a": 1, "b": 2}, ttl=10)
    ns.put({"c": 3})
    assert [r.key for r in ns.read(["a", "b", "c"]).records] == ["a", "b", "c"]
    clock.now = T0 + 9.999999
    assert ns.get("a") == Record("a", 1, tx)
    clock.now = T0 + 10  # expire_us == now: gone (visible iff expire_us > now)
    assert ns.get("a") is None
    assert ns.read(["a", "b", "c"]).records == [Record("c", 3, 2)]
    assert [r.key for r in ns.scan()] == ["c"]
    # Explicit txs evaluate expiry at their own commit time: the same answer forever.
    assert [r.key for r in ns.read(["a", "b", "c"], tx=2).records] == ["a", "b", "c"]
    assert [r.key for r in ns.scan(tx=2)] == ["a", "b", "c"]
    assert ns.get("a", tx=tx) == Record("a", 1, tx)


def test_latest_read_is_the_read_at_its_tx_minus_what_expired_since(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"short": 1}, ttl=5)
    ns.put({"long": 2}, ttl=50)
    clock.now = T0 + 20
    latest = ns.read(["short", "long"])
    at_tx = ns.read(["short", "long"], tx=latest.tx)
    assert [r.key for r in latest.records] == ["long"]
    assert [r.key for r in at_tx.records] == ["short", "long"]
    assert set(latest.records) <= set(at_tx.records)


def test_expiration_in_epoch_seconds_and_ttl_wins(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put([Item("abs", 1, expiration=T0 + 30), Item("both", 2, expiration=T0 + 1000, ttl=5)])
    clock.now = T0 + 6
    assert ns.get("both") is None  # ttl wins over expiration
    assert ns.get("abs") is not None
    clock.now = T0 + 30
    assert ns.get("abs") is None


def test_item_options_override_batch_options(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put([Item("x", 1), Item("y", 2, ttl=100), ("z", 3)], ttl=10)
    clock.now = T0 + 50
    assert [r.key for r in ns.read(["x", "y", "z"]).records] == ["y"]


def test_transaction_put_with_ttl(store: Store, clock: Clock) -> None:
    with store.transaction() as t:
        t.put("n", "a", 1, ttl=3)
        t.put("n", "b", 2)
        t.put("m", "c", 3, expiration=T0 + 3)
    clock.now = T0 + 3
    assert store.namespace("n").read(["a", "b"]).records == [Record("b", 2, 1)]
    assert store.namespace("m").get("c") is None


def test_expiry_is_recorded_as_a_delete_by_expire(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({f"k{i}": i for i in range(5)}, ttl=10)
    ns.put({"keep": 1})
    assert store.namespace_info("n").key_count == 6  # type: ignore[union-attr]
    assert store.next_expiry() is not None
    clock.now = T0 + 11
    assert store.expire() == 5
    assert store.expire() == 0
    assert store.next_expiry() is None
    info = store.namespace_info("n")
    assert info is not None and info.key_count == 1
    tx = store.latest_tx
    assert tx == 3
    assert store.tx_info(tx).note == {"expired": True}  # type: ignore[union-attr]
    assert {op.op for op in store.tx_info(tx).operations} == {"delete"}  # type: ignore[union-attr]
    assert [v.op for v in ns.history("k0")] == ["delete", "put"]
    changes = {c.key: c.kind for c in ns.diff(2, 3)}
    assert changes == {f"k{i}": "deleted" for i in range(5)}
    assert store.verify().ok


def test_the_next_write_records_due_expiries_in_a_tx_before_its_own(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1}, ttl=1)
    clock.now = T0 + 2
    tx = store.namespace("other").put({"x": 1})
    assert tx == 3
    info = store.tx_info(2)
    assert info is not None and info.note == {"expired": True}
    assert [(o.namespace, o.key, o.op) for o in info.operations] == [("n", "a", "delete")]
    assert store.namespace_info("n").key_count == 0  # type: ignore[union-attr]
    assert store.changes(1)[0].tx == 2
    assert store.verify().ok


def test_write_sweep_is_bounded(store: Store, clock: Clock) -> None:
    from engine import expiry
    ns = store.namespace("n")
    n = expiry.SWEEP_PER_WRITE * 2 + 5
    ns.put({f"k{i:04}": i for i in range(n)}, ttl=1)
    clock.now = T0 + 5
    ns.put({"x": 1})
    swept = store.tx_info(2)
    assert swept is not None and len(swept.operations) == expiry.SWEEP_PER_WRITE
    assert ns.scan().tx == 3 and [r.key for r in ns.scan()] == ["x"]  # hidden anyway
    assert store.expire() == n - expiry.SWEEP_PER_WRITE
    assert store.namespace_info("n").key_count == 1  # type: ignore[union-attr]


def test_overwritten_and_deleted_keys_leave_stale_entries_that_do_nothing(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1, "b": 2, "c": 3}, ttl=10)
    ns.put({"a": 10})             # overwritten without a ttl: never expires now
    ns.delete(["b"])
    ns.put({"c": 30}, ttl=100)    # a later expiry replaces the earlier one
    clock.now = T0 + 20
    assert store.expire() == 0
    assert [(r.key, r.value) for r in ns.scan()] == [("a", 10), ("c", 30)]
    clock.now = T0 + 200
    assert store.expire() == 1
    assert [r.key for r in ns.scan()] == ["a"]


def test_put_over_an_expired_key_counts_it_once(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1}, ttl=1)
    clock.now = T0 + 2
    with store.transaction() as t:  # a transaction also sweeps first
        t.expect("n", "a", tx=0)   # expired reads as absent
        t.put("n", "a", 2)
    assert ns.get("a") == Record("a", 2, 3)
    assert store.namespace_info("n").key_count == 1  # type: ignore[union-attr]


def test_expect_sees_an_expired_key_as_absent_even_before_it_is_recorded(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    from engine import expiry
    ns.put({f"k{i:04}": i for i in range(expiry.SWEEP_PER_WRITE + 1)}, ttl=1)
    clock.now = T0 + 2
    last = f"k{expiry.SWEEP_PER_WRITE:04}"
    with store.transaction() as t:
        t.expect("n", last, tx=0)
        t.put("n", "z", 1)
    assert ns.get(last) is None


def test_expect_at_the_exact_expiry_instant_sees_the_key_absent(store: Store, clock: Clock) -> None:
    """More keys fall due than one write's sweep records, so the expected key is still carrying its
    expiry when the expect is checked: the check itself must apply the read rule (gone iff
    ``expire_us <= now``) at the very microsecond the value expires."""
    from engine import expiry
    ns = store.namespace("n")
    ns.put({f"k{i:04}": i for i in range(expiry.SWEEP_PER_WRITE + 1)}, ttl=1)  # tx 1, all expire at T0 + 1
    last = f"k{expiry.SWEEP_PER_WRITE:04}"  # sorts after the ones a sweep records first
    clock.now = T0 + 1 - 0.000001  # one microsecond before: still there, still at tx 1
    with store.transaction() as t:
        t.expect("n", last, tx=1)
        t.put("n", "before", 1)
    assert t.tx == 2
    clock.now = T0 + 1  # the exact instant: expire_us == now
    with store.transaction() as t:
        t.expect("n", last, tx=0)
        t.put("n", "at", 1)
    assert t.tx == 4  # tx 3 recorded the first SWEEP_PER_WRITE expiries
    swept = store.tx_info(3)
    assert swept is not None and swept.note == {"expired": True}
    assert last not in [op.key for op in swept.operations]  # the expect saw it unrecorded
    assert len(swept.operations) == expiry.SWEEP_PER_WRITE
    with pytest.raises(errors.Conflict) as exc, store.transaction() as t:
        t.expect("n", last, tx=1)
        t.put("n", "late", 1)
    assert exc.value.code == "CONFLICT"
    assert exc.value.details["conflicts"] == [{"namespace": "n", "key": last, "expected": 1, "actual": 0}]


def test_long_keys_expire_too(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    long_key = "x" * 510
    ns.put({long_key: 1, "y" * 505: 2}, ttl=5)
    assert len(list(ns.scan())) == 2
    clock.now = T0 + 5
    assert list(ns.scan()) == [] and ns.get(long_key) is None
    assert store.expire() == 2
    assert store.namespace_info("n").key_count == 0  # type: ignore[union-attr]
    assert store.verify().ok


def test_scan_fixes_its_time_when_created(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({f"k{i}": i for i in range(3)}, ttl=5)
    scan = ns.scan()
    clock.now = T0 + 10
    assert len(list(scan)) == 3  # created before the expiry: every page agrees
    assert list(ns.scan()) == []


def test_diff_evaluates_expiry_at_each_tx(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1}, ttl=5)
    clock.now = T0 + 10
    store.namespace("o").put({"x": 1})  # sweeps "a" at tx 2, writes tx 3
    assert [(c.key, c.kind) for c in ns.diff(1, 3)] == [("a", "deleted")]
    assert [(c.key, c.kind) for c in ns.diff(0, 1)] == [("a", "added")]


def test_validation_codes(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    with pytest.raises(errors.InvalidExpirationTtl) as info:
        ns.put({"a": 1}, ttl=0.5)
    assert info.value.code == "INVALID_EXPIRATION_TTL"
    for bad, shown in (("10", "'10'"), (True, "True"), (float("nan"), "nan"), (-5, "-5"), (1e20, r"1e\+20")):
        with pytest.raises(errors.InvalidExpirationTtl, match=f"^ttl must be a number of seconds from 1 to "
                                                             f"10000000000, not {shown}$"):
            ns.put({"a": 1}, ttl=bad)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidExpiration,
                       match=r"at least 1 s in the future \(>= 1800000001\), not 1800000000\.0") as exp_info:
        ns.put({"a": 1}, expiration=T0)  # not in the future
    assert exp_info.value.code == "INVALID_EXPIRATION"
    with pytest.raises(errors.InvalidExpiration, match=r"expiration must be epoch seconds .* not 'soon'"):
        ns.put({"a": 1}, expiration="soon")  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidExpirationTtl, match=r"ttl must be a number of seconds .* not 0$") as batch:
        ns.put([Item("ok", 1, ttl=5), Item("bad", 2, ttl=0)])
    assert [(e["index"], e["key"], e["code"]) for e in batch.value.details["errors"]] == [
        (1, "bad", "INVALID_EXPIRATION_TTL")]
    t = store.transaction()
    with pytest.raises(errors.InvalidExpirationTtl, match=r"ttl must be a number of seconds .* not 0$"):
        t.put("n", "a", 1, ttl=0)
    assert store.latest_tx == 0
    assert errors.BY_CODE["INVALID_EXPIRATION"] is errors.InvalidExpiration
    assert errors.BY_CODE["INVALID_EXPIRATION_TTL"] is errors.InvalidExpirationTtl


def test_min_ttl_is_configurable(tmp_path: Path, clock: Clock) -> None:
    with Store.open(tmp_path / "s", sync=False, clock=clock, limits=Limits(min_ttl=60)) as store:
        ns = store.namespace("n")
        with pytest.raises(errors.InvalidExpirationTtl, match="ttl must be a number of seconds from 60 to"):
            ns.put({"a": 1}, ttl=59)
        with pytest.raises(errors.InvalidExpiration, match="at least 60 s in the future"):
            ns.put({"a": 1}, expiration=T0 + 59)
        ns.put({"a": 1}, ttl=60)
        ns.put({"b": 1}, expiration=T0 + 60)


def test_plain_puts_keep_bare_records(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": {"x": 1}})
    backend = store._backend
    raw = backend.read(lambda txn: bytes(next(iter(txn.cursor(db=backend.versions)))[1]))
    assert raw[0] != 0xC1
    assert backend.read(lambda txn: txn.stat(backend.dbs["expiry"])["entries"]) == 0


def test_history_export_replays_expiry_and_metadata(store: Store, clock: Clock, tmp_path: Path) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1}, ttl=5, metadata={"m": 1})
    ns.put({"b": 2}, metadata=[1, 2])
    clock.now = T0 + 10
    store.expire()
    rows = [orjson.loads(orjson.dumps(r)) for r in export_history(store)]
    with Store.open(tmp_path / "copy", sync=False, clock=clock) as copy:
        import_history(copy, rows)
        assert copy.head() == store.head()
        assert copy.verify().ok
        assert copy.namespace("n").get("b", metadata=True) == ns.get("b", metadata=True)
        assert copy.namespace("n").get("a", tx=1, metadata=True).metadata == {"m": 1}  # type: ignore[union-attr]
