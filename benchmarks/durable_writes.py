"""Durable 1-item HTTP writes: ``strata serve`` against etcd, at 1, 16 and 64 clients, with fsyncs counted.

``python -m benchmarks.durable_writes [--quick] [--out DIR] [--vs CHECKOUT]``

Both servers run as users run them, durable by default: ``strata serve`` (2 workers, its default
``sync``: a returned tx survives power loss) and a one-node etcd 3.4 (its default: the WAL is
fsync'd before a put is answered). Each request writes one item of about 100 bytes under a new key
(Strata: ``POST /v4/storage/bench/write``; etcd: ``POST /v3/kv/put`` on its JSON gateway). Load is
``wrk`` in a closed loop; the two servers are loaded in turn, concurrency by concurrency, for
``rounds`` interleaved rounds, and each figure is the median of its rounds, so drift of the shared
machine hits both alike. The ratio is Strata's req/s over etcd's.

Then, at 16 clients, a short run of each under ``strace -f -c`` counts the fdatasync and fsync
calls of the server processes, divided by the writes acknowledged in that run (strace slows every
system call, so those runs give counts only, never throughput).

``--vs CHECKOUT`` also runs ``strata serve`` from another checkout (say, the commit before a change)
as a third system, ``strata-vs``, loaded in the same interleaved rounds and counted the same way:
a before/after comparison under the same machine load.

Writes a JSON and a Markdown table (and a PNG plot when matplotlib is installed) to ``--out``
(default ``benchmarks/results``), named by date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .targets.etcd import EtcdServer, b64, free_port
from .targets.http import wait_ready

CLIENTS = (1, 16, 64)
VALUE = "v" * 96
ROOT = Path(__file__).resolve().parents[1]


def _lua(path: str, kind: str, prefix: str) -> str:
    """A wrk script writing one new key per request (counter per wrk thread, so keys never repeat)."""
    if kind.startswith("strata"):
        body = f'\'[{{"key":"{prefix}\' .. tid .. ":" .. i .. \'","value":"{VALUE}"}}]\''
    else:  # etcd's JSON gateway wants base64; a fixed-width counter keeps it simple: encode in Lua
        body = f'\'{{"key":"\' .. b64("{prefix}" .. tid .. ":" .. i) .. \'","value":"{b64(VALUE)}"}}\''
    return f"""
