"""etcd 3.4 through its v3 HTTP/JSON gateway: the versioned store users would run as a service.

``EtcdServer`` starts a private single-member ``etcd`` on loopback ports in a temp directory and stops
it (terminate, then kill after a timeout) on ``close()``; the target is skipped with a clear line when
the ``etcd`` binary is missing. The gateway speaks JSON with base64 keys and values:
``/v3/kv/range`` (read at a ``revision``), ``/v3/kv/put`` and ``/v3/kv/txn`` (many ops, one revision).

Mapping: the data set is loaded in the same batches as Strata, one ``txn`` per batch, so load tx t is
etcd revision t + 1 (revision 1 is the empty store). Values are the same msgpack bytes as the floor;
the client decodes base64 + msgpack, so every system pays for decoding the value.

Unfair in etcd's disfavour for embedded rows (every call is an HTTP round trip through gRPC-gateway)
and durable only: etcd fsyncs its WAL on every commit and 3.4 has no switch to turn that off, so the
"no sync" rows are skipped.
"""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import msgpack
import orjson

from ..datasets import Dataset, Workload
from ..measure import Op
from . import Target, cycle, decode

MAX_TXN_OPS = 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


class EtcdServer:
    """A throwaway etcd on 127.0.0.1; ``port`` is the client (and JSON gateway) port."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("etcd")
        if self.binary is None:
            raise FileNotFoundError("etcd")
        self.dir = workdir / "etcd"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port, peer = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{peer}"
        args = [
            self.binary,
            "--name",
            "bench",
            "--data-dir",
            str(self.dir / "data"),
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            f"bench={peer_url}",
            # Allow one 10,000-item put per txn, like Strata's batch limit, and the bytes it needs.
            "--max-txn-ops",
            str(MAX_TXN_OPS),
            "--max-request-bytes",
            str(64 << 20),
            "--quota-backend-bytes",
            str(8 << 30),
            "--logger",
            "zap",
            "--log-level",
            "error",
        ]
        self.log = open(self.dir / "etcd.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            args,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ETCD_UNSUPPORTED_ARCH": os.uname().machine},
        )
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        deadline = time.monotonic() + 30
        while True:  # bounded: 30 s for etcd to elect itself and serve
            try:
                self.call("/v3/kv/range", {"key": b64("probe")})
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"etcd did not start; see {self.dir / 'etcd.log'}") from None
                time.sleep(0.2)

    def call(self, path: str, body: object) -> dict:
        """POST a JSON body on the persistent connection; raise on a non-200 answer."""
        self.conn.request("POST", path, orjson.dumps(body), {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"etcd {path}: {resp.status} {data[:200]!r}")
        return orjson.loads(data)

    def version(self) -> str:
        out = subprocess.run([self.binary or "etcd", "--version"], capture_output=True, text=True, check=False)
        return out.stdout.splitlines()[0] if out.stdout else "?"

    def close(self) -> None:
        self.conn.close()
        stop_process(self.proc, self.log)


def stop_process(proc: subprocess.Popen, log: Any) -> None:
    """Stop a server the harness started (TERM, then KILL after 10 s) and close its log."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    log.close()


def txn_range_body(keys: list[str], revision: int) -> dict:
    """One txn of range requests at ``revision``: how a client reads many keys at one snapshot."""
    return {"success": [{"request_range": {"key": b64(k), "revision": revision}} for k in keys]}


def txn_put_body(items: list[tuple[str, bytes]]) -> dict:
    return {"success": [{"request_put": {"key": b64(k), "value": b64(v)}} for k, v in items]}


class Etcd(Target):
    name = "etcd 3.4 (JSON gateway)"
    description = "etcd v3 JSON gateway on loopback, persistent HTTP/1.1 connection, fsync always"

    def skip_reason(self) -> str | None:
        if shutil.which("etcd") is None:
            return "etcd binary not found (apt-get install etcd-server)"
        return None

    def setup(self, ds: Dataset, wl: Workload, workdir: Path) -> None:
        self.wl, self.ds = wl, ds
        self.server = EtcdServer(workdir)
        packb = msgpack.packb
        rev = 1
        for _, batch in ds.batches():
            resp = self.server.call("/v3/kv/txn", txn_put_body([(k, packb(v)) for k, v in batch]))
            rev = int(resp["header"]["revision"])
        self.latest_rev = rev

    def ops(self) -> list[Op]:
        call, wl, unpackb, b64d = self.server.call, self.wl, decode, base64.b64decode
        single, hundred = cycle(wl.singles), cycle(wl.hundreds)
        past = cycle([t + 1 for t in wl.past_txs])  # load tx t -> revision t + 1
        starts = cycle([f"k:{s:014d}" for s in wl.scan_starts])
        prefix_end = b64("k;")  # ":" + 1: end of the "k:" key range

        def get(rev: int) -> object:
            kvs = call("/v3/kv/range", {"key": b64(single()), "revision": rev})["kvs"]
            return unpackb(b64d(kvs[0]["value"]))

        def read100(rev: int) -> object:
            resp = call("/v3/kv/txn", txn_range_body(hundred(), rev))
            return [unpackb(b64d(r["response_range"]["kvs"][0]["value"])) for r in resp["responses"]]

        def scan(rev: int) -> object:
            body = {"key": b64(starts()), "range_end": prefix_end, "limit": 1000, "revision": rev}
            return [(b64d(kv["key"]), unpackb(b64d(kv["value"]))) for kv in call("/v3/kv/range", body)["kvs"]]

        def make_put(size: int) -> Op:
            packb = msgpack.packb
            bodies = cycle([txn_put_body([(k, packb(v)) for k, v in b]) for b in wl.write_batches(size, 4)])
            return Op(
                f"put{size}_sync",
                size,
                lambda: call("/v3/kv/txn", bodies()),
                "WAL fsync per commit (always)",
                notes="body pre-encoded",
            )

        latest = 0  # revision 0 = latest in etcd's API
        no_sync = "etcd 3.4 always fsyncs its WAL"
        ops = [
            Op("get_latest", 1, lambda: get(latest)),
            Op("get_past", 1, lambda: get(past())),
            Op("read100_latest", 100, lambda: read100(latest)),
            Op("read100_past", 100, lambda: read100(past()), notes="one txn of 100 range requests"),
            Op("scan1000", 1000, lambda: scan(latest)),
            Op("scan1000_past", 1000, lambda: scan(past())),
            Op("history", self.ds.versions, None, skip="no history API (only watch from a revision)"),
        ]
        ops += [make_put(n) for n in (1, 100, 10_000)]
        ops += [Op(f"put{n}_nosync", n, None, skip=no_sync) for n in (1, 100, 10_000)]
        return ops

    def close(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.close()
            self.server = None
