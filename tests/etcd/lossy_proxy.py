"""A loopback HTTP proxy in front of one etcd member that forwards each request and then loses the
answer: it closes the client's connection instead of relaying what the member said.

This is the fault that makes a write's outcome unknown (the member took it, maybe committed it, and the
client never hears back), produced for real: the request reaches etcd intact. ``forwarded`` counts the
requests passed on; ``drop`` (True by default) can be turned off to relay answers normally. A watch
(``/v3/watch``, a stream) is not forwarded: it gets a 200 and its connection is closed, a stream cut
before its first answer.
"""

from __future__ import annotations

import http.client
import socket
import threading


class AnswerDroppingProxy:
    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.drop = True
        self.forwarded = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            with conn:
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("Content-Length", headers.get("content-length", "0")))
        while len(body) < length:
            body += conn.recv(65536)
        if path.startswith("/v3/watch"):  # a stream cut before its first answer: headers, then close
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            return
        upstream = http.client.HTTPConnection(*self.target, timeout=10)
        try:
            upstream.request(method, path, body, {"Content-Type": "application/json"})
            resp = upstream.getresponse()
            answer = resp.read()
            self.forwarded += 1
            if not self.drop:
                conn.sendall(
                    f"HTTP/1.1 {resp.status} OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode() + answer
                )
        finally:
            upstream.close()

    def close(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() the serving thread is blocked in
        self._listener.close()
        self._thread.join(timeout=10)
