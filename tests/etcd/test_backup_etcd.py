"""``backup`` and ``restore`` of a store on etcd (:mod:`engine.etcd.backup`), on a real 3-member cluster.

A backup of a store on etcd is an LMDB store directory holding the whole history: restored anywhere it
answers as the etcd store did at every tx, with the same ``head()``, also when writers continue during the
backup. A backup (of either backend) restores onto an empty etcd prefix with the same txs, reads and head;
a non-empty prefix, a path that is not a backup and a backup that does not match its manifest are refused
with nothing written. ``strata backup`` and ``strata restore`` take an etcd URL. Each test has its own store
prefix on the module's one cluster.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Store, errors, export_history, import_history, restore
from engine.etcd import EtcdClient
from engine.etcd import backup as etcd_backup
from engine.etcd.store import EtcdStore
from engine.etcd.url import EtcdUrl
from server.app import create_app
from server.cli import main
from tests.engine.clock import Clock
from tests.server.conftest import Client

from .cluster import EtcdCluster
from .test_transfer_etcd import _answers, etcd_fingerprint
from .test_transfer_etcd import source as source  # the LMDB store with a history of 20 txs (a fixture)


@pytest.fixture
def url(etcd_cluster: EtcdCluster, request: pytest.FixtureRequest) -> str:
    return etcd_cluster.store_url("backup/" + request.node.name)


@pytest.fixture
def on_etcd(url: str, clock: Clock) -> Iterator[Store]:
    """A store on etcd holding the source's history."""
    with Store.open(url, clock=clock) as store:
        yield store


def _reads(store: Store) -> list[Any]:
    """:func:`_answers` but ``next_expiry``: an LMDB store a history was replayed into keeps the expiry index
    entries of the sweep txs it replayed (stale entries, which its next sweep drops without a tx), so its
    ``next_expiry`` may name an expiry the source has already recorded and dropped."""
    answers = _answers(store)
    return answers[:2] + answers[3:]


def _filled(store: Store, source: Store) -> Store:
    import_history(store, export_history(source))
    return store


def test_a_backup_of_a_store_on_etcd_is_an_lmdb_store_with_its_whole_history(source: Store, on_etcd: Store,
                                                                             tmp_path: Path, url: str) -> None:
    _filled(on_etcd, source)
    info = on_etcd.backup(tmp_path / "b")
    head = source.head()
    assert (info.path, info.tx, info.hash) == (str(tmp_path / "b"), 20, head.hash)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["data.mdb", "strata-backup.json"]
    assert info.size_bytes == (tmp_path / "b" / "data.mdb").stat().st_size
    manifest = json.loads((tmp_path / "b" / "strata-backup.json").read_text())
    assert manifest == {"format": "strata-backup", "version": 1, "tx": 20, "hash": head.hash,
                        "time": info.to_dict()["time"], "source": url}
    restored = restore(tmp_path / "b", tmp_path / "restored")
    assert (restored.tx, restored.hash) == (20, head.hash)
    with Store.open(tmp_path / "restored") as copy:
        assert _reads(copy) == _reads(source)  # source's are on_etcd's: test_transfer_etcd.py
        assert copy.head() == head and copy.verify().ok
    with pytest.raises(errors.Conflict) as in_the_way:
        on_etcd.backup(tmp_path / "b")
    assert in_the_way.value.to_dict()["message"] == (f"backup target {str(tmp_path / 'b')!r} exists and is not an "
                                                     "empty directory; refusing to overwrite it")


def test_post_admin_backup_on_etcd_answers_as_on_lmdb_into_the_backup_dir(source: Store, url: str,
                                                                           tmp_path: Path) -> None:
    app = create_app(url, backup_dir=tmp_path / "backups")
    try:
        _filled(app.store, source)
        client = Client(app)
        r = client.post("/v4/admin/backup", json={"path": "nightly/b1"})
        assert r.status == 201, r
        info = r.json()
        head = source.head()
        assert sorted(info) == ["duration", "hash", "name", "path", "size_bytes", "time", "tx"]  # LMDB's shape
        assert (info["name"], info["path"], info["tx"], info["hash"]) == (
            "nightly/b1", str(tmp_path / "backups" / "nightly" / "b1"), 20, head.hash)
        assert info["size_bytes"] == (tmp_path / "backups" / "nightly" / "b1" / "data.mdb").stat().st_size
        with Store.open(restore(info["path"], tmp_path / "restored").path) as copy:
            assert _reads(copy) == _reads(source) and copy.head() == head
        again = client.post("/v4/admin/backup", json={"path": "nightly/b1"})  # never over a backup
        assert (again.status, again.code, str(tmp_path) in again.body.decode()) == (409, "CONFLICT", False)
        bad = client.post("/v4/admin/backup", json={"path": "../out"})
        assert (bad.status, bad.code, (tmp_path / "out").exists()) == (400, "INVALID_PARAMETERS", False)
        assert app.store.latest_tx == 20  # a backup writes no tx
    finally:
        app.close()


