"""``python -m benchmarks.puts`` keeps working: two engines loaded side by side, every put operation
timed against the floor. No timing is asserted (speed is measured, not tested)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_puts_compares_two_engines_on_every_operation(tmp_path: Path) -> None:
    # This checkout stands in for the base too: it is loaded a second time as the package engine_base.
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.puts", "--base", str(ROOT), "--keys", "300", "--versions", "2",
         "--rounds", "1", "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("load average ") and lines[0].endswith(", 1 rounds")
    for op in ("put1", "put10k", "put10k_big", "sync1"):
        for system in ("floor", "engine_base", "engine"):
            row = rf"{op} +{system} +cpu +[\d.]+ us +wall +[\d.]+ us"
            assert any(re.match(row, line) for line in lines), (op, system)
        assert any(re.match(rf"{op} +engine / engine_base, cpu: [\d.]+$", line) for line in lines), op
    for op in ("put10k", "put10k_big"):  # the floor encoding with the engine's encoder, and each engine against it
        assert any(re.match(rf"{op} +floor_orm +cpu +[\d.]+ us", line) for line in lines), op
        assert sum(bool(re.match(rf"{op} +engine(_base)? .* cpu x floor_orm [\d.]+$", line)) for line in lines) == 2
    sync_rows = [line for line in lines if line.startswith("sync1") and " engine" in line and "x sqlite" in line]
    assert len(sync_rows) == 2  # both engines' durable puts are compared with SQLite's
    assert list(tmp_path.iterdir()) == []  # its stores are removed
