"""Runs merged when a no-op delete between them is dropped keep each item's own options."""

from __future__ import annotations

import pytest

from engine import Record, Store
from engine.txlog import runs_of


@pytest.mark.parametrize("rich_first", [True, False])
def test_merged_runs_keep_the_metadata_of_each_item(store: Store, rich_first: bool) -> None:
    with store.transaction() as t:
        t.put("a", "x", 1, metadata={"m": "x"} if rich_first else None)
        t.delete("a", "nothing")  # a no-op: dropped, so the two put runs become one
        t.put("a", "z", 2, metadata=None if rich_first else {"m": "z"})
    backend = store._backend
    assert backend.read(lambda txn: runs_of(txn, backend.dbs, 1)) == [["a", 0, ["x", "z"]]]
    x_meta, z_meta = ({"m": "x"}, None) if rich_first else (None, {"m": "z"})
    assert list(store.namespace("a").scan(metadata=True)) == [
        Record("x", 1, 1, metadata=x_meta), Record("z", 2, 1, metadata=z_meta)]