def test_a_backup_is_one_consistent_cut_while_writers_continue(on_etcd: Store, tmp_path: Path) -> None:
    ns = on_etcd.namespace("busy")
    for i in range(30):
        ns.put({f"k:{i % 7}": i, f"n:{i}": i}, note={"i": i})
    done = threading.Event()

    def write() -> None:
        i = 30
        while not done.is_set() and i < 80:
            ns.put({f"k:{i % 7}": i}, note={"i": i})
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        info = on_etcd.backup(tmp_path / "b")
    finally:
        done.set()
        writer.join()
    assert 30 <= info.tx <= on_etcd.latest_tx
    with Store.open(tmp_path / "b") as copy:
        assert copy.latest_tx == info.tx and tuple(copy.head()) == (info.tx, (on_etcd.tx_info(info.tx) or
                                                                             pytest.fail()).hash)
        for tx in range(info.tx + 1):
            assert list(copy.namespace("busy").scan(tx=tx)) == list(ns.scan(tx=tx))
        assert list(export_history(copy))[1:] == list(export_history(on_etcd, until=info.tx))[1:]


def test_lmdb_to_etcd_to_lmdb_through_backups_keeps_every_tx_read_and_the_head(
        source: Store, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_backup, "WINDOW", 7)  # 20 txs replayed in windows of 7
    first = source.backup(tmp_path / "lmdb-backup")
    restored = restore(tmp_path / "lmdb-backup", url)
    assert (restored.path, restored.tx, restored.hash) == (url, 20, first.hash)
    with Store.open(url) as on_etcd:
        assert _reads(on_etcd) == _reads(source)
        on_etcd.backup(tmp_path / "etcd-backup")
    assert Store.restore(tmp_path / "etcd-backup", tmp_path / "back").tx == 20
    with Store.open(tmp_path / "back") as back:
        assert _reads(back) == _reads(source)
    assert EtcdStore.restore(tmp_path / "etcd-backup", tmp_path / "back-again", verify=False).hash == first.hash


def test_streams_go_lmdb_to_etcd_to_lmdb_through_backups_with_their_events_and_the_head(url: str,
                                                                                      tmp_path: Path) -> None:
    with Store.open(tmp_path / "src", sync=False) as src:
        src.namespace("a").put({"k": 1})
        src.stream("orders").publish([{"n": 1}, {"n": 2}], note={"by": "test"})
        src.create_stream("empty")
        src.namespace("a").put({"k": 2})
        src.stream("orders").publish([{"n": 3}])
        src.stream("gone").publish([{"n": 0}])
        src.drop_stream("gone")
        first = src.backup(tmp_path / "lmdb-backup")
        events = [e.data for e in src.stream("orders").read(end_tx=3).events]
        infos = [(i.name, i.event_count) for i in src.streams()]
    assert events == [{"n": 1}, {"n": 2}] and infos == [("empty", 0), ("orders", 3)]
    assert restore(tmp_path / "lmdb-backup", url).hash == first.hash
    with Store.open(url) as on_etcd:
        assert [e.data for e in on_etcd.stream("orders").read(end_tx=3).events] == events
        assert [(i.name, i.event_count) for i in on_etcd.streams()] == infos
        on_etcd.backup(tmp_path / "etcd-backup")
    back = Store.restore(tmp_path / "etcd-backup", tmp_path / "back")
    assert (back.tx, back.hash) == (first.tx, first.hash)
    with Store.open(tmp_path / "back") as copy:
        assert [e.data for e in copy.stream("orders").read().events] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert copy.verify().ok


