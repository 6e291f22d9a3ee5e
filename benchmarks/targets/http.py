"""HTTP throughput: Strata's server vs a minimal WSGI app vs etcd's JSON gateway, same request.

The request is the issue-3 target: read 100 random keys at a random past tx (etcd: one txn of 100 range
requests at the matching revision). Each app runs under gunicorn with identical settings, the ones
``strata serve`` uses (2 workers of ``server.worker.StrataWorker``, 16 pool threads), so only the
application differs. Load comes from ``wrk -t2 -cN --latency`` with a
generated Lua script cycling through pre-drawn POST bodies, or, when wrk is missing, from a built-in
threaded Python generator (which saturates long before the servers do on 2 cores: its absolute numbers
are low, only ratios measured with it mean anything).

Contract: ``run_http(...)`` returns a list of ``HttpResult`` (req/s, p50, p99, non-2xx count), one per
server, with ``skip`` set instead when a server cannot be started. Every server is started on
127.0.0.1 on a free port, checked with one real request (status 200 and 100 records back) before it is
loaded, and stopped afterwards (terminate, then kill after 10 s). Load runs are bounded by duration.
"""

from __future__ import annotations

import http.client
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from ..datasets import Workload
from .etcd import EtcdServer, free_port, stop_process, txn_range_body


@dataclass
class HttpResult:
    system: str
    req_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    non_2xx: int = 0
    driver: str = ""
    notes: str = ""
    skip: str = ""
    ratio: float | None = None  # req/s relative to the minimal WSGI app (engine back end)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


#: The worker class ``strata serve`` runs (see server/worker.py), used for every app here.
WORKER_CLASS = "server.worker.StrataWorker"


@dataclass
class Load:
    threads: int = 2
    connections: int = 16
    duration: float = 10.0


class Gunicorn:
    """gunicorn serving ``app_spec`` (``module:factory(args)``) on loopback, as ``strata serve`` runs."""

    def __init__(self, app_spec: str, workdir: Path, workers: int = 2, worker_class: str = WORKER_CLASS,
                 threads: int = 16) -> None:
        self.port = free_port()
        self.log = open(workdir / f"gunicorn-{self.port}.log", "wb")  # noqa: SIM115 - closed in close()
        root = Path(__file__).resolve().parents[2]  # repo root: engine/, server/, benchmarks/
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(root),
            "-w",
            str(workers),
            "-k",
            worker_class,
            "--threads",
            str(threads),
            "-b",
            f"127.0.0.1:{self.port}",
            "--log-level",
            "warning",
            "--backlog",
            "256",
            app_spec,
        ]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def close(self) -> None:
        stop_process(self.proc, self.log)


def post(port: int, path: str, body: bytes, timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(port: int, path: str, body: bytes, proc: subprocess.Popen | None, limit: float = 30) -> bytes:
    """Poll with the real request until it answers 200 (bounded); return the body for checking."""
    deadline = time.monotonic() + limit
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited during start-up")
        try:
            status, data = post(port, path, body)
            if status == 200:
                return data
            last = f"HTTP {status}: {data[:300]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {limit:.0f} s ({last})")


# ---------------------------------------------------------------------------------------------- wrk
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _lua(path: str, bodies: list[bytes]) -> str:
    # Long-bracket strings need no escaping; the level is chosen so no JSON body can close it early.
    items = ",\n".join(f"[==[{b.decode()}]==]" for b in bodies)
    return (
        f'local bodies = {{\n{items}\n}}\nlocal i = 0\nwrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"request = function()\n  i = i % #bodies + 1\n"
        f'  return wrk.format("POST", "{path}", nil, bodies[i])\nend\n'
    )


