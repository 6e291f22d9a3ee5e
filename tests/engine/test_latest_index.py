"""The latest-version index (engine/latest.py): its bytes, every write path keeping it exact, reads at
the latest tx answering from it, the migration of a store written before it, and verify() catching
an index that no longer matches the versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lmdb
import msgpack
import pytest

from engine import Store, errors, export_history, import_rows
from engine import latest as latest_index
from engine import scan as scan_module
from engine.encoding import inv_tx, keypart, ns_prefix
from engine.schema import NamespaceEntry
from tests.engine.raw import open_raw, tamper

from .clock import T0, Clock, clock, store  # noqa: F401  (fixtures)

LONG = "k" * 505  # a bucketed key: its record carries the full key


def _entries(store: Store) -> dict[bytes, bytes]:
    backend = store._backend
    return backend.read(lambda txn: {bytes(k): bytes(v) for k, v in txn.cursor(db=backend.latest)})


def _kp(store: Store, ns: str, key: str) -> bytes:
    prefix = store._backend.read(lambda txn: store._ns_prefix(txn, ns))
    assert prefix is not None
    return keypart(prefix, key.encode())


def _check(store: Store) -> None:
    backend = store._backend
    pos: bytes | None = b""
    while pos is not None:
        bad, pos = backend.read(lambda txn, at=pos: latest_index.check(txn, backend.dbs, at))
        assert bad is None
    assert store.verify().ok


def _fill(store: Store) -> dict[str, int]:
    ns = store.namespace("t")
    txs = {"put": ns.put({"a": 1, "b": "two", "c": b"\x00bin", "n\x00ul": [1]})}
    txs["long"] = ns.put({LONG: {"x": 1}})
    txs["clear"] = ns.clear(["b"])
    txs["delete"] = ns.delete(["c"])
    txs["meta"] = ns.put({"m": 5}, metadata={"tag": 1})
    return txs


def test_an_entry_is_92_record_cf_tx_and_a_plain_put_is_the_msgpack_of_value_and_tx(store: Store) -> None:
    txs = _fill(store)
    entries = _entries(store)
    a = entries[_kp(store, "t", "a")]
    assert a == b"\x92\x01\xcf" + txs["put"].to_bytes(8, "big")
    assert msgpack.unpackb(a) == [1, txs["put"]]
    assert entries[_kp(store, "t", "b")] == b"\x92\xc1\x01\xcf" + txs["clear"].to_bytes(8, "big")
    assert latest_index.split(entries[_kp(store, "t", "m")])[0] == txs["meta"]
    long_tx, long_record = latest_index.split(entries[_kp(store, "t", LONG)])
    assert long_tx == txs["long"] and long_record[:1] == b"\xc1"
    # The deleted key has no entry; nor has a key never written. a, b, long, m and "n\0ul" are live.
    assert _kp(store, "t", "c") not in entries and len(entries) == 5
    _check(store)


def test_every_entry_is_the_keys_newest_version_byte_for_byte(store: Store) -> None:
    _fill(store)
    backend = store._backend
    for key, raw_entry in _entries(store).items():
        tx, record = latest_index.split(raw_entry)
        assert backend.read(lambda txn, k=key, t=tx: bytes(txn.get(k + inv_tx(t), db=backend.versions))) == record


def test_key_count_and_size_come_from_the_entries_replaced(store: Store) -> None:
    ns = store.namespace("t")
    ns.put({"a": 1, "b": 2})
    ns.put({"a": "longer value", "c": 3})
    ns.clear(["b"])
    ns.delete(["c", "zzz"])
    info = store.namespace_info("t")
    live = [(_kp(store, "t", "a"), msgpack.packb("longer value")), (_kp(store, "t", "b"), b"\xc1\x01")]
    assert (info.key_count, info.size_bytes) == (2, sum(len(k) + len(r) for k, r in live))


def test_reads_at_the_latest_tx_answer_as_reads_at_that_tx_from_the_versions(store: Store, clock: Clock) -> None:
    _fill(store)
    ns = store.namespace("t")
    ns.put({"soon": 1}, ttl=10)
    keys = ["a", "b", "c", "n\x00ul", LONG, "m", "soon", "never"]
    latest = store.latest_tx
    clock.now = T0 + 5
    assert ns.read(keys).records == ns.read(keys, tx=latest).records
    assert [ns.get(k) for k in keys] == [ns.get(k, tx=latest) for k in keys]
    assert list(ns.scan()) == list(ns.scan(tx=latest))
    full = ns.read(keys, metadata=True, fields=["created_at", "updated_at", "expire_time"]).records
    assert [r.key for r in full] == ["a", "b", "n\x00ul", LONG, "m", "soon"]
    clock.now = T0 + 10  # "soon" expired, its expiry not yet recorded: absent at the latest tx, still indexed
    assert [r.key for r in ns.read(keys).records] == ["a", "b", "n\x00ul", LONG, "m"]
    assert ns.get("soon") is None and [r.key for r in ns.scan(prefix="s")] == []
    assert _kp(store, "t", "soon") in _entries(store)
    store.expire()
    assert _kp(store, "t", "soon") not in _entries(store)
    _check(store)


def test_a_scan_whose_tx_is_overtaken_reads_the_rest_from_the_versions(store: Store,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan_module, "CHUNK", 2)
    ns = store.namespace("t")
    tx = ns.put({f"k{i}": i for i in range(7)})
    it = iter(ns.scan())
    first = [next(it), next(it), next(it)]
    ns.put({f"k{i}": -i for i in range(7)})  # every later key changes after the scan's tx
    ns.delete(["k5"])
    rest = list(it)
    assert [(r.key, r.value, r.tx) for r in first + rest] == [(f"k{i}", i, tx) for i in range(7)]


def test_every_write_path_keeps_the_index_exact(store: Store, clock: Clock) -> None:
    ns = store.namespace("t")
    ns.put({"a": 1, "b": 2, LONG: 3})
    t2 = ns.put({"a": 10, "c": 30}, ttl=5)
    ns.delete(["b"])
    ns.revert(t2 - 1)  # back to the state before t2: a and b again, no c
    _check(store)
    clock.now = T0 + 6
    ns.put({"d": 4}, ttl=5)
    store.expire()
    _check(store)
    with store.transaction() as txn:
        txn.put("u", "x", 1)
        txn.delete("t", "a")
        txn.clear("t", LONG)
    _check(store)
    store.compact(store.latest_tx)
    _check(store)
    store.drop_namespace("t")
    assert not any(k.startswith(ns_prefix(1)) for k in _entries(store))
    _check(store)
    assert [i.key_count for i in store.namespaces()] == [1]


def test_an_import_replay_builds_the_same_index(tmp_path: Path, store: Store) -> None:
    _fill(store)
    rows = list(export_history(store))
    with Store.open(tmp_path / "copy", sync=False) as copy:
        import_rows(copy, rows)
        assert _entries(copy) == _entries(store)
        _check(copy)


def _as_old_store(path: Path) -> None:
    """Make the store at ``path`` look written before the index: no entries, no layout mark."""
    def change(txn: Any, env: lmdb.Environment) -> None:
        txn.drop(env.open_db(b"latest", txn=txn), delete=False)
        assert txn.delete(latest_index.LAYOUT_KEY, db=env.open_db(b"meta", txn=txn))
    tamper(path, change)


def test_a_store_older_than_the_index_gets_it_built_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s"
    with Store.open(path, sync=False) as s:
        ns = s.namespace("t")
        ns.put({f"k{i}": i for i in range(12)})
        ns.delete(["k3", "k7"])
        ns.clear(["k4"])
        ns.put({LONG: 1, "n\x00ul": 2})
        want_entries, want_counts = _entries(s), [(i.key_count, i.size_bytes) for i in s.namespaces()]
        want_scan = list(ns.scan())
    _as_old_store(path)
    monkeypatch.setattr(latest_index, "CHUNK", 5)  # 13 live keys and 2 deletes: 3 chunks and the mark
    with Store.open(path, sync=False) as s:
        assert _entries(s) == want_entries
        assert [(i.key_count, i.size_bytes) for i in s.namespaces()] == want_counts
        assert list(s.namespace("t").scan()) == want_scan
        assert s._backend.commits == 3 and s._backend.read(
            lambda txn: txn.get(latest_index.BUILD, db=s._backend.meta)) is None
        _check(s)
    with Store.open(path, sync=False) as s:  # built: the next open writes nothing
        assert s._backend.commits == 0


def test_building_over_a_partial_or_stale_index_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store.open(path, sync=False) as s:
        ns = s.namespace("t")
        ns.put({"a": 1, "b": 2, "c": 3})
        ns.delete(["b"])
        want = _entries(s)
        prefix = ns_prefix(1)

    def stale(txn: Any, env: lmdb.Environment) -> None:
        latest = env.open_db(b"latest", txn=txn)
        meta = env.open_db(b"meta", txn=txn)
        txn.put(keypart(prefix, b"b"), latest_index.entry(1, b"\x02"), db=latest)  # a deleted key, listed
        txn.put(keypart(prefix, b"a"), latest_index.entry(9, b"\x07"), db=latest)  # a wrong entry
        txn.delete(keypart(prefix, b"c"), db=latest)  # a missing entry
        txn.delete(latest_index.LAYOUT_KEY, db=meta)
        txn.put(latest_index.BUILD, b"", db=meta)  # a build that stopped before its first chunk
    tamper(path, stale)
    with Store.open(path, sync=False) as s:
        assert _entries(s) == want
        _check(s)


def test_a_new_store_marks_its_layout_with_its_first_tx_and_builds_nothing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sync=False) as s:
        assert s._backend.commits == 0
        layout = s._backend.read(lambda txn: txn.get(latest_index.LAYOUT_KEY, db=s._backend.meta))
        assert layout is None
        s.namespace("t").put({"a": 1})
        layout = s._backend.read(lambda txn: txn.get(latest_index.LAYOUT_KEY, db=s._backend.meta))
        assert layout == (2).to_bytes(4, "big")


def _ns_id(txn: Any, env: lmdb.Environment) -> bytes:
    return ns_prefix(NamespaceEntry.decode(txn.get(b"t", db=env.open_db(b"namespaces", txn=txn))).id)


@pytest.mark.parametrize(("change", "tx", "problem"), [
    ("remove", 2, "the latest-version index has no entry for a key's newest version"),
    ("flip", 2, "the latest-version index entry does not match the key's newest version"),
    ("retx", 2, "the latest-version index entry does not match the key's newest version"),
    ("deleted", 3, "the latest-version index lists a key whose newest version is a delete"),
    ("stray", 7, "the latest-version index has an entry for a key with no version"),
    ("stray_last", 7, "the latest-version index has an entry for a key with no version"),
])
def test_verify_names_an_index_that_does_not_match_the_versions(tmp_path: Path, change: str, tx: int,
                                                                 problem: str) -> None:
    path = tmp_path / "s"
    with Store.open(path, sync=False) as s:
        ns = s.namespace("t")
        ns.put({"a": 1, "b": 2, "z": 26})
        ns.put({"b": "two"})
        ns.delete(["a"])

    def edit(txn: Any, env: lmdb.Environment) -> None:
        latest = env.open_db(b"latest", txn=txn)
        prefix = _ns_id(txn, env)
        b = keypart(prefix, b"b")
        if change == "remove":
            txn.delete(b, db=latest)
        elif change == "flip":
            value = bytearray(txn.get(b, db=latest))
            value[2] ^= 0x01
            txn.put(b, bytes(value), db=latest)
        elif change == "retx":
            txn.put(b, latest_index.entry(1, latest_index.split(txn.get(b, db=latest))[1]), db=latest)
        elif change == "deleted":
            txn.put(keypart(prefix, b"a"), latest_index.entry(3, b"\x01"), db=latest)
        elif change == "stray":
            txn.put(keypart(prefix, b"aa"), latest_index.entry(7, b"\x01"), db=latest)
        else:
            txn.put(keypart(prefix, b"zz"), latest_index.entry(7, b"\x01"), db=latest)
    tamper(path, edit)
    with Store.open(path, sync=False) as s:
        report = s.verify()
        assert (report.ok, report.bad_tx, report.problem) == (False, tx, problem)


def test_open_raw_sees_the_index_database(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sync=False) as s:
        s.namespace("t").put({"a": 1})
    env = open_raw(tmp_path / "s")
    try:
        with env.begin() as txn:
            assert txn.stat(env.open_db(b"latest", txn=txn, create=False))["entries"] == 1
    finally:
        env.close()


def test_point_reads_of_a_closed_store_are_refused_on_the_lean_path(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "s", sync=False)
    ns = s.namespace("t")
    ns.put({"a": 1})
    assert ns.get("a") is not None  # the namespace's prefix is now known: get takes the lean path
    s.close()
    for call in (lambda: ns.get("a"), lambda: ns.read(["a"])):
        with pytest.raises(errors.StoreClosed) as exc:
            call()
        assert exc.value.to_dict() == {"code": "STORE_CLOSED", "message": "the store is closed"}


def test_a_store_written_without_the_index_gets_it_rebuilt_on_open(tmp_path: Path) -> None:
    """An engine that does not keep the index (an older release, after a rollback) commits txs
    without moving meta.indexed_tx: the next open sees it behind the latest tx and rebuilds the
    index from scratch, dropping entries of keys whose versions are gone."""
    path = tmp_path / "s"
    with Store.open(path, sync=False) as s:
        ns = s.namespace("t")
        ns.put({"a": 1, "b": 2})
        ns.delete(["b"])
        want = _entries(s)

    def stale(txn: Any, env: lmdb.Environment) -> None:
        latest, meta = env.open_db(b"latest", txn=txn), env.open_db(b"meta", txn=txn)
        txn.put(keypart(ns_prefix(1), b"gone"), latest_index.entry(1, b"\x05"), db=latest)  # no version at all
        txn.put(keypart(ns_prefix(1), b"a"), latest_index.entry(1, b"\x09"), db=latest)
        txn.put(b"indexed_tx", (1).to_bytes(8, "big"), db=meta)  # behind the latest tx, 2
    tamper(path, stale)
    with Store.open(path, sync=False) as s:
        assert _entries(s) == want
        assert s._backend.read(lambda txn: bytes(txn.get(b"indexed_tx", db=s._backend.meta))) == (2).to_bytes(8, "big")
        _check(s)


def test_a_stream_publish_keeps_the_index_current(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sync=False) as s:
        s.namespace("t").put({"a": 1})
        s.stream("e").publish([1, 2])
    with Store.open(tmp_path / "s", sync=False) as s:
        assert s._backend.commits == 0  # nothing rebuilt
