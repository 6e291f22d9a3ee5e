"""engine.etcd.layout: every key of a store's layout, byte for byte, and the prefix rules."""

from __future__ import annotations

import pytest

from engine import errors
from engine.etcd.layout import Layout, check_prefix


def test_every_key_of_the_layout() -> None:
    layout = Layout.of("team/s1")
    assert layout.prefix == b"team/s1"
    assert layout.meta == b"team/s1/meta"
    assert layout.housekeeping == b"team/s1/sys/hk"
    assert layout.data("ns", "k/é".encode()) == b"team/s1/d/ns/k/\xc3\xa9"
    assert layout.data_prefix("ns") == b"team/s1/d/ns/"
    assert layout.marker("ns", b"k\x00x") == b"team/s1/m/ns/k\x00x"
    assert layout.dropped("ns") == b"team/s1/m/ns"
    assert layout.request(b"\x01\xff") == b"team/s1/tx/\x01\xff"
    assert layout.requests == (b"team/s1/tx/", b"team/s1/tx0")
    assert layout.log == b"team/s1/log"
    assert layout.registry("ns") == b"team/s1/n/ns"
    assert layout.registries == (b"team/s1/n/", b"team/s1/n0")
    assert layout.updated("ns") == b"team/s1/u/ns"
    assert layout.expiry(0x1234, "ns", "k\x00é".encode()) == b"team/s1/x/0000000000001234/ns/k\x00\xc3\xa9"


def test_expiry_entries_sort_by_time() -> None:
    layout = Layout.of("p")
    times = [0, 9, 10, 255, 2**40, 2**64 - 1]
    keys = [layout.expiry(t, "z", b"a") for t in times] + [layout.expiry(t, "a", b"z") for t in times]
    assert sorted(keys) == [k for t in times for k in (layout.expiry(t, "a", b"z"), layout.expiry(t, "z", b"a"))]


def test_keys_and_names_read_back() -> None:
    layout = Layout.of("p")
    assert layout.key_of("a.b", layout.data("a.b", "x/y\x00é".encode())) == "x/y\x00é"
    assert layout.namespace_of_registry(layout.registry("a-b_c.d")) == "a-b_c.d"


def test_a_namespace_data_range_holds_only_its_keys() -> None:
    # "a" is a prefix of "ab" as a name, never as a data prefix: the "/" after the name ends it.
    layout = Layout.of("p")
    start = layout.data_prefix("a")
    assert not layout.data("ab", b"k").startswith(start)
    assert not layout.marker("a", b"k").startswith(start)
    assert not layout.marker("a", b"k").startswith(layout.dropped("a") + b"\x00")
    assert layout.dropped("a") < layout.marker("a", b"k")
    assert layout.data("a", b"k").startswith(start)


@pytest.mark.parametrize("prefix", ["a", "A.b_c-d", "team/store-1", "x" * 128])
def test_valid_prefixes(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["", "/a", "a/", "a//b", "a b", "é", "x" * 129, None, b"a"])
def test_invalid_prefixes(prefix: object) -> None:
    with pytest.raises(errors.InvalidParameters, match="an etcd store prefix is 1-128 characters") as info:
        check_prefix(prefix)  # type: ignore[arg-type]
    assert info.value.details == {"parameter": "prefix"}