local b='ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
function b64(data)
  return ((data:gsub('.', function(x)
    local r,b='',x:byte()
    for i=8,1,-1 do r=r..(b%2^i-b%2^(i-1)>0 and '1' or '0') end
    return r;
  end)..'0000'):gsub('%d%d?%d?%d?%d?%d?', function(x)
    if (#x < 6) then return '' end
    local c=0
    for i=1,6 do c=c+(x:sub(i,i)=='1' and 2^(6-i) or 0) end
    return b:sub(c+1,c+1)
  end)..({{ '', '==', '=' }})[#data%3+1])
end
local counter = 0
local threads = {{}}
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  return wrk.format("POST", "{path}", nil, {body})
end
"""


def _wrk(port: int, path: str, kind: str, prefix: str, clients: int, seconds: float, workdir: Path) -> dict[str, Any]:
    script = workdir / f"{kind}-{prefix}.lua"
    script.write_text(_lua(path, kind, prefix))
    threads = min(2, clients)
    cmd = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
           f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False).stdout
    res: dict[str, Any] = {"clients": clients}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res["req_s"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        res["requests"] = int(m.group(1))
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    for pct in ("50", "99"):
        if m := re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
            res[f"p{pct}_ms"] = float(m.group(1)) * units[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    if "req_s" not in res:
        raise RuntimeError(f"could not parse wrk output: {out[:300]!r}")
    return res


class Strata:
    """``strata serve`` as a user starts it (durable by default), on a free loopback port."""

    def __init__(self, workdir: Path, workers: int = 2, root: Path = ROOT, name: str = "strata") -> None:
        self.port = free_port()
        self.log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--data", str(workdir / f"{name}-data"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers)],
            cwd=root, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_ready(self.port, "/v4/storage/bench/write", json.dumps([{"key": "probe", "value": 1}]).encode(),
                   self.proc)

    def pids(self) -> list[int]:
        """The worker processes (children of the gunicorn master)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False)
        return [int(p) for p in out.stdout.split()]

    def cpu_seconds(self) -> float:
        """User and system CPU time of the worker processes so far (from /proc; 0 where unreadable)."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
        return total / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self.log.close()


def _count_syncs(pids: list[int], port: int, path: str, kind: str, seconds: float, workdir: Path) -> dict[str, Any]:
    """fdatasync+fsync calls of ``pids`` per acknowledged write, over a wrk run at 16 clients."""
    out = workdir / f"strace-{kind}.txt"
    args = ["strace", "-f", "-c", "-e", "trace=fdatasync,fsync", "-o", str(out)]
    for pid in pids:
        args += ["-p", str(pid)]
    tracer = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let strace attach to every thread
    run = _wrk(port, path, kind, f"s{kind}", 16, seconds, workdir)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=30)
    calls = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if parts and parts[-1] in ("fdatasync", "fsync"):
            calls[parts[-1]] = int(parts[3])  # % time, seconds, usecs/call, calls, [errors,] syscall
    writes = run["requests"] - run["non_2xx"]
    total = sum(calls.values())
    return {"calls": calls, "writes": writes, "per_write": total / writes if writes else None}


def measure(workdir: Path, seconds: float, rounds: int, log: Any = print, vs: Path | None = None) -> dict[str, Any]:
    etcd = EtcdServer(workdir)
    strata = Strata(workdir)
    other = Strata(workdir, root=vs, name="strata-vs") if vs is not None else None
    systems = {"strata": (strata.port, "/v4/storage/bench/write"), "etcd": (etcd.port, "/v3/kv/put")}
    servers = {"strata": strata}
    if other is not None:
        servers["strata-vs"] = other
        systems["strata-vs"] = (other.port, "/v4/storage/bench/write")
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {k: {c: [] for c in CLIENTS} for k in systems}
    try:
        for r in range(rounds):
            for clients in CLIENTS:
                for kind, (port, path) in systems.items():
                    server = servers.get(kind)
                    cpu = server.cpu_seconds() if server is not None else 0.0
                    res = _wrk(port, path, kind, f"r{r}c{clients}", clients, seconds, workdir)
                    if server is not None and res.get("requests"):  # worker CPU per request, all of it
                        res["cpu_us"] = (server.cpu_seconds() - cpu) / res["requests"] * 1e6
                    runs[kind][clients].append(res)
                    cpu_text = f" cpu {res['cpu_us']:.0f} us/write" if "cpu_us" in res else ""
                    log(f"  writes round {r + 1}/{rounds} {kind:6} {clients:3} clients: {res['req_s']:,.0f} req/s "
                        f"p50 {res.get('p50_ms', 0):.2f} ms p99 {res.get('p99_ms', 0):.2f} ms{cpu_text}")
        syncs = {}
        if shutil.which("strace"):
            syncs["strata"] = _count_syncs(strata.pids(), strata.port, systems["strata"][1], "strata", 5, workdir)
            syncs["etcd"] = _count_syncs([etcd.proc.pid], etcd.port, systems["etcd"][1], "etcd", 5, workdir)
            if other is not None:
                syncs["strata-vs"] = _count_syncs(other.pids(), other.port, systems["strata-vs"][1], "strata-vs", 5,
                                                  workdir)
            for kind, s in syncs.items():
                per = f"{s['per_write']:.3f}" if s["per_write"] is not None else "-"
                log(f"  {kind}: {s['calls']} for {s['writes']} writes at 16 clients: {per} per write")
        version = etcd.version()
    finally:
        strata.close()
        if other is not None:
            other.close()
        etcd.close()
    return {"date": dt.date.today().isoformat(), "etcd": version, "seconds": seconds, "rounds": rounds,
            "cpus": os.cpu_count(), "table": _table(runs), "syncs": syncs, "load": os.getloadavg(),
            "vs": str(vs) if vs is not None else None}


def _table(runs: dict[str, dict[int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One row per client count: each system's medians over its rounds, and the ratios to etcd."""
    table = []
    for clients in CLIENTS:
        row: dict[str, Any] = {"clients": clients}
        for kind in runs:
            ok = runs[kind][clients]
            row[kind] = {
                "req_s": statistics.median(x["req_s"] for x in ok),
                "p50_ms": statistics.median(x.get("p50_ms", 0) for x in ok),
                "p99_ms": statistics.median(x.get("p99_ms", 0) for x in ok),
                "rounds": [x["req_s"] for x in ok],
                "non_2xx": sum(x["non_2xx"] for x in ok),
            }
            if all("cpu_us" in x for x in ok):
                row[kind]["cpu_us"] = statistics.median(x["cpu_us"] for x in ok)
        row["ratio"] = row["strata"]["req_s"] / row["etcd"]["req_s"]
        if "strata-vs" in runs:
            row["vs_ratio"] = row["strata-vs"]["req_s"] / row["etcd"]["req_s"]
        table.append(row)
    return table


TARGETS = {1: 0.8, 16: 1.0, 64: 1.0}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Durable 1-item writes over HTTP, {result['date']}: `strata serve` (2 workers, default sync) vs "
        f"{result['etcd']} (one node, default fsync), wrk closed loop, {result['rounds']} interleaved rounds of "
        f"{result['seconds']:.0f} s, medians.",
        "",
        "| clients | Strata req/s | p50 / p99 ms | etcd req/s | p50 / p99 ms | Strata / etcd | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["table"]:
        s, e, target = row["strata"], row["etcd"], TARGETS[row["clients"]]
        lines.append(f"| {row['clients']} | {s['req_s']:,.0f} | {s['p50_ms']:.2f} / {s['p99_ms']:.2f} | "
                     f"{e['req_s']:,.0f} | {e['p50_ms']:.2f} / {e['p99_ms']:.2f} | {row['ratio']:.2f}x | "
                     f">= {target}x | {'yes' if row['ratio'] >= target else 'no'} |")
    if result.get("vs"):
        lines += ["", f"Against `strata serve` from {result['vs']} (`strata-vs`), same rounds:", "",
                  "| clients | strata req/s | strata-vs req/s | strata / etcd | strata-vs / etcd "
                  "| strata / strata-vs | worker CPU per write: strata / strata-vs |",
                  "|---|---|---|---|---|---|---|"]
        for row in result["table"]:
            s, v = row["strata"]["req_s"], row["strata-vs"]["req_s"]
            cpu = (f"{row['strata']['cpu_us']:.0f} / {row['strata-vs']['cpu_us']:.0f} us"
                   if "cpu_us" in row["strata"] and "cpu_us" in row["strata-vs"] else "-")
            lines.append(f"| {row['clients']} | {s:,.0f} | {v:,.0f} | {row['ratio']:.2f}x | {row['vs_ratio']:.2f}x | "
                         f"{s / v:.2f}x | {cpu} |")
    load = result.get("load")
    if load:
        lines += ["", f"Load average at the end of the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
                  "(1 / 5 / 15 min)."]
    if result["syncs"]:
        lines += ["", "| at 16 clients | fdatasync | fsync | writes acknowledged | syncs per write |",
                  "|---|---|---|---|---|"]
        for kind, s in result["syncs"].items():
            per = f"{s['per_write']:.3f}" if s["per_write"] is not None else "-"
            lines.append(f"| {kind} | {s['calls'].get('fdatasync', 0):,} | {s['calls'].get('fsync', 0):,} | "
                         f"{s['writes']:,} | {per} |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    clients = [row["clients"] for row in result["table"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.38
    xs = range(len(clients))
    ax.bar([x - width / 2 for x in xs], [r["strata"]["req_s"] for r in result["table"]], width, label="Strata")
    ax.bar([x + width / 2 for x in xs], [r["etcd"]["req_s"] for r in result["table"]], width, label="etcd")
    ax.set_xticks(list(xs), [f"{c} client{'s' if c > 1 else ''}" for c in clients])
    ax.set_ylabel("durable 1-item writes / s")
    ax.set_title("Durable HTTP writes (higher is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.durable_writes", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 round of 2 s (a smoke run; figures are rough)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--vs", type=Path, default=None, help="another checkout whose strata serve runs alongside")
    args = p.parse_args(argv)
    for tool in ("wrk", "etcd"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (Debian: apt-get install {'etcd-server' if tool == 'etcd' else tool})",
                  file=sys.stderr)
            return 2
    rounds, seconds = (1, 2.0) if args.quick else (args.rounds, args.seconds)
    with tempfile.TemporaryDirectory(prefix="strata-writes-") as tmp:
        result = measure(Path(tmp), seconds, rounds, vs=args.vs)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{result['date']}-writes"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    stem.with_suffix(".md").write_text(md)
    if plot(result, stem.with_suffix(".png")):
        print(f"plot: {stem.with_suffix('.png')}")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
