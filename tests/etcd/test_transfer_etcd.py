"""``import_history`` into a store on etcd (``Store.open("etcd://...")``), on a real 3-member cluster.

An LMDB store's whole history, exported and replayed on an empty etcd prefix, gives the source's txs,
tx_info (times, notes, operations, hashes), reads at every tx and ``head()``; bad rows are refused with the
LMDB import's errors and nothing written; an import into a non-empty store is refused as on LMDB; what the
etcd backend does not support (ops on no key) is ``NOT_SUPPORTED`` naming it,
nothing written. Snapshots: ``export_snapshot`` gives LMDB's rows at every tx (paged at one revision while
writers continue), ``import_snapshot`` writes LMDB's txs (split when one does not fit an etcd txn) and a
refused one writes nothing; the CLI takes an etcd URL for both. Each test has its own store prefix on the
module's one cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine import Item, Store, errors, export_history, export_snapshot, import_history, import_rows, import_snapshot
from engine.etcd.kv import Put
from engine.etcd.replay_guard import NextTx
from server.cli import main
from tests.engine.clock import Clock

from .cluster import EtcdCluster


@pytest.fixture
def on_etcd(etcd_cluster: EtcdCluster, request: pytest.FixtureRequest, clock: Clock) -> Iterator[Store]:
    url = etcd_cluster.store_url("import/" + request.node.name)
    with Store.open(url, clock=clock) as store:
        yield store


@pytest.fixture
def source(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    """An LMDB store holding a history of 20 txs over 3 namespaces (ttl, metadata, clears, deletes,
    transactions over 2 namespaces, a namespace drop, expiry sweep txs, notes, an empty namespace)."""
    with Store.open(tmp_path / "lmdb", clock=clock) as store:
        cities, towns = store.namespace("cities"), store.namespace("towns")
        cities.put({"c:1": {"name": "Braavos"}, "c:2": "Pentos", "c:3": b"\x00raw"}, note={"by": "ana"})  # 1
        clock.now += 1
        cities.put([Item("c:4", 4, ttl=40), Item("c:5", 5, metadata={"m": 1})], metadata={"all": True})  # 2
        clock.now += 1
        cities.clear(["c:2"])  # 3
        cities.delete(["c:3"], note={"why": "gone"})  # 4
        with store.transaction(note={"t": 1}) as t:  # 5
            t.put("cities", "c:6", [6])
            t.put("towns", "t:1", "Lys")
            t.delete("cities", "c:1")
        store.create_namespace("empty")
        clock.now += 1
        towns.put([Item("t:2", "Tyrosh", ttl=5)])  # 6
        towns.put({"t:3": 3.5})  # 7
        clock.now += 10  # t:2 expires: the next write sweeps it first (tx 8), then writes (tx 9)
        cities.put({"c:7": None}, note={"after": "sweep"})  # 8, 9
        store.drop_namespace("towns", note={"drop": True})  # 10
        clock.now += 30  # c:4 expires
        store.expire()  # 11
        for i in range(12, 19):
            clock.now += 0.5
            cities.put([Item(f"k:{i}", i, metadata={"i": i})] if i % 2 else {f"k:{i}": i, "c:5": i})
        with store.transaction() as t:  # 19
            t.put("cities", "c:8", 8)
            t.put("again", "a:1", "back")
        clock.now += 1
        cities.delete(["k:12", "k:13"])  # 20
        yield store


def _exported(store: Store) -> list[dict[str, Any]]:
    return list(export_history(store))


def _answers(store: Store) -> list[Any]:
    """Every read the etcd backend supports, at every tx."""
    out: list[Any] = [store.latest_tx, tuple(store.head()), store.next_expiry()]
    for tx in range(0, store.latest_tx + 1):
        for name in ("cities", "towns", "again"):
            scan = store.namespace(name).scan(tx=tx, metadata=True, fields=["created_at", "updated_at", "expire_time"])
            out.append((name, scan.tx, list(scan)))
    for tx in range(1, store.latest_tx + 2):
        info = store.tx_info(tx)
        out.append(None if info is None else (info.tx, info.time, info.time_us, info.note, info.operations, info.hash))
    for key in ("c:1", "c:4", "c:5", "k:12"):
        out.append(store.namespace("cities").history(key))
    out.append(list(store.namespace("cities").diff(3, 17)))
    out.append([n.name for n in store.namespaces()])
    out.append([(i.key_count, i.tx) for i in (store.namespace_info(n) for n in ("cities", "again", "empty")) if i])
    return out


def test_a_replayed_lmdb_history_gives_the_same_txs_reads_and_head(source: Store, on_etcd: Store) -> None:
    rows = _exported(source)
    report = import_history(on_etcd, rows)
    assert (report.first_tx, report.last_tx, report.txs) == (1, 20, 20)
    assert report.items == sum(len(r["ops"]) for r in rows[1:])
    assert _answers(on_etcd) == _answers(source)
    assert on_etcd.verify().ok


def test_import_rows_dispatches_a_history_and_a_replay_continues_from_since(source: Store, on_etcd: Store) -> None:
    rows = _exported(source)
    first = list(export_history(source, until=12))
    second = list(export_history(source, since=12))
    assert import_rows(on_etcd, first).last_tx == 12
    assert import_rows(on_etcd, second).first_tx == 13
    assert tuple(on_etcd.head()) == tuple(source.head())
    assert _answers(on_etcd) == _answers(source)
    assert len(rows) == 21


def _refused(store: Store, rows: list[Any], error: type[errors.EngineError]) -> dict[str, Any]:
    before = (store.latest_tx, [n.name for n in store.namespaces()])
    with pytest.raises(error) as raised:
        import_history(store, rows)
    assert (store.latest_tx, [n.name for n in store.namespaces()]) == before
    return raised.value.to_dict()


def _on_lmdb(tmp_path: Path, rows: list[Any], error: type[errors.EngineError]) -> dict[str, Any]:
    with Store.open(tmp_path / "target", sync=False) as target, pytest.raises(error) as raised:
        import_history(target, rows)
    return raised.value.to_dict()


@pytest.mark.parametrize("bad", [
    lambda rows: rows[5].update(ops=[{"namespace": "cities", "op": "nap", "key": "x"}]),
    lambda rows: rows[7].update(tx=99),
    lambda rows: rows[9].update(time_us=rows[8]["time_us"] - 1),
    lambda rows: rows[3]["ops"].append(dict(rows[3]["ops"][0])),
    lambda rows: rows[4].update(note="not an object"),
    lambda rows: rows.insert(6, ["not", "a", "row"]),
])
def test_a_bad_row_is_refused_with_lmdbs_error_and_nothing_written(source: Store, on_etcd: Store, tmp_path: Path,
                                                                  bad: Any) -> None:
    rows = _exported(source)
    bad(rows)
    refused = _refused(on_etcd, rows, errors.InvalidParameters)
    assert refused == _on_lmdb(tmp_path, rows, errors.InvalidParameters)
    assert refused["row"] in (3, 4, 5, 6, 7, 9) and on_etcd.latest_tx == 0


def test_an_import_into_a_non_empty_store_is_refused_as_on_lmdb(source: Store, on_etcd: Store, tmp_path: Path) -> None:
    rows = _exported(source)
    on_etcd.namespace("cities").put({"x": 1})
    refused = _refused(on_etcd, rows, errors.InvalidParameters)
    with Store.open(tmp_path / "target", sync=False) as target:
        target.namespace("cities").put({"x": 1})
        with pytest.raises(errors.InvalidParameters) as on_lmdb:
            import_history(target, rows)
    assert refused == on_lmdb.value.to_dict()
    assert refused["message"].startswith("row 1: cannot replay tx 1: the next tx of this store is 2")


def _not_supported(operation: str) -> dict[str, Any]:
    return {"code": "NOT_SUPPORTED", "operation": operation, "backend": "etcd",
            "message": f"{operation} is not supported on the etcd backend yet; it needs the LMDB backend "
                       "(a store opened on a directory)"}


@pytest.mark.parametrize("ops", [
    [{"stream": "s", "op": "publish", "events": [{"data": 1}]}, {"stream": "s", "op": "drop"}],
    [{"stream": "s", "op": "drop"}, {"stream": "s", "op": "publish", "events": [{"data": 1}]}],
    [{"stream": "s", "op": "publish", "events": [{"data": 1}]}, {"stream": "s", "op": "publish", "events": []}],
])
def test_a_tx_with_two_ops_on_one_stream_is_refused_as_on_lmdb_writing_nothing(
        source: Store, on_etcd: Store, tmp_path: Path, ops: list[dict[str, Any]]) -> None:
    rows = _exported(source)
    twice = [*rows[:4], {**rows[4], "ops": [{"stream": "other", "op": "drop"}, *ops]}, *rows[5:]]
    refused = _refused(on_etcd, twice, errors.InvalidParameters)  # no export holds one: a publish is one op
    assert refused == _on_lmdb(tmp_path, twice, errors.InvalidParameters) == {
        "code": "INVALID_PARAMETERS", "parameter": "ops", "stream": "s", "row": 4,
        "message": "row 4: stream 's' has two ops in this tx; a tx holds one op per stream (a publish or a drop), "
                   "as every export writes it"}
    assert on_etcd.latest_tx == 0


def test_what_etcd_cannot_replay_is_not_supported_naming_it_and_nothing_written(source: Store,
                                                                                on_etcd: Store) -> None:
    rows = _exported(source)
    no_key = [*rows[:4], {**rows[4], "ops": [{"namespace": "gone", "op": "delete", "keys": []}]}, *rows[5:]]
    refused = _refused(on_etcd, no_key, errors.NotSupported)
    assert refused["operation"] == "import_history of txs with an op on no key (old LMDB stores)"
    assert refused["row"] == 4
    assert on_etcd.latest_tx == 0


def test_an_export_from_etcd_is_the_lmdb_export_and_round_trips_to_lmdb(source: Store, on_etcd: Store,
                                                                         tmp_path: Path) -> None:
    import_history(on_etcd, _exported(source))
    assert list(export_history(on_etcd)) == _exported(source)
    for since, until in ((0, 7), (7, 13), (13, None)):
        assert list(export_history(on_etcd, since=since, until=until)) == list(
            export_history(source, since=since, until=until))
    assert list(export_history(on_etcd, "cities", since=4)) == list(export_history(source, "cities", since=4))
    with Store.open(tmp_path / "back", sync=False) as back:
        assert import_history(back, export_history(on_etcd)).last_tx == 20
        assert tuple(back.head()) == tuple(on_etcd.head()) == tuple(source.head())


def test_an_export_from_etcd_checks_its_arguments_as_on_lmdb(source: Store, on_etcd: Store) -> None:
    import_history(on_etcd, _exported(source))
    for call in (lambda s: export_history(s, until=21), lambda s: export_history(s, since=5, until=4),
                 lambda s: export_history(s, "never"), lambda s: export_history(s, since=-1)):
        with pytest.raises(errors.EngineError) as on_lmdb:
            call(source)
        with pytest.raises(errors.EngineError) as on_etcd_error:
            call(on_etcd)
        assert on_etcd_error.value.to_dict() == on_lmdb.value.to_dict()


def test_strata_export_and_import_take_an_etcd_url(source: Store, on_etcd: Store, etcd_cluster: EtcdCluster,
                                                   tmp_path: Path, request: pytest.FixtureRequest,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    url = etcd_cluster.store_url("import/" + request.node.name)
    rows = _exported(source)
    exported, again = tmp_path / "history.jsonl", tmp_path / "again.jsonl"
    exported.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    assert main(["import", str(exported), "--data", url, "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"imported {sum(len(r['ops']) for r in rows[1:])} operation(s) in "
                                              "20 tx(s) (txs 1 to 20) in ")
    assert tuple(on_etcd.head()) == tuple(source.head())
    assert main(["export", "--history", "--data", url, "--out", str(again), "--quiet"]) == 0
    assert [orjson.loads(line) for line in again.read_bytes().splitlines()] == rows
    assert main(["import", str(exported), "--data", url, "--quiet"]) == 2  # not empty any more: LMDB's refusal
    assert "cannot replay tx 1: the next tx of this store is 21" in capsys.readouterr().err
    snapshot = tmp_path / "cities.jsonl"
    assert main(["export", "--ns", "cities", "--tx", "17", "--data", url, "--out", str(snapshot), "--quiet"]) == 0
    assert capsys.readouterr().out == f"exported 10 record(s) of cities at tx 17 to {snapshot}\n"
    assert [orjson.loads(line) for line in snapshot.read_bytes().splitlines()] == list(
        export_snapshot(source, "cities", tx=17))
    assert main(["import", str(snapshot), "--ns", "copy", "--data", url, "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("imported 10 operation(s) in 1 tx(s) (txs 21 to 21) in ")
    assert list(export_snapshot(on_etcd, "copy"))[1:] == [{**row, "tx": 21} for row in list(
        export_snapshot(source, "cities", tx=17))[1:]]
    assert main(["import", str(exported), "--ns", "x", "--data", url, "--quiet"]) == 2
    assert "--ns renames the namespace of a one-namespace history" in capsys.readouterr().err
    assert main(["import", str(exported), "--data", "etcd://h1:99999/p", "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("strata import: INVALID_PARAMETERS: 'etcd://h1:99999/p' is not an etcd")


def test_a_tx_landing_between_the_check_and_the_replayed_txn_makes_it_fail_and_refuse(on_etcd: Store) -> None:
    storage = on_etcd.storage()
    guard = NextTx(storage.timeline, 1, 5)
    compare, puts = guard.guard(lambda latest: latest + 1)
    assert puts == [] and not guard.moved()
    on_etcd.namespace("a").put({"k": 1})  # tx 1, by another writer
    assert guard.moved()
    assert not storage.timeline.client.txn(compare, [Put(b"import/never", b"")]).succeeded
    with pytest.raises(errors.InvalidParameters) as raised:
        guard.guard(lambda latest: latest + 1)
    assert raised.value.to_dict()["message"] == ("cannot replay tx 1: the next tx of this store is 2 (import a "
                                                 "history into an empty store, or renumber it)")


def test_a_replayed_tx_of_only_absent_deletes_is_refused_taking_no_tx(source: Store, on_etcd: Store) -> None:
    rows = _exported(source)
    import_history(on_etcd, rows[:4])
    gone = {"tx": 4, "time_us": rows[4]["time_us"], "note": None, "ops": [{"namespace": "cities", "op": "delete",
                                                                          "key": "never"}]}
    before = tuple(on_etcd.head())
    assert _refused(on_etcd, [gone], errors.InvalidParameters)["message"] == (
        "row 0: cannot replay tx 4: it deletes only keys this store does not hold (it is not a copy of the "
        "exported store up to tx 3)")
    assert tuple(on_etcd.head()) == before


def _renumbered(store: Store) -> list[Any]:
    out: list[Any] = [tuple(store.head()), [n.name for n in store.namespaces()]]
    for tx in range(1, store.latest_tx + 1):
        info = store.tx_info(tx)
        assert info is not None
        out.append((info.time_us, info.note, info.operations, info.hash))
        out.append([(n, list(store.namespace(n).scan(tx=tx, metadata=True))) for n in ("cities", "towns", "moved")])
    return out


@pytest.mark.parametrize("namespace", [None, "cities"])
def test_a_renumbered_import_writes_what_it_writes_on_lmdb(source: Store, on_etcd: Store, tmp_path: Path,
                                                          clock: Clock, namespace: str | None) -> None:
    rows = list(export_history(source, namespace, since=3))
    rename = {"cities": "moved"} if namespace else None
    on_etcd.namespace("towns").put({"mine": 1})  # a non-empty store: renumber adds to it
    with Store.open(tmp_path / "target", clock=clock) as target:
        target.namespace("towns").put({"mine": 1})
        expected = import_history(target, rows, renumber=True, rename=rename)
        report = import_history(on_etcd, rows, renumber=True, rename=rename)
        assert (report.first_tx, report.last_tx, report.txs, report.items) == (
            expected.first_tx, expected.last_tx, expected.txs, expected.items)
        assert _renumbered(on_etcd) == _renumbered(target)


# -- snapshots ----------------------------------------------------------------------------------


def etcd_fingerprint(store: Store) -> list[tuple[bytes, bytes, int]]:
    """Every key of the store's prefix with its value and mod revision (the chain sealed first, the sealer's
    seat left out): equal means nothing was written."""
    store.head()
    storage = store.storage()
    layout = storage.timeline.layout
    kvs = storage.timeline.client.range(layout.prefix + b"/", layout.prefix + b"0").kvs
    return [(kv.key, kv.value, kv.mod_revision) for kv in kvs if kv.key != layout.sealer]


def _outcome(store: Store, *args: Any, **kwargs: Any) -> Any:
    """The rows of ``export_snapshot(store, *args, **kwargs)``, or its error as a dict."""
    try:
        return list(export_snapshot(store, *args, **kwargs))
    except errors.EngineError as exc:
        return exc.to_dict()


def test_a_snapshot_export_from_etcd_gives_the_lmdb_rows_at_every_tx(source: Store, on_etcd: Store) -> None:
    import_history(on_etcd, _exported(source))
    # The latest, tx 0, and the txs after each kind of change: ttl and metadata, a clear, a transaction, a
    # sweep, a drop, an expire(), a namespace written again, the last tx, and one in the future.
    for tx in (None, 0, 2, 3, 5, 8, 9, 10, 11, 17, 19, 20, 21):
        for name, prefix in (("cities", ""), ("cities", "c:"), ("cities", "zz"), ("towns", ""), ("again", ""),
                             ("empty", ""), ("never", "")):
            assert _outcome(on_etcd, name, tx=tx, prefix=prefix) == _outcome(source, name, tx=tx,
                                                                              prefix=prefix), (tx, name, prefix)
    rows = list(export_snapshot(on_etcd, "cities"))
    assert rows[0] == {"format": "strata-export", "version": 3, "mode": "snapshot", "namespace": "cities", "tx": 20,
                       "prefix": "", "count": 10}
    assert {"key": "c:5", "value": 18, "tx": 18} in rows and {"key": "c:2", "cleared": True, "tx": 3} in rows
    for bad in (dict(prefix=5), dict(tx=-1), dict(tx="3")):
        assert _outcome(on_etcd, "cities", **bad) == _outcome(source, "cities", **bad)
    assert _outcome(on_etcd, "bad/name") == _outcome(source, "bad/name")


def test_a_snapshot_export_from_etcd_pages_at_one_revision_while_writers_continue(on_etcd: Store) -> None:
    rows = [{"key": f"k:{i:04}", "value": i} for i in range(1300)]
    report = import_snapshot(on_etcd, rows, namespace="big")  # 1000 a tx do not fit 128 etcd txn ops: split
    assert (report.first_tx, report.last_tx, report.items) == (1, report.txs, 1300) and report.txs > 2
    expected = list(export_snapshot(on_etcd, "big"))
    assert expected[0] == {"format": "strata-export", "version": 3, "mode": "snapshot", "namespace": "big",
                           "tx": report.last_tx, "prefix": "", "count": 1300}
    assert [(r["key"], r["value"]) for r in expected[1:]] == [(r["key"], r["value"]) for r in rows]
    it = export_snapshot(on_etcd, "big")
    first = [next(it) for _ in range(1101)]  # the header and past the first page of 1000
    on_etcd.namespace("big").delete(["k:1299"])
    on_etcd.namespace("big").put({"k:1200": "changed", "k:9999": 1})
    assert first + list(it) == expected
    assert list(export_snapshot(on_etcd, "big", tx=report.last_tx))[1:] == expected[1:]


@pytest.fixture
def lmdb_target(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "target", clock=clock) as store:
        yield store


def _written(store: Store, names: tuple[str, ...] = ("copy",)) -> list[Any]:
    out: list[Any] = [store.latest_tx, [n.name for n in store.namespaces()]]
    for tx in range(1, store.latest_tx + 1):
        info = store.tx_info(tx)
        assert info is not None
        out.append((info.time_us, info.note, info.operations, info.hash))
    for name in names:
        out.append(list(store.namespace(name).scan(metadata=True, fields=["expire_time", "created_at"])))
    return out


def test_a_snapshot_import_into_etcd_writes_the_txs_lmdb_writes(source: Store, on_etcd: Store,
                                                                lmdb_target: Store) -> None:
    for tx in (17, None):
        rows = list(export_snapshot(source, "cities", tx=tx))
        expected = import_snapshot(lmdb_target, rows, namespace="copy", batch=4, note={"import": tx})
        report = import_snapshot(on_etcd, rows, namespace="copy", batch=4, note={"import": tx})
        assert (report.first_tx, report.last_tx, report.txs, report.items) == (
            expected.first_tx, expected.last_tx, expected.txs, expected.items)
    assert (report.first_tx, report.last_tx, report.items) == (4, 6, 10)
    assert _written(on_etcd) == _written(lmdb_target)
    assert tuple(on_etcd.head()) == tuple(lmdb_target.head())
    empty = list(export_snapshot(source, "empty"))
    assert import_rows(on_etcd, empty).txs == 0 and on_etcd.namespace_info("empty") is not None


def test_a_snapshot_import_splits_a_tx_that_does_not_fit_one_etcd_txn(on_etcd: Store, lmdb_target: Store) -> None:
    rows = [{"key": f"k:{i:03}", "value": i, "metadata": {"i": i}} for i in range(150)]
    report = import_snapshot(on_etcd, rows, namespace="copy")  # 1000 records a tx: over 128 etcd txn ops
    assert (report.first_tx, report.last_tx, report.txs, report.items) == (1, 2, 2, 150)
    assert [len((on_etcd.tx_info(tx) or pytest.fail()).operations) for tx in (1, 2)] == [75, 75]
    assert import_snapshot(lmdb_target, rows, namespace="copy").txs == 1
    assert [(r.key, r.value, r.metadata) for r in on_etcd.namespace("copy").scan(metadata=True)] == [
        (r.key, r.value, r.metadata) for r in lmdb_target.namespace("copy").scan(metadata=True)]
    with pytest.raises(errors.InvalidParameters) as too_many:
        import_snapshot(on_etcd, rows, namespace="copy", batch=on_etcd.limits.max_batch + 1)
    assert too_many.value.to_dict()["message"] == f"batch must be 1 to {on_etcd.limits.max_batch}"


@pytest.mark.parametrize("bad", [
    lambda rows: rows[7].update(value=None, binary=True),
    lambda rows: rows.insert(6, ["not", "a", "row"]),
    lambda rows: rows.insert(6, dict(rows[5])),
    lambda rows: rows[8].update(expire_us=-5),
    lambda rows: rows[0].update(mode="history"),
])
def test_a_refused_snapshot_import_leaves_the_etcd_store_as_it_was(source: Store, on_etcd: Store,
                                                                   lmdb_target: Store, bad: Any) -> None:
    rows = list(export_snapshot(source, "cities"))
    bad(rows)
    on_etcd.namespace("copy").put({"mine": 1})
    before = etcd_fingerprint(on_etcd)
    with pytest.raises(errors.InvalidParameters) as refused:
        import_snapshot(on_etcd, rows, namespace="copy", batch=2)
    assert etcd_fingerprint(on_etcd) == before
    with pytest.raises(errors.InvalidParameters) as on_lmdb:
        import_snapshot(lmdb_target, rows, namespace="copy", batch=2)
    assert refused.value.to_dict() == on_lmdb.value.to_dict()


def test_a_tx_too_large_for_one_etcd_txn_is_refused_before_anything_is_written(on_etcd: Store,
                                                                              tmp_path: Path) -> None:
    """Tx 4 has 200 operations: more than one etcd txn holds (--max-txn-ops 128) whatever the store holds,
    so the import refuses it while it checks the rows, before txs 1 to 3 are written."""
    with Store.open(tmp_path / "wide", sync=False) as lmdb:
        for i in range(3):
            lmdb.namespace("a").put({f"k:{i}": i})
        lmdb.namespace("a").put({f"wide:{i}": i for i in range(200)})
        rows = list(export_history(lmdb))
    assert _refused(on_etcd, rows, errors.BatchTooLarge) == {  # no tx, no namespace written
        "code": "BATCH_TOO_LARGE", "row": 4, "count": 200, "ops": 202, "limit": 128,
        "message": "row 4: a write of 200 operations needs at least 202 etcd txn operations; the cluster allows "
                   "128 (its --max-txn-ops)"}
    assert on_etcd.latest_tx == 0


def test_a_write_that_fails_after_others_says_which_txs_the_import_left(on_etcd: Store, tmp_path: Path) -> None:
    """A writer commits a tx of its own once the import has written 100 txs (its progress callback is where
    it lands): tx 101 can no longer take its number, and the error says the import's 100 txs stay."""
    with Store.open(tmp_path / "long", sync=False) as lmdb:
        for i in range(102):
            lmdb.namespace("a").put({f"k:{i % 5}": i})
        rows = list(export_history(lmdb))
        hundredth = lmdb.tx_info(100)

    def race(done: int, total: int | None) -> None:
        if done == 100:
            on_etcd.namespace("theirs").put({"k": 1})

    with pytest.raises(errors.EngineError) as raised:
        import_history(on_etcd, rows, progress=race)
    got = raised.value.to_dict()
    assert (got["row"], got["imported"]) == (101, [1, 100])
    assert got["message"].endswith("; this import wrote txs 1 to 100 before it, which stay")
    assert hundredth is not None and (on_etcd.latest_tx, (on_etcd.tx_info(100) or pytest.fail()).hash) == (
        101, hundredth.hash)
