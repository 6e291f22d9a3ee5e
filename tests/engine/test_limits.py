"""Request limits at their exact boundary: the limit itself is allowed, one more is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Limits, Store
from engine.errors import BatchTooLarge
from tests.conftest import fingerprint


def test_a_batch_of_exactly_max_batch_items_is_accepted(tmp_path: Path) -> None:
    with Store.open(tmp_path, sync=False, limits=Limits(max_batch=5)) as store:
        ns = store.namespace("n")
        assert ns.put({f"k{i}": i for i in range(5)}) == 1
        before = fingerprint(store)
        with pytest.raises(BatchTooLarge, match="6 items in one write; the limit is 5"):
            ns.put({f"k{i}": i for i in range(6)})
        assert ns.clear([f"k{i}" for i in range(5)]) == 2
        with pytest.raises(BatchTooLarge, match="the limit is 5"):
            ns.delete([f"j{i}" for i in range(6)])
        assert fingerprint(store) != before  # the clear landed; the refused calls added nothing after it
        assert store.latest_tx == 2


def test_a_transaction_of_exactly_max_batch_operations_commits(tmp_path: Path) -> None:
    with Store.open(tmp_path, sync=False, limits=Limits(max_batch=3)) as store:
        with store.transaction() as t:
            for i in range(3):
                t.put("n", f"k{i}", i)
        assert t.tx == 1
        t2 = store.transaction()
        for i in range(3):
            t2.put("n", f"j{i}", i)
        with pytest.raises(BatchTooLarge, match="more than 3 operations"):
            t2.put("n", "j3", 3)
        assert store.latest_tx == 1
