"""The public API as the issue states it, end to end on real files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine import Item, ReadResult, Record, Store, errors
from tests.conftest import fingerprint


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
        # "other"/"c" never existed: its delete is a no-op, so it is not logged and "other" is not created
        assert [(o.namespace, o.key, o.op) for o in store.tx_info(4).operations] == [
            ("sample", "a", "put"), ("sample", "b", "clear")]
        assert [n.name for n in store.namespaces()] == ["sample"]


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
        t.delete("n", "b")
    first, second = store.tx_info(1), store.tx_info(2)
    assert first is not None and second is not None
    assert first.note == {"by": "alice"} and second.note == {"by": "bob"}
    assert [(o.namespace, o.key, o.op) for o in second.operations] == [("n", "a", "clear"), ("n", "b", "delete")]
    assert first.time <= second.time and first.time_us <= second.time_us
    assert store.tx_info(3) is None


def test_transaction_discards_everything_on_exception(store: Store) -> None:
    with pytest.raises(RuntimeError, match="changed my mind"), store.transaction() as t:
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
    with pytest.raises(errors.StoreClosed, match="the store is closed"):
        store.namespace("n").get("a")


# -- the no-op rule: a write that changes nothing takes no tx and answers with the latest tx ----


def test_delete_of_a_key_never_written_takes_no_tx(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1})
    before = fingerprint(store)
    assert ns.delete(["never"], note={"by": "alice"}) == 1
    assert store.namespace("elsewhere").delete(["x", "y"]) == 1
    assert store.latest_tx == 1 and store.tx_info(2) is None
    assert ns.history("never") == []
    assert [n.name for n in store.namespaces()] == ["n"]  # no namespace is created by a no-op
    assert fingerprint(store) == before  # not even the clock floor moved


def test_delete_of_a_deleted_key_takes_no_tx(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1, "b": 2})
    assert ns.delete(["a"]) == 2
    assert ns.delete(["a"]) == 2
    assert [v.tx for v in ns.history("a")] == [2, 1]
    assert store.drop_namespace("n") == 3
    assert store.namespace("n").delete(["a", "b"]) == 3  # a dropped namespace stays dropped
    assert store.namespaces() == []


def test_a_write_with_some_real_operations_logs_only_those(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1, "b": 2})
    assert ns.delete(["x", "a", "y"], note={"by": "bob"}) == 2
    info = store.tx_info(2)
    assert info is not None and info.note == {"by": "bob"}
    assert [(o.key, o.op) for o in info.operations] == [("a", "delete")]
    assert ns.history("x") == [] and ns.history("y") == []


def test_puts_and_clears_always_take_a_tx(store: Store) -> None:
    ns = store.namespace("n")
    assert ns.clear(["never"]) == 1
    assert ns.put({"a": 1}) == 2
    assert ns.put({"a": 1}) == 3  # the same value again is still a version, as in etcd
    assert ns.clear(["never"]) == 4


def test_a_transaction_of_no_ops_takes_no_tx_but_checks_expect(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1})
    with store.transaction(note={"by": "carol"}) as t:
        t.delete("n", "never")
        t.put("n", "b", 1)
        t.delete("n", "b")  # the last operation on a key wins: a delete of a key with no version
        t.expect("n", "a", tx=1)
    assert t.tx == 1 and store.latest_tx == 1 and ns.history("b") == []
    before = fingerprint(store)
    with pytest.raises(errors.Conflict, match="key 'a' in 'n' was last changed at tx 1, not 0"), \
            store.transaction() as t2:
        t2.delete("n", "never")
        t2.expect("n", "a", tx=0)
    assert t2.tx is None and fingerprint(store) == before


def test_no_op_deletes_between_runs_keep_the_log_regroupable(store: Store, tmp_path: Path) -> None:
    """Dropping a no-op run between two runs of one namespace and op merges them, as a history
    export's import regroups them: the replayed chain is the same."""
    import engine

    store.namespace("a").put({"k": 0})
    with store.transaction() as t:
        t.put("a", "x", 1)
        t.delete("b", "nothing")
        t.put("a", "z", 2, metadata={"m": 1})
        t.delete("a", "k")
    runs = store._backend.read(lambda txn: engine.txlog.runs_of(txn, store._backend.dbs, 2))
    assert runs == [["a", 0, ["x", "z"]], ["a", 2, ["k"]]]
    assert store.verify().ok
    with Store.open(tmp_path / "copy", sync=False) as copy:
        engine.import_rows(copy, list(engine.export_history(store)))
        assert copy.head() == store.head()


