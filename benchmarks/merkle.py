"""The Merkle tree's costs: ``python -m benchmarks.merkle [--quick] [--sizes 100000,1000000]``.

Three measurements, on fresh stores opened ``Store.open(path, sync=False)`` (no flush: CPU cost):

- ``put``: ``ns.put`` of 100 items per tx on three identically loaded 10,000-key stores, interleaved:
  as shipped (tx log, hash chain and Merkle tree), "chain only" (``engine.txtree.append`` replaced by
  a no-op for the duration of each call) and "none" (``engine.txlog.append`` replaced by a no-op, as
  the audit stage of the harness does: no log entry, no chain, no tree). The engine has no such
  switches; these variants exist only in this process, for this measurement. Target: shipped / none
  <= 1.25 in process CPU time (``benchmarks.audit._wall_and_cpu``: 3x the samples, CPU and wall).
- ``proof``: a store per size (one tiny put per tx; 1M txs take about a minute to build, untimed),
  then ``store.inclusion_proof(tx, size)`` and ``store.consistency_proof(m, size)`` for pre-drawn
  uniform ``tx`` and ``m``, interleaved. Target: <= 100 µs per proof at 1M txs.
- ``verify``: what a client does with one answer: ``server.client.proofs.check_inclusion`` and
  ``check_consistency`` on answers as they come off the wire (dicts of hex strings), every field
  and hash checked. Target: <= 1 ms.

Prints one line per figure and writes ``<out>/<date>-merkle.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from .audit import _no_append, _wall_and_cpu
from .datasets import Dataset, key
from .measure import Config, Op
from .targets import cycle
from .targets.strata_embedded import open_store

NAMESPACE = "bench"
POOL = 512


def put_overhead(workdir: Path, cfg: Config, n_keys: int = 10_000, size: int = 100) -> list[dict[str, object]]:
    from engine import txlog, txtree

    real_log, real_tree = txlog.append, txtree.append
    ds = Dataset(n_keys, 1)
    rng = random.Random(17)
    stores = {}
    try:
        for variant in ("shipped", "chain only", "none"):
            stores[variant] = open_store(workdir / variant.replace(" ", "-"), sync=False)
            ns = stores[variant].namespace(NAMESPACE)
            for _, batch in ds.batches():
                ns.put(dict(batch), sync=False)
        batches = []
        for b in range(4):
            idx = rng.sample(range(ds.n_keys), min(size, ds.n_keys))
            batches.append({key(i): ds.value(i, 1_000_000 + b) for i in idx})
        ops = []
        for variant, patch in (("shipped", None), ("chain only", "tree"), ("none", "log")):
            ns, nxt = stores[variant].namespace(NAMESPACE), cycle(batches)

            def put(ns=ns, nxt=nxt, patch=patch) -> int:
                if patch == "tree":
                    txtree.append = lambda *args: None
                elif patch == "log":
                    txlog.append = _no_append
                try:
                    return ns.put(nxt(), sync=False)
                finally:
                    txlog.append, txtree.append = real_log, real_tree
            ops.append(Op(f"put{size} {variant}", size, put))
        points = _wall_and_cpu("merkle", size, ops, cfg, 0.0)
        return [{"op": p.op, "cpu_us": p.cpu_per_op_s * 1e6, "wall_us": p.per_op_s * 1e6,  # type: ignore[operator]
                 "samples": len(p.samples_s or [])} for p in points]
    finally:
        txlog.append, txtree.append = real_log, real_tree
        for s in stores.values():
            s.close()


def _timed(fn: Callable[[], object], number: int, repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds per call over ``repeats`` samples of ``number`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(number):
            fn()
        c1, w1 = time.process_time(), time.perf_counter()
        wall.append((w1 - w0) / number)
        cpu.append((c1 - c0) / number)
    return statistics.median(wall), statistics.median(cpu)


def _measure_size(store, n: int, rng: random.Random, repeats: int) -> list[tuple[str, tuple[float, float]]]:
    """Proof generation and the client's checks on one store of ``n`` txs."""
    from server.client import proofs

    head = store.head()
    txs = [rng.randint(1, n) for _ in range(POOL)]
    firsts = [rng.randint(1, n) for _ in range(POOL)]
    nxt_tx, nxt_m = cycle(txs), cycle(firsts)
    inclusion = _timed(lambda: store.inclusion_proof(nxt_tx(), n), 1000, repeats)
    consistency = _timed(lambda: store.consistency_proof(nxt_m(), n), 1000, repeats)
    # The client's side: answers as JSON gives them (dicts of hex), checked against heads it trusts.
    inc_answers = cycle([(tx, store.inclusion_proof(tx, n).to_dict()) for tx in txs[:64]])
    con_answers = cycle([(_head_at(store, m), store.consistency_proof(m, n).to_dict()) for m in firsts[:64]])

    def check_inclusion() -> object:
        tx, answer = inc_answers()
        return proofs.check_inclusion(answer, tx, head)

    def check_consistency() -> object:
        old, answer = con_answers()
        return proofs.check_consistency(answer, old, head)
    return [("inclusion_proof", inclusion), ("consistency_proof", consistency),
            ("client check_inclusion", _timed(check_inclusion, 1000, repeats)),
            ("client check_consistency", _timed(check_consistency, 1000, repeats))]


