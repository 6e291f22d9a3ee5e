"""Retention policies: the horizon they choose, the background thread, and disk space reused."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from engine import Retention, Store, errors


def test_policies_choose_the_horizon(store: Store) -> None:
    ns = store.namespace("t")
    for i in range(30):
        ns.put({"k": i})
    report = store.apply_retention(10)  # keep the last 10 txs readable
    assert report is not None and report.horizon == 21
    assert ns.get("k", tx=21) is not None
    with pytest.raises(errors.TxCompacted):
        ns.get("k", tx=20)
    assert store.apply_retention(10) is None  # nothing new to do
    assert store.apply_retention(Retention(txs=100)) is None  # a laxer policy never moves it back
    # A duration keeps every tx committed within it, and the state as of its start.
    assert store.apply_retention(timedelta(days=1)) is None
    time.sleep(0.01)
    report = store.apply_retention(Retention(seconds=0.001))
    assert report is not None and report.horizon == 30 == store.latest_tx
    assert store.verify().ok
    with pytest.raises(errors.InvalidParameters):
        store.apply_retention()  # this store has no policy of its own


def test_bad_policies_are_refused(tmp_path: Path) -> None:
    for policy in (0, -1, "1", 1.5):
        with pytest.raises(ValueError):
            Store.open(tmp_path / "s", retention=policy)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Retention()


def test_the_background_thread_applies_the_policy(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sync=False, retention=Retention(txs=5, interval=0.01)) as store:
        ns = store.namespace("t")
        for i in range(50):
            ns.put({"k": i, f"k{i}": i})
        deadline = time.monotonic() + 30
        while store.horizon < 46 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.horizon == 46
        deadline = time.monotonic() + 30
        while store.compaction_status()["pending"] is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [v.tx for v in ns.history("k")] == [50, 49, 48, 47, 46]
        assert store.verify().ok
    # Closing stopped the thread.
    assert not store._retention_thread or not store._retention_thread.is_alive()


def test_disk_space_is_reused_under_steady_writes_with_retention(tmp_path: Path) -> None:
    """Without retention this load writes ~40 MB of versions; with it, the file levels off."""
    path = tmp_path / "s"
    value = "v" * 1000
    sizes = []
    with Store.open(path, sync=False, retention=Retention(txs=20, interval=3600)) as store:
        ns = store.namespace("t")
        for i in range(2000):
            ns.put({f"k{(i * 20 + j) % 400}": [i, value] for j in range(20)})
            if i % 10 == 9:
                store.apply_retention()  # what the thread does, at a deterministic pace
            if i % 500 == 499:
                sizes.append((os.path.getsize(path / "data.mdb"), store.stats()["used_bytes"]))
        assert store.verify().ok
    written = 2000 * 20 * 1000
    first_file, first_used = sizes[0]
    for file_size, used in sizes[1:]:
        # After the first 500 txs (10 MB written) the file stops growing (the tx log, a few
        # hundred bytes per tx, is all that is kept forever): generous bounds, no timing.
        assert file_size <= first_file * 1.5 + (1 << 20), sizes
        assert used <= first_used * 1.5 + (1 << 20), sizes
    assert sizes[-1][0] < written / 5, sizes