def test_an_empty_store_backs_up_and_restores_with_its_namespaces(etcd_cluster: EtcdCluster, url: str,
                                                                  tmp_path: Path) -> None:
    with Store.open(url) as store:
        store.create_namespace("empty")
        info = store.backup(tmp_path / "b")
    assert info.tx == 0 and info.hash == "00" * 32
    other = etcd_cluster.store_url("backup/empty-restored")
    assert restore(tmp_path / "b", other).tx == 0
    with Store.open(other) as restored:
        assert [n.name for n in restored.namespaces()] == ["empty"] and restored.latest_tx == 0


def test_a_restore_onto_a_prefix_that_is_not_empty_or_from_a_bad_backup_is_refused_writing_nothing(
        source: Store, on_etcd: Store, url: str, tmp_path: Path) -> None:
    source.backup(tmp_path / "b")
    on_etcd.create_namespace("mine")
    before = etcd_fingerprint(on_etcd)
    with pytest.raises(errors.Conflict) as not_empty:
        restore(tmp_path / "b", url)
    assert not_empty.value.to_dict() == {
        "code": "CONFLICT", "parameter": "data_dir", "path": url, "latest_tx": 0,
        "message": f"restore target {url!r} is not an empty store (it holds 1 namespace(s)); refusing to overwrite "
                   "it: restore into a new prefix"}
    with pytest.raises(errors.InvalidParameters) as not_a_backup:
        restore(tmp_path / "nothing", url)
    assert not_a_backup.value.to_dict()["message"] == (f"{str(tmp_path / 'nothing')!r} is not a backup (no data.mdb "
                                                       "in it)")
    manifest = tmp_path / "b" / "strata-backup.json"
    manifest.write_text(manifest.read_text().replace('"tx": 20', '"tx": 19'))
    on_etcd.drop_namespace("mine")  # empty again: only the manifest refuses now
    before = etcd_fingerprint(on_etcd)
    with pytest.raises(errors.StorageError) as mismatch:
        restore(tmp_path / "b", url)
    assert mismatch.value.to_dict()["message"] == (
        f"the backup holds tx 20 ({source.head().hash}), but its manifest says tx 19 ({source.head().hash}): "
        "nothing was restored")
    assert etcd_fingerprint(on_etcd) == before


