"""The benchmark harness and the micro-benchmarks keep working: a quick harness run completes and
writes its report, and every micro-benchmark of benchmarks/ runs once.

No timing is asserted (speed is measured, not tested); this only proves every stage still runs
against the current engine and server and produces the table and plots docs/benchmarks.md uses.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_run_produces_results(tmp_path: Path) -> None:
    out = subprocess.run(
        # Smaller than --quick's own data set and HTTP runs: this proves every stage runs, it measures nothing.
        [sys.executable, "-m", "benchmarks", "--quick", "--no-docs", "--keys", "2000", "--versions", "3",
         "--http-seconds", "0.5", "--out", str(tmp_path), "--workdir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = list(tmp_path.glob("*.json"))
    assert len(results) == 1
    run = json.loads(results[0].read_text())
    rows = [row for row in run["embedded"] if row["system"] == "strata embedded" and not row["skip"]]
    assert {"get_latest", "read100_past", "put10000_nosync", "history", "tx_at"} <= {r["op"] for r in rows}
    assert all((r["median_s"] > 0 and r["ratio"] is None) or r["ratio"] > 0 for r in rows)
    assert run["targets"], "the issue targets are computed in every run"
    audit = [a for a in run["audit"] if not a["skip"]]  # issue 4: history, tx_at, put with/without the tx log
    assert {"history100_newest", "read100_past", "tx_at", "put100_with_log", "put100_without_log"} <= {
        a["op"] for a in audit}
    assert all(a["per_op_s"] > 0 for a in audit)
    assert {"issue4-history", "issue4-tx_at", "issue4-txlog", "issue13-groups"} <= {t["id"] for t in run["targets"]}
    groups = {g["threads"]: g for g in run["groups"]}  # durable puts from 16 threads vs one
    assert set(groups) == {1, 16} and all(g["writes_s"] > 0 and g["commits_per_write"] <= 1 for g in groups.values())
    assert all(g["ceiling_s"] > 0 and len(g["ceiling_samples"]) == len(g["samples"]) for g in groups.values())
    stage = run["etcd_strata"]  # Strata on etcd beside raw etcd: same clusters, same run
    assert stage["skip"] is None
    assert {(m["system"], m["op"]) for m in stage["reads"] if m["median_s"] > 0} == {
        (s, op) for s in ("strata on etcd", "raw etcd txn") for op in ("read100_past", "get_past")}
    assert {(p["system"], p["threads"]) for p in stage["writes"] if p["writes_s"] > 0} == {
        (s, n) for s in ("strata on etcd", "raw etcd txn", "raw etcd txn, Strata's txn shape") for n in (1, 16)}
    # etcd CPU per write, from the members' /proc/<pid>/stat (ticks: a quick run's short sample may show none)
    assert all(p["cpu_ms_per_write"] >= 0 and len(p["cpu_samples"]) == len(p["samples"]) for p in stage["writes"])
    assert {"issue18-read100", "issue18-writes1", "issue18-writes16"} <= {
        t["id"] for t in run["targets"] if t["value"] is not None}
    assert list(tmp_path.glob("*.md")) and list(tmp_path.glob("*.png"))


def test_micro_benchmarks_run_once_each(tmp_path: Path) -> None:
    """``pytest benchmarks/`` with ``--benchmark-disable``: each benchmark's function runs once, its
    assertions included, on a small data set (a separate session: its fixtures and options are its own)."""
    bench_file = ROOT / "benchmarks" / "test_engine_bench.py"
    names = [node.name for node in ast.parse(bench_file.read_text()).body
             if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    # Only the plugins the micro-suite uses: autoloading every installed one (hypothesis, schemathesis,
    # xdist, ...) cost most of this test's time; the project's addopts name xdist's options, so they go too.
    env = {**os.environ, "STRATA_BENCH_KEYS": "1000", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "-p", "pytest_benchmark.plugin", "-p", "pytest_timeout",
         "-o", "addopts=", "--benchmark-disable", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'bench'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert re.match(rf"{len(names)} passed in ", summary), summary  # none skipped, none failed


def test_a_run_of_some_stages_never_takes_the_full_runs_file_names_nor_its_docs() -> None:
    import datetime as dt

    from benchmarks.harness import STAGES, output_stamp, parse_args, stages_of

    day = dt.date(2026, 11, 30)
    assert output_stamp(day, False, STAGES) == "2026-11-30"
    assert output_stamp(day, True, STAGES) == "2026-11-30-quick"
    assert output_stamp(day, False, ["etcd_strata"]) == "2026-11-30-only-etcd_strata"
    assert output_stamp(day, True, ["floor", "strata"]) == "2026-11-30-quick-only-floor-strata"
    assert stages_of(parse_args(["--only", "reads,http"])) == ["reads", "http"]
    assert stages_of(parse_args([])) == STAGES
