"""Compaction's exact accounting: the report (freed, txs, chunks, pending), progress calls, the
pending walk's status, a walk stopped early and resumed under a higher horizon, the freeing cap a
chunk's keys share, events below the horizon, flushes, and refusals."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import Store, compaction, errors
from engine.encoding import key_of_short, tx_of
from tests.conftest import fingerprint

from .test_compaction import expected_after, versions


def _five_txs(store: Store) -> None:
    """a and b written at 1, then a at 2, b at 3, a at 4, c at 5."""
    ns = store.namespace("t")
    ns.put({"a": 1, "b": 1})
    ns.put({"a": 2})
    ns.put({"b": 3})
    ns.put({"a": 4})
    ns.put({"c": 5})


def _report(report: compaction.CompactionReport) -> tuple[int, int, int, int, bool]:
    return report.horizon, report.freed, report.txs, report.chunks, report.pending


def _left(store: Store) -> list[tuple[str, int]]:
    """(key, tx) of every version in the store, in database order."""
    return [(key_of_short(k[:-8]), tx_of(k)) for k, _ in versions(store)]


def _stop_after(chunks: int) -> tuple[list[int], Callable[[], bool]]:
    asked: list[int] = []

    def should_stop() -> bool:
        asked.append(len(asked))
        return len(asked) > chunks

    return asked, should_stop


def test_compacting_past_the_latest_tx_is_refused_with_both_txs_in_the_details(store: Store) -> None:
    _five_txs(store)
    before = fingerprint(store)
    with pytest.raises(errors.FutureTx) as exc:
        store.compact(6)
    assert exc.value.to_dict() == {"code": "FUTURE_TX", "tx": 6, "latest_tx": 5,
                                   "message": "cannot compact before tx 6: the latest committed tx is 5"}
    assert fingerprint(store) == before


def test_compacting_to_the_current_horizon_again_visits_nothing(store: Store) -> None:
    _five_txs(store)
    assert _report(store.compact(4)) == (4, 3, 5, 1, False)  # txs 0..4 visited; a@2, a@1, b@1 freed
    before = fingerprint(store)
    # One write transaction finds no walk pending: no tx visited, nothing freed.
    assert _report(store.compact(4)) == (4, 0, 0, 1, False)
    assert _report(store.compact(3)) == (4, 0, 0, 1, False)
    assert _report(store.compact()) == (4, 0, 0, 1, False)
    assert fingerprint(store) == before
    calls: list[tuple[int, int]] = []
    store.compact(4, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 0)]  # no tx to visit, none visited (a progress bar shows it complete)


def test_progress_is_called_after_every_chunk_with_the_txs_done_and_the_total(store: Store) -> None:
    _five_txs(store)
    calls: list[tuple[int, int]] = []
    started = time.perf_counter()
    report = store.compact(4, chunk_keys=1, progress=lambda done, total: calls.append((done, total)))
    elapsed = time.perf_counter() - started
    # One operation of the log per chunk: tx 0 has none, so the first chunk also takes a of tx 1;
    # then b of tx 1, a of tx 2, b of tx 3, a of tx 4.
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    assert _report(report) == (4, 3, 5, 5, False)
    assert 0 <= report.seconds <= elapsed
    assert report.to_dict() == {"horizon": 4, "freed": 3, "txs": 5, "chunks": 5, "seconds": report.seconds,
                                "pending": False}
    assert _left(store) == [("a", 4), ("b", 3), ("c", 5)]


def test_a_walk_stopped_early_is_pending_and_a_higher_horizon_continues_it(store: Store) -> None:
    _five_txs(store)
    before = versions(store)
    asked, stop = _stop_after(1)
    first = compaction.compact(store, 4, chunk_keys=1, should_stop=stop)
    assert asked == [0, 1]  # asked before each chunk; the second answer stopped the walk
    # The one chunk took a of tx 1 (tx 0 has no operations) and freed a@2 and a@1.
    assert _report(first) == (4, 2, 1, 1, True)
    assert store.compaction_status() == {"horizon": 4, "freed_versions": 2, "pending": [1, 4]}
    assert store.horizon == 4
    # Raising the horizon keeps the pending walk's start (tx 1, after its first operation): b@1 is
    # only reachable through tx 1 and tx 3, both below the new window's own start.
    second = store.compact(5)
    assert _report(second) == (5, 1, 5, 1, False)  # txs 1..5; b@1 freed
    assert store.compaction_status() == {"horizon": 5, "freed_versions": 3, "pending": None}
    assert versions(store) == expected_after(before, 5)
    assert _left(store) == [("a", 4), ("b", 3), ("c", 5)]
    assert store.verify().ok


def test_a_stopped_walk_is_finished_by_a_call_without_a_tx(store: Store) -> None:
    _five_txs(store)
    before = versions(store)
    compaction.compact(store, 4, chunk_keys=1, should_stop=_stop_after(1)[1])
    assert store.compaction_status() == {"horizon": 4, "freed_versions": 2, "pending": [1, 4]}
    # From b of tx 1 (its a was done), one operation per chunk: b@1 freed by the first.
    assert _report(store.compact(chunk_keys=1)) == (4, 1, 4, 4, False)
    assert versions(store) == expected_after(before, 4)
    assert store.compaction_status() == {"horizon": 4, "freed_versions": 3, "pending": None}


def test_a_walk_told_to_stop_at_once_raises_the_horizon_and_frees_nothing(store: Store) -> None:
    _five_txs(store)
    asked, stop = _stop_after(0)
    assert _report(compaction.compact(store, 3, should_stop=stop)) == (3, 0, 0, 0, True)
    assert asked == [0]
    assert store.compaction_status() == {"horizon": 3, "freed_versions": 0, "pending": [0, 3]}
    with pytest.raises(errors.TxCompacted, match="tx 2 was compacted away: the oldest readable tx is 3"):
        store.namespace("t").get("a", tx=2)


def test_a_key_with_many_versions_takes_an_exact_number_of_capped_chunks(store: Store) -> None:
    ns = store.namespace("t")
    for i in range(300):
        ns.put({"hot": i})
    ns.delete(["hot"])  # tx 301
    ns.put({"other": 1})  # tx 302
    report = store.compact(302, chunk_keys=2)
    # 16 versions per chunk (8 x 2) without moving on: 18 chunks free 288 of hot's 300 puts, the 19th
    # the last 12 and the tombstone, and its window (txs 0..2); then txs 3..302, two per chunk.
    assert _report(report) == (302, 301, 303, 19 + 150, False)
    assert store.compaction_status() == {"horizon": 302, "freed_versions": 301, "pending": None}


@pytest.mark.parametrize("bad", [-1, "3", True, 2.0])
def test_a_bad_before_tx_is_refused_with_the_parameter_named(store: Store, bad: object) -> None:
    _five_txs(store)
    before = fingerprint(store)
    with pytest.raises(errors.InvalidParameters) as exc:
        store.compact(bad)  # type: ignore[arg-type]
    assert exc.value.to_dict() == {"code": "INVALID_PARAMETERS", "parameter": "before_tx",
                                   "message": f"before_tx must be a non-negative integer, not {bad!r}"}
    assert fingerprint(store) == before


def test_two_keys_share_one_chunks_freeing_cap(store: Store) -> None:
    """A chunk's cap (8 x chunk_keys versions) is shared by its keys, freed in keypart order,
    whatever order the log lists them in."""
    for i in range(1, 11):
        with store.transaction() as t:  # the log lists z before a
            t.put("t", "z", i)
            t.put("t", "a", i)
    assert [op.key for op in store.tx_info(1).operations] == ["z", "a"]  # type: ignore[union-attr]
    compaction.compact(store, 10, chunk_keys=2, should_stop=_stop_after(1)[1])
    # The first chunk (tx 0, then both keys of tx 1) may free 16: a@9..a@1, then z@9..z@3.
    assert _left(store) == [("a", 10), ("z", 10), ("z", 2), ("z", 1)]
    assert store.compaction_status() == {"horizon": 10, "freed_versions": 16, "pending": [0, 10]}
    # The same window again: z's last two, then txs 2..10, two operations per chunk.
    assert _report(store.compact(chunk_keys=2)) == (10, 2, 11, 1 + 9, False)
    assert _left(store) == [("a", 10), ("z", 10)]
    assert store.verify().ok


def test_chunks_are_not_flushed_one_by_one_and_a_durable_store_is_flushed_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(tmp_path / "s", sync=True) as store:
        _five_txs(store)
        backend = store._backend
        flushes: list[None] = []
        flush = backend.flush
        monkeypatch.setattr(backend, "flush", lambda: flushes.append(flush()))
        syncs = store.stats()["syncs"]
        assert store.compact(4, chunk_keys=1).chunks == 5
        assert store.stats()["syncs"] == syncs  # no chunk (nor the horizon's write) asked for its own flush
        assert len(flushes) == 1  # one at the end makes every chunk durable
    with Store.open(tmp_path / "s", sync=False) as store:
        backend = store._backend
        flushes.clear()
        flush = backend.flush
        monkeypatch.setattr(backend, "flush", lambda: flushes.append(flush()))
        assert _report(store.compact(5)) == (5, 0, 2, 1, False)  # txs 4 and 5: nothing more to free
        assert store.stats()["syncs"] == 0 and flushes == []  # a store opened with sync=False never flushes
        assert store.compaction_status() == {"horizon": 5, "freed_versions": 3, "pending": None}


def _events(store: Store) -> int:
    backend = store._backend
    return int(backend.read(lambda txn: txn.stat(backend.dbs["events"])["entries"]))


def _four_events(store: Store) -> None:
    stream = store.stream("s")
    for i in range(1, 5):
        stream.publish([i])  # tx i


def test_events_below_the_horizon_stay_while_compaction_is_told_to_stop(store: Store) -> None:
    _four_events(store)
    asked, stop = _stop_after(0)
    assert _report(compaction.compact(store, 3, should_stop=stop)) == (3, 0, 0, 0, True)
    assert asked == [0, 1]  # before the walk's first chunk, and before freeing events
    assert _events(store) == 4
    # The walk (txs 0..3: no storage operations) in one chunk, then events 1 and 2 in one more write.
    assert _report(store.compact()) == (3, 0, 4, 1, False)
    assert _events(store) == 2
    assert [e.tx for e in store.stream("s").read().events] == [3, 4]


def test_freeing_events_alone_counts_as_a_chunk(store: Store) -> None:
    """A walk stopped before its first chunk can still free events (should_stop is asked again
    before that write): the report counts that write, and the walk stays pending."""
    _four_events(store)
    answers = iter([True, False])
    assert _report(compaction.compact(store, 3, should_stop=lambda: next(answers))) == (3, 0, 0, 1, True)
    assert _events(store) == 2
    assert store.compaction_status() == {"horizon": 3, "freed_versions": 0, "pending": [0, 3]}


def test_freeing_events_on_a_durable_store_flushes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(tmp_path / "s", sync=True) as store:
        _four_events(store)
        backend = store._backend
        flushes: list[None] = []
        flush = backend.flush
        monkeypatch.setattr(backend, "flush", lambda: flushes.append(flush()))
        syncs = store.stats()["syncs"]
        assert _report(store.compact(3)) == (3, 0, 4, 1, False)
        assert store.stats()["syncs"] == syncs and len(flushes) == 1
        assert _events(store) == 2


def test_a_key_already_freed_whole_is_visited_again_harmlessly(store: Store) -> None:
    """Visiting a key is idempotent: z (the last key of the database) is freed whole by the chunk
    of tx 1, then tx 2's chunk finds nothing of it at or after the horizon and moves on."""
    ns = store.namespace("t")
    ns.put({"z": 1})
    ns.delete(["z"])
    ns.put({"a": 3})
    assert _report(store.compact(3, chunk_keys=1)) == (3, 2, 4, 3, False)
    assert _left(store) == [("a", 3)]
    assert store.verify().ok


def test_a_chunk_takes_exactly_chunk_keys_operations_across_txs(store: Store) -> None:
    ns = store.namespace("t")
    ns.put({"a": 1})
    ns.put({k: 2 for k in "bcdef"})
    ns.put({"a": 3})
    calls: list[tuple[int, int]] = []
    report = store.compact(3, chunk_keys=3, progress=lambda done, total: calls.append((done, total)))
    # Chunk 1: a of tx 1, then b and c of tx 2 (txs 0 and 1 done); chunk 2: d, e, f; chunk 3: a of tx 3.
    assert calls == [(2, 4), (3, 4), (4, 4)]
    assert _report(report) == (3, 1, 4, 3, False)  # a@1 freed
