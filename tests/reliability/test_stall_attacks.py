"""No client can stall ``strata serve``: six attacks, each against a real server with one worker.

One worker makes the property strict: anything that blocked its event loop would block every other
client. Each test starts the attack, then probes: 20 rounds of ``GET /healthz`` and a 100-key
``POST .../read``, each on a fresh connection, timed. While the attack runs the probes' p99 (of 20,
the slowest) stays under 1 s, a bound generous against the milliseconds they take (the
property is "not stalled", which on a blocked loop means seconds: ``--timeout 5`` is the watchdog's
kill). Afterwards the server log shows no watchdog kill and no second worker, and the attack's own
long operation has finished. Sizes here take a few seconds; ``-m long`` runs larger ones.
"""

from __future__ import annotations

import contextlib
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine import Store
from tests.server.conftest import LiveServer, http_request, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
PROBE_KEYS = [f"p{i:03d}" for i in range(100)]
P99_BOUND = 1.0
ROUNDS = 20


def seed_probe_keys(data: Path) -> None:
    with Store.open(data, sync=False) as store:
        store.namespace("probe").put({k: {"n": i} for i, k in enumerate(PROBE_KEYS)})


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]  # nearest rank: of 20 samples, the slowest


def probe(port: int, rounds: int = ROUNDS, gap: float = 0.1,
          extra: Callable[[], tuple[int, dict[str, str], bytes]] | None = None) -> dict[str, list[float]]:
    """Latencies of ``rounds`` probes of each kind (each must answer 200 with the right data)."""
    read_body = orjson.dumps({"keys": PROBE_KEYS})
    out: dict[str, list[float]] = {"healthz": [], "read": [], "extra": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        status, _, _ = http_request(port, "GET", "/healthz")
        out["healthz"].append(time.perf_counter() - t0)
        assert status == 200
        t0 = time.perf_counter()
        status, _, body = http_request(port, "POST", "/v4/storage/probe/read", read_body,
                                       {"Content-Type": "application/json"})
        out["read"].append(time.perf_counter() - t0)
        assert status == 200 and len(orjson.loads(body)["data"]) == 100, body[:200]
        if extra is not None:
            t0 = time.perf_counter()
            status, _, body = extra()
            out["extra"].append(time.perf_counter() - t0)
            assert status == 200, body[:300]
        time.sleep(gap)
    return out


def assert_not_stalled(latencies: dict[str, list[float]]) -> None:
    for kind, samples in latencies.items():
        if samples:
            assert p99(samples) < P99_BOUND, f"{kind}: p99 {p99(samples):.3f} s of {sorted(samples)}"


def assert_no_worker_killed(tmp: Path) -> None:
    log = (tmp / "server.log").read_text(errors="replace")
    assert "WORKER TIMEOUT" not in log, log[-3000:]
    assert "was sent SIGKILL" not in log and "terminated due to signal" not in log, log[-3000:]
    assert log.count("Booting worker") == 1, log[-3000:]


@contextlib.contextmanager
def serving(tmp: Path, *extra: str) -> Iterator[LiveServer]:
    live = start_server(tmp, "--timeout", "5", *extra, workers=1)
    try:
        yield live
    finally:
        stop_server(live.proc)


def raw(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:  # a small window: the server's sends fill it at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    return sock


def post(path: str, body: bytes) -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), len(body), body))


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(1 << 20):
        data += chunk
    return data


def run_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # reported by the test, which reads the result
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


# -- 1. a Content-Length the event loop cannot read ------------------------------------------------

def test_a_content_length_of_16_digits_and_no_body(tmp_path: Path) -> None:
    seed_probe_keys(tmp_path / "data")
    with serving(tmp_path, "--body-timeout", "3") as live:
        head = (b"POST /v4/storage/probe/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 0000000000000000026\r\n\r\n")
        attackers = [raw(live.port) for _ in range(2)]
        for sock in attackers:
            sock.sendall(head)  # and never the 26 bytes
        assert_not_stalled(probe(live.port, gap=0.05))
        for sock in attackers:  # the body deadline ends them: 408, then the connection closes
            answer = read_answer(sock)
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
            assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "REQUEST_TIMEOUT"
            sock.close()
    assert_no_worker_killed(tmp_path)


