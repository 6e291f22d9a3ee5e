"""Shared machinery of the reliability suite: child processes, the pipe protocol, the model check.

Children are real processes (``python -m tests.reliability.<module>``, forked by a zygote that has
imported it: see :mod:`tests.reliability.zygote`), never forks of the test process: an LMDB
environment must not cross ``fork()``, and a SIGKILL must hit a process that owns nothing of the
test's. Parent and child talk in lines, each ``base64(msgpack(obj))``: msgpack keeps ``bytes``
apart from ``str`` and ``int`` apart from ``float``, so values compare exactly.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import copy
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack

from engine import Store, errors
from tests.property.model import CLEAR, DELETE, PUT, Model
from tests.reliability.zygote import Forked, Zygote

REPO = Path(__file__).resolve().parents[2]
NAMESPACES = ("alpha", "beta", "g.a-m_ma")

# A small key pool makes overwrites, clears of written keys and cross-namespace txs frequent. It
# holds NUL, '/', non-ASCII and keys on both sides of the long-key (bucket) boundary.
KEY_POOL = [f"k{i}" for i in range(24)] + [
    "a", "a\x00", "a\x00b", "b/c", "é", "\U0001f600", "sp ace",
    "k" * 470 + "x", "k" * 479 + "\x00y", "z" * 496 + "q", "z" * 512,
]


def _state_machine() -> ModuleType:
    """The state machine's record comparisons, imported on first use: the writer children import this
    module too, and the state machine's own imports (hypothesis, pytest) took about half a second of
    each child's start, most of a crash test's time."""
    from tests.property import test_store_model

    return test_store_model


# -- processes ----------------------------------------------------------------------------------

def child_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    env.pop("STRATA_KEYS_FILE", None)
    return env


def spawn(module: str, *args: str, **kw: Any) -> subprocess.Popen[bytes] | Forked:
    """Run ``python -m tests.reliability.<module> args...`` with pipes on stdin and stdout: forked by
    this process's zygote (:mod:`tests.reliability.zygote`), or, given ``Popen`` options, started anew."""
    if kw:
        return subprocess.Popen([sys.executable, "-m", f"tests.reliability.{module}", *args], cwd=REPO,
                                env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, **kw)
    global _zygote
    if _zygote is None:
        _zygote = Zygote(child_env(), str(REPO))
        atexit.register(_zygote.close)
    return _zygote.spawn(f"tests.reliability.{module}", list(args))


_zygote: Zygote | None = None


def frame(obj: Any) -> bytes:
    return base64.b64encode(msgpack.packb(obj, use_bin_type=True)) + b"\n"


def unframe(line: bytes) -> Any:
    return msgpack.unpackb(base64.b64decode(line), raw=False)


