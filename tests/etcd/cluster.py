"""A real etcd cluster on loopback for tests: N ``etcd`` processes, each with its own data dir and ports.

``EtcdCluster.start(workdir, size=3)`` launches the members (Debian's ``etcd-server`` 3.4 binary,
``/usr/bin/etcd``), waits until every member answers ``GET /health`` with ``{"health": "true"}`` (there
is a leader and no alarm) and returns the running cluster. Each member is one :class:`Member`:
``client_url`` (the v3 JSON gateway), ``peer_url``, ``data_dir`` and its ``Popen``. Members are stopped
by PID only: ``stop`` sends SIGTERM and, after a grace period, SIGKILL; ``kill`` sends SIGKILL at once
(the crash the fault tests want); ``restart`` starts a stopped member again on the same data dir and ports
(it rejoins as an existing member, ``--initial-cluster-state existing``).

No etcd binary is an error, not a skip: the scale-out tests must run in CI (``.ci/run`` installs
``etcd-server``), and a skipped test would hide a backend nobody checked. :func:`etcd_binary` raises
:class:`EtcdMissing` with the command that installs it.

Ports come from binding port 0 and releasing it; another process could take the port in between, so
``start`` tries a fresh set of ports (up to three times) when a member exits during startup.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: How long a member may take to become healthy (a loaded 2-core machine with 5 engineers on it).
START_TIMEOUT = 30.0
#: Grace between SIGTERM and SIGKILL when stopping a member.
STOP_GRACE = 10.0


class EtcdMissing(RuntimeError):
    """No ``etcd`` binary: the etcd tests cannot run (and must not silently skip)."""


def etcd_binary() -> str:
    """The path of the ``etcd`` server binary, or :class:`EtcdMissing` naming the package to install."""
    found = shutil.which("etcd") or ("/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK) else None)
    if found is None:
        raise EtcdMissing(
            "the etcd tests need the etcd 3.4 server binary: `apt-get install etcd-server` "
            "(.ci/run installs it); they fail rather than skip so a missing backend is never unnoticed"
        )
    return found


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """One GET on a fresh connection: ``(status, body)``. Raises ``OSError`` when nothing answers."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except http.client.HTTPException as exc:
        raise OSError(str(exc)) from exc
    finally:
        conn.close()


