"""Command line and orchestration: ``python -m benchmarks [--quick]`` (also behind ``strata bench``).

Entry point for other code: ``benchmarks.harness.main(argv: list[str] | None = None) -> int``
(``benchmarks.__main__`` re-exports it). It returns 0 when the run completed, whatever the timings:
CI runs ``--quick`` (on an even smaller data set) only to keep the harness working and asserts no timing.

One run, in order, all on the same generated data set:
1. embedded targets (floor, Strata, SQLite, diskcache, etcd): all loaded first (load time recorded),
   then every operation measured round-robin across systems (``measure.measure_interleaved``):
   reads first, then writes; ratios to the floor attached from the same run;
2. HTTP: gunicorn (Strata server, minimal WSGI apps) and etcd's gateway under wrk;
3. reads per value shape (``shapes.py``): Strata's point reads vs the floor in CPU time, on 30-byte
   strings and ~100-byte dicts;
4. growth curves (``growth.py``);
5. time travel and audit (``audit.py``): history vs read, tx_at vs store size, put with and
   without the tx log;
6. group commit (``group_commit.py``): durable 1-item puts from 16 threads vs one thread;
7. Strata on etcd against raw etcd (``etcd_strata.py``): its own two etcd clusters and data set (10,000
   keys x 5 versions; quick: 200 x 2), reads of 100 keys at a past tx and durable 1-item writes at 1 and
   16 threads, Strata and raw etcd interleaved;
8. outputs (``report.py``): ``<out>/<date>[-quick].json|.md|-*.png``; a full run also refreshes the
   generated block of docs/benchmarks.md.

The run dict (what the JSON holds): date, mode, config, machine, load_seconds, embedded (list of
``Measurement``), http (list of ``HttpResult``), growth (list of ``GrowthPoint``), audit (list of
``AuditPoint``), groups (list of ``GroupPoint``), etcd_strata (the dict ``etcd_strata.run_etcd_strata``
returns, None when the stage did not run), reads (list of ``ShapePoint``), bytes_per_version
(Strata's backup size over the versions it holds), targets, skipped, elapsed_s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .audit import QUICK_AUDIT, AuditPlan, run_audit
from .datasets import Dataset, Workload
from .etcd_strata import QUICK_ETCD_STRATA, EtcdStrataPlan, run_etcd_strata
from .group_commit import QUICK_GROUPS, GroupPlan, run_groups
from .growth import GrowthPlan, run_growth
from .machine import machine_info
from .measure import Config, Measurement, attach_ratios, measure_interleaved
from .report import compute_targets, render_markdown, update_docs, write_outputs
from .shapes import QUICK_SHAPES, ShapePlan, run_shapes
from .targets import Target
from .targets.diskcache_kv import DiskcacheKV
from .targets.etcd import Etcd
from .targets.http import Load, run_http
from .targets.lmdb_floor import LmdbFloor
from .targets.sqlite_versioned import SqliteVersioned
from .targets.strata_embedded import StrataEmbedded

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = {
    "floor": LmdbFloor,
    "strata": StrataEmbedded,
    "sqlite": SqliteVersioned,
    "diskcache": DiskcacheKV,
    "etcd": Etcd,
}
STAGES = [*SYSTEMS, "reads", "http", "growth", "audit", "groups", "etcd_strata"]
OPS_PER_TARGET = 14  # progress-bar estimate until the targets report their real ops


@dataclass
class Mode:
    """Sizes of one mode. Full is sized for about 15-20 minutes on the 2-core reference machine."""

    n_keys: int
    versions: int
    cfg: Config
    http_seconds: float  # per load run; each server gets http_rounds runs, interleaved
    http_rounds: int
    growth: GrowthPlan
    audit: AuditPlan
    groups: GroupPlan
    shapes: ShapePlan
    etcd_strata: EtcdStrataPlan


QUICK = Mode(
    5_000,
    5,
    Config(repeats=3, min_time=0.01, warmup_calls=1, max_seconds_per_op=1.0),
    2.0,
    1,
    GrowthPlan(versions=(1, 10, 100), keys=(1_000, 10_000), batches=(1, 100, 1_000)),
    QUICK_AUDIT,
    QUICK_GROUPS,
    QUICK_SHAPES,
    QUICK_ETCD_STRATA,
)
# Full: 11 interleaved samples per figure and 6 HTTP rounds of 4 s per server, because on the shared
# 2-core machine single rounds swing by 3-4x (measured: 430 to 2,009 req/s for one server).
FULL = Mode(
    100_000,
    10,
    Config(repeats=11, min_time=0.05, warmup_calls=3, max_seconds_per_op=8.0),
    4.0,
    6,
    GrowthPlan(),
    AuditPlan(),
    GroupPlan(),
    ShapePlan(),
    EtcdStrataPlan(),
)


class Progress:
    """tqdm when installed (it is in the ``bench`` extra), else plain lines."""

    def __init__(self, total: int, desc: str) -> None:
        try:
            from tqdm import tqdm

            # disable=None: no bar when stderr is not a terminal (CI logs), log lines still print.
            self.bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, disable=None)
        except ImportError:
            self.bar = None

    def expect(self, planned: int, actual: int) -> None:
        """Correct the total once a target's real number of operations is known."""
        if self.bar is not None and planned != actual:
            self.bar.total += actual - planned
            self.bar.refresh()

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def log(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


#: What a run imports beyond Strata's own dependencies: the ``bench`` extra of pyproject.toml.
BENCH_MODULES = ("matplotlib", "diskcache", "tqdm")
BENCH_EXTRA = "pip install -e '.[bench]'"


def missing_modules() -> list[str]:
    """The modules of the ``bench`` extra that cannot be imported here."""
    missing = []
    for name in BENCH_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def parse_args(argv: list[str] | None, prog: str = "python -m benchmarks") -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description="Benchmark Strata against raw LMDB, SQLite, diskcache and "
                                "etcd, embedded and over HTTP, and Strata on etcd against raw etcd; write JSON, "
                                "Markdown and plots.")
    p.add_argument("--quick", action="store_true", help="small data, few repeats: under a minute (CI)")
    p.add_argument("--keys", type=int, help="number of keys (default 100,000; quick 5,000)")
    p.add_argument("--versions", type=int, help="versions per key (default 10; quick 5)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--only", help=f"comma-separated stages to run, from {','.join(STAGES)} (default all)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="results directory")
    p.add_argument("--workdir", type=Path, help="where stores are created (default: a temp dir, removed after)")
    p.add_argument("--connections", type=int, default=16, help="HTTP connections (wrk -c)")
    p.add_argument("--http-seconds", type=float, help="duration of each HTTP load run")
    p.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refresh docs/benchmarks.md (default: on for full runs, off for --quick and --only)",
    )
    return p.parse_args(argv)


