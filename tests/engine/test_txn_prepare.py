"""``prepare_puts``: the exact batch a put of several items becomes, whatever form the items take
(a dict, any other mapping, pairs, :class:`Item`), and the time an ``expiration`` is checked against
(``clock()``, or 0 without a clock)."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from engine import Item, Limits, errors
from engine.codec import PUT, pack_value
from engine.txn import Batch, Run, prepare_puts

LIMITS = Limits(max_batch=4, max_key_bytes=8, max_value_bytes=16)


def plain(*pairs: tuple[str, object]) -> Batch:
    """The batch of a put of plain items, in order."""
    keys = [key for key, _ in pairs]
    return Batch([Run("n", PUT, keys, [key.encode() for key in keys], [pack_value(v) for _, v in pairs])])


def test_a_mapping_that_is_not_a_dict_is_read_as_one() -> None:
    items = MappingProxyType({"a": 1, "b": [2]})
    assert prepare_puts("n", items, LIMITS) == plain(("a", 1), ("b", [2]))
    assert prepare_puts("n", {"a": 1, "b": [2]}, LIMITS) == plain(("a", 1), ("b", [2]))
    assert prepare_puts("n", [("a", 1), ("b", [2])], LIMITS) == plain(("a", 1), ("b", [2]))


def test_items_with_and_without_options() -> None:
    assert prepare_puts("n", [Item("a", 1), ("b", 2)], LIMITS) == plain(("a", 1), ("b", 2))
    batch = prepare_puts("n", [Item("a", 1, metadata={"m": 1}), ("b", 2)], LIMITS)
    assert batch == Batch([Run("n", PUT, ["a", "b"], [b"a", b"b"], [pack_value(1), pack_value(2)],
                               [(None, None, {"m": 1}), None])])
    batch = prepare_puts("n", {"a": 1}, LIMITS, (5, None, None), clock=lambda: 7)
    assert batch == Batch([Run("n", PUT, ["a"], [b"a"], [pack_value(1)], [(5_000_000, None, None)])])


def test_an_expiration_is_checked_against_the_clock() -> None:
    # min_ttl is 1 s: an expiration must be at least 1 s after clock().
    at = 1_000_000_000
    ok = prepare_puts("n", {"a": 1}, LIMITS, (None, at + 1, None), clock=lambda: at * 1_000_000)
    assert ok == Batch([Run("n", PUT, ["a"], [b"a"], [pack_value(1)], [(None, (at + 1) * 1_000_000, None)])])
    with pytest.raises(errors.InvalidExpiration) as info:
        prepare_puts("n", {"a": 1}, LIMITS, (None, at, None), clock=lambda: at * 1_000_000)
    assert info.value.to_dict()["errors"][0]["code"] == "INVALID_EXPIRATION"
    assert f"(>= {at + 1})" in info.value.message


def test_without_a_clock_an_expiration_is_checked_against_time_zero() -> None:
    # Exactly min_ttl after time 0 is the earliest expiration allowed; a microsecond later "now" would refuse it.
    batch = prepare_puts("n", [Item("a", 1, expiration=1)], LIMITS)
    assert batch == Batch([Run("n", PUT, ["a"], [b"a"], [pack_value(1)], [(None, 1_000_000, None)])])
    batch = prepare_puts("n", {"a": 1}, LIMITS, (None, 1, None))
    assert batch == Batch([Run("n", PUT, ["a"], [b"a"], [pack_value(1)], [(None, 1_000_000, None)])])
    with pytest.raises(errors.InvalidExpiration):
        prepare_puts("n", {"a": 1}, LIMITS, (None, 0.999999, None))


def test_an_items_own_expiration_is_checked_against_the_clock() -> None:
    # A list of Items only (no batch-wide options) takes the item-by-item path with clock(), not time 0.
    at = 1_000_000_000
    ok = prepare_puts("n", [Item("a", 1, expiration=at + 1)], LIMITS, clock=lambda: at * 1_000_000)
    assert ok == Batch([Run("n", PUT, ["a"], [b"a"], [pack_value(1)], [(None, (at + 1) * 1_000_000, None)])])
    with pytest.raises(errors.InvalidExpiration) as info:
        prepare_puts("n", [Item("a", 1, expiration=at)], LIMITS, clock=lambda: at * 1_000_000)
    assert info.value.to_dict()["errors"] == [
        {"index": 0, "key": "a", "code": "INVALID_EXPIRATION", "message": info.value.message}]
    assert f"(>= {at + 1})" in info.value.message


class StrKey(str):
    """A str subclass: keys must be exactly str (the item-by-item path's rule), and the fast pass agrees."""


def test_the_fast_pass_refuses_what_the_item_by_item_path_refuses() -> None:
    with pytest.raises(errors.DuplicateKey) as duplicate:
        prepare_puts("n", [("a", 1), ("a", 2)], LIMITS)
    assert duplicate.value.to_dict()["errors"] == [
        {"index": 1, "key": "a", "code": "DUPLICATE_KEY", "message": "key 'a' appears more than once in one write"}]
    with pytest.raises(errors.InvalidKey) as subclass:
        prepare_puts("n", [(StrKey("a"), 1)], LIMITS)
    assert subclass.value.to_dict()["errors"] == [
        {"index": 0, "key": "a", "code": "INVALID_KEY", "message": "key must be a str, not StrKey"}]