def run_wrk(port: int, path: str, bodies: list[bytes], load: Load, workdir: Path) -> HttpResult:
    script = workdir / f"wrk-{port}.lua"
    script.write_text(_lua(path, bodies))
    cmd = [
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{max(1, round(load.duration))}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=load.duration + 60, check=False).stdout
    res = HttpResult("", driver=" ".join(["wrk", *cmd[1:4]]))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res.req_s = float(m.group(1))
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
            setattr(res, attr, float(m.group(1)) * _UNITS[m.group(2)])
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        res.non_2xx = int(m.group(1))
    if m := re.search(r"Socket errors:.*", out):
        res.notes = m.group(0)
    if res.req_s is None:
        res.skip = f"could not parse wrk output: {out[:200]!r}"
    return res


# ------------------------------------------------------------------------------- built-in generator
def run_builtin(port: int, path: str, bodies: list[bytes], load: Load) -> HttpResult:
    """Closed-loop generator: ``connections`` threads, each with its own keep-alive connection."""
    stop = time.monotonic() + load.duration
    lat: list[list[float]] = [[] for _ in range(load.connections)]
    bad = [0] * load.connections

    def worker(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = n
        while time.monotonic() < stop:  # bounded by duration
            body = bodies[i % len(bodies)]
            i += 1
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status >= 300:
                    bad[n] += 1
                if resp.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                bad[n] += 1
                conn.close()
            lat[n].append(time.perf_counter() - t0)
        conn.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(load.connections)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=load.duration + 60)
    elapsed = time.monotonic() - t0
    all_lat = sorted(x for xs in lat for x in xs)
    res = HttpResult("", driver=f"built-in python, {load.connections} threads (wrk not installed)")
    if all_lat:
        res.req_s = len(all_lat) / elapsed
        res.p50_ms = statistics.median(all_lat) * 1e3
        res.p99_ms = all_lat[min(len(all_lat) - 1, int(len(all_lat) * 0.99))] * 1e3
    res.non_2xx = sum(bad)
    return res


def drive(port: int, path: str, bodies: list[bytes], load: Load, workdir: Path) -> HttpResult:
    if shutil.which("wrk"):
        return run_wrk(port, path, bodies, load, workdir)
    return run_builtin(port, path, bodies, load)


# ------------------------------------------------------------------------------------ orchestration
def _count_records(system: str, data: bytes) -> int:
    doc = orjson.loads(data)
    if system.startswith("etcd"):
        return sum(len(r["response_range"].get("kvs", [])) for r in doc.get("responses", []))
    return len(doc.get("data", []))


@dataclass
class _Server:
    name: str
    path: str = ""
    bodies: list[bytes] | None = None
    spec: str | None = None  # gunicorn app spec; None for etcd (already running) or a skipped server
    port: int = 0
    proc: subprocess.Popen | None = None
    gunicorn: Gunicorn | None = None
    skip: str = ""
    records: int = 0


def _plan(wl: Workload, strata_dir: Path | None, floor_dir: Path | None, etcd: EtcdServer | None) -> list[_Server]:
    reads = list(zip(wl.hundreds[:64], wl.past_txs[:64], strict=True))
    json_bodies = [orjson.dumps({"keys": ks, "tx": tx}) for ks, tx in reads]
    etcd_bodies = [orjson.dumps(txn_range_body(ks, tx + 1)) for ks, tx in reads]  # tx t = revision t+1
    minimal = "benchmarks.targets.minimal_wsgi"
    plan: list[_Server] = []
    if strata_dir is None:
        plan += [_Server(n, skip="engine not available") for n in (STRATA, MINIMAL)]
    else:
        try:
            import server

            has_factory = hasattr(server, "create_app")
        except ImportError:
            has_factory = False
        if has_factory:
            plan.append(
                _Server(STRATA, "/v4/storage/bench/read", json_bodies, f"server:create_app({str(strata_dir)!r})")
            )
        else:
            plan.append(_Server(STRATA, skip="not implemented yet (no server.create_app)"))
        plan.append(_Server(MINIMAL, "/read", json_bodies, f"{minimal}:create_app({str(strata_dir)!r})"))
    if floor_dir is not None:
        plan.append(_Server(FLOOR_APP, "/read", json_bodies, f"{minimal}:create_floor_app({str(floor_dir)!r})"))
    if etcd is None:
        plan.append(_Server(ETCD, skip="etcd not available"))
    else:
        plan.append(_Server(ETCD, "/v3/kv/txn", etcd_bodies, port=etcd.port, proc=etcd.proc))
    return plan


