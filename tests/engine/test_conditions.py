"""Conditional writes of the engine (``expect={key: tx}`` on put, clear and delete): exact txs, exact
conflicts, nothing written on failure, and the states present, cleared, deleted, absent, expired."""

from __future__ import annotations

import pytest

from engine import Item, Store, errors
from tests.conftest import fingerprint
from tests.engine.clock import Clock, clock, store  # noqa: F401 (fixtures)


def test_put_with_the_current_tx_commits_and_a_stale_one_conflicts(store: Store) -> None:
    ns = store.namespace("n")
    t1 = ns.put({"k": 1})
    t2 = ns.put({"k": 2}, expect={"k": t1})
    assert t2 == 2
    before = fingerprint(store)
    with pytest.raises(errors.Conflict) as info:
        ns.put({"k": 3, "other": 1}, expect={"k": t1})
    assert info.value.code == "CONFLICT"
    assert info.value.details == {"conflicts": [{"namespace": "n", "key": "k", "expected": 1, "actual": 2}]}
    assert fingerprint(store) == before and store.latest_tx == 2


def test_zero_means_no_record_absent_deleted_but_not_cleared(store: Store) -> None:
    ns = store.namespace("n")
    assert ns.put({"new": 1}, expect={"new": 0}) == 1            # absent
    ns.delete(["new"])                                              # tx 2
    assert ns.put({"new": 2}, expect={"new": 0}) == 3            # deleted
    ns.clear(["new"])                                               # tx 4: cleared has a record
    with pytest.raises(errors.Conflict) as info:
        ns.put({"new": 3}, expect={"new": 0})
    assert info.value.details["conflicts"] == [{"namespace": "n", "key": "new", "expected": 0, "actual": 4}]
    assert ns.put({"new": 3}, expect={"new": 4}) == 5             # the clear's tx matches


def test_clear_and_delete_take_conditions_and_every_failure_is_listed(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1, "b": 2})
    with pytest.raises(errors.Conflict) as info:
        ns.delete(["a", "b"], expect={"a": 0, "b": 1, "c": 7})
    assert info.value.details["conflicts"] == [
        {"namespace": "n", "key": "a", "expected": 0, "actual": 1},
        {"namespace": "n", "key": "c", "expected": 7, "actual": 0}]
    assert ns.clear(["a"], expect={"a": 1}) == 2
    assert ns.delete(["a", "b"], expect={"a": 2, "b": 1}) == 3
    # A condition on a key the write does not touch (etcd's compare on another key).
    assert ns.put({"x": 1}, expect={"a": 0}) == 4


def test_a_deleted_absent_key_with_expect_zero_is_a_no_op_delete(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1})
    assert ns.delete(["gone"], expect={"gone": 0}) == 1  # nothing to delete: no tx, condition holds


def test_an_expired_value_has_no_record_from_its_expiry_instant(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    t1 = ns.put([Item("s", "v", ttl=2)])
    clock.now += 2 - 1e-6
    with pytest.raises(errors.Conflict):
        ns.put({"s": "w"}, expect={"s": 0})     # one microsecond before: still there
    clock.now += 1e-6                            # the exact instant: expired, as reads say
    assert ns.get("s") is None
    before = fingerprint(store)
    with pytest.raises(errors.Conflict) as info:
        ns.put({"s": "w"}, expect={"s": t1})
    assert info.value.details["conflicts"][0]["actual"] == 0
    assert fingerprint(store) == before           # not even the expiry sweep was written
    assert ns.put({"s": "w"}, expect={"s": 0}) == 3  # tx 2 records the expiry, tx 3 the put


def test_bad_conditions_are_refused_before_anything_is_written(store: Store) -> None:
    ns = store.namespace("n")
    with pytest.raises(errors.InvalidParameters) as info:
        ns.put({"a": 1}, expect={"a": -1, "b": "x"})
    assert [e["index"] for e in info.value.details["errors"]] == [0, 1]
    with pytest.raises(errors.InvalidKey):
        ns.put({"a": 1}, expect={"": 0})
    with pytest.raises(errors.InvalidParameters):
        ns.put({"a": 1}, expect=[("a", 0)])  # type: ignore[arg-type]
    assert store.latest_tx == 0


def test_a_transaction_and_a_conditional_write_agree(store: Store) -> None:
    ns = store.namespace("n")
    t1 = ns.put({"k": 1})
    with store.transaction() as t:
        t.put("n", "k", 2)
        t.expect("n", "k", tx=t1)
    with pytest.raises(errors.Conflict):
        ns.put({"k": 3}, expect={"k": t1})
    assert ns.put({"k": 3}, expect={"k": t.tx}) == 3
