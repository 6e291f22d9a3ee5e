"""``python -m tests.reliability.pipelined_reader PORT CONNECTIONS PATH BODY``: a client process for
tests/reliability/test_stall_attacks.py's pipelined proof reads.

Each of ``CONNECTIONS`` threads opens a connection and, until stdin closes, sends the POST of
``BODY`` to ``PATH`` twice in one write and reads both answers (their bodies skipped but the first
one's); it leaves as soon as stdin closes, in the middle of a pair if need be. The process prints
``ready`` once every connection has sent its first pair, then, when stdin closes, one JSON line: per
connection, the status lines it got and the first answer's body. A process of its own, so the test's
probes time the server, not the test process's GIL shared with these readers.
"""

from __future__ import annotations

import json
import socket
import sys
import threading


def read_pairs(port: int, request: bytes, stop: threading.Event, started: threading.Barrier) -> dict[str, object]:
    statuses: list[str] = []
    first = b""
    sink = memoryview(bytearray(1 << 20))
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock, sock.makefile("rb") as answers:
        sock.sendall(request * 2)
        started.wait()
        while True:
            for _ in range(2):
                if first and stop.is_set():  # leave mid-pipeline, as a client may: the server copes
                    return {"statuses": statuses, "first": first.decode()}
                statuses.append(answers.readline().decode("latin-1"))
                length = 0
                while (line := answers.readline()) != b"\r\n":
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if not first:
                    first = answers.read(length)
                    continue
                while length:
                    length -= answers.readinto(sink[:min(length, len(sink))])
            sock.sendall(request * 2)


def main() -> None:
    port, connections, path, body = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
    request = (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
               % (path.encode(), len(body), body))
    stop = threading.Event()
    started = threading.Barrier(connections + 1)
    results: list[object] = [None] * connections

    def run(i: int) -> None:
        try:
            results[i] = read_pairs(port, request, stop, started)
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
    for thread in threads:
        thread.join(60)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
