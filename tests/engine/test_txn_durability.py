"""A transaction's ``sync`` overrides the store's: the flushes it makes are counted by the backend."""

from __future__ import annotations

from pathlib import Path

from engine import Store


def test_a_transaction_flushes_as_its_sync_says(tmp_path: Path) -> None:
    with Store.open(tmp_path / "durable") as durable, Store.open(tmp_path / "fast", sync=False) as fast:
        for store, sync, flushes in [(durable, None, 1), (durable, False, 0), (fast, None, 0), (fast, True, 1)]:
            before = store._backend.syncs
            with store.transaction(sync=sync) as t:
                t.put("n", "k", 1)
            assert store._backend.syncs - before == flushes, (store._backend.sync, sync)
