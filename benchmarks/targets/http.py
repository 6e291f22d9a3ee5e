"""HTTP throughput: Strata's server vs a minimal WSGI app vs etcd's JSON gateway, same request.

The request is the issue-3 target: read 100 random keys at a random past tx (etcd: one txn of 100 range
requests at the matching revision). Each app runs under gunicorn with identical settings (2 workers,
same worker class), so only the application differs. Load comes from ``wrk -t2 -cN --latency`` with a
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
from .etcd import EtcdServer, free_port, txn_range_body


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


@dataclass
class Load:
    threads: int = 2
    connections: int = 16
    duration: float = 10.0


class Gunicorn:
    """gunicorn serving ``app_spec`` (``module:factory(args)``) on loopback with 2 workers."""

    def __init__(self, app_spec: str, workdir: Path, workers: int = 2, worker_class: str = "sync") -> None:
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
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


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


def run_http(
    wl: Workload,
    workdir: Path,
    load: Load,
    strata_dir: Path | None,
    floor_dir: Path | None,
    etcd: EtcdServer | None,
    log=print,
) -> list[HttpResult]:
    """Benchmark every available server on the same pre-drawn requests; see the module docstring."""
    reads = list(zip(wl.hundreds[:64], wl.past_txs[:64], strict=True))
    json_bodies = [orjson.dumps({"keys": ks, "tx": tx}) for ks, tx in reads]
    etcd_bodies = [orjson.dumps(txn_range_body(ks, tx + 1)) for ks, tx in reads]  # tx t = revision t+1

    servers: list[tuple[str, str | None, str, list[bytes], str]] = []  # name, app spec, path, bodies, skip
    if strata_dir is None:
        skip = "engine not available"
        servers += [("strata server (gunicorn)", None, "", [], skip), ("minimal WSGI (engine)", None, "", [], skip)]
    else:
        try:
            import server

            has_factory = hasattr(server, "create_app")
        except ImportError:
            has_factory = False
        servers.append(
            (
                "strata server (gunicorn)",
                f"server:create_app({str(strata_dir)!r})" if has_factory else None,
                "/v4/storage/bench/read",
                json_bodies,
                "" if has_factory else "not implemented yet (no server.create_app)",
            )
        )
        servers.append(
            (
                "minimal WSGI (engine)",
                f"benchmarks.targets.minimal_wsgi:create_app({str(strata_dir)!r})",
                "/read",
                json_bodies,
                "",
            )
        )
    if floor_dir is not None:
        servers.append(
            (
                "minimal WSGI (raw lmdb, no versions)",
                f"benchmarks.targets.minimal_wsgi:create_floor_app({str(floor_dir)!r})",
                "/read",
                json_bodies,
                "",
            )
        )

    results: list[HttpResult] = []
    for name, spec, path, bodies, skip in servers:
        if spec is None:
            results.append(HttpResult(name, skip=skip))
            continue
        gun = Gunicorn(spec, workdir)
        try:
            first = wait_ready(gun.port, path, bodies[0], gun.proc)
            n = _count_records(name, first)
            res = drive(gun.port, path, bodies, load, workdir)
            res.system = name
            res.notes = "; ".join(x for x in (res.notes, f"{n} records per response") if x)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            res = HttpResult(name, skip=f"server failed: {exc}")
        finally:
            gun.close()
        log(f"  http {name}: " + (f"{res.req_s:,.0f} req/s" if res.req_s else f"skipped: {res.skip}"))
        results.append(res)

    name = "etcd 3.4 JSON gateway"
    if etcd is None:
        results.append(HttpResult(name, skip="etcd not available"))
    else:
        try:
            first = wait_ready(etcd.port, "/v3/kv/txn", etcd_bodies[0], etcd.proc)
            res = drive(etcd.port, "/v3/kv/txn", etcd_bodies, load, workdir)
            res.system = name
            res.notes = "; ".join(
                x
                for x in (
                    res.notes,
                    f"{_count_records('etcd', first)} records per response,"
                    " one txn of 100 ranges, etcd's own server (not gunicorn)",
                )
                if x
            )
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            res = HttpResult(name, skip=f"etcd failed: {exc}")
        log(f"  http {name}: " + (f"{res.req_s:,.0f} req/s" if res.req_s else f"skipped: {res.skip}"))
        results.append(res)

    base = next((r for r in results if r.system == "minimal WSGI (engine)" and r.req_s), None)
    for r in results:
        if base and r.req_s:
            r.ratio = r.req_s / base.req_s
    return results
