"""Hot backups under concurrent writes, and restores that refuse to overwrite."""

from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path

import pytest

import engine
from engine import Store, errors


def _write(ns: engine.Namespace, count: int, stop: threading.Event | None = None) -> None:
    for i in range(count):
        if stop is not None and stop.is_set():
            return
        ns.put({f"k{i % 50}": {"i": i, "pad": "x" * 200}})


def _process_writer(path: str, count: int) -> None:
    with Store.open(path, sync=False) as store:
        _write(store.namespace("proc"), count)


def test_backup_under_concurrent_writes_restores_to_its_tx(tmp_path: Path) -> None:
    src = str(tmp_path / "src")
    with Store.open(src, sync=False) as store:
        ns = store.namespace("t")
        for i in range(200):
            ns.put({f"k{i % 30}": i, f"b{i % 7}": bytes([i % 256]) * 100})
        stop = threading.Event()
        writer = threading.Thread(target=_write, args=(store.namespace("thread"), 10**9, stop))
        proc = mp.get_context("spawn").Process(target=_process_writer, args=(src, 400))
        writer.start()
        proc.start()
        try:
            store.wait_for(store.latest_tx + 20, timeout=30)
            info = store.backup(tmp_path / "bak")
            store.wait_for(info.tx + 20, timeout=30)  # writes went on after the copy
        finally:
            stop.set()
            writer.join(timeout=60)
            proc.join(timeout=120)
        assert proc.exitcode == 0
        assert store.namespace("thread").info() is not None
        assert store.latest_tx > info.tx
        source_info = store.tx_info(info.tx)
        assert source_info is not None and source_info.hash == info.hash
        expected = ns.read([f"k{i}" for i in range(30)], tx=info.tx)

    assert engine.backup.read_manifest(tmp_path / "bak") is not None
    restored = Store.restore(tmp_path / "bak", tmp_path / "restored")
    assert (restored.tx, restored.hash) == (info.tx, info.hash)
    with Store.open(tmp_path / "restored") as copy:
        assert copy.head() == (info.tx, info.hash)
        report = copy.verify()
        assert report.ok and report.head_tx == info.tx
        assert copy.namespace("t").read([f"k{i}" for i in range(30)]) == expected
        copy.namespace("t").put({"after": 1})  # a restored store is an ordinary store
        assert copy.latest_tx == info.tx + 1


def test_backup_and_restore_refuse_to_overwrite(tmp_path: Path, store: Store) -> None:
    store.namespace("t").put({"a": 1})
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(errors.Conflict, match=r"backup target .* exists and is not an empty directory") as exc:
        store.backup(tmp_path / "full")
    assert exc.value.code == "CONFLICT"
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    info = store.backup(tmp_path / "empty")  # an empty directory is fine
    assert info.tx == 1
    with pytest.raises(errors.Conflict, match=r"restore target .*full' exists and is not an empty directory"):
        engine.restore(tmp_path / "empty", tmp_path / "full")
    with pytest.raises(errors.InvalidParameters, match=r"is not a backup \(no data.mdb in it\)"):
        engine.restore(tmp_path / "full", tmp_path / "new")
    assert not (tmp_path / "new").exists()
    with pytest.raises(errors.Conflict, match=r"restore target .*store' exists and is not an empty directory"):
        engine.restore(tmp_path / "empty", store.path)  # the live store is not empty
    # No partial directories are left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "full", "store"]


def test_restore_detects_a_backup_that_does_not_match_its_manifest(tmp_path: Path, store: Store) -> None:
    store.namespace("t").put({"a": 1})
    store.backup(tmp_path / "bak")
    manifest = tmp_path / "bak" / engine.backup.MANIFEST
    manifest.write_text(manifest.read_text().replace('"tx": 1', '"tx": 2'))
    with pytest.raises(errors.StorageError, match=r"store is at tx 1 .* but the backup's manifest says tx 2"):
        engine.restore(tmp_path / "bak", tmp_path / "restored")


def test_backup_of_an_empty_store(tmp_path: Path, store: Store) -> None:
    info = store.backup(tmp_path / "bak")
    assert info.tx == 0 and info.size_bytes > 0
    assert engine.restore(tmp_path / "bak", tmp_path / "r").tx == 0


def test_a_backup_holds_every_entry_of_every_database_in_full_pages(tmp_path: Path) -> None:
    """The dense rebuild (Backend.copy_dense) copies each database entry for entry, appending in key
    order, so its B-trees need fewer pages than the store's, whose keys arrived in random order."""
    import random

    from engine.backend import DB_NAMES
    from tests.engine.raw import open_raw

    rnd = random.Random(7)
    with Store.open(tmp_path / "src", sync=False) as store:
        ns = store.namespace("t")
        for _ in range(6):
            ns.put({f"k{rnd.randrange(10**9):09d}": "v" * 40 for _ in range(800)})
        store.stream("s").publish([{"n": 1}])
        store.backup(tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["data.mdb", "strata-backup.json"]

    def contents(path: Path) -> dict[str, tuple[list[tuple[bytes, bytes]], int]]:
        env = open_raw(path)
        try:
            with env.begin() as txn:
                out = {}
                for name in DB_NAMES:
                    db = env.open_db(name.encode(), txn=txn, create=False)
                    out[name] = ([(bytes(k), bytes(v)) for k, v in txn.cursor(db=db)], txn.stat(db)["leaf_pages"])
                return out
        finally:
            env.close()

    src, copy = contents(tmp_path / "src"), contents(tmp_path / "b")
    assert {name: entries for name, (entries, _) in copy.items()} == {name: e for name, (e, _) in src.items()}
    assert copy["versions"][1] < src["versions"][1]
    restored = Store.restore(tmp_path / "b", tmp_path / "r")
    assert restored.tx == 7