# -- 2. clients that read a large answer slowly, or never ------------------------------------------

def test_slow_and_silent_readers_of_large_answers(tmp_path: Path) -> None:
    seed_probe_keys(tmp_path / "data")
    with Store.open(tmp_path / "data", sync=False) as store:
        store.namespace("big").put({f"b{i:05d}": "v" * 8000 for i in range(1000)})  # 8 MB, 2,000 times the window
    # The sockets close however the test ends: a failed assertion must not leave three half-read
    # answers that hold the server's graceful stop for its full timeout.
    with serving(tmp_path) as live, contextlib.ExitStack() as sockets:
        slow_scan = sockets.enter_context(raw(live.port, rcvbuf=4096))
        slow_scan.sendall(post("/v4/storage/big/scan", b'{"limit": 1000}'))
        silent_scan = sockets.enter_context(raw(live.port, rcvbuf=4096))
        silent_scan.sendall(post("/v4/storage/big/scan", b'{"limit": 1000}'))
        keys = orjson.dumps({"keys": [f"b{i:05d}" for i in range(1000)]})  # a read the loop answers: 8 MB
        silent_read = sockets.enter_context(raw(live.port, rcvbuf=4096))
        silent_read.sendall(post("/v4/storage/big/read", keys))
        stop = threading.Event()

        def trickle() -> int:
            got = 0
            while not stop.is_set():
                chunk = slow_scan.recv(4096)
                if not chunk:
                    break
                got += len(chunk)
                stop.wait(0.5)
            return got

        reader, got = run_in_thread(trickle)
        try:
            assert_not_stalled(probe(live.port))
        finally:
            stop.set()
            reader.join(30)
        assert got and got[0] > 0  # the slow reader was being served all along
        # The silent read's answer is there for it, whole, once it reads.
        silent_read.settimeout(30)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < 8_000_000:
            chunk = silent_read.recv(1 << 20)
            assert chunk, answer[:300]
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ")
    assert_no_worker_killed(tmp_path)


# -- 3. writes waiting for the write lock behind a long namespace drop ------------------------------

@pytest.mark.parametrize("keys", [600_000, pytest.param(3_000_000, marks=pytest.mark.long)])
def test_small_writes_during_a_long_drop(tmp_path: Path, keys: int) -> None:
    seed_probe_keys(tmp_path / "data")
    with Store.open(tmp_path / "data", sync=False) as store:
        huge = store.namespace("huge")
        for start in range(0, keys, 10_000):
            huge.put({f"h{i:08d}": i for i in range(start, start + 10_000)})
    with serving(tmp_path) as live:
        dropper, dropped = run_in_thread(lambda: http_request(live.port, "DELETE", "/v4/namespace/storage/huge"))
        time.sleep(0.2)  # the drop holds the write lock now (it runs for seconds)
        stop = threading.Event()

        def writer(n: int) -> list[int]:
            statuses = []
            i = 0
            while not stop.is_set():
                status, _, _ = live.request("POST", "/v4/storage/small/write", json=[{"key": f"w{n}-{i}", "value": i}])
                statuses.append(status)
                i += 1
                stop.wait(0.2)
            return statuses

        writers = [run_in_thread(lambda n=n: writer(n)) for n in range(2)]
        try:
            assert_not_stalled(probe(live.port))
        finally:
            stop.set()
            for thread, _ in writers:
                thread.join(120)
            dropper.join(300)
        status, _, body = dropped[0]
        assert status == 200, body  # the drop finished, not killed with its worker
        assert all(s == 200 for _, result in writers for s in result[0]) and all(result[0] for _, result in writers)
        assert live.request("GET", "/v4/namespace/storage/huge")[0] == 404
    assert_no_worker_killed(tmp_path)


# -- 4. a change feed page over huge txs --------------------------------------------------------------

