"""``Transaction``: the order its operations are logged in, a put with only a ``ttl``, and a
no-op delete of an existing namespace ahead of other operations."""

from __future__ import annotations

from datetime import UTC, datetime

from engine import Store
from engine.codec import CLEAR, DELETE, PUT
from engine.txlog import runs_of

from .clock import T0, Clock, clock, store  # noqa: F401  (fixtures)


def logged_runs(s: Store, tx: int) -> list[list[object]]:
    backend = s._backend
    return backend.read(lambda txn: runs_of(txn, backend.dbs, tx))  # type: ignore[no-any-return]


def test_a_key_written_again_moves_to_its_latest_position(store: Store) -> None:
    store.namespace("n").put({"b": 0})
    with store.transaction() as t:
        t.put("n", "a", 1)
        t.delete("n", "b")
        t.clear("n", "a")  # replaces the put of "a", and applies after the delete of "b"
    assert t.tx == 2
    assert logged_runs(store, 2) == [["n", DELETE, ["b"]], ["n", CLEAR, ["a"]]]
    with store.transaction() as t:
        t.put("n", "x", 1)
        t.put("n", "y", 2)
        t.put("n", "x", 3)
    assert logged_runs(store, 3) == [["n", PUT, ["y", "x"]]]


def test_a_put_with_only_a_ttl_expires(store: Store, clock: Clock) -> None:
    with store.transaction() as t:
        t.put("n", "k", 1, ttl=5)
    record = store.namespace("n").get("k", fields=["expire_time"])
    assert record is not None and record.expire_time == datetime.fromtimestamp(T0 + 5, UTC)
    clock.now = T0 + 5
    assert store.namespace("n").get("k") is None


def test_a_no_op_delete_in_an_existing_namespace_drops_only_itself(store: Store) -> None:
    store.namespace("n").put({"k": 1})
    with store.transaction() as t:
        t.delete("n", "absent")  # a no-op: its run is dropped, the runs after it are written
        t.put("m", "a", 1)
        t.delete("n", "k")
    assert t.tx == 2
    assert logged_runs(store, 2) == [["m", PUT, ["a"]], ["n", DELETE, ["k"]]]
