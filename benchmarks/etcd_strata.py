"""Strata on etcd against raw etcd: the same cluster, the same client, the same run (stage ``etcd_strata``).

What it does: starts a 3-member etcd 3.4 cluster on loopback with etcd's default limits (the cluster
docs/scale-out.md tells users to run; the launcher is the one the etcd tests use,
``tests/etcd/cluster.py``), opens ``Store.open("etcd://m0,m1,m2/bench")`` on it (default options: the
background sealer runs, as it does for every user) and loads N keys x V versions of the harness's data
set through Strata, in batches of ``plan.load_batch`` items (one tx each; Strata assumes etcd's default
``--max-txn-ops`` 128). Then it measures, interleaved round-robin so background load hits both alike:

- **reads** (``measure.measure_interleaved``, medians): Strata's ``ns.read(100 keys, tx=t)`` and
  ``ns.get(k, tx=t)`` at a random past load tx, and raw etcd reading *the same data keys at the same
  revision* (``timeline.revision_of(t)``) in one txn of range requests through a second
  :class:`engine.etcd.EtcdClient` (the gateway client Strata uses), decoding each value with
  ``ormsgpack`` as Strata does. The ratio is Strata's own overhead: its housekeeping range, its
  revision bookkeeping, building records.
- **durable 1-item writes** at 1 and 16 client threads of this process, closed loop for
  ``plan.write_seconds`` per sample, ``plan.rounds`` interleaved rounds on each of
  ``plan.cluster_pairs`` fresh pairs of clusters (each loaded as below), median writes/s over all
  samples, each client sending to its cluster's leader (:func:`leader_first`): Strata's
  ``ns.put({new key: value})``; raw etcd's one-put txn of the same key bytes and packed value (the
  target's baseline: what a raw etcd user does for the same write), on the twin cluster loaded with
  the same records (raw puts, the same batches), so both write into a store of the same size; and,
  as a diagnostic row, a raw txn of the same shape as Strata's (the request-key guard, the compare on
  the namespace registry's create revision, the data put, the namespace's "updated" put, the log put,
  the housekeeping range, a failure branch reading the request key and the housekeeping key; not the
  expiry index's due-range compare), which
  separates what etcd charges for Strata's bookkeeping keys from what Strata's Python path costs.
  Beside writes/s, each write point has the **etcd CPU per write**: the members' user + system CPU
  (``/proc/<pid>/stat``) over each sample divided by its writes (Strata's sample includes its sealer's
  settling), which other load on a shared machine disturbs less than throughput.

Contract: ``run_etcd_strata(plan, workdir, progress, log)`` returns the stage's dict (``reads``: a list
of ``Measurement`` dicts, ``writes``: a list of :class:`WritePoint` dicts, ``cluster``, ``load_s``,
``skip``); without the ``etcd`` binary or the engine it returns ``{"skip": reason}``.
``report.py`` turns it into targets and a table.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ormsgpack

from .datasets import Dataset, key
from .measure import Config, Op, measure_interleaved
from .targets import cycle

STRATA, RAW, RAW_SHAPED = "strata on etcd", "raw etcd txn", "raw etcd txn, Strata's txn shape"
NAMESPACE = "bench"


@dataclass
class EtcdStrataPlan:
    members: int = 3
    keys: int = 10_000
    versions: int = 5
    load_batch: int = 100  # items per load tx: under etcd's default --max-txn-ops 128 with Strata's own ops
    cfg: Config = field(default_factory=lambda: Config(repeats=11, min_time=0.05, warmup_calls=3,
                                                       max_seconds_per_op=8.0))
    threads: tuple[int, ...] = (1, 16)
    write_seconds: float = 2.0
    rounds: int = 3  # per pair of clusters
    # Fresh pairs of clusters, each loaded and measured for ``rounds`` rounds: a cluster's own luck (its
    # state after the load, where the Go runtime put its work) held for a whole run moved the write
    # ratio by a tenth or more between runs of the same code, so each system's samples come from as
    # many clusters as there are pairs.
    cluster_pairs: int = 3
    warm_seconds: float = 0.2  # per (system, threads) before the first round


# Quick (CI: it only keeps the stage working) runs one member per cluster: a 3-member cluster takes
# about 2.5 s to elect a leader here, one member about 1 s.
QUICK_ETCD_STRATA = EtcdStrataPlan(
    members=1, keys=200, versions=2, cfg=Config(repeats=3, min_time=0.01, warmup_calls=0, max_seconds_per_op=1.0),
    write_seconds=0.1, rounds=1, cluster_pairs=1, warm_seconds=0.0,
)


@dataclass
class WritePoint:
    system: str
    threads: int
    writes_s: float | None = None  # median over rounds
    samples: list[float] = field(default_factory=list)
    # The etcd members' CPU (utime + stime of every member process) per write, median over rounds: a figure
    # the other load on a shared machine shifts less than writes/s.
    cpu_ms_per_write: float | None = None
    cpu_samples: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def skip_reason() -> str | None:
    if shutil.which("etcd") is None and not os.access("/usr/bin/etcd", os.X_OK):
        return "etcd binary not found (apt-get install etcd-server)"
    try:
        import engine.etcd  # noqa: F401
        import tests.etcd.cluster  # noqa: F401
    except ImportError as exc:
        return f"cannot import {exc.name}"
    return None


def load(store: Any, ds: Dataset, batch: int) -> list[int]:
    """Every version of every key through ``ns.put``, ``batch`` items per tx; the txs, in order."""
    ns = store.namespace(NAMESPACE)
    keys = ds.keys()
    txs = []
    for v in range(ds.versions):
        for lo in range(0, ds.n_keys, batch):
            txs.append(ns.put({keys[i]: ds.value(i, v) for i in range(lo, min(lo + batch, ds.n_keys))}))
    return txs


def load_twin(raw: Any, ds: Dataset, batch: int) -> None:
    """The same records into the raw twin, as a raw etcd user holding the same data would have them
    (Strata's key bytes for each data key, the packed values, ``batch`` puts per txn), so its writes
    land in a store of the same size as Strata's: an empty twin costs its cluster less per write."""
    from engine.etcd.kv import Put
    from engine.etcd.layout import Layout

    plain, keys, packb = Layout.of("raw"), ds.keys(), ormsgpack.packb
    for v in range(ds.versions):
        for lo in range(0, ds.n_keys, batch):
            raw.txn((), [Put(plain.data(NAMESPACE, keys[i].encode()), packb(ds.value(i, v)))
                         for i in range(lo, min(lo + batch, ds.n_keys))])


def read_ops(store: Any, raw: Any, ds: Dataset, txs: list[int], seed: int) -> list[tuple[str, Op]]:
    """Strata's and raw etcd's reads of the same keys at the same past tx (raw: its revision), in the
    same order: each op draws from its own cycle over the same pre-drawn pool."""
    from engine.etcd.kv import Range

    rng = random.Random(seed)
    ns, timeline = store.namespace(NAMESPACE), store.storage().timeline
    data = timeline.layout.data
    per_round = len(txs) // ds.versions
    # Past txs after the first round (every key exists there), never the latest.
    past = txs[per_round:-1] or txs
    hundreds = [([key(j) for j in rng.sample(range(ds.n_keys), min(100, ds.n_keys))], rng.choice(past))
                for _ in range(256)]
    singles = [([key(rng.randrange(ds.n_keys))], rng.choice(past)) for _ in range(256)]
    revision = {tx: timeline.revision_of(tx) for _, tx in hundreds + singles}
    unpackb = ormsgpack.unpackb

    def strata_read() -> object:
        keys, tx = s100()
        return [r.value for r in ns.read(keys, tx=tx).records]

    def strata_get() -> object:
        keys, tx = s1()
        return ns.get(keys[0], tx=tx)

    def raw_read(case: Callable[[], tuple[list[str], int]]) -> Callable[[], object]:
        def run() -> object:
            keys, tx = case()
            result = raw.txn((), [Range(data(NAMESPACE, k.encode()), revision=revision[tx]) for k in keys])
            return [unpackb(r.kvs[0].value) for r in result.responses if r.kvs]

        return run

    s100, s1 = cycle(hundreds), cycle(singles)
    note = "the same keys in one etcd txn at the tx's revision"
    return [
        (STRATA, Op("read100_past", 100, strata_read, notes="ns.read(keys, tx=t)")),
        (RAW, Op("read100_past", 100, raw_read(cycle(hundreds)), notes=note)),
        (STRATA, Op("get_past", 1, strata_get, notes="ns.get(k, tx=t)")),
        (RAW, Op("get_past", 1, raw_read(cycle(singles)), notes=note)),
    ]


def write_fns(store: Any, raw: Any, ds: Dataset) -> dict[str, Callable[[str], object]]:
    """One durable 1-item write per call, of a key named ``name``, per system."""
    from engine.etcd.kv import Compare, Put, Range, Txn
    from engine.etcd.layout import Layout

    ns = store.namespace(NAMESPACE)
    value, packb = ds.value(0, 0), ormsgpack.packb
    plain = Layout.of("raw")  # Strata's key bytes for the same key, on the raw cluster
    shaped = Layout.of("rawshape")

    def raw_put(name: str) -> object:
        return raw.txn((), [Put(plain.data(NAMESPACE, name.encode()), packb(value))])

    registry = shaped.registry(NAMESPACE)
    # Strata's first write to a namespace creates its registry with a nested txn; later writes of the same
    # process compare the registry's create revision instead (engine.etcd.commit): the steady state here.
    created = raw.txn((), [Txn((Compare(registry, "CREATE", "==", 0),), (Put(registry, b"x"),),
                               (Range(registry, keys_only=True),))])
    answer = created.responses[0]
    registered = answer.responses[0].kvs[0].create_revision if not answer.succeeded else created.revision

    def raw_shaped(name: str) -> object:
        rid = os.urandom(16)
        req = shaped.request(rid)
        success = [Put(req, packb([time.time_ns() // 1000, None, [[NAMESPACE, 0, [name]]], rid, None])),
                   Put(shaped.data(NAMESPACE, name.encode()), packb(value)), Put(shaped.updated(NAMESPACE), b""),
                   Put(shaped.log, rid), Range(shaped.housekeeping)]
        return raw.txn([Compare(req, "CREATE", "==", 0), Compare(registry, "CREATE", "==", registered)], success,
                       [Range(req), Range(shaped.housekeeping)])

    return {STRATA: lambda name: ns.put({name: value}), RAW: raw_put, RAW_SHAPED: raw_shaped}


def cluster_cpu_s(cluster: Any) -> float:
    """CPU seconds (user + system) the running members of ``cluster`` have used so far."""
    total = 0
    for m in cluster.members:
        if m.proc is not None:
            with open(f"/proc/{m.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def put_loop(put: Callable[[str], object], threads: int, seconds: float, tag: str) -> tuple[int, float]:
    """``threads`` threads each writing new keys in a closed loop for ``seconds`` (each thread at least
    once): the writes and the seconds until the last thread's last write returned."""
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    stop = [0.0]

    def work(t: int) -> None:
        n = 0
        barrier.wait()
        while True:  # at least one write per thread: a thread scheduled late still counts its time
            put(f"w:{tag}-{t}-{n}")
            n += 1
            if time.perf_counter() >= stop[0]:
                break
        counts[t] = n

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    t0 = time.perf_counter()
    stop[0] = t0 + seconds
    barrier.wait()
    for th in pool:
        th.join()
    return sum(counts), time.perf_counter() - t0


def measure_writes(fns: dict[str, Callable[[str], object]], plan: EtcdStrataPlan, settle: Callable[[], object],
                   progress: Callable[[int], None],
                   cpu: dict[str, Callable[[], float]] | None = None,
                   points: dict[tuple[str, int], WritePoint] | None = None) -> list[WritePoint]:
    """Every (system, threads) pair once per round, round after round; ``settle`` runs untimed after each
    of Strata's samples (it lets Strata's sealer finish its backlog, so it does not run into the next
    sample). ``cpu``: per system, the CPU seconds its cluster has used so far (:func:`cluster_cpu_s`),
    read before and after each sample (Strata's after its settle: sealing is part of its writes' cost).
    ``points``: the points of earlier clusters, whose samples these rounds add to (medians over all)."""
    points = {} if points is None else points
    for n in plan.threads:
        for s in fns:
            points.setdefault((s, n), WritePoint(s, n))
    if plan.warm_seconds:
        for s, n in points:
            put_loop(fns[s], n, plan.warm_seconds, f"warm-{n}")
        settle()
    for r in range(plan.rounds):
        for (s, n), p in points.items():
            used = cpu[s]() if cpu else 0.0
            writes, seconds = put_loop(fns[s], n, plan.write_seconds, f"r{r}-{n}")
            if s == STRATA:
                settle()
            p.samples.append(writes / seconds)
            if cpu:
                p.cpu_samples.append((cpu[s]() - used) * 1e3 / writes)
        progress(1)
    for p in points.values():
        p.writes_s = statistics.median(p.samples)
        p.cpu_ms_per_write = statistics.median(p.cpu_samples) if p.cpu_samples else None
    return list(points.values())


def start_clusters(cluster_class: Any, workdir: Path, members: int) -> list[Any]:
    """Strata's cluster and its raw twin, started at once (each start waits out an election: about a
    second per cluster here). Either failing stops the other."""
    started: dict[str, Any] = {}
    failed: list[BaseException] = []

    def start(name: str) -> None:
        try:
            started[name] = cluster_class.start(workdir / f"etcd-{name}", members)
        except BaseException as exc:  # re-raised below, on the caller's thread
            failed.append(exc)

    threads = [threading.Thread(target=start, args=(name,)) for name in ("strata", "raw")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if failed:
        for c in started.values():
            c.stop()
        raise failed[0]
    return [started["strata"], started["raw"]]


def leader_first(cluster: Any) -> list[str]:
    """``cluster``'s client URLs, its leader's first. A client talks to its first endpoint: to a
    follower, every write takes one more hop (the follower forwards it to the leader, then waits to apply
    it), so which member won each cluster's election would decide that hop for one system and not the
    other (5-10% of a 1-thread write rate, measured on one cluster). Both clients talk to a leader."""
    leader = cluster.leader()
    return [m.client_url for m in sorted(cluster.members, key=lambda m: m is not leader)]


def _measure_pair(plan: EtcdStrataPlan, workdir: Path, ds: Dataset, seed: int, progress: Callable[[int], None],
                  log: Callable[[str], None], out: dict[str, Any], points: dict[tuple[str, int], WritePoint],
                  reads: bool) -> list[WritePoint]:
    """Start a pair of clusters, load both, measure the reads (if ``reads``: into ``out``) and
    ``plan.rounds`` rounds of writes (added to ``points``), stop them; the points so far."""
    from engine import Store
    from engine.etcd import EtcdClient
    from tests.etcd.cluster import EtcdCluster

    clusters: list[Any] = []
    try:
        clusters += start_clusters(EtcdCluster, workdir, plan.members)
        ours, twin = (leader_first(c) for c in clusters)
        url = "etcd://" + ",".join(u.removeprefix("http://") for u in ours) + "/bench"
        with Store.open(url) as store, EtcdClient(ours) as reader, EtcdClient(twin) as writer:
            t0 = time.perf_counter()
            txs = load(store, ds, plan.load_batch)
            out.setdefault("load_s", time.perf_counter() - t0)
            log(f"etcd_strata: loaded {ds.n_keys * ds.versions:,} records in {len(txs)} txs through Strata "
                f"on a {plan.members}-member cluster in {time.perf_counter() - t0:.1f} s")
            load_twin(writer, ds, plan.load_batch)  # raw writes then land in a store as full as Strata's
            store.head()
            if reads:
                measured = measure_interleaved(read_ops(store, reader, ds, txs, seed + 1), plan.cfg, progress)
                out["reads"] = [m.to_dict() for m in measured]
            cpu = {STRATA: lambda: cluster_cpu_s(clusters[0]), RAW: lambda: cluster_cpu_s(clusters[1]),
                   RAW_SHAPED: lambda: cluster_cpu_s(clusters[1])}
            return measure_writes(write_fns(store, writer, ds), plan, store.head, progress, cpu, points)
    finally:
        for c in clusters:
            c.stop()


def run_etcd_strata(plan: EtcdStrataPlan, workdir: Path, seed: int, progress: Callable[[int], None],
                    log: Callable[[str], None]) -> dict:
    skip = skip_reason()
    if skip:
        log(f"etcd_strata: skipped: {skip}")
        return {"skip": skip}
    ds = Dataset(plan.keys, plan.versions, seed, load_batch=plan.load_batch)
    out: dict[str, Any] = {"skip": None, "members": plan.members, "keys": plan.keys, "versions": plan.versions,
                           "load_batch": plan.load_batch, "repeats": plan.cfg.repeats, "rounds": plan.rounds,
                           "cluster_pairs": plan.cluster_pairs, "write_seconds": plan.write_seconds,
                           "threads": list(plan.threads)}
    # Two identical clusters: Strata owns every revision of its cluster (a foreign write would shift its
    # tx numbers), so raw etcd writes go to a twin; raw reads go to Strata's cluster, reading its data.
    # Writes are measured on plan.cluster_pairs fresh pairs in turn (reads on the first).
    points: dict[tuple[str, int], WritePoint] = {}
    for pair in range(plan.cluster_pairs):
        writes = _measure_pair(plan, workdir / f"pair{pair}", ds, seed, progress, log, out, points, reads=pair == 0)
    out["writes"] = [p.to_dict() for p in writes]
    for p in out["writes"]:
        log(f"etcd_strata: {p['system']}, {p['threads']} thread(s): {p['writes_s']:,.0f} durable writes/s, "
            f"{p['cpu_ms_per_write']:.2f} ms of etcd CPU per write")
    return out
