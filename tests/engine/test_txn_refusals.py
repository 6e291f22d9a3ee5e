"""Every refusal of the write path, as full error data (code, message, details), each leaving the
store exactly as it was: batch sizes, items listed one by one, duplicates, failed expectations and
misuse of a :class:`~engine.Transaction`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Item, Limits, Store, errors
from tests.conftest import fingerprint

LIMITS = Limits(max_batch=3, max_key_bytes=8, max_value_bytes=16)


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "s", sync=False, limits=LIMITS) as store:
        store.namespace("n").put({"a": 1})
        store.namespace("n").put({"a": 2})
        yield store


def refused(store: Store, action: Callable[[], Any]) -> dict[str, Any]:
    """The error ``action`` raises, as data; the store must be unchanged."""
    before = fingerprint(store)
    with pytest.raises(errors.EngineError) as info:
        action()
    assert fingerprint(store) == before
    return info.value.to_dict()


def test_batch_size_refusals(small: Store) -> None:
    ns = small.namespace("n")
    empty = {"code": "EMPTY_BATCH", "message": "a write needs at least one item"}
    assert refused(small, lambda: ns.put({})) == empty
    assert refused(small, lambda: ns.delete([])) == empty
    four = {"k1": 1, "k2": 2, "k3": 3, "k4": 4}
    too_many = {"code": "BATCH_TOO_LARGE", "message": "4 items in one write; the limit is 3", "count": 4, "limit": 3}
    assert refused(small, lambda: ns.put(four)) == too_many
    assert refused(small, lambda: ns.put([Item(k, v) for k, v in four.items()])) == too_many
    assert refused(small, lambda: ns.clear(list(four))) == too_many


def test_exactly_max_batch_items_commit(small: Store) -> None:
    ns = small.namespace("n")
    assert ns.put({"k1": 1, "k2": 2, "k3": 3}) == 3
    assert ns.delete(["k1", "k2", "k3"]) == 4


def test_a_single_bad_item_is_named_by_its_own_message(small: Store) -> None:
    ns = small.namespace("n")
    assert refused(small, lambda: ns.put({"a": 1, "123456789": 2})) == {
        "code": "KEY_TOO_LONG", "message": "key is 9 bytes of UTF-8; the limit is 8",
        "errors": [{"index": 1, "key": "123456789", "code": "KEY_TOO_LONG",
                    "message": "key is 9 bytes of UTF-8; the limit is 8"}],
    }
    assert refused(small, lambda: ns.put({"a": "x" * 17})) == {
        "code": "VALUE_TOO_LARGE", "message": "value is 18 bytes encoded; the limit is 16",
        "errors": [{"index": 0, "key": "a", "code": "VALUE_TOO_LARGE",
                    "message": "value is 18 bytes encoded; the limit is 16"}],
    }


def test_several_bad_items_are_counted_and_each_listed(small: Store) -> None:
    ns = small.namespace("n")
    error = refused(small, lambda: ns.put([(7, 2), ("a", 1), ("a", 3)]))
    first = "key must be a str, not int"
    assert error == {
        "code": "INVALID_KEY", "message": f"2 items are invalid; the first: {first}",
        "errors": [
            {"index": 0, "key": "7", "code": "INVALID_KEY", "message": first},
            {"index": 2, "key": "a", "code": "DUPLICATE_KEY", "message": "key 'a' appears more than once in one write"},
        ],
    }
    pair = "an item must be an Item(key, value) or a (key, value) pair"
    assert refused(small, lambda: ns.put([("a", 1), "pair"])) == {
        "code": "INVALID_PARAMETERS", "message": pair,
        "errors": [{"index": 1, "key": "pair", "code": "INVALID_PARAMETERS", "message": pair}],
    }
    assert refused(small, lambda: ns.delete(["b", "", "b"])) == {
        "code": "INVALID_KEY", "message": "2 items are invalid; the first: key must not be empty",
        "errors": [
            {"index": 1, "key": "", "code": "INVALID_KEY", "message": "key must not be empty"},
            {"index": 2, "key": "b", "code": "DUPLICATE_KEY", "message": "key 'b' appears more than once in one write"},
        ],
    }
    assert refused(small, lambda: ns.delete("ab")) == {
        "code": "INVALID_PARAMETERS", "message": "keys must be a list of str, not a single string"}


def test_a_failed_expectation_names_the_first_key_and_lists_each(small: Store) -> None:
    def write() -> None:
        with small.transaction() as t:
            t.put("n", "b", 1)
            t.expect("n", "a", tx=1)  # "a" was last changed at tx 2
            t.expect("n", "b", tx=0)  # right: b is absent
            t.expect("gone", "z", tx=4)  # no such namespace: absent
    assert refused(small, write) == {
        "code": "CONFLICT",
        "message": "2 expectation(s) failed; key 'a' in 'n' was last changed at tx 2, not 1",
        "conflicts": [{"namespace": "n", "key": "a", "expected": 1, "actual": 2},
                      {"namespace": "gone", "key": "z", "expected": 4, "actual": 0}],
    }


def test_transaction_misuse(small: Store) -> None:
    t = small.transaction()
    assert refused(small, t.commit) == {
        "code": "EMPTY_BATCH", "message": "a transaction needs at least one put, clear or delete"}
    for i in range(3):
        t.put("n", f"k{i}", i)
    t.put("n", "k0", "again")  # the same key: still three operations
    assert refused(small, lambda: t.delete("n", "k3")) == {
        "code": "BATCH_TOO_LARGE", "message": "more than 3 operations in one transaction", "limit": 3}
    assert refused(small, lambda: t.put("n", "big", "x" * 17)) == {
        "code": "VALUE_TOO_LARGE", "message": "value is 18 bytes encoded; the limit is 16", "key": "big"}
    t2 = small.transaction()
    t2.put("n", "c", 1)
    assert t2.commit() == 3
    assert t2.commit() == 3  # committing again returns the same tx
    assert refused(small, lambda: t2.put("n", "d", 1)) == {
        "code": "INVALID_PARAMETERS", "message": "this transaction has already committed"}
    assert refused(small, lambda: t2.expect("n", "d", tx=0)) == {
        "code": "INVALID_PARAMETERS", "message": "this transaction has already committed"}


def test_a_value_of_exactly_max_value_bytes_is_accepted_on_every_path(small: Store) -> None:
    ns = small.namespace("n")
    at_limit = "x" * 15  # msgpack: the fixstr header AF + 15 bytes = 16, the limit
    assert ns.put({"p": at_limit}) == 3
    assert ns.put([Item("q", at_limit, metadata={"m": 1})]) == 4
    with small.transaction() as t:
        t.put("n", "r", at_limit, metadata={"m": 2})
    assert t.tx == 5
    assert [(r.key, r.value) for r in ns.scan()] == [("a", 2), ("p", at_limit), ("q", at_limit), ("r", at_limit)]
    too_large = "value is 17 bytes encoded; the limit is 16"
    assert refused(small, lambda: ns.put([Item("s", at_limit + "x", metadata={"m": 3})])) == {
        "code": "VALUE_TOO_LARGE", "message": too_large,
        "errors": [{"index": 0, "key": "s", "code": "VALUE_TOO_LARGE", "message": too_large}],
    }
