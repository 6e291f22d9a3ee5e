"""``python -m benchmarks.app_instructions`` keeps working: every system it counts answers its requests
(the app's with 200s; the count itself needs valgrind and takes minutes: the long test runs a few)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.app_instructions import SYSTEMS

ROOT = Path(__file__).resolve().parents[1]


def test_every_system_answers_its_requests() -> None:
    out = subprocess.run([sys.executable, "-m", "benchmarks.app_instructions", "--inner", "--system", ",".join(SYSTEMS),
                          "--requests", "3"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.long
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_counts_instructions_per_request() -> None:
    out = subprocess.run([sys.executable, "-m", "benchmarks.app_instructions", "--system", "engine", "--requests", "5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.fullmatch(r"engine +[\d,]+ instructions per request\n", out.stdout)
