"""``python -m benchmarks.batch_instructions`` keeps working: its groups of writes go through the
write batcher and are answered with 200s, one commit per group (the count itself needs valgrind and
takes minutes: the long test runs a few)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_each_group_is_one_commit_of_answered_writes() -> None:
    out = subprocess.run([sys.executable, "-m", "benchmarks.batch_instructions", "--inner", "--groups", "4",
                          "--batches", "3"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, BIP_SHOW="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    # 8 warm-up groups and 3 measured, each a commit of 4 writes and its gate (a request that writes nothing)
    assert out.stderr.strip().splitlines()[-1] == "commits 11, requests 55", out.stderr[-3000:]


@pytest.mark.long
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_counts_instructions_per_write() -> None:
    out = subprocess.run([sys.executable, "-m", "benchmarks.batch_instructions", "--groups", "1,2", "--batches", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.fullmatch(r"group +1: +[\d,]+ instructions per write\ngroup +2: +[\d,]+ instructions per write\n"
                        r"fit over groups 1 and 2: -?[\d,]+ per group \+ -?[\d,]+ per write\n", out.stdout)
