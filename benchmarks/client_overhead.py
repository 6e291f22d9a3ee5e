"""The cost of the Python client: a 100-key read through ``server.client`` against the same request
made with urllib3 directly, on one ``strata serve`` (2 workers), in the same run.

``python -m benchmarks.client_overhead [--rounds R] [--requests N]``

The store holds 100 keys of small JSON objects (``{"name": ..., "n": ...}``). Each round makes N
reads of all 100 keys at the latest tx, once through the client (``namespace.read(keys)``: the body
built, the answer decoded into 100 ``Record`` objects) and once raw (one ``urlopen`` of the same
body on a keep-alive pool, the answer decoded by ``orjson.loads``), alternating which goes first,
so drift of the shared machine hits both alike. Each figure is the median over rounds of the mean
time per request; the ratio is client over raw (the target: at most 1.3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import urllib3

from server.client import connect

from .targets.http import wait_ready

ROOT = Path(__file__).resolve().parents[1]


def _serve(data: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "server", "serve", "--data", str(data), "--port", str(port),
                             "--workers", "2", "--no-sync"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(port: int, rounds: int, requests: int) -> dict[str, float]:
    keys = [f"user:{i:03}" for i in range(100)]
    store = connect(f"http://127.0.0.1:{port}", maxsize=1)
    ns = store.namespace("bench")
    ns.put({k: {"name": k, "n": i} for i, k in enumerate(keys)})
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1)
    body = orjson.dumps({"keys": keys})
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def via_client() -> None:
        assert len(ns.read(keys).records) == 100

    def raw() -> None:
        assert len(orjson.loads(pool.urlopen("POST", "/v4/storage/bench/read", body=body, headers=headers).data)
                   ["data"]) == 100

    for f in (via_client, raw):  # warm both connections
        for _ in range(20):
            f()
    times: dict[str, list[float]] = {"client": [], "raw": []}
    for r in range(rounds):
        order = [("client", via_client), ("raw", raw)]
        for name, f in order if r % 2 == 0 else reversed(order):
            t0 = time.perf_counter()
            for _ in range(requests):
                f()
            times[name].append((time.perf_counter() - t0) / requests)
    client, plain = statistics.median(times["client"]), statistics.median(times["raw"])
    store.close()
    return {"client_us": client * 1e6, "raw_us": plain * 1e6, "ratio": client / plain}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.client_overhead", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--requests", type=int, default=200)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        proc = _serve(Path(tmp) / "data", port)
        try:
            wait_ready(port, "/v4/storage/bench/read", b'{"keys": []}', proc)
            result = measure(port, args.rounds, args.requests)
        finally:
            proc.terminate()
            proc.wait(30)
    load = os.getloadavg()[0]
    print(f"100-key read, median of {args.rounds} rounds of {args.requests} requests (load average {load:.1f}):")
    print(f"  through server.client  {result['client_us']:8.0f} us")
    print(f"  raw urllib3 + orjson   {result['raw_us']:8.0f} us")
    print(f"  ratio                  {result['ratio']:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
