"""Streams in the engine: publish, read, follow, drop, and how they live with compaction, export,
import and backup. The chain's coverage of events is in ``test_stream_chain.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine
from engine import Event, Store, errors
from engine.events import COMPACTED_EVENTS
from engine.schema import get_u64
from tests.conftest import fingerprint


def test_publishes_share_the_timeline_with_storage_writes(store: Store) -> None:
    orders = store.stream("orders")
    assert store.namespace("orders").put({"a": 1}) == 1
    assert orders.publish([{"id": 1}, b"\x00\xff", 2**64 - 1, -0.0]) == 2
    assert store.namespace("orders").put({"a": 2}) == 3
    assert orders.publish(["last"], note={"by": "alice"}) == 4
    page = orders.read()
    assert page.events == [Event(2, 0, {"id": 1}), Event(2, 1, b"\x00\xff", True), Event(2, 2, 2**64 - 1),
                           Event(2, 3, -0.0), Event(4, 0, "last")]
    assert str(page.events[3].data) == "-0.0"
    assert (page.cursor, page.more, page.tx) == ("4", False, 4)
    info = store.tx_info(4)
    assert info is not None and info.note == {"by": "alice"} and info.operations == []
    # The storage namespace of the same name knows nothing of the stream, and the reverse.
    assert [r.key for r in store.namespace("orders").read(["a"]).records] == ["a"]
    assert [i.name for i in store.namespaces()] == ["orders"]
    assert [(i.name, i.tx, i.event_count) for i in store.streams()] == [("orders", 4, 5)]
    assert store.changes(1, namespace="orders") == [c for c in store.changes(1) if c.tx == 3]


def test_reads_page_by_cursor_even_inside_one_publish(store: Store) -> None:
    s = store.stream("s")
    s.publish(list(range(5)))
    store.namespace("n").put({"k": 0})
    s.publish(["x"])
    first = s.read(limit=2)
    assert [e.data for e in first.events] == [0, 1] and (first.cursor, first.more, first.split) == ("1:1", True, True)
    second = s.read(cursor=first.cursor, limit=3)
    assert [e.data for e in second.events] == [2, 3, 4] and (second.cursor, second.more, second.split) == ("1:4", True,
                                                                                                             False)
    last = s.read(cursor=second.cursor, limit=3)
    assert last.events == [Event(3, 0, "x")] and (last.cursor, last.more) == ("3", False)
    assert s.read(cursor="3").events == [] and s.read(cursor="3").cursor == "3"
    # Bounds: start_tx < tx <= end_tx.
    assert [e.tx for e in s.read(start_tx=1).events] == [3]
    assert [e.index for e in s.read(end_tx=2).events] == [0, 1, 2, 3, 4] and s.read(end_tx=2).cursor == "2"
    assert s.read(start_tx=1, end_tx=2).events == [] and store.stream("never").read().cursor == "3"


@pytest.mark.parametrize(("call", "code"), [
    (lambda s: s.read(start_tx=4), "FUTURE_TX"),
    (lambda s: s.read(end_tx=9), "FUTURE_TX"),
    (lambda s: s.read(cursor="1:x"), "INVALID_PARAMETERS"),
    (lambda s: s.read(start_tx=0, cursor="1"), "INVALID_PARAMETERS"),
    (lambda s: s.read(limit=0), "INVALID_PARAMETERS"),
    (lambda s: s.read(start_tx=-1), "INVALID_PARAMETERS"),
    (lambda s: s.follow(start_tx=5), "FUTURE_TX"),
])
def test_bad_read_arguments_are_refused(store: Store, call: object, code: str) -> None:
    store.stream("s").publish([1])
    with pytest.raises(errors.EngineError) as caught:
        call(store.stream("s"))  # type: ignore[operator]
    assert caught.value.code == code


def test_a_bad_publish_lists_every_bad_event_and_changes_nothing(store: Store) -> None:
    store.stream("s").publish([1])
    before = fingerprint(store)
    with pytest.raises(errors.InvalidValue) as caught:
        store.stream("s").publish([1, float("nan"), {"ok": True}, {1: 2}])
    assert [(e["index"], e["code"]) for e in caught.value.details["errors"]] == [(1, "INVALID_VALUE"),
                                                                                 (3, "INVALID_VALUE")]
    with pytest.raises(errors.EmptyBatch):
        store.stream("s").publish([])
    with pytest.raises(errors.InvalidParameters):
        store.stream("s").publish("not a list")
    with pytest.raises(errors.InvalidNamespace):
        store.stream("bad/name")
    small = Store.open(store.path + "-small", sync=False, limits=engine.Limits(max_value_bytes=8, max_batch=2))
    try:
        with pytest.raises(errors.ValueTooLarge):
            small.stream("s").publish(["a" * 20])
        with pytest.raises(errors.BatchTooLarge):
            small.stream("s").publish([1, 2, 3])
    finally:
        small.close()
    assert fingerprint(store) == before and store.latest_tx == 1


def test_follow_replays_then_yields_new_events_and_ends_after_its_timeout(store: Store) -> None:
    s = store.stream("s")
    s.publish(["a", "b"])
    replay = s.follow(start_tx=0, timeout=0)
    live = s.follow(timeout=0)  # only what comes after this call
    s.publish(["c"])
    store.namespace("n").put({"k": 1})
    assert list(replay) == [Event(1, 0, "a"), Event(1, 1, "b"), Event(2, 0, "c")]
    assert list(live) == [Event(2, 0, "c")]
    resumed = s.follow(cursor="1:0", timeout=0)
    assert [e.data for e in resumed] == ["b", "c"]


def test_drop_is_a_tx_that_hides_the_events_and_a_publish_brings_the_stream_back_empty(store: Store) -> None:
    s = store.stream("s")
    s.publish([1, 2])
    assert store.drop_stream("s", note={"why": "reset"}) == 2
    assert store.stream_info("s") is None and store.streams() == [] and s.read(start_tx=0).events == []
    with pytest.raises(errors.NamespaceNotFound):
        store.drop_stream("s")
    assert s.publish([3]) == 3
    assert s.read(start_tx=0).events == [Event(3, 0, 3)]
    info = store.stream_info("s")
    assert info is not None and (info.event_count, info.size_bytes, info.tx) == (1, 17, 3)
    # An empty stream is forgotten without a tx; creating one takes none either.
    assert store.create_stream("empty").event_count == 0
    with pytest.raises(errors.NamespaceExists):
        store.create_stream("empty")
    assert store.drop_stream("empty") == 3 and store.latest_tx == 3
    assert store.verify().ok


def test_compaction_frees_events_below_the_horizon(store: Store) -> None:
    s = store.stream("s")
    for i in range(4):
        s.publish([i, i])  # txs 1..4
    store.compact(3)
    assert [e.tx for e in s.read().events] == [3, 3, 4, 4]
    assert [e.tx for e in s.read(start_tx=2).events] == [3, 3, 4, 4]
    with pytest.raises(errors.TxCompacted):
        s.read(start_tx=1)
    info = store.stream_info("s")
    assert info is not None and info.event_count == 4
    dbs = store._backend.dbs
    assert store._backend.read(lambda txn: (get_u64(txn, dbs["meta"], COMPACTED_EVENTS),
                                            txn.stat(dbs["events"])["entries"])) == (4, 4)
    report = store.verify()
    assert report.ok and report.horizon == 3


def test_a_history_export_replays_streams_to_the_same_chain(store: Store, tmp_path: Path) -> None:
    store.namespace("n").put({"a": 1})
    store.stream("s").publish([{"x": 1}, b"\x01"])
    store.drop_stream("s")
    store.stream("s").publish(["again"])
    store.create_stream("quiet")
    rows = list(engine.export_history(store))
    assert rows[0]["version"] == 3 and rows[0]["streams"] == ["quiet", "s"]
    assert rows[2]["ops"] == [{"stream": "s", "op": "publish", "events": [{"data": {"x": 1}},
                                                                           {"data": "AQ==", "binary": True}]}]
    assert rows[3]["ops"] == [{"stream": "s", "op": "drop"}]
    assert all("stream" not in op for row in engine.export_history(store, "n") for op in row.get("ops", []))
    with Store.open(tmp_path / "copy", sync=False) as copy:
        engine.import_history(copy, rows)
        assert copy.head() == store.head() and copy.verify().ok
        assert [i.name for i in copy.streams()] == ["quiet", "s"]
        assert copy.stream("s").read() == store.stream("s").read()
    with Store.open(tmp_path / "renumbered", sync=False) as renumbered:
        renumbered.namespace("first").put({"k": 0})
        engine.import_history(renumbered, rows, renumber=True)
        assert renumbered.stream("s").read().events == [Event(5, 0, "again")]


def test_a_version_2_history_still_imports(store: Store, tmp_path: Path) -> None:
    store.namespace("n").put({"a": 1})
    rows = list(engine.export_history(store))
    rows[0] = {k: v for k, v in rows[0].items() if k != "streams"} | {"version": 2}
    with Store.open(tmp_path / "copy", sync=False) as copy:
        engine.import_history(copy, rows)
        assert copy.head() == store.head()


def test_backup_and_restore_keep_the_streams(store: Store, tmp_path: Path) -> None:
    store.stream("s").publish(["a", b"b"])
    info = store.backup(tmp_path / "backup")
    Store.restore(tmp_path / "backup", tmp_path / "restored")
    with Store.open(tmp_path / "restored", sync=False) as restored:
        assert (restored.head(), info.tx) == (store.head(), 1)
        assert restored.stream("s").read() == store.stream("s").read()
        assert restored.verify().ok


@pytest.mark.parametrize("ops", [
    [{"stream": "s", "op": "publish", "events": [{"data": 1}]},
     {"stream": "s", "op": "publish", "events": [{"data": 2}]}],
    [{"stream": "s", "op": "drop"}, {"stream": "s", "op": "publish", "events": [{"data": 1}]}],
    [{"stream": "s", "op": "publish", "events": [{"data": 1}]}, {"stream": "s", "op": "drop"}],
])
def test_a_history_tx_with_two_ops_on_one_stream_is_refused(store: Store, tmp_path: Path,
                                                            ops: list[dict[str, object]]) -> None:
    """No export writes one (a publish, a drop: one op per stream per tx), and none can be stored as the row
    says: two publishes would give their events one index twice, a drop hides a publish of its own tx."""
    store.stream("s").publish(["a"])
    rows = list(engine.export_history(store))
    bad = [*rows, {**rows[1], "tx": 2, "ops": ops}]
    with Store.open(tmp_path / "copy", sync=False) as copy:
        before = fingerprint(copy)
        with pytest.raises(errors.InvalidParameters) as raised:
            engine.import_history(copy, [bad[0], bad[2]], renumber=True)
        assert raised.value.to_dict() == {
            "code": "INVALID_PARAMETERS", "parameter": "ops", "stream": "s", "row": 1,
            "message": "row 1: stream 's' has two ops in this tx; a tx holds one op per stream (a publish or a "
                       "drop), as every export writes it"}
        assert fingerprint(copy) == before
        with pytest.raises(errors.InvalidParameters) as replayed:
            engine.import_history(copy, bad)
        assert (replayed.value.details["row"], copy.latest_tx, copy.verify().ok) == (2, 1, True)
