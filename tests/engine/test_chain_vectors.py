"""The hash chain against known answers, and one tamper test per field the chain covers.

The expected hashes are computed here from the formula in docs/design.md, with every msgpack byte
spelled out by hand, never with ``engine.txlog.chain_hash``: a chain that silently dropped a field
(the commit time, the note, an operation, a record) would agree with itself, not with these bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import msgpack
import pytest

from engine import Store
from engine.encoding import inv_tx, keypart, ns_prefix
from tests.engine.raw import tamper as rewrite_raw

GENESIS = bytes(32)

# tx 1: at 1.0 s, no note, put {"a": 1} in "ns".
# msgpack([1, 1000000, nil, [["ns", 0, ["a"], [b"\x01"]]]])
TX1_BODY = bytes.fromhex(
    "94"            # array of 4
    "01"            # tx 1
    "ce000f4240"    # uint32 1,000,000 (time_us)
    "c0"            # nil (note)
    "91"            # one run:
    "94" "a26e73" "00" "91a161" "91c40101"  # ["ns", 0 (put), ["a"], [bin(01)]]: the record of 1 is msgpack 01
)
# tx 2: at 2.0 s, note {"by": "x"}, clear ["a"] in "ns" (a clear's record is C1 01).
TX2_BODY = bytes.fromhex(
    "94" "02" "ce001e8480" "81a26279a178"
    "91" "94" "a26e73" "01" "91a161" "91c402c101"
)
# tx 3: at 3.0 s, no note, put {"b": 2, "c": "x"} in "ns": one run, keys and records in key order.
TX3_BODY = bytes.fromhex(
    "94" "03" "ce002dc6c0" "c0"
    "91" "94" "a26e73" "00" "92a162a163" "92c40102c402a178"
)
H1 = hashlib.sha256(GENESIS + TX1_BODY).digest()
H2 = hashlib.sha256(H1 + TX2_BODY).digest()
H3 = hashlib.sha256(H2 + TX3_BODY).digest()


class _Ticks:
    """A clock that reads 1.0, 2.0, 3.0, ... seconds, one tick per commit."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _build(path: Path) -> None:
    clock = _Ticks()
    with Store.open(path, sync=False, clock=clock) as store:
        ns = store.namespace("ns")
        clock.now = 1.0
        assert ns.put({"a": 1}) == 1
        clock.now = 2.0
        assert ns.clear(["a"], note={"by": "x"}) == 2
        clock.now = 3.0
        assert ns.put({"b": 2, "c": "x"}) == 3


def test_the_body_bytes_are_the_documented_msgpack() -> None:
    # The hand-spelled bytes are the formula's msgpack encoding (a check on this file, not on the engine).
    assert msgpack.packb([1, 1_000_000, None, [["ns", 0, ["a"], [b"\x01"]]]], use_bin_type=True) == TX1_BODY
    assert msgpack.packb([2, 2_000_000, {"by": "x"}, [["ns", 1, ["a"], [b"\xc1\x01"]]]],
                                     use_bin_type=True) == TX2_BODY
    assert msgpack.packb([3, 3_000_000, None, [["ns", 0, ["b", "c"], [b"\x02", b"\xa1x"]]]],
                                     use_bin_type=True) == TX3_BODY


def test_stored_hashes_are_the_known_answers(tmp_path: Path) -> None:
    _build(tmp_path)
    with Store.open(tmp_path, sync=False) as store:
        assert [store.tx_info(tx).hash for tx in (1, 2, 3)] == [H1.hex(), H2.hex(), H3.hex()]  # type: ignore[union-attr]
        assert store.head() == (3, H3.hex())
        report = store.verify(receipt=(2, H2.hex()))
        assert report.ok and report.head_hash == H3.hex()


def _u64(n: int) -> bytes:
    return struct.pack(">Q", n)


Tamper = Callable[[lmdb.Transaction, lmdb.Environment], None]


def _rewrite(key: bytes, change: Callable[[list[Any]], None]) -> Tamper:
    """Decode the msgpack entry under ``key`` in ``txlog`` (a tx's entry or its runs), change it, write it back."""
    def run(txn: lmdb.Transaction, env: lmdb.Environment) -> None:
        db = env.open_db(b"txlog", txn=txn)
        entry = msgpack.unpackb(txn.get(key, db=db))
        change(entry)
        txn.put(key, msgpack.packb(entry, use_bin_type=True), db=db)
    return run


def _rewrite_log(tx: int, change: Callable[[list[Any]], None]) -> Tamper:
    return _rewrite(_u64(tx), change)


def _rewrite_ops(tx: int, change: Callable[[list[Any]], None]) -> Tamper:
    return _rewrite(_u64(tx) + b"\x01", change)  # tx | 01: the tx's runs (docs/design.md)


def _rewrite_record(key: str, tx: int, new: bytes) -> Tamper:
    def run(txn: lmdb.Transaction, env: lmdb.Environment) -> None:
        ns_id = msgpack.unpackb(txn.get(b"ns", db=env.open_db(b"namespaces", txn=txn)))[0]
        txn.put(keypart(ns_prefix(ns_id), key.encode()) + inv_tx(tx), new, db=env.open_db(b"versions", txn=txn))
    return run


def _set(index: int, value: object) -> Callable[[list[object]], None]:
    def change(entry: list[object]) -> None:
        entry[index] = value
    return change


def _set_op(op: int) -> Callable[[list[list[object]]], None]:
    def change(runs: list[list[object]]) -> None:
        runs[0][1] = op
    return change


def _swap_keys(runs: list[list[object]]) -> None:
    keys = runs[0][2]
    assert isinstance(keys, list)
    keys.reverse()


# Each field the chain claims to cover, rewritten in place with everything else (the stored hash
# included) left as it was: verify() must name the tx whose field changed.
TAMPERS = {
    "time of tx 2": (2, _rewrite_log(2, _set(0, 2_500_000))),
    "note of tx 2": (2, _rewrite_log(2, _set(1, {"by": "y"}))),
    "note of tx 2 removed": (2, _rewrite_log(2, _set(1, None))),
    "note added to tx 1": (1, _rewrite_log(1, _set(1, {"by": "x"}))),
    "operation of tx 1 (put -> clear)": (1, _rewrite_ops(1, _set_op(1))),
    "namespace of tx 3's run": (3, _rewrite_ops(3, lambda runs: runs[0].__setitem__(0, "ns2"))),
    "key order in tx 3": (3, _rewrite_ops(3, _swap_keys)),
    "record of tx 1": (1, _rewrite_record("a", 1, b"\x02")),
    "record of tx 2 (clear -> delete)": (2, _rewrite_record("a", 2, b"\xc1\x02")),
    "second record of tx 3": (3, _rewrite_record("c", 3, msgpack.packb("y"))),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_rewriting_one_covered_field_is_named_by_verify(tmp_path: Path, name: str) -> None:
    tx, tamper = TAMPERS[name]
    _build(tmp_path)
    rewrite_raw(tmp_path, tamper)
    with Store.open(tmp_path, sync=False) as store:
        report = store.verify()
        assert not report.ok
        assert report.bad_tx == tx, report.problem
        assert report.checked == tx - 1
