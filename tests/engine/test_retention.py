"""Retention policies: the horizon they choose, the background thread, and disk space reused."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from engine import Retention, Store, errors
from tests.engine.clock import T0, Clock


def test_policies_choose_the_horizon(tmp_path: Path) -> None:
    clock = Clock()
    with Store.open(tmp_path / "s", sync=False, clock=clock) as store:
        ns = store.namespace("t")
        for i in range(30):
            clock.now = T0 + i  # tx i + 1 commits at T0 + i
            ns.put({"k": i})
        report = store.apply_retention(10)  # keep the last 10 txs readable
        assert report is not None and report.horizon == 21
        assert ns.get("k", tx=21) is not None
        with pytest.raises(errors.TxCompacted, match="tx 20 was compacted away: the oldest readable tx is 21"):
            ns.get("k", tx=20)
        assert store.apply_retention(10) is None  # nothing new to do
        assert store.apply_retention(Retention(txs=100)) is None  # a laxer policy never moves it back
        # A duration keeps every tx committed within it, and the state as of its start.
        clock.now = T0 + 40
        assert store.apply_retention(timedelta(seconds=30)) is None  # the state as of T0 + 10: tx 11 < 21
        report = store.apply_retention(Retention(seconds=14.5))  # the state as of T0 + 25.5: tx 26 (T0 + 25)
        assert report is not None and report.horizon == 26
        report = store.apply_retention(Retention(seconds=15, txs=100))  # both: the lower horizon
        assert report is None and store.horizon == 26
        clock.now = T0 + 1000
        report = store.apply_retention(Retention(seconds=1))
        assert report is not None and report.horizon == 30 == store.latest_tx
        assert store.verify().ok
        with pytest.raises(errors.InvalidParameters, match="no retention policy: pass one, or open the store"):
            store.apply_retention()  # this store has no policy of its own


def test_bad_policies_are_refused(tmp_path: Path) -> None:
    for policy, message in ((0, "txs must be a positive integer, not 0"), (-1, "txs must be a positive integer"),
                            ("1", "retention must be None, a Retention, an int .* not '1'"),
                            (1.5, "retention must be None, a Retention, an int .* not 1.5")):
        with pytest.raises(ValueError, match=message):
            Store.open(tmp_path / "s", retention=policy)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a Retention needs txs or seconds"):
        Retention()
    with pytest.raises(ValueError, match="seconds must be positive, not 0"):
        Retention(seconds=0)
    with pytest.raises(ValueError, match="interval must be positive, not -1"):
        Retention(txs=1, interval=-1)


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
