"""Map growth across processes: the map stays proportional to the data, and opening never races it.

Two engine defects (found by the crash and concurrency tests; reproducers here, minimal and
deterministic):

1. ``Backend._grow`` doubles the *persisted* map size (``set_mapsize(0)`` adopts the largest size
   any process ever set, then doubles it). A process that opens with a map smaller than the
   persisted one and fills its own mapping therefore doubles a size it never used: every such
   open doubles the map, until ``mmap`` fails with ENOMEM (about 46 opens from 1 MiB) and every
   write of every process fails with STORAGE_ERROR.
2. ``Backend.__init__`` does not handle ``MDB_MAP_RESIZED`` from ``open_db``: a process opening
   while another one grows the data beyond the new process's mapping fails to open (a gunicorn
   worker restarting under write load fails to boot).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine import Store, errors
from tests.reliability.helpers import REPO
from tests.reliability.test_crash import run_crashes


def test_reopening_with_a_small_map_does_not_compound_growth(tmp_path: Path) -> None:
    path = tmp_path / "s"
    biggest = 0
    for i in range(20):  # 20 opens, each writing 300 kB: about 6 MB of data
        with Store.open(path, sync=False, map_size=1 << 20) as store:
            store.namespace("n").put({f"k{i}": b"x" * 300_000})
            biggest = max(biggest, store.stats()["map_size"])
    data = (path / "data.mdb").stat().st_size
    # Today: 137,438,953,472 bytes (2^37) of map for 6,168,576 bytes of data.
    assert biggest <= 8 * data, f"map {biggest:,} bytes for {data:,} bytes of data"


def test_open_while_another_process_grows_the_map(tmp_path: Path) -> None:
    path = tmp_path / "s"
    Store.open(path, sync=False, map_size=1 << 20).close()
    grow = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r})
        from engine import Store
        with Store.open({str(path)!r}, sync=False, map_size=1 << 20) as store:
            for i in range(400):
                store.namespace("n").put({{f"k{{i}}": b"x" * 100_000}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", grow])
    failures: list[str] = []
    opens = 0
    try:
        while proc.poll() is None and opens < 3000:
            opens += 1
            try:
                Store.open(path, sync=False, map_size=1 << 20).close()
            except errors.EngineError as exc:
                failures.append(f"{exc.code}: {exc}")
    finally:
        proc.wait(timeout=120)
    # Today: about a quarter of the opens fail with STORAGE_ERROR "MDB_MAP_RESIZED".
    assert failures == [], f"{len(failures)} of {opens} opens failed, first: {failures[0]}"


def test_sigkill_during_writes_with_map_growth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The crash test with a 1 MiB map, so kills also land during growth; it fails with ENOMEM
    (defect 1) after a few dozen kills."""
    import tests.reliability.test_crash as crash

    monkeypatch.setattr(crash, "MAP_SIZE", 1 << 20)
    stats = run_crashes(tmp_path, kills=30)
    assert stats["map_size"] > 1 << 20
