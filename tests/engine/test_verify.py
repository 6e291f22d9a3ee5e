"""Tamper evidence: flip a stored byte, drop a version, rewrite a log entry; verify names the tx."""

from __future__ import annotations

import struct
from pathlib import Path

import lmdb
import msgpack
import pytest

from engine import Store, errors
from engine.encoding import inv_tx, keypart, ns_prefix
from tests.engine.raw import open_raw


def _build(path: Path) -> tuple[str, int, str]:
    with Store.open(path, sync=False) as store:
        ns = store.namespace("ledger")
        for i in range(1, 11):
            ns.put({f"acct:{j}": {"balance": i * j, "memo": "x" * 20} for j in range(5)}, note={"batch": i})
        ns.clear(["acct:1"])
        ns.delete(["acct:2"])
        ns.put({"k" * 505: b"long key value"})  # a bucketed key is covered too
        report = store.verify()
        assert report.ok and report.head_tx == 13 and report.bad_tx is None
        tx, digest = store.head()
        assert (tx, digest) == (13, report.head_hash)
        return "ledger", tx, digest


def _raw(path: Path) -> lmdb.Environment:
    return open_raw(path)


def _version_key(env: lmdb.Environment, key: str, tx: int) -> bytes:
    with env.begin() as txn:
        entry = msgpack.unpackb(txn.get(b"ledger", db=env.open_db(b"namespaces", txn=txn)))
    return keypart(ns_prefix(entry[0]), key.encode()) + inv_tx(tx)


def test_untouched_store_verifies_against_its_receipt(tmp_path: Path) -> None:
    _, tx, digest = _build(tmp_path)
    with Store.open(tmp_path, sync=False) as store:
        assert store.verify(receipt=(tx, digest)).ok
        assert store.verify(receipt=(5, store.tx_info(5).hash)).ok  # type: ignore[union-attr]
        bad = store.verify(receipt=(5, "00" * 32))
        assert not bad.ok and bad.bad_tx == 5


@pytest.mark.parametrize(("key", "tx"), [("acct:3", 4), ("k" * 505, 13)])
def test_flipped_byte_in_a_value_names_its_tx(tmp_path: Path, key: str, tx: int) -> None:
    _build(tmp_path)
    env = _raw(tmp_path)
    vkey = _version_key(env, key, tx)
    with env.begin(write=True) as txn:
        versions = env.open_db(b"versions", txn=txn)
        value = bytearray(txn.get(vkey, db=versions))
        value[-1] ^= 0x01
        txn.put(vkey, bytes(value), db=versions)
    env.close()
    with Store.open(tmp_path, sync=False) as store:
        report = store.verify()
        assert not report.ok and report.bad_tx == tx and "value" in (report.problem or "")
        assert report.checked == tx - 1


def test_dropped_version_names_its_tx(tmp_path: Path) -> None:
    _build(tmp_path)
    env = _raw(tmp_path)
    with env.begin(write=True) as txn:
        assert txn.delete(_version_key(env, "acct:1", 11), db=env.open_db(b"versions", txn=txn))  # the clear
    env.close()
    with Store.open(tmp_path, sync=False) as store:
        report = store.verify()
        assert not report.ok and report.bad_tx == 11 and "missing" in (report.problem or "")


def test_rewritten_log_entry_names_its_tx(tmp_path: Path) -> None:
    _build(tmp_path)
    env = _raw(tmp_path)
    with env.begin(write=True) as txn:
        txlog = env.open_db(b"txlog", txn=txn)
        key = struct.pack(">Q", 7)
        time_us, _note, digest = msgpack.unpackb(txn.get(key, db=txlog))
        txn.put(key, msgpack.packb([time_us, {"batch": "forged"}, digest], use_bin_type=True), db=txlog)
    env.close()
    with Store.open(tmp_path, sync=False) as store:
        report = store.verify()
        assert not report.ok and report.bad_tx == 7


def test_rewritten_operations_name_their_tx(tmp_path: Path) -> None:
    _build(tmp_path)
    env = _raw(tmp_path)
    with env.begin(write=True) as txn:
        txlog = env.open_db(b"txlog", txn=txn)
        key = struct.pack(">Q", 12) + b"\x01"  # tx 12's runs
        runs = msgpack.unpackb(txn.get(key, db=txlog))
        runs[0][1] = 1  # claim the delete was a clear
        txn.put(key, msgpack.packb(runs, use_bin_type=True), db=txlog)
    env.close()
    with Store.open(tmp_path, sync=False) as store:
        report = store.verify()
        assert not report.ok and report.bad_tx == 12


def test_whole_chain_rewritten_is_caught_by_the_receipt(tmp_path: Path) -> None:
    _, tx, digest = _build(tmp_path)
    # An attacker edits tx 3's note and recomputes every later hash so the chain is self-consistent.
    from engine import txlog as log
    from engine.backend import DB_NAMES as names

    env = _raw(tmp_path)
    with env.begin(write=True) as txn:
        handles = {n: env.open_db(n.encode(), txn=txn) for n in names}
        ids = {bytes(k).decode(): msgpack.unpackb(v)[0] for k, v in txn.cursor(db=handles["namespaces"])}
        prev = log.GENESIS
        for t in range(1, tx + 1):
            key = struct.pack(">Q", t)
            time_us, note, _ = msgpack.unpackb(txn.get(key, db=handles["txlog"]))
            if t == 3:
                note = {"batch": "rewritten"}
            runs = msgpack.unpackb(txn.get(key + b"\x01", db=handles["txlog"]))
            records = [[bytes(txn.get(keypart(ns_prefix(ids[ns]), k.encode()) + inv_tx(t), db=handles["versions"]))
                        for k in keys] for ns, _, keys in runs]
            prev = log.chain_hash(prev, t, time_us, note, runs, records)
            txn.put(key, msgpack.packb([time_us, note, prev], use_bin_type=True), db=handles["txlog"])
        txn.put(log.HEAD_HASH, prev, db=handles["meta"])
        for t in range(1, tx + 1):  # and drops the Merkle tree (txlog[t | 02]): opening rebuilds it from the forgery
            assert txn.delete(struct.pack(">Q", t) + b"\x02", db=handles["txlog"])
    env.close()
    with Store.open(tmp_path, sync=False) as store:
        assert store.verify().ok  # self-consistent: only a receipt can tell
        report = store.verify(receipt=(tx, digest))
        assert not report.ok and report.bad_tx == tx
        assert not store.verify(receipt=(3, "0" * 64)).ok


def test_stray_version_is_reported(tmp_path: Path) -> None:
    _build(tmp_path)
    env = _raw(tmp_path)
    with env.begin(write=True) as txn:
        txn.put(_version_key(env, "acct:9", 6), msgpack.packb("smuggled"), db=env.open_db(b"versions", txn=txn))
    env.close()
    with Store.open(tmp_path, sync=False) as store:
        report = store.verify()
        assert not report.ok and report.bad_tx == 6 and "accounts" in (report.problem or "")


def test_a_receipt_past_the_head_is_future_tx(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sync=False) as store:
        for i in range(6):
            store.namespace("n").put({"k": i})
        tx, digest = store.head()
        with pytest.raises(errors.FutureTx) as exc:
            store.verify(receipt=(50, digest))
        assert exc.value.details["tx"] == 50 and exc.value.details["latest_tx"] == 6
        report = store.verify(receipt=(3, "00" * 32))
        assert not report.ok and report.bad_tx == 3 and report.checked == 2
        assert store.verify(receipt=(tx, digest)).checked == 6
