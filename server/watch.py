"""Live change streams in one worker process: one poller thread, many waiting SSE connections.

LMDB has no notifications, and a write may come from any gunicorn worker (or any other process
that opens the store), so the only reliable signal is the store's tx counter. :class:`TxWatch`
runs one daemon thread per process that polls it with ``store.wait_for`` (a few-microsecond read,
sleeping 0.5 ms growing to 5 ms between polls) *only while a stream is waiting*, and wakes every
waiting stream through a :class:`threading.Condition` when the counter moves. N open streams cost
one poll loop, not N.

:class:`StreamSlots` caps the open streams of a process, so long-lived connections can never take
every gunicorn thread (see ``docs/http-api.md``, "Change streams and threads").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("strata.server")

#: How long one ``wait_for`` call of the poller lasts before it rechecks whether anyone still waits.
POLL_SLICE = 0.25


class TxWatch:
    """Wait for the store's latest tx to pass a value, from any number of threads.

    ``latest()`` reads the committed tx counter; ``wait_for(tx, timeout)`` blocks until that tx
    exists (``Store.wait_for``). Both are called from the poller thread only.
    """

    def __init__(self, latest: Callable[[], int], wait_for: Callable[[int, float], bool]) -> None:
        self._latest_fn = latest
        self._wait_for = wait_for
        self._cond = threading.Condition()
        self._latest = -1  # unknown until the poller's first read
        self._waiters = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    def wait(self, after: int, timeout: float) -> int:
        """Block until a tx above ``after`` is committed, or ``timeout`` seconds pass; return the
        latest tx seen (``<= after`` on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiters += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="strata-txwatch", daemon=True)
                self._thread.start()
            self._cond.notify_all()  # an idle poller starts polling
            try:
                while self._latest <= after and not self._stopped:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                return self._latest
            finally:
                self._waiters -= 1

    def stop(self) -> None:
        """End the poller and release every waiter (on worker exit, before the store closes)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(POLL_SLICE * 2)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._waiters == 0 and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                seen = self._latest
            try:
                if seen < 0 or self._wait_for(seen + 1, POLL_SLICE):
                    latest = self._latest_fn()
                    with self._cond:
                        if latest > self._latest:
                            self._latest = latest
                            self._cond.notify_all()
            except Exception:  # a closed or broken store: say so, back off, keep serving waiters
                if self._stopped:
                    return
                log.exception("the tx watch could not read the store")
                time.sleep(0.5)


class StreamSlots:
    """A count of the open streams of this process, capped at ``limit`` (None: no cap)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take a slot; False when all ``limit`` are in use."""
        with self._lock:
            if self.limit is not None and self.open >= self.limit:
                return False
            self.open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.open -= 1
