"""``python -m benchmarks.put_instructions`` keeps working: every system it counts runs its puts (the
count itself needs valgrind and takes a minute: the long test runs it on the floor)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.put_instructions import SYSTEMS, _bulk_template

ROOT = Path(__file__).resolve().parents[1]


def test_every_system_runs_its_puts() -> None:
    template = _bulk_template(300)  # what the bulk systems copy (the outer run builds it outside valgrind)
    try:
        out = subprocess.run([sys.executable, "-m", "benchmarks.put_instructions", "--inner", "--system",
                              ",".join(SYSTEMS), "--puts", "3", "--keys", "20", "--bulk-keys", "300", "--template",
                              template, "--sync"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(template)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.long
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_counts_instructions_per_put() -> None:
    out = subprocess.run([sys.executable, "-m", "benchmarks.put_instructions", "--system", "floor", "--puts", "5",
                          "--keys", "20"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.fullmatch(r"floor +[\d,]+ instructions per put\n", out.stdout)
