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
  outcome is final. A commit is durable once the next commit has flushed its data pages (which
  carries this commit's meta page to disk: see docs/design.md, "A commit's data flush makes the
  commits before it durable"), or, when nothing is waiting to be committed, once its own flush
  has returned: under load, one flush per commit. Answers are collected in memory and
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
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

from greenlet import getcurrent, greenlet

log = logging.getLogger("strata.server")

#: The most requests one batch takes (each at most the loop's 64 KiB): bounds one commit's size and
#: how long the first of them waits for the last to be read and checked.
MAX_BATCH = 64

#: What the batcher needs answered: ``answer(conn, req) -> (bytes to send, keep the connection)``.
Answer = Callable[[Any, Any], tuple[bytearray, bool]]


class WriteBatcher:
    """One worker's write batcher: a scheduler thread and a committer thread; see the module docstring.

    ``store()`` returns the store (opened lazily by the app), ``answer`` runs one request through
    the app with its answer collected in memory, ``deliver(answers)`` is called from the
    scheduler's thread with a list of ``(conn, answer bytes, keep-alive)`` and must hand them to
    the event loop (it does not send them itself: only the loop touches its poller).

    The threads hand work to each other through ``queue.SimpleQueue`` (a lock-free C queue: a
    hand-off per request through ``threading.Condition`` cost the loop about a seventh of its
    time in Python, measured with py-spy)."""

    def __init__(self, store: Callable[[], Any], answer: Answer,
                 deliver: Callable[[list[tuple[Any, bytearray, bool]]], None]) -> None:
        self._store = store
        self._answer = answer
        self._deliver = deliver
        # The scheduler's queue: requests (conn, req), flushed groups (_FLUSHED, groups), (_STOP, None).
        self._events: SimpleQueue[tuple[Any, Any]] = SimpleQueue()
        self._parked: SimpleQueue[list[Any] | None] = SimpleQueue()  # the committer's: groups, None to stop
        self._unfinished = 0  # groups handed to the committer and not resumed yet (scheduler only)
        self._stopping = False  # (scheduler only)
        #: Commits made and requests answered by this batcher (``requests / commits``: the mean
        #: number of requests per commit).
        self.commits = self.requests = 0
        self._threads = [threading.Thread(target=target, name=name, daemon=True) for target, name in (
            (self._schedule, "strata-writes"), (self._commit_loop, "strata-commits"))]
        for thread in self._threads:
            thread.start()

    def submit(self, conn: Any, req: Any) -> None:
        """Queue ``req`` (whole, read from ``conn``) for the next batch (called from the event loop)."""
        self._events.put((conn, req))

    def stop(self, timeout: float | None = None) -> None:
        """Answer what is queued, then end the threads (waits up to ``timeout`` seconds for each)."""
        self._events.put((_STOP, None))
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

        first = self._events.get()  # the store is the app's to open (in the worker's main thread): wait for work
        with self._store().parking(park):
            while (work := self._next_work(first)) is not None:
                first = None
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
                    self._parked.put(parked[:])
                    parked.clear()
                if answers:
                    self._deliver(answers[:])
                    answers.clear()
        self._parked.put(None)  # the committer's signal to end

    def _next_work(self, first: tuple[Any, Any] | None) -> tuple[list[list[Any]], list[tuple[Any, Any]]] | None:
        """Wait for flushed groups to resume or requests to start, and take every one that has
        arrived (at most :data:`MAX_BATCH` requests); None once stopped with nothing unfinished."""
        events = self._events
        done: list[list[Any]] = []
        batch: list[tuple[Any, Any]] = []
        item = first
        while True:
            if item is None:
                if done or batch:
                    try:
                        item = events.get_nowait()
                    except Empty:
                        return done, batch
                elif self._stopping and not self._unfinished:
                    return None
                else:
                    item = events.get()
            kind, value = item
            item = None
            if kind is _FLUSHED:
                done.extend(value)
            elif kind is _STOP:
                self._stopping = True
            else:
                batch.append((kind, value))
                if len(batch) == MAX_BATCH:
                    return done, batch

    # -- the committer: one commit at a time, of every group parked meanwhile -------------------

    def _commit_loop(self) -> None:
        """Commit what has parked; a commit's outcomes are final once the next commit has returned
        (its data flush carries this one's meta page: see ``engine.backend``) or, when nothing
        is waiting to be committed, once a flush of its own has."""
        queue = self._parked
        pending: tuple[Callable[[], None] | None, list[Any]] | None = None  # committed, not yet durable
        while True:
            if pending is None:
                groups = [queue.get()]
            else:
                try:
                    groups = [queue.get_nowait()]
                except Empty:  # nothing more to commit: flush the last one
                    self._done(*pending)
                    pending = None
                    continue
            while True:
                try:
                    groups.append(queue.get_nowait())
                except Empty:
                    break
            stopping = None in groups
            groups = [group for group in groups if group is not None]
            if groups:
                committed = self._commit(groups)
                if pending is not None:
                    self._done(*pending)  # this commit's flush covered it: no flush of its own
                pending = committed
            if stopping:
                if pending is not None:
                    self._done(*pending)
                return

    def _commit(self, groups: list[list[tuple[Any, Any]]]) -> tuple[Callable[[], None] | None, list[Any]]:
        self.commits += 1
        writes = [write for group in groups for _, write in group]
        try:
            finish = self._store().commit_parked(writes, defer_flush=True)
        except Exception:  # every parked write's outcome is set: each request answers its own
            finish = None
        return finish, groups

    def _done(self, finish: Callable[[], None] | None, groups: list[Any]) -> None:
        """Make a commit durable (its flush, skipped when a later commit's covered it) and hand its
        requests back to the scheduler."""
        if finish is not None:
            finish()
        self._events.put((_FLUSHED, groups))


_FLUSHED = object()  # marks a scheduler event: groups whose outcomes are final
_STOP = object()  # marks a scheduler event: answer what is queued, then end
