"""Worker CPU per keep-alive HTTP request of ``strata serve``: healthz, a 100-key read, a 1-item write.

``python -m benchmarks.request_cpu [--vs CHECKOUT] [--rounds N] [--seconds S] [--clients C]``

Starts ``strata serve --no-sync`` (2 workers; ``--no-sync`` takes the disk out, leaving the CPU)
from this checkout, and with ``--vs`` from another one too, loads each in turn with ``wrk`` (closed
loop, ``C`` keep-alive connections) on three requests, round after round, and prints each run's
req/s and the CPU its workers spent per request (user + system time from ``/proc/PID/stat``
before and after, divided by the requests ``wrk`` completed). The rounds interleave the servers,
so drift of a shared machine hits both alike; the summary gives each figure's median and spread.
CPU per request is the steadier figure: req/s also depends on what else the machine runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .targets.etcd import free_port
from .targets.http import wait_ready

ROOT = Path(__file__).resolve().parents[1]
KEYS = [f"k{i:04d}" for i in range(100)]
REQUESTS = {
    "healthz": ("GET", "/healthz", None),
    "read100": ("POST", "/v4/storage/bench/read", json.dumps({"keys": KEYS})),
    "write1": ("POST", "/v4/storage/bench/write", None),  # a new key per request, see _script
}


def _script(kind: str, workdir: Path, tag: str) -> Path:
    method, path, body = REQUESTS[kind]
    if kind == "write1":
        make = (f"local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format('POST', '{path}', nil, "
                f"'[{{\"key\":\"{tag}' .. n .. '\",\"value\":\"' .. string.rep('v', 96) .. '\"}}]')\nend\n")
    elif body is None:
        make = f"request = function() return wrk.format('{method}', '{path}') end\n"
    else:
        make = f"local body = [[{body}]]\nrequest = function() return wrk.format('{method}', '{path}', nil, body) end\n"
    script = workdir / f"{kind}-{tag}.lua"
    script.write_text("wrk.headers['Content-Type'] = 'application/json'\n" + make)
    return script


class Server:
    """``strata serve --no-sync`` from checkout ``root`` on a free loopback port."""

    def __init__(self, root: Path, workdir: Path, name: str) -> None:
        self.port = free_port()
        self.name = name
        self.log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--data", str(workdir / f"{name}-data"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "2", "--no-sync"],
            cwd=root, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        items = [{"key": k, "value": {"n": i, "pad": "x" * 80}} for i, k in enumerate(KEYS)]
        wait_ready(self.port, "/v4/storage/bench/write", json.dumps(items).encode(), self.proc)

    def cpu_seconds(self) -> float:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False)
        total = 0
        for pid in out.stdout.split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        self.log.close()


def run_once(server: Server, kind: str, clients: int, seconds: float, workdir: Path, tag: str) -> dict[str, Any]:
    script = _script(kind, workdir, tag)
    cpu = server.cpu_seconds()
    out = subprocess.run(["wrk", f"-t{min(2, clients)}", f"-c{clients}", f"-d{seconds:g}s", "-s", str(script),
                          f"http://127.0.0.1:{server.port}{REQUESTS[kind][1]}"],
                         capture_output=True, text=True, timeout=seconds + 60, check=False).stdout
    used = server.cpu_seconds() - cpu
    requests = int(m.group(1)) if (m := re.search(r"(\d+) requests in", out)) else 0
    bad = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)) else 0
    return {"req_s": requests / seconds, "cpu_us": used / requests * 1e6 if requests else None, "non_2xx": bad}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--vs", type=Path, help="another checkout to measure in the same rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--kinds", default=",".join(REQUESTS))
    args = parser.parse_args(argv)
    kinds = args.kinds.split(",")
    with tempfile.TemporaryDirectory(prefix="request-cpu-") as tmp:
        workdir = Path(tmp)
        servers = [Server(ROOT, workdir, "strata")]
        if args.vs is not None:
            servers.append(Server(args.vs.resolve(), workdir, "strata-vs"))
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        try:
            for r in range(args.rounds):
                for kind in kinds:
                    for server in servers if r % 2 == 0 else servers[::-1]:
                        res = run_once(server, kind, args.clients, args.seconds, workdir, f"{server.name}{r}x")
                        runs.setdefault((server.name, kind), []).append(res)
                        print(f"round {r + 1} {server.name:9} {kind:8} {res['req_s']:8,.0f} req/s "
                              f"{res['cpu_us'] or 0:6.0f} us CPU/request non-2xx {res['non_2xx']}", flush=True)
        finally:
            for server in servers:
                server.close()
    print(f"\nmedians over {args.rounds} rounds ({args.clients} clients, {args.seconds:g} s each; [min-max]):")
    for (name, kind), rs in sorted(runs.items(), key=lambda item: (item[0][1], item[0][0])):
        cpu = [x["cpu_us"] for x in rs if x["cpu_us"] is not None]
        rate = [x["req_s"] for x in rs]
        print(f"  {kind:8} {name:9} {statistics.median(rate):8,.0f} req/s [{min(rate):,.0f}-{max(rate):,.0f}]  "
              f"{statistics.median(cpu):5.0f} us CPU/request [{min(cpu):.0f}-{max(cpu):.0f}]")
    time.sleep(0)


if __name__ == "__main__":
    main()
