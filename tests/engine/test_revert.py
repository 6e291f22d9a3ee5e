"""Revert to a past tx: what it writes, what it refuses, and the tx it takes (or not)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import Item, Limits, Record, Store, errors
from tests.conftest import fingerprint
from tests.engine.clock import T0, Clock

FIELDS = ["expire_time"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "store", sync=False, clock=clock) as opened:
        yield opened


def _state(store: Store, keys: list[str], tx: int | None = None) -> list[tuple[object, ...]]:
    records = store.namespace("n").read(keys, tx=tx, metadata=True, fields=FIELDS).records
    return [(r.key, r.value, r.binary, r.cleared, r.metadata, r.expire_time) for r in records]


def _history(store: Store) -> list[str]:
    """tx 1: a b c; tx 2: a with expiry and metadata; tx 3: clear b, delete c, add d; tx 4: a plain."""
    ns = store.namespace("n")
    ns.put({"a": 1, "b": b"\x00\xff", "c": "x"})
    ns.put([Item("a", {"v": 2}, ttl=100, metadata={"by": "alice"})])
    with store.transaction() as t:
        t.clear("n", "b")
        t.delete("n", "c")
        t.put("n", "d", [4])
    ns.put({"a": 3})
    return ["a", "b", "c", "d"]


def test_revert_restores_values_binary_metadata_and_expiry(store: Store) -> None:
    keys = _history(store)
    result = store.namespace("n").revert(2, note={"by": "ops"})
    assert (result.tx, result.to_tx, result.count, result.committed) == (5, 2, 4, True)
    assert _state(store, keys) == _state(store, keys, tx=2)
    assert _state(store, keys) == [
        ("a", {"v": 2}, False, False, {"by": "alice"}, datetime.fromtimestamp(T0 + 100, UTC)),
        ("b", b"\x00\xff", True, False, None, None), ("c", "x", False, False, None, None)]
    info = store.tx_info(5)
    assert info is not None and info.note == {"by": "ops", "revert": {"to_tx": 2}}
    assert sorted((op.key, op.op) for op in info.operations) == [("a", "put"), ("b", "put"), ("c", "put"),
                                                                 ("d", "delete")]
    assert [(c.key, c.kind) for c in result.changes] == [("a", "changed"), ("b", "changed"), ("c", "added"),
                                                         ("d", "deleted")]
    a = result.changes[0]
    assert a.before == Record("a", 3, 4) and a.after == Record(
        "a", {"v": 2}, 2, metadata={"by": "alice"}, expire_time=datetime.fromtimestamp(T0 + 100, UTC))
    # History is kept: every earlier tx reads as before, and the versions are all there.
    assert [v.tx for v in store.namespace("n").history("a")] == [5, 4, 2, 1]
    assert store.verify().ok


def test_revert_recleares_and_keys_created_since_are_deleted(store: Store) -> None:
    keys = _history(store)
    result = store.namespace("n").revert(3)
    assert (result.tx, [(c.key, c.kind) for c in result.changes]) == (5, [("a", "changed")])
    assert _state(store, keys) == _state(store, keys, tx=3)
    assert store.namespace("n").get("b") == Record("b", None, 3, False, True)
    assert store.namespace("n").revert(0).changes[0].kind == "deleted"
    assert store.namespace("n").read(keys).records == [] and store.latest_tx == 6
    assert store.namespace("n").info().key_count == 0  # type: ignore[union-attr]


def test_a_revert_that_changes_nothing_takes_no_tx(store: Store) -> None:
    keys = _history(store)
    assert store.namespace("n").revert(4) == store.namespace("n").revert(4, dry_run=True)
    assert store.namespace("n").revert(4).tx == 4 and not store.namespace("n").revert(4).committed
    store.namespace("n").revert(1)
    before = fingerprint(store)
    again = store.namespace("n").revert(1, note={"x": 1})
    assert (again.tx, again.changes, again.committed) == (5, [], False)
    assert fingerprint(store) == before and _state(store, keys) == _state(store, keys, tx=1)
    # A namespace never written: nothing to revert, and no tx.
    assert store.namespace("other").revert(2).tx == 5


def test_dry_run_says_what_the_revert_writes_and_writes_nothing(store: Store) -> None:
    _history(store)
    before = fingerprint(store)
    preview = store.namespace("n").revert(1, dry_run=True)
    assert fingerprint(store) == before
    assert (preview.tx, preview.committed) == (4, False)
    done = store.namespace("n").revert(1)
    assert done.changes == preview.changes and done.tx == 5


def test_revert_of_chosen_keys_or_a_prefix_leaves_the_rest(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"u/1": 1, "u/2": 2, "v/1": 1})
    ns.put({"u/1": 10, "u/2": 20, "v/1": 10, "u/3": 30})
    only = ns.revert(1, keys=["u/2", "v/1", "u/2", "never"])
    assert (only.tx, [c.key for c in only.changes]) == (3, ["u/2", "v/1"])
    assert store.tx_info(3).note == {"revert": {"to_tx": 1, "keys": 3}}  # type: ignore[union-attr]
    assert [(r.key, r.value) for r in ns.scan()] == [("u/1", 10), ("u/2", 2), ("u/3", 30), ("v/1", 1)]
    by_prefix = ns.revert(1, prefix="u/")
    assert [(c.key, c.kind) for c in by_prefix.changes] == [("u/1", "changed"), ("u/3", "deleted")]
    assert store.tx_info(4).note == {"revert": {"to_tx": 1, "prefix": "u/"}}  # type: ignore[union-attr]
    assert [(r.key, r.value) for r in ns.scan()] == [("u/1", 1), ("u/2", 2), ("v/1", 1)]


def test_a_value_that_expired_since_to_tx_stays_expired(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put([Item("t", "short", ttl=5), Item("l", "long", ttl=500)])  # tx 1
    ns.put({"t": "plain", "l": "plain"})  # tx 2
    clock.now += 10
    result = ns.revert(1)
    # A read at tx 1 still shows "short" (expiry is evaluated at tx 1's time), but it has expired
    # by now: the revert deletes the key instead of writing a value no read could see.
    assert [r.key for r in ns.read(["t", "l"], tx=1).records] == ["t", "l"]
    assert [(c.key, c.kind) for c in result.changes] == [("l", "changed"), ("t", "deleted")]
    assert _state(store, ["t", "l"]) == [("l", "long", False, False, None, datetime.fromtimestamp(T0 + 500, UTC))]


def test_an_expired_value_not_yet_recorded_counts_as_absent(store: Store, clock: Clock) -> None:
    ns = store.namespace("n")
    ns.put({"k": 1})  # tx 1
    ns.put([Item("k", 2, ttl=5)])  # tx 2
    ns.delete(["k"])  # tx 3
    ns.put([Item("k", 3, ttl=5)])  # tx 4
    clock.now += 10
    assert ns.revert(3, dry_run=True).changes == []  # absent at 3, and k=3 has expired: nothing to do
    result = ns.revert(1)  # the sweep records k's expiry in tx 5, then the revert is tx 6
    assert (result.tx, store.tx_info(5).note) == (6, {"expired": True})  # type: ignore[union-attr]
    assert ns.get("k") == Record("k", 1, 6)


def test_revert_brings_back_a_dropped_namespace(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1})
    store.drop_namespace("n")
    assert store.namespace_info("n") is None
    assert ns.revert(1).tx == 3 and ns.get("a") == Record("a", 1, 3)
    assert store.namespace_info("n").key_count == 1  # type: ignore[union-attr]


def test_long_keys_and_bucketed_keys_are_restored(store: Store) -> None:
    long_key, nul_key = "k" * 500, "a\x00b"
    ns = store.namespace("n")
    ns.put({long_key: 1, nul_key: b"1"})
    ns.put([Item(long_key, 2, metadata=[1])])
    ns.delete([nul_key])
    ns.revert(1)
    assert ns.read([long_key, nul_key], metadata=True).records == [Record(long_key, 1, 4), Record(nul_key, b"1", 4,
                                                                                                  True)]


def test_revert_refuses_bad_input_before_writing(store: Store) -> None:
    _history(store)
    before = fingerprint(store)
    ns = store.namespace("n")
    for call, error, message in (
        (lambda: ns.revert(5), errors.FutureTx, "tx 5 is in the future: the latest committed tx is 4"),
        (lambda: ns.revert(-1), errors.InvalidParameters, "to_tx must be a non-negative integer, not -1"),
        (lambda: ns.revert(True), errors.InvalidParameters, "to_tx must be a non-negative integer, not True"),
        (lambda: ns.revert(1, keys=["a"], prefix="a"), errors.InvalidParameters, "give keys or prefix, not both"),
        (lambda: ns.revert(1, keys=[]), errors.InvalidParameters,
         "keys must name at least one key (omit it to revert the whole namespace)"),
        (lambda: ns.revert(1, keys="a"), errors.InvalidParameters, "keys must be a list of str, not a single string"),
        (lambda: ns.revert(1, keys=[""]), errors.InvalidKey, "key must not be empty"),
        (lambda: ns.revert(1, prefix=3), errors.InvalidParameters, "prefix must be a str"),  # type: ignore[arg-type]
        (lambda: ns.revert(1, dry_run=1), errors.InvalidParameters, "dry_run must be True or False, not 1"),
        (lambda: ns.revert(1, note={"revert": 1}), errors.InvalidParameters,
         'a revert\'s note may not hold a "revert" member: the revert writes it'),
        (lambda: ns.revert(1, note="x"), errors.InvalidParameters,  # type: ignore[arg-type]
         "note must be a JSON object (dict) or None, not str"),
    ):
        with pytest.raises(error) as info:
            call()
        assert info.value.message == message
    assert fingerprint(store) == before


def test_revert_below_the_compaction_horizon_is_tx_compacted(store: Store) -> None:
    _history(store)
    store.compact(3)
    with pytest.raises(errors.TxCompacted) as info:
        store.namespace("n").revert(2)
    assert info.value.details == {"tx": 2, "horizon": 3}
    assert store.namespace("n").revert(3).count == 1


def test_a_revert_larger_than_one_tx_fails_before_writing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sync=False, limits=Limits(max_batch=3)) as small:
        ns = small.namespace("n")
        ns.put({"a": 1, "b": 1, "c": 1})
        ns.put({"d": 1})
        before = fingerprint(small)
        with pytest.raises(errors.BatchTooLarge) as info:
            ns.revert(0)
        assert info.value.message == ("the revert would write more than 3 keys, the most one tx may hold; nothing "
                                      "was written: revert in parts, by prefix or keys")
        with pytest.raises(errors.BatchTooLarge):
            ns.revert(0, dry_run=True)
        with pytest.raises(errors.BatchTooLarge) as info:
            ns.revert(0, keys=["a", "b", "c", "d"])
        assert info.value.details == {"count": 4, "limit": 3}
        assert fingerprint(small) == before
        assert ns.revert(0, keys=["a", "b", "c"]).count == 3 and ns.revert(0).count == 1
