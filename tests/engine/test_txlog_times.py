"""Commit times in the tx log: the floor every commit time respects, and ``tx_at`` at the edges of u64."""

from __future__ import annotations

from pathlib import Path

import engine
from engine import Store, txlog
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


def test_the_time_index_holds_time_then_tx_as_keys_and_empty_values(store: Store, clock: Clock) -> None:
    # docs/design.md documents txtime byte for byte: key time_us | tx (u64 big-endian each), value empty.
    first = store.namespace("n").put({"a": 1})
    clock.now = T0 + 1
    second = store.namespace("n").put({"b": 2})
    us = round(T0 * 1_000_000)
    rows = store._backend.read(lambda txn: [(bytes(k), bytes(v)) for k, v in
                                            txn.cursor(db=store._backend.dbs["txtime"])])
    assert rows == [(us.to_bytes(8, "big") + first.to_bytes(8, "big"), b""),
                    ((us + 1_000_000).to_bytes(8, "big") + second.to_bytes(8, "big"), b"")]
