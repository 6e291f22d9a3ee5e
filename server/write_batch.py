"""The write batcher: one thread per worker answers its small writes, all that arrive together in one commit.

Why not the thread pool: a write handed to a pool thread costs a thread switch to start, a wait
on the group commit's lock, a wake-up per member after the flush, a future and a callback back to
the loop, each a hand-off of the GIL between threads that compete for it. Measured on 2 cores with
``--no-sync`` (the CPU cost alone), 16 clients writing one item each: the pool answered about
2,000 writes per second at about 540 us of worker CPU each, the same writes answered on the event
loop itself about 3,600 at about 370 us. The loop must not commit (a commit can wait seconds for
the store's write lock, held by another process), so the batcher keeps the loop's economy on a
thread of its own: no thread per request, one hand-off per batch.

Contract of :class:`WriteBatcher`:

- **What it answers.** The worker hands it (:meth:`WriteBatcher.submit`) write requests that
  arrived whole and small (see :mod:`server.worker`) on a route of
  :data:`server.routes.BATCHED`, on a store whose writes can park (:meth:`engine.Store.parking`).
- **A batch is whatever has arrived**, never a timer: the thread takes every request handed over
  since it last looked (at most :data:`MAX_BATCH`), runs each through the app in a greenlet of its
  own, and each request's engine write *parks* instead of waiting for its commit. Once every
  request of the batch has parked or been answered (a refused request never reaches the engine),
  the parked writes are committed together (:meth:`engine.Store.commit_parked`: one LMDB
  transaction, each write in a nested one with its own tx and error, one commit, one flush), and
  each request resumes with its own outcome and builds its answer. A request that writes again
  parks again and joins the next commit. Requests arriving meanwhile wait for the next batch.
- **Nothing is answered before its write is durable**: an answer is built only after its write's
  outcome is final, which the commit sets after its flush. Answers are collected in memory and
  handed back to the event loop in one call, which sends them without blocking (a client that
  does not read gets the worker's send deadline, as on the loop).
- Other threads of the worker (the pool's writes, expiry, retention) commit through the same group
  commit: a batch commits after the group in progress, with the writes queued by then.
- Greenlets switch only where a write parks, so no request sees another mid-way; they share the
  thread's state (msgpack packers, the read gate's token), which no engine call holds across a write.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent, greenlet

log = logging.getLogger("strata.server")

#: The most requests one batch takes (each at most the loop's 64 KiB): bounds one commit's size and
#: how long the first of them waits for the last to be read and checked.
MAX_BATCH = 64

#: What the batcher needs answered: ``answer(conn, req) -> (bytes to send, keep the connection)``.
Answer = Callable[[Any, Any], tuple[bytearray, bool]]


class WriteBatcher:
    """One worker's write batcher: a scheduler thread, a committer and a flusher; see the module docstring.

    ``store()`` returns the store (opened lazily by the app), ``answer`` runs one request through
    the app with its answer collected in memory, ``deliver(answers)`` is called from the
    scheduler's thread with a list of ``(conn, answer bytes, keep-alive)`` and must hand them to
    the event loop (it does not send them itself: only the loop touches its poller)."""

    def __init__(self, store: Callable[[], Any], answer: Answer,
                 deliver: Callable[[list[tuple[Any, bytearray, bool]]], None]) -> None:
        self._store = store
        self._answer = answer
        self._deliver = deliver
        self._inbox: deque[tuple[Any, Any]] = deque()  # requests handed over by the loop
        self._flushed: deque[list[Any]] = deque()  # groups whose outcomes are final: to resume
        self._ready = threading.Condition()  # the scheduler's: guards _inbox, _flushed, _stopping
        self._parked: deque[list[Any]] = deque()  # groups of parked writes waiting for the committer
        self._commit_ready = threading.Condition()
        self._flushes: deque[tuple[Callable[[], None] | None, list[Any]]] = deque()
        self._flush_ready = threading.Condition()
        self._stopping = False
        self._unfinished = 0  # groups handed to the committer and not resumed yet (scheduler only)
        #: Commits made and requests answered by this batcher (``requests / commits``: the mean
        #: number of requests per commit).
        self.commits = self.requests = 0
        self._threads = [threading.Thread(target=target, name=name, daemon=True) for target, name in (
            (self._schedule, "strata-writes"), (self._commit_loop, "strata-commits"),
            (self._flush_loop, "strata-flushes"))]
        for thread in self._threads:
            thread.start()

    def submit(self, conn: Any, req: Any) -> None:
        """Queue ``req`` (whole, read from ``conn``) for the next batch (called from the event loop)."""
        with self._ready:
            self._inbox.append((conn, req))
            self._ready.notify()

    def stop(self, timeout: float | None = None) -> None:
        """Answer what is queued, then end the threads (waits up to ``timeout`` seconds for each)."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        for thread in self._threads:
            thread.join(timeout)

    # -- the scheduler: runs requests, in greenlets, on one thread -----------------------------

    def _schedule(self) -> None:
        hub = getcurrent()
        parked: list[tuple[Any, Any]] = []
        answers: list[tuple[Any, bytearray, bool]] = []

        def park(write: Any) -> bool:
            current = getcurrent()
            if current is hub:  # the scheduler itself writing: it waits as any thread does
                return False
            parked.append((current, write))
            hub.switch()
            return True

        def run(conn: Any, req: Any) -> None:
            try:
                out, keepalive = self._answer(conn, req)
            except Exception:  # the app answers its own errors; this is a bug: close, keep serving the rest
                log.exception("a batched write request failed")
                out, keepalive = bytearray(), False
            answers.append((conn, out, keepalive))

        with self._ready:  # the store is the app's to open (in the worker's main thread): wait for work
            while not self._inbox and not self._stopping:
                self._ready.wait()
        with self._store().parking(park):
            while (work := self._next_work()) is not None:
                done, batch = work
                for group in done:  # outcomes final: each request goes on, and answers (or writes again)
                    self._unfinished -= 1
                    for waiting, _ in group:
                        waiting.switch()
                for conn, req in batch:
                    greenlet(run).switch(conn, req)
                self.requests += len(batch)
                if parked:
                    self._unfinished += 1
                    with self._commit_ready:
                        self._parked.append(parked[:])
                        self._commit_ready.notify()
                    parked.clear()
                if answers:
                    self._deliver(answers[:])
                    answers.clear()
        with self._commit_ready:
            self._parked.append([])  # the committer's signal to end (it passes it to the flusher)
            self._commit_ready.notify()

    def _next_work(self) -> tuple[list[list[Any]], list[tuple[Any, Any]]] | None:
        """Wait for flushed groups to resume or requests to start; None once stopped and idle."""
        inbox, flushed = self._inbox, self._flushed
        with self._ready:
            while not inbox and not flushed and not (self._stopping and not self._unfinished):
                self._ready.wait()
            if not inbox and not flushed:
                return None
            done = list(flushed)
            flushed.clear()
            return done, [inbox.popleft() for _ in range(min(len(inbox), MAX_BATCH))]

    # -- the committer: one commit at a time, of every group parked meanwhile -------------------

    def _commit_loop(self) -> None:
        queue = self._parked
        while True:
            with self._commit_ready:
                while not queue:
                    self._commit_ready.wait()
                groups = list(queue)
                queue.clear()
            if not groups[-1]:
                groups.pop()
                stopping = True
            else:
                stopping = False
            if groups:
                self._commit(groups)
            if stopping:
                with self._flush_ready:
                    self._flushes.append((_stop, []))
                    self._flush_ready.notify()
                return

    def _commit(self, groups: list[list[tuple[Any, Any]]]) -> None:
        self.commits += 1
        writes = [write for group in groups for _, write in group]
        try:
            finish = self._store().commit_parked(writes, defer_flush=True)
        except Exception:  # every parked write's outcome is set: each request answers its own
            finish = None
        with self._flush_ready:  # the next commit runs while this one flushes
            self._flushes.append((finish, groups))
            self._flush_ready.notify()

    # -- the flusher --------------------------------------------------------------------------

    def _flush_loop(self) -> None:
        flushes = self._flushes
        while True:
            with self._flush_ready:
                while not flushes:
                    self._flush_ready.wait()
                finish, groups = flushes.popleft()
            if finish is _stop:
                return
            if finish is not None:
                finish()
            with self._ready:
                self._flushed.extend(groups)
                self._ready.notify()


def _stop() -> None:
    """The flusher's signal to end."""