def test_a_change_feed_page_over_huge_txs(tmp_path: Path) -> None:
    seed_probe_keys(tmp_path / "data")
    with Store.open(tmp_path / "data", sync=False) as store:
        feed = store.namespace("feed")
        for t in range(40):
            feed.put({f"f{t:02d}-{i:05d}": i for i in range(10_000)})
    with serving(tmp_path) as live:
        pages, page = run_in_thread(lambda: live.request("GET", "/v4/storage/feed/changes?since=0&limit=1000"))
        time.sleep(0.1)
        try:
            assert_not_stalled(probe(live.port, rounds=ROUNDS, gap=0.05))
        finally:
            pages.join(120)
        status, _, body = page[0]
        assert status == 200 and orjson.loads(body)["count"] == 40
    assert_no_worker_killed(tmp_path)


# -- 5. slow headers ----------------------------------------------------------------------------------

def test_connections_sending_their_heads_a_byte_at_a_time(tmp_path: Path) -> None:
    seed_probe_keys(tmp_path / "data")
    with serving(tmp_path, "--threads", "4", "--header-timeout", "3") as live:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200 + b"\r\n\r\n"
        attackers = [raw(live.port) for _ in range(12)]  # more than the worker's threads
        stop = threading.Event()

        def drip() -> None:
            for byte in range(len(head)):
                for sock in attackers:
                    with contextlib.suppress(OSError):
                        sock.send(head[byte:byte + 1])
                if stop.wait(0.3):
                    return

        dripper, _ = run_in_thread(drip)
        # Requests that go to the thread pool: a diff (whole-store work) and a write.
        diff = orjson.dumps({"from_tx": 0})

        def pool_work() -> tuple[int, dict[str, str], bytes]:
            status, headers, body = http_request(live.port, "POST", "/v4/storage/probe/diff", diff,
                                                 {"Content-Type": "application/json"})
            if status != 200:
                return status, headers, body
            return live.request("POST", "/v4/storage/w/write", json=[{"key": "a", "value": 1}])

        try:
            assert_not_stalled(probe(live.port, rounds=ROUNDS, gap=0.05, extra=pool_work))
            # The header deadline ends every attacker: 408 and the connection closed.
            for sock in attackers:
                answer = read_answer(sock)
                assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
        finally:
            stop.set()
            dripper.join(30)
            for sock in attackers:
                sock.close()
    assert_no_worker_killed(tmp_path)


# -- 6. reads with proofs over huge txs --------------------------------------------------------------

def test_pipelined_reads_with_proofs_over_huge_txs(tmp_path: Path) -> None:
    seed_probe_keys(tmp_path / "data")
    with Store.open(tmp_path / "data", sync=False) as store:
        big = store.namespace("big")
        for t in range(3):  # a proof read of one key of each rebuilds 3 log entries of 10 MB (of max_proof_bytes)
            big.put({f"t{t}-{i:05d}": "v" * 1000 for i in range(10_000)})
    keys = ["t0-00000", "t1-00000", "t2-00000"]
    with serving(tmp_path) as live:
        body = orjson.dumps({"keys": keys, "proof": True}).decode()
        # 8 connections: a loop answering their reads itself would leave a probe behind 8 of them. Two
        # client processes of 4, so the probes here time the server, not this process's GIL.
        readers = [subprocess.Popen([sys.executable, "-m", "tests.reliability.pipelined_reader", str(live.port), "4",
                                     "/v4/storage/big/read", body], cwd=ROOT, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True) for _ in range(2)]
        try:
            for reader in readers:  # every connection has sent its first proof reads
                assert reader.stdout is not None and reader.stdout.readline() == "ready\n"
            assert_not_stalled(probe(live.port, rounds=ROUNDS, gap=0.05))
        finally:
            for reader in readers:  # both stop at once
                assert reader.stdin is not None and reader.stdout is not None
                reader.stdin.close()
            outputs = [reader.stdout.read() for reader in readers]  # type: ignore[union-attr]
            for reader in readers:
                reader.wait(timeout=60)
        for output in outputs:
            for result in orjson.loads(output):
                assert "error" not in result, result
                assert result["statuses"] and set(result["statuses"]) == {"HTTP/1.1 200 OK\r\n"}, result
                assert result["keys"] == keys
                assert result["entry_txs"] == [2, 3, 4]  # tx 1 wrote the probe keys
    assert_no_worker_killed(tmp_path)
