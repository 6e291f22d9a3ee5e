"""The gunicorn master ``strata serve`` runs: gunicorn's own, except that no worker loses a signal sent at its birth.

A worker installs its signal handlers in ``init_process``, a while after ``fork``. Until then it
runs the handlers it inherited from the master, which queue the signal for the master's loop, a
loop the child never runs. So a SIGTERM that reached a worker in that window (``strata serve``
stopped just after it started, or while it replaced a worker) was lost: the worker went on
serving, and the master waited out its graceful timeout (30 s) before killing it. Seen on 2 busy
cores: 2 of 3 servers stopped right after answering their first request took 30 s to stop.

:class:`StrataArbiter` blocks the workers' signals around the ``fork``; a worker of a class built
on :class:`SignalsAfterHandlers` unblocks them once its own handlers are in place, and whatever
arrived meanwhile is delivered then, to those handlers. The master unblocks them as soon as the
fork has returned, so it misses nothing either. A worker class without the mixin is forked as
gunicorn forks it (its signals would otherwise stay blocked).
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from gunicorn.arbiter import Arbiter  # type: ignore[import-untyped]
from gunicorn.workers.sync import SyncWorker  # type: ignore[import-untyped]

#: The signals a gunicorn master sends its workers (SIGKILL cannot be blocked, and needs no handler).
WORKER_SIGNALS = frozenset({signal.SIGTERM, signal.SIGQUIT, signal.SIGINT, signal.SIGABRT, signal.SIGUSR1,
                            signal.SIGWINCH})


class SignalsAfterHandlers:
    """Mixin for a gunicorn worker class forked by :class:`StrataArbiter`: unblocks the worker
    signals once its handlers are installed."""

    def init_signals(self) -> None:
        super().init_signals()  # type: ignore[misc]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)


class StrataSyncWorker(SignalsAfterHandlers, SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker (``strata serve --threads 1``), forked with its signals blocked."""


class StrataArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master; forks workers with their signals blocked (see the module docstring)."""

    def spawn_worker(self) -> Any:
        if not issubclass(self.worker_class, SignalsAfterHandlers):
            return super().spawn_worker()
        before = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
        try:
            return super().spawn_worker()  # the child never returns from it: it exits
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


def run(application: Any) -> None:
    """Run ``application`` (a gunicorn ``BaseApplication``) under :class:`StrataArbiter`, as
    ``BaseApplication.run`` runs it under gunicorn's."""
    try:
        StrataArbiter(application).run()
    except RuntimeError as exc:
        print(f"\nError: {exc}\n", file=sys.stderr)
        sys.stderr.flush()
        sys.exit(1)
