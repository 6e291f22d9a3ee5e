"""The hash chain over stream events: a known answer spelled byte by byte (as in
``test_chain_vectors.py``), and one tamper test per part of a publish the chain covers."""

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
from tests.engine.raw import tamper as rewrite_raw

# tx 1: at 1.0 s, put {"a": 1} in namespace "ns" (the known answer of test_chain_vectors.py).
H1 = hashlib.sha256(bytes(32) + bytes.fromhex("94" "01" "ce000f4240" "c0" "91" "94" "a26e73" "00" "91a161" "91c40101"))
# tx 2: at 2.0 s, no note, publish ["e", 1] to stream "ev":
# msgpack([2, 2000000, nil, [["ev", 3, 2, [bin(msgpack("e")), bin(msgpack(1))]]]])
TX2_BODY = bytes.fromhex(
    "94" "02" "ce001e8480" "c0"
    "91" "94" "a26576" "03" "02"       # one run: ["ev", 3 (publish), 2 (events)
    "92" "c402a165" "c40101"           # the records: msgpack "e" = a1 65, msgpack 1 = 01
)
# tx 3: at 3.0 s, drop stream "ev": msgpack([3, 3000000, nil, [["ev", 4, 0, []]]])
TX3_BODY = bytes.fromhex("94" "03" "ce002dc6c0" "c0" "91" "94" "a26576" "04" "00" "90")
H2 = hashlib.sha256(H1.digest() + TX2_BODY)
H3 = hashlib.sha256(H2.digest() + TX3_BODY)


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _build(path: Path, drop: bool = True) -> None:
    clock = _Clock()
    with Store.open(path, sync=False, clock=clock) as store:
        clock.now = 1.0
        assert store.namespace("ns").put({"a": 1}) == 1
        clock.now = 2.0
        assert store.stream("ev").publish(["e", 1]) == 2
        if drop:
            clock.now = 3.0
            assert store.drop_stream("ev") == 3


def test_the_body_bytes_are_the_documented_msgpack() -> None:
    assert msgpack.packb([2, 2_000_000, None, [["ev", 3, 2, [b"\xa1e", b"\x01"]]]], use_bin_type=True) == TX2_BODY
    assert msgpack.packb([3, 3_000_000, None, [["ev", 4, 0, []]]], use_bin_type=True) == TX3_BODY


def test_publishes_and_drops_hash_to_the_known_answers(tmp_path: Path) -> None:
    _build(tmp_path)
    with Store.open(tmp_path, sync=False) as store:
        assert [store.tx_info(tx).hash for tx in (1, 2, 3)] == [  # type: ignore[union-attr]
            H1.hexdigest(), H2.hexdigest(), H3.hexdigest()]
        assert store.verify(receipt=(2, H2.hexdigest())).ok


def _event_key(tx: int, index: int) -> bytes:
    return struct.pack(">IQI", 1, tx, index)  # stream "ev" is the store's first stream: id 1


Tamper = Callable[[lmdb.Transaction, lmdb.Environment], None]


def _events(change: Callable[[lmdb.Transaction, Any], None]) -> Tamper:
    return lambda txn, env: change(txn, env.open_db(b"events", txn=txn))


def _ops(change: Callable[[list[Any]], None]) -> Tamper:
    def run(txn: lmdb.Transaction, env: lmdb.Environment) -> None:
        db, key = env.open_db(b"txlog", txn=txn), struct.pack(">Q", 2) + b"\x01"  # tx 2's runs
        runs = msgpack.unpackb(txn.get(key, db=db))
        change(runs)
        txn.put(key, msgpack.packb(runs, use_bin_type=True), db=db)
    return run


# Each rewritten in place, stored hashes left alone: verify() must name tx 2 (or the stray event's tx).
TAMPERS: dict[str, tuple[int, Tamper, str]] = {
    "a flipped byte of an event": (2, _events(lambda txn, db: txn.put(_event_key(2, 1), b"\x02", db=db)),
                                   "the hash does not match"),
    "an event removed": (2, _events(lambda txn, db: txn.delete(_event_key(2, 0), db=db)), "event 0 of stream 'ev'"),
    "an event inserted": (2, _events(lambda txn, db: txn.put(_event_key(2, 2), b"\x03", db=db)),
                          "an event exists that no tx log entry accounts for"),
    "the events swapped": (2, _events(lambda txn, db: (txn.put(_event_key(2, 0), b"\x01", db=db),
                                                       txn.put(_event_key(2, 1), b"\xa1e", db=db))),
                           "the hash does not match"),
    "the stream renamed in the log": (2, _ops(lambda runs: runs[0].__setitem__(0, "ns")),
                                      "stream 'ns' of this tx is not registered"),
    "the count lowered in the log": (2, _ops(lambda runs: runs[0].__setitem__(2, 1)), "the hash does not match"),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_rewriting_an_event_is_named_by_verify(tmp_path: Path, name: str) -> None:
    tx, tamper, problem = TAMPERS[name]
    _build(tmp_path, drop=False)
    rewrite_raw(tmp_path, tamper)
    with Store.open(tmp_path, sync=False) as store:
        report = store.verify()
        assert not report.ok
        assert report.bad_tx == tx and report.problem is not None and report.problem.startswith(problem), report
