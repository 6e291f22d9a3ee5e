"""The write path's shortcuts send what the plain encoders send: remembered keys' base64, interned
operations' gateway form, the per-thread packer's bytes and the cached per-namespace operations
(engine.etcd.kv, engine.etcd.commit). No cluster needed."""

from __future__ import annotations

import base64
import threading

import msgpack
import pytest

from engine.etcd import kv
from engine.etcd.commit import PACKER_KEPT_BYTES, _steady, _steady_namespace, packb
from engine.etcd.kv import Compare, DeleteRange, Put, Range, Txn
from engine.etcd.layout import Layout


def test_base64_of_keys_and_values() -> None:
    for data in (b"", b"a", b"ab", b"abc", b"p/tx/\x00\xff\x10", bytes(range(256))):
        assert kv.b64(data) == base64.b64encode(data).decode("ascii")
        assert kv.key64(data) == kv.b64(data)
        assert kv.unb64(kv.b64(data)) == data
    key = kv.remember(b"wire-test/sys/hk")
    assert kv.key64(key) == base64.b64encode(key).decode("ascii")
    assert kv.unb64(None) == b"" and kv.unb64("") == b""


def test_remembered_keys_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kv, "_KNOWN_KEYS", {})
    monkeypatch.setattr(kv, "MAX_KNOWN_KEYS", 2)
    for key in (b"a", b"b", b"c"):
        kv.remember(key)
    assert list(kv._KNOWN_KEYS) == [b"a", b"b"]
    assert kv.key64(b"c") == kv.b64(b"c")  # not kept: encoded as any key


def test_interned_operations_send_their_own_form(monkeypatch: pytest.MonkeyPatch) -> None:
    ops = [Range(b"k", keys_only=True), Range(b"k", b"l", 3, 1), Put(b"k", b"v"), DeleteRange(b"k", b"l"),
           Txn((Compare(b"k", "CREATE", "==", 0),), (Put(b"k", b"v"),), (Range(b"k"),))]
    plain = [kv.request_json(op) for op in ops]
    assert [kv.request_json(kv.interned(op)) for op in ops] == plain
    assert plain[0] == {"request_range": {"key": "aw==", "keys_only": True}}
    compare = Compare(b"k", "CREATE", "==", 7, b"l")
    assert kv.compare_json(kv.interned(compare)) == compare.to_json() == {
        "key": "aw==", "target": "CREATE", "result": "EQUAL", "create_revision": "7", "range_end": "bA=="}
    monkeypatch.setattr(kv, "_INTERNED", {})
    monkeypatch.setattr(kv, "MAX_INTERNED", 0)
    assert kv.request_json(kv.interned(ops[2])) == plain[2] and not kv._INTERNED


def test_cached_operations_are_the_plain_ones() -> None:
    layout = Layout.of("wire/test")
    log, housekeeping = _steady(layout.prefix)
    assert (log, housekeeping) == (layout.log, Range(layout.housekeeping))
    assert _steady(layout.prefix)[1] is housekeeping  # made once
    touch, still, read = _steady_namespace(layout.prefix, "ns", 42)
    assert touch == Put(layout.updated("ns"), b"")
    assert still == Compare(layout.registry("ns"), "CREATE", "==", 42)
    assert read == Range(layout.registry("ns"), keys_only=True)
    assert _steady_namespace(layout.prefix, "ns", 43)[1] == Compare(layout.registry("ns"), "CREATE", "==", 43)


def test_packb_is_msgpack_packb_in_every_thread() -> None:
    values = [[1, None, [["ns", 0, ["k", "é"]]], b"\x00" * 16, None], {"note": [1.5, -3, 2**63]}, [], "x" * 300]
    expected = [msgpack.packb(v, use_bin_type=True) for v in values]
    assert [packb(v) for v in values] == expected
    got: list[list[bytes]] = []
    threads = [threading.Thread(target=lambda: got.append([packb(v) for v in values])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [expected] * 4
    with pytest.raises(TypeError):
        packb([object()])
    assert [packb(v) for v in values] == expected  # a failed pack leaves nothing behind
    large = [b"x" * (PACKER_KEPT_BYTES + 1)]
    assert packb(large) == msgpack.packb(large, use_bin_type=True)
    assert [packb(v) for v in values] == expected  # a new packer after a large output

