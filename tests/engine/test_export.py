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
    assert rows[0] == {"format": "strata-export", "version": 1, "mode": "snapshot", "namespace": "src", "tx": tx,
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
        with pytest.raises(errors.InvalidParameters):
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
    with pytest.raises(errors.TxCompacted):
        engine.export_history(store)
    rows = list(engine.export_history(store, since=4))
    assert [r["tx"] for r in rows[1:]] == [5, 6, 7, 8, 9, 10]
    snap = list(engine.export_snapshot(store, "n1", tx=5))
    assert snap[1]["value"] == 4
    with pytest.raises(errors.TxCompacted):
        engine.export_snapshot(store, "n1", tx=4)


def test_bad_rows_name_the_row_and_keep_earlier_txs(store: Store) -> None:
    rows: list[dict[str, Any]] = [{"key": "a", "value": 1}, {"key": "b", "value": "!!", "binary": True}]
    with pytest.raises(errors.InvalidParameters) as exc:
        engine.import_snapshot(store, rows, namespace="t", batch=1)
    assert exc.value.details["row"] == 1
    assert store.namespace("t").get("a") is not None  # the first tx was written
    with pytest.raises(errors.InvalidParameters):
        engine.import_snapshot(store, [{"key": "x", "value": 1}, {"key": "x", "value": 2}], namespace="t")
    with pytest.raises(errors.InvalidValue):
        engine.import_snapshot(store, [{"key": "x", "value": float("nan")}], namespace="t")
    with pytest.raises(errors.InvalidParameters):
        engine.import_snapshot(store, [{"key": "x"}], namespace="t")
    with pytest.raises(errors.InvalidParameters):
        engine.import_history(store, [{"tx": 3, "time_us": 1, "ops": [{"namespace": "t", "op": "zap", "key": "k"}]}])
    with pytest.raises(errors.InvalidParameters):
        engine.import_rows(store, [{"key": "no header"}])
    with pytest.raises(errors.InvalidParameters):
        engine.import_snapshot(store, [{"format": "strata-export", "version": 1, "mode": "history"}])
    assert engine.import_history(store, []).txs == 0