def test_strata_backup_and_restore_take_an_etcd_url(source: Store, on_etcd: Store, url: str, tmp_path: Path,
                                                    etcd_cluster: EtcdCluster,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _filled(on_etcd, source)
    head = source.head()
    assert main(["backup", str(tmp_path / "b"), "--data", url, "--quiet"]) == 0
    size = (tmp_path / "b" / "data.mdb").stat().st_size
    assert capsys.readouterr().out == (f"backup of tx 20 (hash {head.hash}) written to {tmp_path / 'b'}: "
                                       f"{size / 1024:.1f} KiB\n")
    target = etcd_cluster.store_url("backup/cli-restored")
    assert main(["restore", str(tmp_path / "b"), target, "--quiet", "--no-verify"]) == 0
    assert capsys.readouterr().out == f"restored tx 20 (hash {head.hash}) into {target}: head checked\n"
    assert main(["restore", str(tmp_path / "b"), target, "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(f"strata restore: CONFLICT: restore target {target!r} is not an "
                                              "empty store (it is at tx 20); refusing to overwrite it")
    assert main(["backup", str(tmp_path / "c"), "--data", "etcd://h1:99999/p", "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("strata backup: INVALID_PARAMETERS: 'etcd://h1:99999/p' is not an etcd")


def _prefix_keys(etcd_cluster: EtcdCluster, url: str) -> list[bytes]:
    """Every key under the store's prefix, read with a client of its own (the store may be closed)."""
    prefix = EtcdUrl.parse(url).prefix.encode() + b"/"
    with EtcdClient(etcd_cluster.endpoints) as client:
        return [kv.key for kv in client.range(prefix, prefix[:-1] + b"0").kvs]


def test_a_restore_that_fails_partway_is_undone_and_the_prefix_takes_a_restore_again(
        url: str, etcd_cluster: EtcdCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tx past the cluster's --max-txn-ops (128 here) in the second window: the first window's 7 txs were
    written, then undone in one etcd txn; the prefix holds nothing and a good backup restores into it."""
    monkeypatch.setattr(etcd_backup, "WINDOW", 7)
    with Store.open(tmp_path / "lmdb", sync=False) as lmdb:
        for i in range(9):
            lmdb.namespace("a").put({f"k:{i}": i})
        lmdb.namespace("a").put({f"wide:{i}": i for i in range(200)})  # tx 10: 200 puts in one tx
        lmdb.backup(tmp_path / "wide")
        with pytest.raises(errors.EngineError) as raised:
            restore(tmp_path / "wide", url)
        got = raised.value.to_dict()
        assert got == {  # row 3 of the second window: tx 10
            "code": "BATCH_TOO_LARGE", "row": 3, "count": 200, "ops": 202, "limit": 128, "restore": "undone",
            "message": "row 3: a write of 200 operations needs at least 202 etcd txn operations; the cluster allows "
                       f"128 (its --max-txn-ops); the restore was undone: {url} is an empty store again"}
        assert _prefix_keys(etcd_cluster, url) == []
        with Store.open(tmp_path / "small", sync=False) as small:
            for i in range(9):
                small.namespace("a").put({f"k:{i}": i})
            small.backup(tmp_path / "small-b")
            assert restore(tmp_path / "small-b", url).tx == 9
            with Store.open(url) as again:
                assert (again.head(), again.verify().ok) == (small.head(), True)


def test_a_restore_raced_by_another_writer_is_not_undone_and_says_what_stays(
        source: Store, url: str, etcd_cluster: EtcdCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer commits tx 1 to the prefix after the emptiness check: the replay of tx 1 fails, and the
    undo keeps that tx (an acknowledged write, not the backup's), saying so and how to empty the prefix."""
    source.backup(tmp_path / "b")
    real = etcd_backup._replay

    def raced(copy: Store, target: Any, end: int) -> None:
        with Store.open(url) as other:
            other.namespace("theirs").put({"k": 1})
        real(copy, target, end)

    monkeypatch.setattr(etcd_backup, "_replay", raced)
    with pytest.raises(errors.InvalidParameters) as raised:
        restore(tmp_path / "b", url)
    got = raised.value.to_dict()
    prefix = EtcdUrl.parse(url).prefix
    assert (got["restore"], got["left_tx"], got["row"]) == ("left", 1, 1)
    assert got["message"].startswith("row 1: cannot replay tx 1: the next tx of this store is 2")
    assert got["message"].endswith(
        f"; the restore could not be undone (tx 1 of the store is not the backup's): "
        f"{url} holds txs 1 to 1; empty it with etcdctl del --prefix '{prefix}/' before restoring again")
    with Store.open(url) as target:
        assert (target.latest_tx, target.namespace("theirs").get("k") is not None) == (1, True)


def test_a_restore_whose_cluster_goes_away_partway_says_the_undo_failed_and_what_may_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster of its own, stopped (by PID) after the first window of 3 txs was written: the next window fails
    with STORAGE_UNAVAILABLE, the undo cannot reach the cluster either, and the error says so, that an unknown
    number of txs may stay, and how to empty the prefix. (Calls give up after 1 s instead of 10.)"""
    monkeypatch.setattr(etcd_backup, "WINDOW", 3)
    opened = EtcdStore.open.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(EtcdStore, "open",
                        classmethod(lambda cls, url, **kw: opened(cls, url, **{**kw, "retry_timeout": 1.0})))
    cluster = EtcdCluster.start(tmp_path / "etcd", 1)
    try:
        url = cluster.store_url("gone")
        real = etcd_backup.replay_history
        windows = []

        def then_stopped(target: Any, rows: Any, **kw: Any) -> Any:
            if windows:
                cluster.stop()
            windows.append(real(target, rows, **kw))
            return windows[-1]

        monkeypatch.setattr(etcd_backup, "replay_history", then_stopped)
        with Store.open(tmp_path / "lmdb", sync=False) as lmdb:
            for i in range(7):
                lmdb.namespace("a").put({f"k:{i}": i})
            lmdb.backup(tmp_path / "b")
        with pytest.raises(errors.StorageUnavailable) as raised:
            restore(tmp_path / "b", url)
        got = raised.value.to_dict()
        assert (got["code"], got["restore"], got["left_tx"], len(windows)) == ("STORAGE_UNAVAILABLE", "left", None, 1)
        assert "; the restore could not be undone (the undo failed too: STORAGE_UNAVAILABLE: " in got["message"]
        assert got["message"].endswith(f"{url} holds an unknown number of txs; empty it with etcdctl del --prefix "
                                       "'gone/' before restoring again")
    finally:
        cluster.stop()
