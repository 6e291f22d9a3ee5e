"""The write batcher: one thread per worker answers its small writes, all that arrive together in one commit.

Why not the thread pool: a write handed to a pool thread costs a thread switch to start, a wait
on the group commit's lock, a wake-up per member after the flush, a future and a callback back to
the loop, each a hand-off of the GIL between threads that compete for it. Measured on 2 cores with
``--no-sync`` (the CPU cost alone), 16 clients writing one item each: the pool answered about
2,000 writes per second at about 540 us of worker CPU each, the same writes answered on the event
loop itself about 3,600 at about 370 us. The loop must not commit (a commit can wait seconds for
the store's write lock, held by another process), so the batcher keeps the loop's economy on a
thread of its own: no thread per request, one hand-off each way per batch.

Contract of :class:`WriteBatcher`:

- **What it answers.** The worker hands it (:meth:`WriteBatcher.submit`) write requests that
  arrived whole and small (see :mod:`server.worker`) on a route of
  :data:`server.routes.BATCHED`, on a store whose writes can park (:meth:`engine.Store.parking`).
- **A batch is whatever has arrived**, never a timer: the thread takes every request handed over
  since it last looked (at most :data:`MAX_BATCH`), runs each through the app in a greenlet of its
  own (a greenlet done with its request takes the next one: up to ``2 * MAX_BATCH`` are kept), and
  each request's engine write *parks* instead of waiting for its commit. Once every
  request of the batch has parked or been answered (a refused request never reaches the engine),
  the thread commits the parked writes together (:meth:`engine.Store.commit_parked`: one LMDB
  transaction, each write in a nested one with its own tx and error, one commit), then resumes
  each request with its own outcome, once durable, to build its answer. A request that writes
  again parks again and joins the next commit. Requests that arrive while the commit waits for
  its turn (the store's write lock, held by another worker's commit and flush) join it once it
  has the lock: they are run until they park, inside its transaction (up to :data:`MAX_BATCH`
  writes per commit). Those arriving later wait for the next batch; the event loop goes on
  reading them (and answering reads) while the thread waits for the disk.
- **Nothing is answered before its write is durable**: an answer is built only after its write's
  outcome is final. A commit is durable once its meta page is flushed: by a flush of its own when
  no request is waiting, else by the next batch's commit, whose data flush carries it (see
  docs/design.md, "A commit's data flush makes the commits before it durable"): under load one
  flush per commit, not two. Answers are collected in memory and sent from the thread as far as
  each socket takes them at once; the event loop sends the rest without blocking (a client that
  does not read gets the worker's send deadline, as on the loop) and keeps or closes each
  connection.
- Other threads of the worker (the pool's writes, expiry, retention) commit through the same group
  commit: a batch commits after the group in progress, with the writes queued by then.
- Greenlets switch only where a write parks, so no request sees another mid-way; they share the
  thread's state (msgpack packers, the read gate's token), which no engine call holds across a write.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from queue import Empty, SimpleQueue
from typing import Any

from greenlet import getcurrent, greenlet

log = logging.getLogger("strata.server")

#: The most requests one batch takes (each at most the loop's 64 KiB): bounds one commit's size and
#: how long the first of them waits for the last to be read and checked.
MAX_BATCH = 64

#: Greenlets kept for the next requests once theirs is answered: a new greenlet's first Python frame
#: takes a fresh 16 KiB frame stack from the OS (an mmap, its page faults, a munmap at its end).
_MAX_IDLE = 2 * MAX_BATCH

#: What the batcher needs answered: ``answer(conn, req) -> (bytes to send, keep the connection)``.
Answer = Callable[[Any, Any], tuple[bytearray, bool]]


class WriteBatcher:
    """One worker's write thread; see the module docstring.

    ``store()`` returns the store (opened lazily by the app), ``answer`` runs one request through
    the app with its answer collected in memory, ``deliver(answers)`` is called from the batcher's
    thread with a list of ``(conn, answer bytes, keep-alive)`` and must hand them to the event
    loop (it may send what the sockets take at once; only the loop touches its poller).

    The loop hands requests over through a ``queue.SimpleQueue`` (C: a hand-off per request through
    ``threading.Condition`` cost the loop about a seventh of its time in Python, measured with
    py-spy). The thread commits and flushes itself: a separate committer thread, tried, answered 19%
    fewer writes per second at 16 clients (two more thread hand-offs per batch)."""

    def __init__(self, store: Callable[[], Any], answer: Answer,
                 deliver: Callable[[list[tuple[Any, bytearray, bool]]], None]) -> None:
        self._store = store
        self._answer = answer
        self._deliver = deliver
        self._events: SimpleQueue[tuple[Any, Any]] = SimpleQueue()  # requests (conn, req), or (_STOP, None)
        self._stopping = False
        #: Commits made and requests answered by this batcher (``requests / commits``: the mean
        #: number of requests per commit).
        self.commits = self.requests = 0
        self._thread = threading.Thread(target=self._run, name="strata-writes", daemon=True)
        self._thread.start()

    def submit(self, conn: Any, req: Any) -> None:
        """Queue ``req`` (whole, read from ``conn``) for the next batch (called from the event loop)."""
        self._events.put((conn, req))

    def stop(self, timeout: float | None = None) -> None:
        """Answer what is queued, then end the thread (waits up to ``timeout`` seconds)."""
        self._events.put((_STOP, None))
        self._thread.join(timeout)

    def _run(self) -> None:
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
        runners = _Runners(hub, run)
        self._late_to = (runners, parked)

        first = self._events.get()  # the store is the app's to open (in the worker's main thread): wait for work
        store = self._store()
        pending: tuple[Any, list[tuple[Any, Any]]] | None = None  # committed, its flush still owed
        with store.parking(park):
            while (batch := self._next_batch(first, wait=pending is None and not parked)) is not None:
                first = None
                for job in batch:
                    runners.start(job)
                self.requests += len(batch)
                pending = self._advance(store, parked, pending)
                if answers:
                    self._deliver(answers[:])
                    answers.clear()
            if pending is not None:
                self._resume(*pending)
            while parked:  # stopping: requests that wrote again still get their commit
                self._resume(*self._commit(store, parked))
            if answers:
                self._deliver(answers[:])

    def _advance(self, store: Any, parked: list[tuple[Any, Any]],
                 pending: tuple[Any, list[tuple[Any, Any]]] | None) -> tuple[Any, list[tuple[Any, Any]]] | None:
        """Commit what has parked; then ``pending`` (the previous commit) is durable without a flush
        of its own, LMDB's data flush of this commit having carried its meta page: resume its
        requests. The new commit stays pending while more requests wait (the next commit will
        carry it in turn), else it flushes now. Returns what is pending."""
        committed = self._commit(store, parked) if parked else None
        if pending is not None:
            self._resume(*pending)
        if committed is not None and not parked and self._events.empty():  # nothing to carry it: flush
            self._resume(*committed)
            return None
        return committed

    def _commit(self, store: Any, parked: list[tuple[Any, Any]]) -> tuple[Any, list[tuple[Any, Any]]]:
        """Commit the parked writes (empties ``parked``), with the requests that arrive until the
        commit holds the store's write lock (see :meth:`_late`); the flush still owed and the group."""
        group = parked[:]
        parked.clear()
        self.commits += 1
        try:
            finish = store.commit_parked([write for _, write in group], defer_flush=True,
                                         late=partial(self._late, group))
        except Exception:  # every write's outcome is set: each request answers its own
            finish = None
        return finish, group

    def _late(self, group: list[tuple[Any, Any]]) -> list[Any]:
        """Called by the engine once the commit of ``group`` holds the store's write lock: run the
        requests that arrived meanwhile (while it waited for another worker's commit and flush, or
        for this process's commit in progress) until they park, as a batch would; their writes join
        this commit (added to ``group``, resumed with it). Without this they would wait for the
        next commit and its flush: at 16 clients on 2 workers each commit waits for the other
        worker's. A commit takes at most :data:`MAX_BATCH` writes this way."""
        runners, parked = self._late_to
        room = MAX_BATCH - len(group)
        if room <= 0 or self._stopping or self._events.empty():
            return []
        batch = self._next_batch(None, wait=False, limit=room)
        if not batch:
            return []
        for job in batch:
            runners.start(job)
        self.requests += len(batch)
        joined = parked[:]
        parked.clear()
        group.extend(joined)
        return [write for _, write in joined]

    @staticmethod
    def _resume(finish: Any, group: list[tuple[Any, Any]]) -> None:
        """Make a commit durable (its flush, skipped when a later commit's data flush carried its
        meta page) and resume its requests."""
        if finish is not None:
            finish()
        for waiting, _ in group:
            waiting.switch()

    def _next_batch(self, first: tuple[Any, Any] | None, wait: bool,
                    limit: int = MAX_BATCH) -> list[tuple[Any, Any]] | None:
        """Every request that has arrived (at most ``limit``), waiting for one if ``wait`` (else
        possibly none); None once stopped."""
        events = self._events
        batch: list[tuple[Any, Any]] = []
        item = first
        while not self._stopping:
            if item is None:
                if batch or not wait:
                    try:
                        item = events.get_nowait()
                    except Empty:
                        return batch
                else:
                    item = events.get()
            kind, value = item
            item = None
            if kind is _STOP:
                self._stopping = True
            else:
                batch.append((kind, value))
                if len(batch) == limit:
                    return batch
        return batch or None


class _Runners:
    """The greenlets that run the requests, one each at a time, under ``hub`` (the batcher's thread),
    each kept for another request once done with its own (at most :data:`_MAX_IDLE` kept)."""

    def __init__(self, hub: Any, run: Callable[[Any, Any], None]) -> None:
        self._hub = hub
        self._run = run
        self._idle: list[Any] = []

    def start(self, job: tuple[Any, Any]) -> None:
        """Run ``run(*job)`` in a greenlet until it parks or ends (from the hub)."""
        idle = self._idle
        (idle.pop() if idle else greenlet(self._serve)).switch(job)

    def _serve(self, job: tuple[Any, Any]) -> None:
        while True:
            self._run(*job)
            if len(self._idle) >= _MAX_IDLE:
                return
            self._idle.append(getcurrent())
            job = self._hub.switch()


_STOP = object()  # marks the request queue's end: answer what is queued before it, then end