@dataclass
class Member:
    """One etcd process of the cluster. ``proc`` is None while it is stopped."""

    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        """True when the member answers ``/health`` with ``"health": "true"`` (it sees a leader, no alarm)."""
        try:
            status, body = http_get(self.client_url, "/health")
        except OSError:
            return False
        return status == 200 and json.loads(body).get("health") == "true"

    def status(self) -> dict[str, object] | None:
        """The member's ``/v3/maintenance/status`` answer, or None if it does not answer."""
        host, port = "127.0.0.1", self.client_port
        conn = http.client.HTTPConnection(host, port, timeout=2.0)
        try:
            conn.request("POST", "/v3/maintenance/status", b"{}", {"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
            return json.loads(body) if resp.status == 200 else None
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()


@dataclass
class EtcdCluster:
    """A running etcd cluster of ``members``; ``extra_args`` were given to every member."""

    members: list[Member]
    extra_args: list[str] = field(default_factory=list)
    binary: str = field(default_factory=etcd_binary)

    # -- life cycle --------------------------------------------------------------------------------

    @classmethod
    def start(cls, workdir: Path, size: int = 3, extra_args: Sequence[str] = ()) -> EtcdCluster:
        """Start ``size`` members under ``workdir`` and wait until all are healthy."""
        binary = etcd_binary()
        last: Exception | None = None
        for attempt in range(3):  # a port taken between free_port() and etcd's bind: try new ports
            root = workdir / f"etcd-{attempt}"
            members = [
                Member(f"m{i}", root / f"m{i}", free_port(), free_port(), root / f"m{i}.log") for i in range(size)
            ]
            cluster = cls(members, list(extra_args), binary)
            try:
                for m in members:
                    cluster._spawn(m, "new")
                cluster.wait_healthy()
                return cluster
            except RuntimeError as exc:
                last = exc
                cluster.stop()
        raise RuntimeError(f"etcd cluster did not start: {last}")

    def _spawn(self, m: Member, state: str) -> None:
        m.data_dir.mkdir(parents=True, exist_ok=True)
        initial = ",".join(f"{o.name}={o.peer_url}" for o in self.members)
        args = [
            self.binary,
            "--name", m.name,
            "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", initial,
            "--initial-cluster-state", state,
            "--initial-cluster-token", f"strata-test-{self.members[0].peer_port}",
            "--logger", "zap",
            "--log-level", "warn",
            *self.extra_args,
        ]  # fmt: skip
        log = open(m.log_path, "ab")  # noqa: SIM115 - the child holds it; closed right after the fork
        try:
            # etcd 3.4 refuses to start on some architectures without this; harmless on amd64.
            env = {**os.environ, "ETCD_UNSUPPORTED_ARCH": os.uname().machine}
            m.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        finally:
            log.close()

    def wait_healthy(self, members: Sequence[Member] | None = None, timeout: float = START_TIMEOUT) -> None:
        """Wait until every given running member (default: all running) is healthy, or raise."""
        todo = [m for m in (members or self.members) if m.proc is not None]
        deadline = time.monotonic() + timeout
        while todo:
            for m in list(todo):
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"{m.name} exited with {m.proc.returncode}; log: {self.log_tail(m)}")
                if m.healthy():
                    todo.remove(m)
            if todo:
                if time.monotonic() > deadline:
                    names = ", ".join(m.name for m in todo)
                    raise RuntimeError(f"not healthy after {timeout:.0f} s: {names}; log: {self.log_tail(todo[0])}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop every member (SIGTERM, then SIGKILL after the grace period)."""
        for m in self.members:
            self.terminate(m)

    def terminate(self, m: Member) -> None:
        """Stop one member by PID: SIGTERM, then SIGKILL if it is still there after ``STOP_GRACE``."""
        if m.proc is None:
            return
        if m.proc.poll() is None:
            m.proc.send_signal(signal.SIGTERM)
            try:
                m.proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                m.proc.send_signal(signal.SIGKILL)
                m.proc.wait(timeout=STOP_GRACE)
        m.proc = None

    def kill(self, m: Member) -> None:
        """SIGKILL one member by PID (a crash: no clean shutdown) and reap it."""
        if m.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(timeout=STOP_GRACE)
        m.proc = None

    def restart(self, m: Member, wait: bool = True) -> None:
        """Start a stopped member again on its data dir and ports; by default wait until it is healthy."""
        if m.running:
            raise RuntimeError(f"{m.name} is running")
        self._spawn(m, "existing")
        if wait:
            self.wait_healthy([m])

    # -- looking at it -----------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        """Every member's client URL, in member order (stopped ones included)."""
        return [m.client_url for m in self.members]

    def store_url(self, prefix: str) -> str:
        """The ``etcd://`` URL of the store at ``prefix`` on this cluster (``Store.open``'s argument); a
        test's node name is made a valid prefix (its other characters become ``_``)."""
        prefix = re.sub(r"[^A-Za-z0-9._/-]", "_", prefix)
        return "etcd://" + ",".join(e.removeprefix("http://") for e in self.endpoints) + "/" + prefix

    def leader(self, timeout: float = START_TIMEOUT) -> Member:
        """The running member that is the leader, as a running member reports it (waits for an election)."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.members:
                if not m.running:
                    continue
                status = m.status()
                if status is None or str(status.get("leader", "0")) == "0":
                    continue
                leader_id = str(status["leader"])
                for other in self.members:
                    other_status = other.status() if other.running else None
                    if other_status is not None and str(other_status["header"]["member_id"]) == leader_id:  # type: ignore[index]
                        return other
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader among the running members after {timeout:.0f} s")
            time.sleep(0.05)

    def followers(self) -> list[Member]:
        """The running members that are not the leader."""
        leader = self.leader()
        return [m for m in self.members if m.running and m is not leader]

    def log_tail(self, m: Member, lines: int = 5) -> str:
        try:
            return " | ".join(m.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
