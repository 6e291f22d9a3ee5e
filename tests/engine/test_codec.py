"""Values round-trip exactly; everything that is not a JSON type or bytes is refused clearly."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings

from engine import codec, errors
from tests.property.strategies import values
from tests.property.test_store_model import same

# The suite shares 2 cores with other work: on a loaded machine generating or running an example
# can exceed hypothesis' time budgets (the too_slow health check, the 200 ms deadline), which says
# nothing about these pure functions. Time is not what they test, so neither budget applies.
UNDER_LOAD = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@UNDER_LOAD
@given(values)
def test_values_round_trip_exactly(value: Any) -> None:
    assert same(codec.unpack_value(codec.pack_value(value)), value)


@UNDER_LOAD
@given(values)
def test_the_codec_writes_and_reads_what_msgpack_python_does(value: Any) -> None:
    # ormsgpack encodes and decodes; stores written with msgpack-python must read, verify and hash
    # the same, so the bytes must be identical and both decoders must see the same value.
    packed = codec.pack_value(value)
    assert packed == msgpack.packb(value, use_bin_type=True)
    assert same(codec.unpack_value(packed), msgpack.unpackb(packed))


def _deep(n: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(n):
        node.append([])
        node = node[0]
    return root


@pytest.mark.parametrize(
    "value",
    [(1, 2), {1: "a"}, {"a": b"x"}, float("nan"), [float("inf")], {"x": -float("inf")}, 2**64, -(2**63) - 1,
     "\ud800", {"a": "\udc00"}, {"\ud800": 1}, {1, 2}, OrderedDict(a=1), object(), [(1,)], _deep(300),
     {"a": None, "b": float("nan")}],
    ids=lambda v: type(v).__name__,
)
def test_invalid_values_are_refused(value: Any) -> None:
    with pytest.raises(errors.InvalidValue) as info:
        codec.pack_value(value)
    assert info.value.code == "INVALID_VALUE"
    assert "not storable" in info.value.message


@pytest.mark.parametrize("value", [None, True, False, 0, -(2**63), 2**64 - 1, 1.5, -0.0, "", "é\x00",
                                   [], {}, {"a": [None, {"b": 1.0}]}, b"", b"\x00\xff", _deep(200)])
def test_edge_values_round_trip(value: Any) -> None:
    assert same(codec.unpack_value(codec.pack_value(value)), value)


def test_records_never_start_like_a_marker() -> None:
    # A plain put record is bare msgpack, which never begins with C1: the marker is unambiguous.
    for value in [None, 0, "x", b"x", [1], {"a": 1}, 1.5, True]:
        assert codec.pack_value(value)[0] != codec.MARK
    assert codec.decode_record(codec.CLEAR_RECORD)[0] == codec.CLEAR
    assert codec.is_delete(codec.DELETE_RECORD)
    ext = codec.extended_record(codec.DELETE, "k" * 600, None)
    assert codec.is_delete(ext) and codec.decode_record(ext) == (codec.DELETE, None, "k" * 600)


def test_a_put_record_without_a_value_is_reported_as_damaged() -> None:
    assert codec.put_value(codec.pack_value({"a": 1})) == {"a": 1}
    with pytest.raises(errors.StorageError) as info:
        codec.put_value(None)
    assert info.value.code == "STORAGE_ERROR" and "damaged" in info.value.message
