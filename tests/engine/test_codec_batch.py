"""The write path's batch encoders give exactly what the one-value encoders give.

``pack_values`` validates a whole put in one pass and must return ``pack_value``'s bytes for every
value, or raise its error; ``packb_exact`` must write msgpack-python's bytes (the hash chain and the
tx log hash and store them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import codec, errors
from tests.property.strategies import values

UNDER_LOAD = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)


def _deep(n: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(n):
        node.append([])
        node = node[0]
    return root


def _one_by_one(items: list[Any]) -> list[bytes] | str:
    """What pack_value says of each value: the bytes, or the first error's message."""
    try:
        return [codec.pack_value(value) for value in items]
    except errors.InvalidValue as exc:
        return exc.message


def _batch(items: list[Any]) -> list[bytes] | str:
    try:
        return codec.pack_values(items)
    except errors.InvalidValue as exc:
        return exc.message


@UNDER_LOAD
@given(st.lists(values, max_size=8))
def test_pack_values_is_pack_value_of_each(items: list[Any]) -> None:
    assert _batch(items) == _one_by_one(items)


BAD = [(1, 2), {1: "a"}, {"a": b"x"}, float("nan"), [float("inf")], 2**64, -(2**63) - 1, "\ud800",
       {"a": "\udc00"}, OrderedDict(a=1), object(), [(1,)], _deep(300), {"a": None, "b": float("nan")}]


@pytest.mark.parametrize("bad", BAD, ids=lambda v: type(v).__name__)
def test_a_bad_value_among_good_ones_is_refused_as_alone(bad: Any) -> None:
    items = [{"a": 1}, "text", bad, [1.5, None]]
    result = _batch(items)
    assert isinstance(result, str) and "not storable" in result
    assert result == _one_by_one(items)


@pytest.mark.parametrize("items", [[None], [b"\x00"], [{"a": None}], ["null"], [2**64 - 1, -(2**63)], [_deep(253)],
                                   [1.0, -0.0, {"x": [True, False]}], []])
def test_values_the_single_pass_cannot_vouch_for_still_encode(items: list[Any]) -> None:
    assert codec.pack_values(items) == [msgpack.packb(value, use_bin_type=True) for value in items]


@UNDER_LOAD
@given(st.lists(st.one_of(values, st.lists(st.binary(max_size=20), max_size=3)), max_size=6))
def test_packb_exact_writes_msgpack_pythons_bytes(obj: list[Any]) -> None:
    assert codec.packb_exact(obj) == msgpack.packb(obj, use_bin_type=True)


def test_packb_exact_after_a_refused_object_writes_only_the_next_one() -> None:
    with pytest.raises(TypeError):
        codec.packb_exact([1, object()])
    assert codec.packb_exact([2]) == msgpack.packb([2], use_bin_type=True)


def test_packb_exact_from_threads_at_once() -> None:
    objs = [[i, "x" * i, bytes(i)] for i in range(200)]
    failures: list[int] = []

    def pack_all() -> None:
        for _ in range(20):
            for i, obj in enumerate(objs):
                if codec.packb_exact(obj) != msgpack.packb(obj, use_bin_type=True):
                    failures.append(i)

    threads = [threading.Thread(target=pack_all) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