def _setup_target(target: Target, ds: Dataset, wl: Workload, workdir: Path, bar: Progress, run: dict) -> bool:
    skip = target.skip_reason()
    if skip:
        bar.log(f"{target.name}: skipped: {skip}")
        run["skipped"].append(f"{target.name}: {skip}")
        return False
    t0 = time.perf_counter()
    target.setup(ds, wl, workdir)
    run["load_seconds"][target.name] = time.perf_counter() - t0
    bar.log(f"{target.name}: loaded {ds.n_keys * ds.versions:,} records in {run['load_seconds'][target.name]:.1f} s")
    return True


def _measure_targets(targets: dict[str, Target], cfg: Config, bar: Progress, planned: int) -> list[Measurement]:
    """All systems' reads interleaved round-robin, then all writes (writes add versions, so reads go
    first and see exactly the loaded data set)."""
    jobs = [(t.name, op) for t in targets.values() for op in t.ops()]
    for system, op in jobs:
        if op.fn is None:
            bar.log(f"  {system} {op.op}: skipped: {op.skip}")
    reads = [(s, op) for s, op in jobs if not op.op.startswith("put")]
    writes = [(s, op) for s, op in jobs if op.op.startswith("put")]
    bar.expect(planned, cfg.repeats * sum(op.fn is not None for _, op in jobs))
    return measure_interleaved(reads, cfg, bar.update) + measure_interleaved(writes, cfg, bar.update)


def _run_engine_stages(stages: list[str], mode: Mode, workdir: Path, bar: Progress, result: dict,
                       seed: int) -> None:
    """The stages on stores of their own: growth curves, time travel and audit, group commit, Strata on
    etcd."""
    cfg = mode.cfg
    if "reads" in stages:
        result["reads"] = [p.to_dict() for p in run_shapes(mode.shapes, workdir, bar.update, bar.log)]
    if "growth" in stages:
        result["growth"] = [g.to_dict() for g in run_growth(mode.growth, cfg, workdir, bar, bar.log)]
    if "audit" in stages:
        result["audit"] = [a.to_dict() for a in run_audit(mode.audit, cfg, workdir, bar, bar.log)]
    if "groups" in stages:
        result["groups"] = [g.to_dict() for g in run_groups(mode.groups, workdir, bar.update, bar.log)]
    if "etcd_strata" in stages:
        result["etcd_strata"] = run_etcd_strata(mode.etcd_strata, workdir, seed, bar.update, bar.log)


