"""Idempotency-Key against a live 2-worker ``strata serve``: a client that vanishes between the commit
and the answer retries and gets its original tx, and many concurrent copies of one request, spread
over both workers, commit exactly one tx."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import orjson
import pytest

from tests.server.conftest import LiveServer, start_server, stop_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("idempotency-live"))
    yield live
    stop_server(live.proc)


def changes(server: LiveServer, ns: str) -> list[int]:
    """The txs that touched ``ns``, from the change feed."""
    status, _, body = server.request("GET", f"/v4/storage/{ns}/changes?since=0")
    assert status == 200
    return [c["tx"] for c in orjson.loads(body)["data"]]


def test_a_client_gone_before_the_answer_retries_and_gets_its_tx(server: LiveServer) -> None:
    body = orjson.dumps([{"key": "order:1", "value": {"paid": True}}])
    head = (f"POST /v4/storage/crash/write HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Idempotency-Key: order-1-payment\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body)
        for _ in range(3000):  # until the write has committed (a guard against a hang, not a timing claim)
            if changes(server, "crash"):
                break
            time.sleep(0.01)
        committed = changes(server, "crash")
        assert len(committed) == 1
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    # Committed, and the client is gone without having read a byte of the answer: it retries.
    status, headers, answer = server.request("POST", "/v4/storage/crash/write", body=body,
                                             headers={"Content-Type": "application/json",
                                                      "Idempotency-Key": "order-1-payment"})
    assert status == 200 and headers["idempotent-replayed"] == "true" and orjson.loads(answer)["tx"] == committed[0]
    again = server.request("POST", "/v4/storage/crash/write", body=body,
                           headers={"Content-Type": "application/json", "Idempotency-Key": "order-1-payment"})
    assert again[0] == 200 and again[2] == answer and again[1]["idempotent-replayed"] == "true"
    assert changes(server, "crash") == [orjson.loads(answer)["tx"]]


def test_two_workers_racing_one_key_commit_one_tx(server: LiveServer) -> None:
    body = orjson.dumps([{"key": "counter", "value": 1}, {"key": "other", "value": "x"}])
    headers = {"Content-Type": "application/json", "Idempotency-Key": "race-1"}
    answers: list[tuple[int, dict[str, str], bytes]] = []
    start = threading.Barrier(16)

    def send() -> None:
        start.wait()
        answers.append(server.request("POST", "/v4/storage/race/write", body=body, headers=headers))

    threads = [threading.Thread(target=send) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {status for status, _, _ in answers} == {200}
    assert len({answer for _, _, answer in answers}) == 1  # one answer, byte for byte (its tx and duration)
    assert sum(1 for _, h, _ in answers if "idempotent-replayed" not in h) == 1
    assert changes(server, "race") == [orjson.loads(answers[0][2])["tx"]]
