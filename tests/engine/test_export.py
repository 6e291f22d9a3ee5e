"""Export and import: snapshots, full histories that reproduce the hash chain, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

import engine
from engine import Store, errors

from .test_compaction import random_history


def through_json(rows: Any) -> list[dict[str, Any]]:
    """What a JSON Lines file gives back: each row dumped and parsed (orjson out, json in)."""
    return [json.loads(orjson.dumps(row)) for row in rows]


def everything(store: Store, tx: int) -> list[Any]:
    return [list(store.namespace(n).scan(tx=tx)) for n in ("n1", "n2")]


@pytest.mark.parametrize("seed", range(3))
def test_full_history_import_reproduces_the_hash_chain(tmp_path: Path, seed: int) -> None:
    with Store.open(tmp_path / "src", sync=False) as src:
        random_history(src, seed)
        with src.transaction(note={"by": "alice", "n": [1.5, None, "é"]}) as t:
            t.put("n1", "float", 0.1)
            t.put("n1", "big", 2**64 - 1)
            t.put("n1", "neg", -(2**63))
            t.put("n1", "bin", b"\xff\x00")
            t.put("n1", "nested", {"z": 1, "a": [{"b": None}]})
        rows = through_json(engine.export_history(src))
        head = src.head()
        states = {tx: everything(src, tx) for tx in range(0, src.latest_tx + 1, 7)}
        times = [src.tx_info(tx) for tx in range(1, src.latest_tx + 1)]
    assert rows[0]["mode"] == "history" and rows[0]["txs"] == head[0] == len(rows) - 1
    seen: list[tuple[int, int | None]] = []
    with Store.open(tmp_path / "dst", sync=False) as dst:
        report = engine.import_history(dst, rows, progress=lambda d, t: seen.append((d, t)))
        assert (report.first_tx, report.last_tx, report.txs) == (1, head[0], head[0])
        assert dst.head() == head
        assert dst.verify().ok
        assert [dst.tx_info(tx) for tx in range(1, dst.latest_tx + 1)] == times
        for tx, state in states.items():
            assert everything(dst, tx) == state
    assert seen[-1] == (head[0], head[0])


def test_snapshot_export_and_import(store: Store, tmp_path: Path) -> None:
    ns = store.namespace("src")
    values = {"a": {"x": [1, 2.0, "three", None, True]}, "b": b"\x00\x01binary", "c": 2**63, "L" * 512: "long"}
    ns.put(values)
    ns.clear(["a"])
    tx = ns.put({"d": "later"})
    ns.delete(["c"])
    rows = through_json(engine.export_snapshot(store, "src", tx=tx))
    assert rows[0] == {"format": "strata-export", "version": 3, "mode": "snapshot", "namespace": "src", "tx": tx,
                       "prefix": "", "count": None}
    assert {"key": "b", "value": "AAFiaW5hcnk=", "binary": True, "tx": 1} in rows
    assert {"key": "a", "cleared": True, "tx": 2} in rows
    done: list[int] = []
    report = engine.import_snapshot(store, rows, namespace="copy", batch=2, progress=lambda d, t: done.append(d))
    assert report.items == 5 and report.txs == 3 and done[-1] == 5
    got = {r.key: r for r in store.namespace("copy").scan()}
    want = {r.key: r for r in ns.scan(tx=tx)}
    assert set(got) == set(want)
    for key, rec in want.items():
        assert (got[key].value, got[key].binary, got[key].cleared) == (rec.value, rec.binary, rec.cleared)
        assert type(got[key].value) is type(rec.value)
    # import_rows reads the header: same namespace name as exported by default.
    with Store.open(tmp_path / "other", sync=False) as other:
        assert engine.import_rows(other, rows).items == 5
        assert other.namespace("src").info() is not None


def test_snapshot_keeps_expiry_and_metadata(tmp_path: Path) -> None:
    """A snapshot export carries each put's expiry (exact microseconds) and metadata; the import
    writes them back, so the copy expires when the original does and shows the same metadata."""
    from tests.engine.clock import T0, Clock

    clock = Clock()
    with Store.open(tmp_path / "s", sync=False, clock=clock) as store:
        ns = store.namespace("src")
        ns.put({"session": "s1"}, ttl=100.0000017, metadata={"by": "bob"})
        ns.put({"plain": 1})
        ns.put({"tagged": 2}, metadata=["x"])
        rows = through_json(engine.export_snapshot(store, "src"))
        by_key = {r["key"]: r for r in rows[1:]}
        assert by_key["session"]["expire_us"] == round(T0 * 1_000_000) + 100_000_002  # ttl rounded to the µs
        assert by_key["session"]["metadata"] == {"by": "bob"}
        assert "expire_us" not in by_key["plain"] and "metadata" not in by_key["plain"]
        assert by_key["tagged"]["metadata"] == ["x"] and "expire_us" not in by_key["tagged"]
        engine.import_snapshot(store, rows, namespace="copy")
        copy = store.namespace("copy")
        fields = ("expire_time",)
        for key in ("session", "plain", "tagged"):
            a = copy.get(key, metadata=True, fields=fields)
            b = ns.get(key, metadata=True, fields=fields)
            assert a is not None and b is not None
            assert (a.value, a.metadata, a.expire_time) == (b.value, b.metadata, b.expire_time), key
        clock.now = T0 + 101
        assert [r.key for r in copy.scan()] == ["plain", "tagged"]  # the copy expired with the original


def test_one_namespace_history_replays_only_with_renumber(store: Store, tmp_path: Path) -> None:
    random_history(store, 7)
    rows = through_json(engine.export_history(store, "n1"))
    assert all(op["namespace"] == "n1" for row in rows[1:] for op in row["ops"])
    with Store.open(tmp_path / "dst", sync=False) as dst:
        with pytest.raises(errors.InvalidParameters) as exc:
            engine.import_history(dst, rows)
        assert "renumber" in exc.value.message and dst.latest_tx == exc.value.details["row"] - 1
        dst.close()
    with Store.open(tmp_path / "dst2", sync=False) as dst:
        engine.import_rows(dst, rows, renumber=True, namespace="renamed")
        assert dst.latest_tx == len(rows) - 1
        assert list(dst.namespace("renamed").scan()) != []
        src_state = [(r.key, r.value, r.cleared) for r in store.namespace("n1").scan()]
        assert [(r.key, r.value, r.cleared) for r in dst.namespace("renamed").scan()] == src_state
        assert dst.verify().ok


def test_replay_refuses_a_store_that_is_not_at_the_right_tx(store: Store, tmp_path: Path) -> None:
    store.namespace("n1").put({"a": 1})
    store.namespace("n1").put({"a": 2})
    rows = list(engine.export_history(store))
    with Store.open(tmp_path / "dst", sync=False) as dst:
        dst.namespace("x").put({"y": 1})
        with pytest.raises(errors.InvalidParameters, match="cannot replay tx 1: the next tx of this store is 2"):
            engine.import_history(dst, rows)
        assert dst.latest_tx == 1
        # Resuming an interrupted replay: the rows after the store's tx go in.
        part = [rows[0], rows[2]]
        dst2 = tmp_path / "dst2"
        with Store.open(dst2, sync=False) as s2:
            engine.import_history(s2, rows[:2])
            engine.import_history(s2, part)
            assert s2.head() == store.head()


def test_history_export_below_the_horizon_is_refused(store: Store) -> None:
    ns = store.namespace("n1")
    for i in range(10):
        ns.put({"k": i})
    store.compact(5)
    with pytest.raises(errors.TxCompacted, match="tx 1 was compacted away: a history export can start at tx 5"):
        engine.export_history(store)
    rows = list(engine.export_history(store, since=4))
    assert [r["tx"] for r in rows[1:]] == [5, 6, 7, 8, 9, 10]
    snap = list(engine.export_snapshot(store, "n1", tx=5))
    assert snap[1]["value"] == 4
    with pytest.raises(errors.TxCompacted, match="tx 4 was compacted away: the oldest readable tx is 5"):
        engine.export_snapshot(store, "n1", tx=4)


def test_bad_rows_name_the_row_and_keep_earlier_txs(store: Store) -> None:
    rows: list[dict[str, Any]] = [{"key": "a", "value": 1}, {"key": "b", "value": "!!", "binary": True}]
    with pytest.raises(errors.InvalidParameters) as exc:
        engine.import_snapshot(store, rows, namespace="t", batch=1)
    assert exc.value.details["row"] == 1
    assert store.namespace("t").get("a") is not None  # the first tx was written
    with pytest.raises(errors.InvalidParameters, match="row 1: key 'x' appears twice in one snapshot"):
        engine.import_snapshot(store, [{"key": "x", "value": 1}, {"key": "x", "value": 2}], namespace="t")
    with pytest.raises(errors.InvalidValue, match="row 0: value is not storable: nan is not a finite number"):
        engine.import_snapshot(store, [{"key": "x", "value": float("nan")}], namespace="t")
    with pytest.raises(errors.InvalidParameters, match="row 0: a put needs a value"):
        engine.import_snapshot(store, [{"key": "x"}], namespace="t")
    with pytest.raises(errors.InvalidParameters, match="row 0: op must be put, clear or delete, not 'zap'"):
        engine.import_history(store, [{"tx": 3, "time_us": 1, "ops": [{"namespace": "t", "op": "zap", "key": "k"}]}])
    with pytest.raises(errors.InvalidParameters, match="the first row is not a strata-export header"):
        engine.import_rows(store, [{"key": "no header"}])
    with pytest.raises(errors.InvalidParameters, match="this is a history export, not a snapshot export"):
        engine.import_snapshot(store, [{"format": "strata-export", "version": 1, "mode": "history"}])
    assert engine.import_history(store, []).txs == 0


# -- the namespace list, txs of older versions, and histories that start after tx 0 -----------


def _legacy_empty_drop(store: Store, name: str) -> None:
    """What dropping an empty namespace did before such drops stopped taking a tx: a tx whose one
    run names the namespace and no key, and the namespace marked dropped."""
    from engine.codec import DELETE
    from engine.schema import NamespaceEntry
    from engine.txn import Batch, Run, apply_batch

    def write(txn: Any) -> None:
        apply_batch(store, txn, Batch([Run(name, DELETE)]), None)
        entry = NamespaceEntry.decode(txn.get(name.encode(), db=store._backend.namespaces))
        entry.dropped = True
        txn.put(name.encode(), entry.encode(), db=store._backend.namespaces)
    store._backend.write(write)


def test_history_reproduces_the_namespace_list(store: Store, tmp_path: Path) -> None:
    store.namespace("kept").put({"a": 1})
    store.namespace("gone").put({"b": 2})
    store.drop_namespace("gone")
    store.create_namespace("empty")
    store.create_namespace("dropped-empty")
    store.drop_namespace("dropped-empty")
    rows = through_json(engine.export_history(store))
    assert rows[0]["version"] == 3 and rows[0]["namespaces"] == ["empty", "kept"]
    with Store.open(tmp_path / "dst", sync=False) as dst:
        engine.import_rows(dst, rows)
        assert dst.head() == store.head()
        assert [n.name for n in dst.namespaces()] == ["empty", "kept"]
        assert dst.namespace_info("gone") is None
        assert dst.namespace("gone").get("b", tx=2) is not None  # its past stays readable
        assert dst.latest_tx == 3 and dst.verify().ok


def test_a_store_with_only_empty_namespaces_exports_them(store: Store, tmp_path: Path) -> None:
    store.create_namespace("empty")
    rows = through_json(engine.export_history(store))
    assert rows[0]["txs"] == 0 and rows[0]["namespaces"] == ["empty"]
    with Store.open(tmp_path / "dst", sync=False) as dst:
        assert engine.import_rows(dst, rows).txs == 0
        assert [n.name for n in dst.namespaces()] == ["empty"] and dst.latest_tx == 0
    snap = through_json(engine.export_snapshot(store, "empty"))
    with Store.open(tmp_path / "dst2", sync=False) as dst:
        assert engine.import_rows(dst, snap).txs == 0
        assert [n.name for n in dst.namespaces()] == ["empty"] and dst.latest_tx == 0


def test_a_tx_that_dropped_an_empty_namespace_replays_with_the_same_hash(store: Store, tmp_path: Path) -> None:
    store.namespace("n").put({"a": 1})
    store.create_namespace("gone")
    _legacy_empty_drop(store, "gone")
    store.namespace("n").put({"a": 2})
    rows = through_json(engine.export_history(store))
    assert rows[2]["ops"] == [{"namespace": "gone", "op": "delete", "keys": []}]
    with Store.open(tmp_path / "dst", sync=False) as dst:
        report = engine.import_rows(dst, rows)
        assert (report.first_tx, report.last_tx, report.txs) == (1, 3, 3)
        assert dst.head() == store.head() and dst.verify().ok
        assert [n.name for n in dst.namespaces()] == ["n"]
    # renumbered, the tx that changes nothing takes no tx
    with Store.open(tmp_path / "dst2", sync=False) as dst:
        report = engine.import_rows(dst, rows, renumber=True)
        assert report.txs == 2 and dst.latest_tx == 2


def test_an_old_export_with_a_tx_of_no_ops_imports(store: Store, tmp_path: Path) -> None:
    """Version 1 files wrote such a tx as ``"ops": []``: it replays as a tx with no operation, so
    tx numbers, times and reads match; the namespace's name is not in the file, so the hash of
    that tx and of those after it cannot."""
    store.namespace("n").put({"a": 1})
    store.create_namespace("gone")
    _legacy_empty_drop(store, "gone")
    store.namespace("n").put({"a": 2})
    rows = through_json(engine.export_history(store))
    rows[0]["version"] = 1
    del rows[0]["namespaces"]
    rows[2]["ops"] = []
    with Store.open(tmp_path / "dst", sync=False) as dst:
        report = engine.import_rows(dst, rows)
        assert (report.first_tx, report.last_tx, report.txs) == (1, 3, 3)
        assert dst.latest_tx == 3 and dst.verify().ok
        assert [dst.tx_info(tx).time_us for tx in (1, 2, 3)] == [store.tx_info(tx).time_us for tx in (1, 2, 3)]
        assert dst.tx_info(2).operations == []
        assert [dst.namespace("n").get("a", tx=tx) for tx in (1, 2, 3)] == [
            store.namespace("n").get("a", tx=tx) for tx in (1, 2, 3)]
        assert dst.head()[1] != store.head()[1]


def test_export_of_a_namespace_that_does_not_exist(store: Store) -> None:
    store.namespace("n").put({"a": 1})
    for call in (lambda: engine.export_snapshot(store, "nope"), lambda: engine.export_history(store, "nope"),
                 lambda: engine.export(store, "nope")):
        with pytest.raises(errors.NamespaceNotFound, match="namespace 'nope' does not exist"):
            call()
    store.namespace("n").delete(["a"])
    store.drop_namespace("n")
    with pytest.raises(errors.NamespaceNotFound, match="namespace 'n' does not exist"):
        engine.export_snapshot(store, "n")  # not at the latest tx
    assert [r["key"] for r in list(engine.export_snapshot(store, "n", tx=1))[1:]] == ["a"]  # it existed at tx 1
    assert len(list(engine.export_history(store, "n"))) == 3


def test_a_history_since_the_horizon_imports_renumbered_or_onto_a_copy(store: Store, tmp_path: Path) -> None:
    from tests.conftest import fingerprint

    ns = store.namespace("n")
    for i in range(10):
        ns.put({"k": i, f"only{i}": i})
    early = list(engine.export_history(store, until=4))
    store.compact(5)
    with pytest.raises(errors.TxCompacted) as exc:
        engine.export_history(store)
    assert exc.value.details["horizon"] == 5
    rows = through_json(engine.export(store, history=True, since=4))
    assert rows[0]["since"] == 4 and [r["tx"] for r in rows[1:]] == [5, 6, 7, 8, 9, 10]
    # Into an empty store its tx numbers would claim reads it cannot answer: refused, nothing written.
    with Store.open(tmp_path / "empty", sync=False) as dst:
        before = fingerprint(dst)
        with pytest.raises(errors.InvalidParameters) as refused:
            engine.import_rows(dst, rows)
        assert refused.value.details["row"] == 0 and "renumber" in refused.value.message
        assert fingerprint(dst) == before
        report = engine.import_rows(dst, rows, renumber=True)  # as new txs of its own timeline
        assert (report.first_tx, report.last_tx) == (1, 6)
        assert dst.namespace("n").get("k").value == 9 and dst.namespace("n").get("only0") is None
    # Onto a copy of the source up to tx 4, the replay continues the chain exactly.
    with Store.open(tmp_path / "copy", sync=False) as dst:
        engine.import_rows(dst, early)
        engine.import_rows(dst, rows)
        assert dst.head() == store.head() and dst.verify().ok
        assert [r.key for r in dst.namespace("n").scan(tx=6)] == [r.key for r in ns.scan(tx=6)]
    with pytest.raises(errors.InvalidParameters):
        engine.export(store, "n", since=4)  # a snapshot has no since