def test_dropping_an_empty_namespace_takes_no_tx(store: Store) -> None:
    store.create_namespace("empty")
    store.namespace("full").put({"a": 1})
    assert store.drop_namespace("empty", note={"by": "dave"}) == 1
    assert store.latest_tx == 1 and store.tx_info(2) is None
    assert store.namespace_info("empty") is None
    assert [n.name for n in store.namespaces()] == ["full"]
    with pytest.raises(errors.NamespaceNotFound, match="namespace 'empty' does not exist"):
        store.drop_namespace("empty")
    store.namespace("full").delete(["a"])  # no live keys left: dropping it is a no-op too
    assert store.drop_namespace("full") == 2 and store.namespaces() == []


def test_a_namespace_created_again_is_updated_at_its_creation_unless_a_tx_touched_it(tmp_path: Path) -> None:
    """``updated_at`` is the commit time of ``tx``, the latest tx that touched the namespace; with none,
    its creation time, also when a dropped name is created again."""
    from tests.engine.clock import T0, Clock
    clock = Clock()
    with Store.open(tmp_path / "s", sync=False, clock=clock) as store:
        store.create_namespace("never")
        store.namespace("once").put({"a": 1})
        store.namespace("once").delete(["a"])
        clock.now = T0 + 5
        assert store.drop_namespace("never") == store.drop_namespace("once") == 2
        clock.now = T0 + 9
        never, once = store.create_namespace("never"), store.create_namespace("once")
        at = datetime.fromtimestamp(T0 + 9, UTC)
        assert (never.created_at, never.updated_at, never.tx) == (at, at, 0)
        assert (once.created_at, once.updated_at, once.tx) == (at, datetime.fromtimestamp(T0, UTC), 2)
        assert store.namespace_info("never") == never and store.namespace_info("once") == once


def test_dropping_a_namespace_with_live_keys_takes_one_tx(store: Store) -> None:
    ns = store.namespace("n")
    ns.put({"a": 1, "b": 2})
    ns.delete(["b"])
    assert store.drop_namespace("n", note={"by": "erin"}) == 3
    info = store.tx_info(3)
    assert info is not None and [(o.key, o.op) for o in info.operations] == [("a", "delete")]


def test_delete_of_an_expired_key_whose_expiry_is_not_recorded_takes_a_tx(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its delete is real: the answer's tx is one at which the key is absent, while at the latest
    tx (committed before the expiry) a read still returns the value."""
    from engine import expiry
    from tests.engine.clock import Clock

    clock = Clock()
    with Store.open(tmp_path / "s", sync=False, clock=clock) as s:
        ns = s.namespace("n")
        ns.put({"a": 1}, ttl=1)
        clock.now += 2
        monkeypatch.setattr(expiry, "SWEEP_PER_WRITE", 0)  # writes record no expiry on the way
        assert ns.get("a") is None and ns.get("a", tx=1) is not None
        assert ns.delete(["a"]) == 2
        assert ns.get("a", tx=2) is None
        assert [(v.tx, v.op) for v in ns.history("a")] == [(2, "delete"), (1, "put")]
        assert ns.delete(["a"]) == 2  # now a no-op


def test_delete_of_an_expired_key_recorded_by_the_same_write_takes_no_tx_of_its_own(
        tmp_path: Path) -> None:
    from tests.engine.clock import Clock

    clock = Clock()
    with Store.open(tmp_path / "s", sync=False, clock=clock) as s:
        ns = s.namespace("n")
        ns.put({"a": 1}, ttl=1)
        clock.now += 2
        assert ns.delete(["a"], note={"by": "frank"}) == 2  # the sweep's tx: the key is absent there
        info = s.tx_info(2)
        assert info is not None and info.note == {"expired": True} and s.latest_tx == 2