class LineReader:
    """Complete lines from a child's stdout, with a deadline (a hung child fails, never hangs)."""

    def __init__(self, proc: subprocess.Popen[bytes] | Forked) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buf = b""
        self.ready: list[Any] = []
        self.eof = False

    def _fill(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            self.eof = True
            return
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        self.ready.extend(unframe(line) for line in lines)

    def read_n(self, n: int, timeout: float) -> list[Any]:
        """The next ``n`` lines, or fewer if the child stops or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while len(self.ready) < n and not self.eof and time.monotonic() < deadline:
            self._fill(deadline - time.monotonic())
        out, self.ready = self.ready[:n], self.ready[n:]
        return out

    def drain(self, timeout: float = 30) -> list[Any]:
        """Everything until EOF (call after the child is dead); a torn last line is dropped."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._fill(deadline - time.monotonic())
        out, self.ready = self.ready, []
        return out


def feed(proc: subprocess.Popen[bytes] | Forked, frames: list[bytes]) -> None:
    """Write frames to the child's stdin (in a thread: the pipe fills); stop quietly if it died.
    The pipe is closed either way (a child killed mid-write leaves unflushed bytes behind)."""
    assert proc.stdin is not None
    try:
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            for f in frames:
                proc.stdin.write(f)
            proc.stdin.flush()
    finally:
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            proc.stdin.close()  # closes the descriptor even when flushing the rest fails


def kill_at_random(proc: subprocess.Popen[bytes] | Forked, rng: random.Random, stats: dict[str, int], *, max_acks: int,
                   settle: float) -> list[Any]:
    """SIGKILL a writer child at a random moment and return every ack it wrote.

    One time in ten the kill lands during start-up (``Store.open`` or the first commits); otherwise
    after 1 to ``max_acks`` - 1 acks and a random pause of up to ``settle`` seconds, so it lands
    mid-commit or mid-flush. The child is reaped and its pipe closed whatever happens.
    """
    lines = LineReader(proc)
    acks: list[Any] = []
    try:
        assert lines.read_n(1, 60) == [["open"]], "the writer did not start"
        if rng.random() < 0.1:
            stats["early_kills"] += 1
            time.sleep(rng.uniform(0, 0.05))
        else:
            acks += lines.read_n(rng.randrange(1, max_acks), 60)
            assert acks, "the writer acknowledged nothing: is the write lock held by a dead process?"
            time.sleep(rng.uniform(0, settle))
        proc.kill()  # SIGKILL; by pidfd for a forked child, which may have exited and been reaped
    finally:
        proc.kill()
        proc.wait(timeout=60)
        acks += lines.drain()
        proc.stdout.close()  # type: ignore[union-attr]
    stats["kills"] += 1
    return acks


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process in KiB, from /proc: ``VmRSS`` (all of it, LMDB's file-backed
    map included) or ``RssAnon`` (the process's own heap: what a leak grows)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (gunicorn's workers, for a master)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    out.append(int(entry.name))
    return sorted(out)


# -- random write batches -----------------------------------------------------------------------

def random_value(rng: random.Random) -> Any:
    pick = rng.random()
    if pick < 0.15:
        return rng.randrange(-(2**63), 2**64)
    if pick < 0.25:
        return rng.choice([None, True, False, 0.0, -1.5, 1e300, "", 2**64 - 1, -(2**63)])
    if pick < 0.45:
        return "".join(rng.choice("ab\x00é😀 ") for _ in range(rng.randrange(12)))
    if pick < 0.65:
        return {"n": rng.randrange(1000), "l": [1, 1.0, "1", None, {"x": ["é"]}], "s": "v" * rng.randrange(50)}
    if pick < 0.97:
        return rng.randbytes(rng.randrange(64))
    return rng.randbytes(rng.randrange(20_000, 80_000))  # large enough that the 1 MiB map grows


def random_batch(rng: random.Random, live: dict[tuple[str, str], int], latest: int,
                 expects: bool = True) -> dict[str, Any]:
    """A write of one of five kinds. ``live`` maps (namespace, key) to its live tx (0: absent) and
    ``latest`` is the latest tx, both as they will be when the batch runs: they drive ``expect``
    (``expects=False``: no expectations, for when the state is not known for sure)."""
    kind = rng.choices(["put", "clear", "delete", "txn", "conflict"], [40, 8, 8, 34, 10])[0]
    if not expects and kind == "conflict":
        kind = "txn"
    ns = rng.choice(NAMESPACES)
    if kind == "put":
        keys = rng.sample(KEY_POOL, rng.randrange(1, 8))
        return {"kind": "put", "ns": ns, "items": [[k, random_value(rng)] for k in keys]}
    if kind in ("clear", "delete"):
        return {"kind": kind, "ns": ns, "keys": rng.sample(KEY_POOL, rng.randrange(1, 5))}
    ops = []
    for _ in range(rng.randrange(1, 9)):
        op = rng.choices([PUT, CLEAR, DELETE], [6, 2, 2])[0]
        ops.append([rng.choice(NAMESPACES), rng.choice(KEY_POOL), op, random_value(rng) if op == PUT else None])
    target = (rng.choice(NAMESPACES), rng.choice(KEY_POOL))
    actual = live.get(target, 0)
    if kind == "conflict":
        if actual == 0 and latest == 0:
            return {"kind": "txn", "ops": ops, "expect": [], "note": {"by": "crash"}}
        wrong = 0 if actual else rng.randrange(1, latest + 1)
        return {"kind": "txn", "ops": ops, "expect": [[*target, wrong]], "conflict": True}
    return {"kind": "txn", "ops": ops, "expect": [[*target, actual]] if expects and rng.random() < 0.3 else [],
            "note": {"by": "crash", "n": rng.randrange(100)}}


def effective_ops(batch: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """The batch as ``(namespace, key, op, value)`` operations, in order (the model applies the
    last one per key, as the engine does)."""
    kind = batch["kind"]
    if kind == "put":
        return [(batch["ns"], k, PUT, v) for k, v in batch["items"]]
    if kind in ("clear", "delete"):
        return [(batch["ns"], k, kind, None) for k in batch["keys"]]
    return [(ns, k, op, v) for ns, k, op, v in batch["ops"]]


def apply_batch(store: Store, batch: dict[str, Any]) -> int | None:
    """Run one batch; the committed tx, or None when an expectation failed (CONFLICT)."""
    kind = batch["kind"]
    if kind == "put":
        return store.namespace(batch["ns"]).put([(k, v) for k, v in batch["items"]])
    if kind == "clear":
        return store.namespace(batch["ns"]).clear(batch["keys"])
    if kind == "delete":
        return store.namespace(batch["ns"]).delete(batch["keys"])
    try:
        with store.transaction(note=batch.get("note")) as t:
            for ns, key, op, value in batch["ops"]:
                if op == PUT:
                    t.put(ns, key, value)
                elif op == CLEAR:
                    t.clear(ns, key)
                else:
                    t.delete(ns, key)
            for ns, key, tx in batch.get("expect", []):
                t.expect(ns, key, tx=tx)
    except errors.Conflict:
        return None
    return t.tx


def live_map(model: Model) -> dict[tuple[str, str], int]:
    """(namespace, key) -> the tx a read of it returns now (0: absent or deleted)."""
    out = {}
    for ident, versions in model.versions.items():
        tx, op = versions[-1][:2]
        out[ident] = 0 if op == DELETE else tx
    return out


def plan(model: Model, rng: random.Random, n: int, expects: bool = True) -> list[dict[str, Any]]:
    """``n`` batches that, run in order from the model's state, do what each one says: expectations
    hold except in ``conflict`` batches, whose expectation always fails. ``expects=False`` when
    the model may lack a tx (one in flight at a crash that may surface later): no expectations."""
    shadow = copy.deepcopy(model)
    batches = []
    for _ in range(n):
        b = random_batch(rng, live_map(shadow), shadow.latest_tx, expects)
        if not b.get("conflict"):
            shadow.commit(effective_ops(b))
        batches.append(b)
    return batches


# -- checking a store against the model ---------------------------------------------------------

def check_tx(store: Store, model: Model, tx: int, ops: list[tuple[str, str, str, Any]]) -> None:
    """tx ``tx`` holds exactly ``ops``: its log entry names them and reads at ``tx`` see them."""
    final: dict[tuple[str, str], tuple[str, Any]] = {}
    for ns, key, op, value in ops:
        final[(ns, key)] = (op, value)
    info = store.tx_info(tx)
    assert info is not None, f"tx {tx} has no log entry"
    logged = sorted((o.namespace, o.key, o.op) for o in info.operations)
    assert logged == sorted((ns, k, op) for (ns, k), (op, _) in final.items()), f"tx {tx}: log differs"
    for ns in {ns for ns, _ in final}:
        keys = [k for (n, k) in final if n == ns]
        got = {r.key: r for r in store.namespace(ns).read(keys, tx=tx).records}
        for key in keys:
            op, value = final[(ns, key)]
            if op == DELETE:
                assert key not in got, f"tx {tx}: deleted {ns}/{key!r} is visible"
                continue
            rec = got.get(key)
            assert rec is not None and rec.tx == tx, f"tx {tx}: {ns}/{key!r} is {rec}"
            assert rec.cleared == (op == CLEAR), f"tx {tx}: {ns}/{key!r} is {rec}"
            if op == PUT:
                same = _state_machine().same(rec.value, value)
                assert same, f"tx {tx}: {ns}/{key!r} holds {rec.value!r}, not {value!r}"


def check_snapshot(store: Store, model: Model, tx: int) -> None:
    """Every namespace read and scanned at ``tx`` equals the model, key for key."""
    for ns in NAMESPACES:
        names = model.keys(ns)
        want = [(k, *rec) for k in names if (rec := model.record(ns, k, tx)) is not None]
        target = store.namespace(ns)
        sm = _state_machine()
        sm.assert_records([sm.as_tuple(r) for r in target.read(names, tx=tx).records], want)
        sm.assert_records([sm.as_tuple(r) for r in target.scan(tx=tx)], want)


def check_verify(store: Store, receipt: tuple[int, str] | None = None) -> None:
    """``store.verify()`` passes, when the engine has it (with a receipt when one is given)."""
    verify = getattr(store, "verify", None)
    if verify is None:
        return
    report = verify(receipt) if receipt is not None else verify()
    assert getattr(report, "ok", report), f"verify failed: {report}"


# -- servers ------------------------------------------------------------------------------------

def start_synced_server(tmp: Path, *extra: str, workers: int = 2, fsize_limit: int | None = None) -> Any:
    """``strata serve`` as deployed: ``sync`` on (tests/server/conftest.py's ``start_server`` adds
    ``--no-sync``). ``fsize_limit`` sets RLIMIT_FSIZE on the server and its workers (disk full)."""
    import resource

    from tests.server.conftest import LiveServer, free_port, http_request, stop_server

    def limit() -> None:
        if fsize_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, as on a full disk
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))

    port = free_port()
    with open(tmp / f"server-{port}.log", "wb") as log:  # the server writes to its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--data", str(tmp / "data"), "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), *extra],
            cwd=REPO, env=child_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=limit,
        )
    deadline = time.monotonic() + 60  # a start-up guard, not a timing assertion
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            if http_request(port, "GET", "/healthz")[0] == 200:
                return LiveServer(port, tmp / "data", proc)
        if time.monotonic() > deadline:
            stop_server(proc)
            raise AssertionError("server did not start")
        time.sleep(0.05)