def proofs_and_verification(workdir: Path, sizes: list[int], repeats: int, log=print) -> list[dict[str, object]]:
    rng = random.Random(5)
    out: list[dict[str, object]] = []
    for n in sizes:
        path = workdir / f"proofs-{n}"
        store = open_store(path, sync=False)
        try:
            ns = store.namespace(NAMESPACE)
            t0 = time.perf_counter()
            for i in range(n):
                ns.put({key(i % 1000): i}, sync=False)
            built = time.perf_counter() - t0
            log(f"  store of {n:,} txs built in {built:.1f} s")
            for op, (wall, cpu) in _measure_size(store, n, rng, repeats):
                out.append({"op": op, "txs": n, "wall_us": wall * 1e6, "cpu_us": cpu * 1e6, "build_s": built})
        finally:
            store.close()
            shutil.rmtree(path, ignore_errors=True)
    return out


def _head_at(store, size: int):  # -> engine.txtree.Head
    from engine import txtree
    root = store._backend.read(lambda txn: txtree.root(txn, store._backend.dbs, size))
    return txtree.Head(size, store.tx_info(size).hash, root.hex())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.merkle", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="sizes 1,000 and 10,000, fewer repeats")
    p.add_argument("--sizes", help="comma-separated tx counts for the proof stores (default 100000,1000000)")
    p.add_argument("--parts", default="put,proofs", help="which measurements: put, proofs (default both)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([1_000, 10_000] if args.quick
                                                                        else [100_000, 1_000_000])
    cfg = Config(repeats=3 if args.quick else 11)
    workdir = Path(tempfile.mkdtemp(prefix="strata-merkle-bench-"))
    parts = set(args.parts.split(","))
    puts: list[dict[str, object]] = []
    rows: list[dict[str, object]] = []
    try:
        if "put" in parts:
            puts = put_overhead(workdir, cfg)
        none = next((r for r in puts if str(r["op"]).endswith(" none")), None)
        for r in puts:
            assert none is not None
            print(f"{r['op']:<22} CPU {r['cpu_us']:8.1f} µs ({r['cpu_us'] / none['cpu_us']:.2f}x none)  "  # type: ignore[operator]
                  f"wall {r['wall_us']:8.1f} µs ({r['wall_us'] / none['wall_us']:.2f}x)  samples {r['samples']}")  # type: ignore[operator]
        if "proofs" in parts:
            rows = proofs_and_verification(workdir, sizes, 5 if args.quick else 9)
        for r in rows:
            print(f"{r['op']:<26} at {r['txs']:>9,} txs: CPU {r['cpu_us']:7.2f} µs, wall {r['wall_us']:7.2f} µs")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{date.today().isoformat()}-merkle{'-quick' if args.quick else ''}.json"
    target.write_text(json.dumps({"put": puts, "proofs": rows}, indent=1))
    print(f"written {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
