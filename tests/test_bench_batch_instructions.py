"""``python -m benchmarks.batch_instructions`` keeps working: its groups of writes go through the
write batcher and are answered with 200s, one commit per group (the count itself needs valgrind and
takes minutes: the long test runs a few)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.batch_instructions import _setup

ROOT = Path(__file__).resolve().parents[1]


def test_each_group_is_one_commit_of_answered_writes(tmp_path: Path) -> None:
    run, batcher, app = _setup(str(tmp_path / "data"), 4, 3)  # asserts each write's answer is a 200
    run(3)
    batcher.stop(30)
    app.close()
    assert (batcher.commits, batcher.requests) == (3, 15)  # each group one commit: 4 writes and the gate


@pytest.mark.long
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_counts_instructions_per_write() -> None:
    out = subprocess.run([sys.executable, "-m", "benchmarks.batch_instructions", "--groups", "1,2", "--batches", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.fullmatch(r"group +1: +[\d,]+ instructions per write\ngroup +2: +[\d,]+ instructions per write\n"
                        r"fit over groups 1 and 2: -?[\d,]+ per group \+ -?[\d,]+ per write\n", out.stdout)
