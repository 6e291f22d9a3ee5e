"""``python -m tests.reliability.pipelined_reader PORT CONNECTIONS PATH BODY``: a client process for
tests/reliability/test_stall_attacks.py's pipelined proof reads.

Each of ``CONNECTIONS`` threads opens a connection and, until stdin closes, sends the POST of
``BODY`` to ``PATH`` twice in one write and reads both answers (their bodies skipped but the first
one's); it leaves as soon as stdin closes, in the middle of a pair or an answer if need be (a connection
still waiting for its first answer waits for it). The process prints
``ready`` once every connection has sent its first pair, then, when stdin closes, one JSON line: per
connection, the status lines it got and, of the first answer, the keys read and the txs of the
proof's log entries. A process of its own, so the test's
probes time the server, not the test process's GIL shared with these readers.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading


def read_pairs(port: int, request: bytes, stop: threading.Event, started: threading.Barrier,
               leave: list[socket.socket]) -> dict[str, object]:
    statuses: list[str] = []
    first = b""
    sink = memoryview(bytearray(1 << 20))
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock, sock.makefile("rb") as answers:
        sock.sendall(request * 2)
        started.wait()
        try:
            while True:
                for _ in range(2):
                    if first and stop.is_set():  # leave mid-pipeline, as a client may: the server copes
                        return _summary(statuses, first)
                    statuses.append(_line(answers).decode("latin-1"))
                    length = 0
                    while (line := _line(answers)) != b"\r\n":
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    if not first:
                        first = answers.read(length)
                        leave.append(sock)  # from now on, stopping may cut this connection mid-answer
                        continue
                    while length:
                        length -= answers.readinto(sink[:min(length, len(sink))])
                sock.sendall(request * 2)
        except OSError:
            if first and stop.is_set():  # cut by main() on stop: not waiting for answers still in the works
                return _summary(statuses, first)
            raise


def _summary(statuses: list[str], first: bytes) -> dict[str, object]:
    """What the test checks of the first answer (the whole one is 40 MB: piping it back cost 10 s)."""
    answer = json.loads(first)
    return {"statuses": statuses, "keys": [r["key"] for r in answer["data"]],
            "entry_txs": [e["tx"] for e in answer["proof"]["entries"]]}


def _line(answers: socket.SocketIO | object) -> bytes:
    line: bytes = answers.readline()  # type: ignore[attr-defined]
    if not line:
        raise ConnectionResetError("the connection closed")
    return line


def main() -> None:
    port, connections, path, body = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
    request = (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
               % (path.encode(), len(body), body))
    stop = threading.Event()
    started = threading.Barrier(connections + 1)
    results: list[object] = [None] * connections
    leave: list[socket.socket] = []  # the connections that have their first answer

    def run(i: int) -> None:
        try:
            results[i] = read_pairs(port, request, stop, started, leave)
        except Exception as exc:  # reported to the test, which asserts on every connection's result
            results[i] = {"error": repr(exc)}
            started.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    try:
        started.wait()
        print("ready", flush=True)
    except threading.BrokenBarrierError:
        print("failed", flush=True)
    sys.stdin.read()  # until the test closes it
    stop.set()
    for sock in list(leave):  # a thread blocked reading an answer would otherwise wait for a whole proof read
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    for thread in threads:
        thread.join(60)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