def run(args: argparse.Namespace, workdir: Path) -> dict:
    mode = QUICK if args.quick else FULL
    ds = Dataset(
        args.keys or mode.n_keys,
        args.versions or mode.versions,
        args.seed,
        load_batch=min(10_000, args.keys or mode.n_keys),
    )
    wl = Workload(ds)
    stages = stages_of(args)
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise SystemExit(f"unknown stage(s): {', '.join(sorted(unknown))}; choose from {', '.join(STAGES)}")
    cfg = mode.cfg
    started = time.perf_counter()
    result: dict = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "config": {
            "n_keys": ds.n_keys,
            "versions": ds.versions,
            "seed": ds.seed,
            "load_batch": ds.load_batch,
            **asdict(cfg),
            "http_seconds": args.http_seconds or mode.http_seconds,
            "http_rounds": mode.http_rounds,
            "connections": args.connections,
            "growth": asdict(mode.growth),
            "audit": asdict(mode.audit),
            "groups": asdict(mode.groups),
            "shapes": asdict(mode.shapes),
            "etcd_strata": asdict(mode.etcd_strata),
        },
        "machine": machine_info(workdir),
        "load_seconds": {},
        "embedded": [],
        "http": [],
        "growth": [],
        "audit": [],
        "groups": [],
        "etcd_strata": None,
        "reads": [],
        "bytes_per_version": None,
        "skipped": [],
    }
    n_growth = len(mode.growth.versions) + len(mode.growth.keys) + len(mode.growth.batches)
    n_systems = sum(s in stages for s in SYSTEMS)
    n_audit = 2 + len(mode.audit.tx_at_txs)
    total = (
        (OPS_PER_TARGET + 1) * n_systems
        + ("http" in stages)
        + n_growth * ("growth" in stages)
        + n_audit * ("audit" in stages)
        + mode.groups.rounds * len(mode.groups.threads) * ("groups" in stages)
        + mode.shapes.rounds * ("reads" in stages)
        + (mode.etcd_strata.rounds * mode.etcd_strata.cluster_pairs
           + 4 * mode.etcd_strata.cfg.repeats) * ("etcd_strata" in stages)
    )
    bar = Progress(total, "benchmarks")
    targets: dict[str, Target] = {}
    try:
        for name, cls in SYSTEMS.items():
            if name in stages:
                t = cls()
                if _setup_target(t, ds, wl, workdir, bar, result):
                    targets[name] = t
                bar.update(1)
        result["bytes_per_version"] = getattr(targets.get("strata"), "bytes_per_version", None)
        result["embedded"] = [m.to_dict() for m in _measure_targets(targets, cfg, bar, OPS_PER_TARGET * n_systems)]
        for name, t in targets.items():
            if name != "etcd":  # etcd stays up for the HTTP stage; stores are closed before gunicorn opens them
                t.close()
        if "http" in stages:
            strata = targets.get("strata")
            etcd = targets.get("etcd")
            load = Load(threads=2, connections=args.connections, duration=args.http_seconds or mode.http_seconds)
            http = run_http(
                wl,
                workdir,
                load,
                strata_dir=getattr(strata, "path", None),
                floor_dir=workdir / "floor" if "floor" in targets else None,
                etcd=getattr(etcd, "server", None),
                rounds=mode.http_rounds,
                log=bar.log,
            )
            result["http"] = [h.to_dict() for h in http]
            bar.update(1)
        for t in targets.values():
            t.close()
        _run_engine_stages(stages, mode, workdir, bar, result, ds.seed)
    finally:
        for t in targets.values():
            t.close()
        bar.close()
    ms = [Measurement(**m) for m in result["embedded"]]
    attach_ratios(ms, "lmdb floor")
    result["embedded"] = [m.to_dict() for m in ms]
    result["targets"] = compute_targets(result)
    result["elapsed_s"] = time.perf_counter() - started
    return result


def stages_of(args: argparse.Namespace) -> list[str]:
    """The stages ``--only`` names, in the order given (all of :data:`STAGES` without it)."""
    return args.only.split(",") if args.only else STAGES


def output_stamp(day: dt.date, quick: bool, stages: list[str]) -> str:
    """The name the run's files start with: ``<date>[-quick]``, and for a run of some stages only
    ``-only-<stage>-<stage>...`` after it, so a partial run never overwrites the full run of its day
    (nor a quick run's published counterpart)."""
    stamp = day.isoformat() + ("-quick" if quick else "")
    if stages != STAGES:
        stamp += "-only-" + "-".join(stages)
    return stamp


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks") -> int:
    args = parse_args(argv, prog)
    missing = missing_modules()
    if missing:  # checked before the run: plots come last, after minutes of measuring
        print(f"{prog}: the benchmarks need {', '.join(missing)}, from the bench extra: {BENCH_EXTRA}",
              file=sys.stderr)
        return 2
    base = args.workdir
    if base is not None:
        Path(base).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-", dir=base))
    try:
        result = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    partial = stages_of(args) != STAGES
    paths = write_outputs(result, args.out, output_stamp(dt.date.today(), args.quick, stages_of(args)))
    images = result.pop("_images")
    print()
    for t in result["targets"]:
        unit = t.get("unit", "x")
        val = "not measured" if t["value"] is None else f"{t['value']:.2f}{unit}"
        verdict = "" if t["met"] is None else (" (met)" if t["met"] else " (NOT met)")
        print(f"target {t['id']}: {t['what']}: {val}, limit {t['op']} {t['limit']}{unit}{verdict}")
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    if args.docs if args.docs is not None else not (args.quick or partial):
        doc = ROOT / "docs" / "benchmarks.md"
        rel = Path("..") / args.out.resolve().relative_to(ROOT) if args.out.resolve().is_relative_to(ROOT) else args.out
        md = render_markdown(result, f"{rel.as_posix()}/", images)
        print(f"updated {doc}" if update_docs(doc, md) else f"note: {doc} has no results markers; not updated")
    return 0
