"""A fork server for the reliability suite's writer children: start Python and import once, fork per child.

A crash test kills a writer child dozens of times, and each fresh ``python -m ...`` spent 0.3-1 s
starting the interpreter and importing the engine before its first write: most of the test's time.
:func:`spawn` asks one long-lived *zygote* process per test process to ``fork()`` instead. The
zygote is a process of its own, started with ``python -m tests.reliability.zygote`` and
single-threaded; it imports the writer modules and never opens a store. So every child is still a
fresh process that owns nothing of the test's (an LMDB environment never crosses ``fork()``, and a
SIGKILL hits only the child), with its stdin, stdout and stderr the pipes the test gave it.

Protocol, on a ``SOCK_SEQPACKET`` pair: the test sends the child's module and arguments (JSON) with
four descriptors (the child's stdin, stdout, stderr and a status pipe); the zygote forks and answers
the child's pid. The child runs the module as ``__main__`` and writes its exit code on the status
pipe before it exits; a child killed by a signal writes nothing. The kernel reaps children (the
zygote ignores SIGCHLD); the test waits on a pidfd. The zygote exits when the test's end closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from typing import IO

PRELOAD = ("tests.reliability.applier", "tests.reliability.group_writer", "server.write_batch")


# -- the zygote ---------------------------------------------------------------------------------

def serve(control: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # no zombies: the kernel reaps, the test watches a pidfd
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 16, 4)
        if not message:
            return
        pid = os.fork()
        if pid == 0:
            _child(control, fds, json.loads(message))
        for fd in fds:
            os.close(fd)
        control.send(str(pid).encode())


def _child(control: socket.socket, fds: list[int], argv: list[str]) -> None:
    code = 1
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        status = fds[3]
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
            os.close(fd)
        sys.argv = list(argv)
        sys.modules.pop(argv[0], None)  # preloaded: run as __main__ afresh (its imports stay loaded)
        try:
            runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # reported on stderr and in the exit code, as python -m would
            traceback.print_exc()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.write(status, str(code).encode())
    finally:
        os._exit(code)  # never back into the zygote's loop


# -- the test's side ----------------------------------------------------------------------------

class Forked:
    """What the tests use of ``subprocess.Popen``, for a child the zygote forked."""

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes], status: int) -> None:
        self.pid = pid
        self.stdin: IO[bytes] | None = stdin
        self.stdout: IO[bytes] | None = stdout
        self.returncode: int | None = None
        self._status = status
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # it already exited (and was reaped)
            self._pidfd = None

    def poll(self) -> int | None:
        if self.returncode is None and (self._pidfd is None or select.select([self._pidfd], [], [], 0)[0]):
            self._finish()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if self._pidfd is not None and not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"forked {self.pid}", timeout or 0)
            self._finish()
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _finish(self) -> None:
        written = os.read(self._status, 16)
        self.returncode = int(written) if written else -signal.SIGKILL  # nothing written: killed by a signal
        os.close(self._status)
        if self._pidfd is not None:
            os.close(self._pidfd)


class Zygote:
    """The test process's fork server (started on first use, one per process)."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = "import sys, socket; from tests.reliability import zygote; " \
               "zygote.preload(); zygote.serve(socket.socket(fileno=int(sys.argv[1])))"
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(theirs.fileno())], cwd=cwd, env=env,
                                     stdin=subprocess.DEVNULL, pass_fds=[theirs.fileno()])
        theirs.close()
        self._lock = threading.Lock()

    def spawn(self, module: str, args: list[str]) -> Forked:
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        status_r, status_w = os.pipe()
        mine = [stdin_w, stdout_r, status_r]
        theirs = [stdin_r, stdout_w, 2, status_w]  # stderr: the test's own, as a plain subprocess's
        try:
            with self._lock:
                socket.send_fds(self._control, [json.dumps([module, *args]).encode()], theirs)
                pid = int(self._control.recv(32))
        except BaseException:
            for fd in mine:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                if fd != 2:
                    os.close(fd)
        return Forked(pid, os.fdopen(stdin_w, "wb"), os.fdopen(stdout_r, "rb"), status_r)

    def close(self) -> None:
        self._control.close()  # the zygote sees the end and exits
        self.proc.wait(timeout=30)


def preload() -> None:
    for name in PRELOAD:
        __import__(name)
