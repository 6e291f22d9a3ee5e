"""How a scan reads: in chunks of ``CHUNK`` keyparts, each its own read transaction, and with the
expiry view it was created with (``eval_us``; None shows every value)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import Item, Limits, Record, Store, errors
from engine.scan import CHUNK, Scan
from tests.engine.clock import Clock


def test_a_compaction_between_chunks_stops_the_scan_after_exactly_one_chunk(store: Store) -> None:
    """The first chunk (CHUNK keyparts) is read when iteration starts; a compaction past the scan's
    tx then makes the next chunk refuse, so exactly CHUNK records come out before TX_COMPACTED."""
    ns = store.namespace("t")
    ns.put({f"k{i:04}": i for i in range(CHUNK + 1)})
    ns.put({"k0000": -1})
    scan = iter(ns.scan(tx=1))
    assert next(scan) == Record("k0000", 0, 1)
    store.compact(2)
    seen = 1
    with pytest.raises(errors.TxCompacted, match="tx 1 was compacted away: the oldest readable tx is 2"):
        for _ in scan:
            seen += 1
    assert seen == CHUNK


def test_a_scan_without_an_expiry_time_shows_every_value(tmp_path: Path) -> None:
    """``eval_us=None`` skips expiry: even a value that expired at its own commit (time 0, ttl 0) is
    shown (with its metadata if asked for); at ``eval_us=0`` it is hidden."""
    store = Store.open(tmp_path / "s", sync=False, clock=Clock(0.0), limits=Limits(min_ttl=0))
    try:
        ns = store.namespace("n")
        tx = ns.put([Item("gone", 1, ttl=0, metadata={"m": 1}), Item("kept", 2)])
        backend = store._backend
        prefix = backend.read(lambda txn: store._ns_prefix(txn, "n"))

        def scan(eval_us: int | None, **options: bool) -> list[Record]:
            return list(Scan(backend.read, backend.versions, prefix, tx, meta_db=backend.meta, dbs=backend.dbs,
                             eval_us=eval_us, **options))

        assert scan(None, metadata=True) == [Record("gone", 1, tx, metadata={"m": 1}), Record("kept", 2, tx)]
        assert scan(None) == [Record("gone", 1, tx), Record("kept", 2, tx)]  # metadata only when asked for
        assert scan(0) == [Record("kept", 2, tx)]
        assert list(ns.scan()) == [Record("kept", 2, tx)]
    finally:
        store.close()


def test_a_scan_of_a_missing_namespace_or_with_limit_zero_is_empty(store: Store) -> None:
    ns = store.namespace("t")
    ns.put({"a": 1, "b": 2})
    assert list(store.namespace("missing").scan()) == []
    assert list(store.namespace("missing").scan(limit=0)) == []
    assert list(ns.scan(limit=0)) == []
    assert list(ns.scan(limit=1)) == [Record("a", 1, 1)]


def test_bytes_values_are_flagged_binary_at_a_past_tx_and_at_the_latest(store: Store) -> None:
    ns = store.namespace("t")
    ns.put({"a": b"\x00\x01", "b": "s"})
    ns.put({"c": 1})
    assert list(ns.scan(tx=1)) == [Record("a", b"\x00\x01", 1, binary=True), Record("b", "s", 1)]
    assert list(ns.scan()) == [Record("a", b"\x00\x01", 1, binary=True), Record("b", "s", 1), Record("c", 1, 2)]


def test_a_scan_at_the_latest_tx_reads_exactly_chunk_keyparts_per_read_transaction(store: Store) -> None:
    """At the latest tx the scan reads the latest-version index, CHUNK keyparts per read as at a past tx."""
    ns = store.namespace("t")
    ns.put({f"k{i:04}": i for i in range(CHUNK + 1)})
    for tx in (None, 1):
        scan = ns.scan(tx=tx)
        read, sizes = scan._read, []

        def counting(chunk: Any, read: Any = read, sizes: list[int] = sizes) -> Any:
            result = read(chunk)
            sizes.append(len(chunk.keywords["out"]))
            return result

        scan._read = counting
        assert [r.key for r in scan] == [f"k{i:04}" for i in range(CHUNK + 1)]
        assert sizes == [CHUNK, 1]