STRATA, MINIMAL = "strata server (gunicorn)", "minimal WSGI (engine)"
FLOOR_APP, ETCD = "minimal WSGI (raw lmdb, no versions)", "etcd 3.4 JSON gateway"


def _combine(name: str, rounds: list[HttpResult], records: int) -> HttpResult:
    """Median over rounds of req/s, p50 and p99; non-2xx summed; per-round req/s kept in notes."""
    ok = [r for r in rounds if r.req_s]
    if not ok:
        return HttpResult(name, skip=rounds[0].skip if rounds else "no measurement")
    med = lambda xs: statistics.median(x for x in xs if x is not None) if any(x is not None for x in xs) else None  # noqa: E731
    notes = [f"{records} records per response", "rounds: " + ", ".join(f"{r.req_s:,.0f}" for r in ok)]
    notes += sorted({r.notes for r in ok if r.notes})
    if name == ETCD:
        notes.append("one txn of 100 ranges; etcd's own server, not gunicorn")
    return HttpResult(
        name,
        med([r.req_s for r in ok]),
        med([r.p50_ms for r in ok]),
        med([r.p99_ms for r in ok]),
        sum(r.non_2xx for r in ok),
        ok[0].driver,
        "; ".join(notes),
    )


def _start(plan: list[_Server], workdir: Path, log) -> None:
    """Start every gunicorn first (they boot in parallel), then check each with one real request."""
    for srv in plan:
        if srv.spec is not None and not srv.skip:
            srv.gunicorn = Gunicorn(srv.spec, workdir)
            srv.port, srv.proc = srv.gunicorn.port, srv.gunicorn.proc
    for srv in plan:
        if srv.skip or not srv.bodies:
            continue
        try:
            srv.records = _count_records(srv.name, wait_ready(srv.port, srv.path, srv.bodies[0], srv.proc))
        except (RuntimeError, OSError) as exc:
            srv.skip = f"server failed: {exc}"
            log(f"  http {srv.name}: skipped: {srv.skip}")


def run_http(
    wl: Workload,
    workdir: Path,
    load: Load,
    strata_dir: Path | None,
    floor_dir: Path | None,
    etcd: EtcdServer | None,
    rounds: int = 1,
    log=print,
) -> list[HttpResult]:
    """Benchmark every available server on the same pre-drawn requests; see the module docstring.

    All servers are started first, then loaded in ``rounds`` interleaved rounds (A, B, C, A, B, C, ...)
    so background load on the shared machine affects every server alike; each figure is the median of
    its rounds.
    """
    plan = _plan(wl, strata_dir, floor_dir, etcd)
    try:
        _start(plan, workdir, log)
        per_round: dict[str, list[HttpResult]] = {srv.name: [] for srv in plan}
        for _ in range(rounds):
            for srv in (s for s in plan if not s.skip):
                try:
                    per_round[srv.name].append(drive(srv.port, srv.path, srv.bodies or [], load, workdir))
                except (OSError, subprocess.TimeoutExpired) as exc:
                    per_round[srv.name].append(HttpResult(srv.name, skip=f"load run failed: {exc}"))
    finally:
        for srv in plan:
            if srv.gunicorn is not None:
                srv.gunicorn.close()
    results = []
    for srv in plan:
        res = HttpResult(srv.name, skip=srv.skip) if srv.skip else _combine(srv.name, per_round[srv.name], srv.records)
        if not srv.skip:
            log(f"  http {srv.name}: " + (f"{res.req_s:,.0f} req/s" if res.req_s else f"skipped: {res.skip}"))
        results.append(res)
    base = next((r for r in results if r.system == MINIMAL and r.req_s), None)
    for r in results:
        if base and r.req_s:
            r.ratio = r.req_s / base.req_s
    return results
