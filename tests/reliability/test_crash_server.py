"""Crash safety of the server: SIGKILL gunicorn workers, then the master, under write load.

Three client threads write batches of 3 fresh keys over HTTP to ``strata serve`` (2 workers,
``sync`` on, as deployed) and record each batch whose 200 answer arrived (acknowledged) and each
whose request failed (indeterminate). Meanwhile the test SIGKILLs a random worker at random
moments (gunicorn starts a new one), then SIGKILLs the master mid-load and, a moment later, the
orphaned workers. A new server is started on the same directory. Checks: every acknowledged
batch reads back at its tx with its values; every indeterminate batch is all there (3 keys, one
tx) or not there at all; ``verify()`` passes. CI: 8 worker kills and 1 master kill; ``-m long``:
3 rounds of 40 worker kills and a master kill.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine import Store
from tests.reliability.helpers import check_verify, children_of, start_synced_server
from tests.server.conftest import LiveServer, http_request, stop_server


class Load:
    """Writer threads: ``acked`` [(tx, keys, value)], ``unknown`` [(keys, value)]."""

    def __init__(self, port: int, threads: int = 3) -> None:
        self.port = port
        self.stop = threading.Event()
        self.acked: list[tuple[int, list[str], Any]] = []
        self.unknown: list[tuple[list[str], Any]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(t,)) for t in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, ident: int) -> None:
        for i in range(100_000):
            if self.stop.is_set():
                return
            keys = [f"p{self.port}:t{ident}:{i}:{j}" for j in range(3)]
            value = {"t": ident, "i": i, "pad": "x" * random.randrange(10, 3000)}
            try:
                status, _, body = http_request(self.port, "POST", "/v4/storage/crash/write",
                                               orjson.dumps([{"key": k, "value": value} for k in keys]),
                                               {"Content-Type": "application/json"})
            except (OSError, http.client.HTTPException):  # killed mid-answer (IncompleteRead): outcome unknown
                status, body = 0, b""
            with self.lock:
                if status == 200:
                    self.acked.append((orjson.loads(body)["tx"], keys, value))
                else:
                    assert status in (0, 500, 502, 503), body  # a dying worker, never a 4xx
                    self.unknown.append((keys, value))
                    time.sleep(0.01)

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def crash_round(tmp: Path, worker_kills: int, rng: random.Random) -> tuple[Load, int]:
    server = start_synced_server(tmp)
    load = Load(server.port)
    kills = 0
    try:
        for _ in range(worker_kills):
            time.sleep(rng.uniform(0.1, 0.4))
            workers = children_of(server.proc.pid)
            if workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    kills += 1
        time.sleep(rng.uniform(0.1, 0.4))
        workers = children_of(server.proc.pid)
        os.kill(server.proc.pid, signal.SIGKILL)  # the master, mid-load
        server.proc.wait(timeout=30)
        time.sleep(rng.uniform(0, 0.2))
        for pid in workers:  # and its orphaned workers, wherever they are
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    finally:
        load.join()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGKILL)
    return load, kills


def check_after(server: LiveServer, loads: list[Load]) -> dict[str, int]:
    stats = {"acked": 0, "unknown_written": 0, "unknown_lost": 0}
    for load in loads:
        for tx, keys, value in load.acked:
            _, _, body = server.request("POST", "/v4/storage/crash/read", json={"keys": keys, "tx": tx})
            assert orjson.loads(body)["data"] == [{"key": k, "value": value, "tx": tx, "binary": False}
                                                  for k in keys], f"acknowledged tx {tx} lost"
            stats["acked"] += 1
        for keys, value in load.unknown:
            _, _, body = server.request("POST", "/v4/storage/crash/read", json={"keys": keys})
            data = orjson.loads(body)["data"]
            assert len(data) in (0, 3), f"a partial write is visible: {data}"
            assert len({d["tx"] for d in data}) <= 1 and all(d["value"] == value for d in data)
            stats["unknown_written" if data else "unknown_lost"] += 1
    return stats


def run(tmp: Path, rounds: int, worker_kills: int) -> dict[str, int]:
    rng = random.Random()
    loads, kills = [], 0
    for _ in range(rounds):
        load, k = crash_round(tmp, worker_kills, rng)
        loads.append(load)
        kills += k
    server = start_synced_server(tmp)
    try:
        stats = check_after(server, loads)
    finally:
        stop_server(server.proc)
    with Store.open(tmp / "data") as store:
        assert store.latest_tx >= max(tx for load in loads for tx, _, _ in load.acked)
        check_verify(store)
    stats.update(worker_kills=kills, master_kills=rounds)
    print(f"server crash: {stats}")
    assert stats["acked"] > 50
    return stats


def test_kill_workers_and_master_under_load(tmp_path: Path) -> None:
    run(tmp_path, rounds=1, worker_kills=8)


@pytest.mark.long
def test_kill_workers_and_master_under_load_long(tmp_path: Path) -> None:
    run(tmp_path, rounds=3, worker_kills=40)
