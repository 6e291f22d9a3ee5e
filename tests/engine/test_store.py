"""The public API as the issue states it, end to end on real files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import Item, ReadResult, Record, Store, errors


def test_the_documented_walkthrough(tmp_path: Path) -> None:
    with Store.open(tmp_path / "data") as store:
        sample = store.namespace("sample")
        tx1 = sample.put({"city:1": {"name": "Braavos"}, "logo": b"\x89PNG"})
        tx2 = sample.clear(["city:1"])
        tx3 = sample.delete(["logo"])
        assert (tx1, tx2, tx3) == (1, 2, 3)
        assert sample.read(["city:1", "logo"], tx=tx1) == ReadResult(
            [Record("city:1", {"name": "Braavos"}, 1, False, False), Record("logo", b"\x89PNG", 1, True, False)], 1
        )
        assert sample.read(["logo", "city:1"]) == ReadResult([Record("city:1", None, 2, False, True)], 3)
        assert sample.get("city:1") == Record("city:1", None, 2, False, True)
        assert sample.get("logo") is None
        assert sample.get("logo", tx=2) == Record("logo", b"\x89PNG", 1, True, False)
        assert sample.read([], tx=0) == ReadResult([], 0)
        with store.transaction() as t:
            t.put("sample", "a", 1)
            t.clear("sample", "b")
            t.delete("other", "c")
            t.expect("sample", "a", tx=0)
        assert t.tx == store.latest_tx == 4
        assert [n.name for n in store.namespaces()] == ["other", "sample"]


def test_reads_survive_reopen_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "data"
    with Store.open(path) as store:
        ns = store.namespace("n")
        for i in range(5):
            ns.put({"k": i, f"only{i}": [i]})
        before = [ns.read(["k", "only0", "only4"], tx=tx) for tx in range(6)]
    with Store.open(path) as store:
        ns = store.namespace("n")
        assert [ns.read(["k", "only0", "only4"], tx=tx) for tx in range(6)] == before
        assert ns.put({"k": 99}) == 6  # the timeline continues


def test_null_is_a_value_not_a_clear(store: Store) -> None:
    ns = store.namespace("n")
    ns.put([Item("k", None)])
    assert ns.get("k") == Record("k", None, 1, False, False)
    ns.clear(["k"])
    assert ns.get("k") == Record("k", None, 2, False, True)


def test_read_returns_request_order_each_key_once(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"b": 2, "a": 1, "c": 3})
    assert [r.key for r in ns.read(["c", "zz", "a", "c", "b"]).records] == ["c", "a", "b"]


def test_scan_pages_with_after_and_reports_its_tx(store: Store) -> None:
    ns = store.namespace("n")
    names = [f"item:{i:03d}" for i in range(25)] + ["other"]
    ns.put({k: i for i, k in enumerate(names)})
    ns.delete(["item:010"])
    pages, after = [], None
    while True:
        page = list(ns.scan("item:", tx=2, after=after, limit=7))
        if not page:
            break
        pages.append([r.key for r in page])
        after = page[-1].key
    assert [k for p in pages for k in p] == [k for k in names[:25] if k != "item:010"]
    assert [len(p) for p in pages] == [7, 7, 7, 3]
    scan = ns.scan()
    assert scan.tx == 2 and len(list(scan)) == 25
    assert [r.key for r in ns.scan(tx=1, limit=2)] == ["item:000", "item:001"]


def test_scan_order_is_utf8_byte_order(store: Store) -> None:
    ns = store.namespace("n")
    names = ["a", "a\x00", "a\x00b", "a\x01", "ab", "é", "\uffff", "\U0001f600", "b", "k" * 512, "k" * 511 + "\x00"]
    ns.put({k: i for i, k in enumerate(names)})
    assert [r.key for r in ns.scan()] == sorted(names, key=lambda k: k.encode())


def test_namespace_lifecycle(store: Store) -> None:
    info = store.create_namespace("fresh")
    assert (info.name, info.tx, info.key_count, info.size_bytes) == ("fresh", 0, 0, 0)
    assert store.latest_tx == 0  # creating a namespace is not a write
    ns = store.namespace("fresh")
    ns.put({"a": "x" * 10, "b": b"12"})
    ns.clear(["b"])
    info = store.namespace_info("fresh")
    assert info is not None and info.key_count == 2 and info.tx == 2 and info.size_bytes > 10
    assert info.created_at <= info.updated_at <= datetime.now(UTC)
    tx = store.drop_namespace("fresh")
    assert tx == 3 and store.namespace_info("fresh") is None
    assert [n.name for n in store.namespaces()] == []
    assert list(ns.scan()) == [] and [r.key for r in ns.scan(tx=2)] == ["a", "b"]  # history is kept
    ns.put({"c": 1})
    again = store.namespace_info("fresh")
    assert again is not None and again.key_count == 1


def test_tx_log_records_time_note_and_operations(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1, "b": 2}, note={"by": "alice"})
    with store.transaction(note={"by": "bob"}) as t:
        t.clear("n", "a")
        t.delete("m", "z")
    first, second = store.tx_info(1), store.tx_info(2)
    assert first is not None and second is not None
    assert first.note == {"by": "alice"} and second.note == {"by": "bob"}
    assert [(o.namespace, o.key, o.op) for o in second.operations] == [("n", "a", "clear"), ("m", "z", "delete")]
    assert first.time <= second.time and first.time_us <= second.time_us
    assert store.tx_info(3) is None


def test_transaction_discards_everything_on_exception(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as t:
        t.put("n", "a", 1)
        raise RuntimeError("changed my mind")
    assert store.latest_tx == 0 and t.tx is None


def test_transaction_last_operation_on_a_key_wins(store: Store) -> None:
    with store.transaction() as t:
        t.put("n", "a", 1)
        t.clear("n", "a")
        t.put("n", "a", 2)
    assert store.namespace("n").get("a") == Record("a", 2, 1, False, False)


def test_sync_is_the_default(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s") as store:
        assert store._backend.sync is True
        flags = store._backend.env.flags()
        assert flags["sync"] is True and flags["metasync"] is False  # meta flushed by env.sync after commit


def test_store_is_a_context_manager_and_closes(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s") as store:
        store.namespace("n").put({"a": 1})
    with pytest.raises(errors.StoreClosed):
        store.namespace("n").get("a")
