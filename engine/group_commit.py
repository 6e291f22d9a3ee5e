"""Group commit: the writes that wait at the same moment share one commit (leader and followers).

A thread that submits a write while no group is being committed becomes the *leader*: it takes
its own write plus every write already queued (up to :data:`MAX_GROUP_COST` operations) and hands
them to the committer, which runs them and, before committing, takes the writes that queued
meanwhile. When the committer is done, the leader wakes the next leader (the first queued
write's thread), then, after the group's flush, every member with its own result or exception.
A thread that submits while a group is in progress queues its write and sleeps. There is no
timer anywhere: a group is whatever was already waiting, so an uncontended write is a group of
one and pays two lock round trips for it, as the plain write lock it replaces did. bbolt's
``DB.Batch`` combines concurrent updates the same way (with a timer, which this avoids).

What :class:`GroupCommit` leaves to its committer (:class:`engine.backend.Backend` supplies it)
is everything about storage: running the members so that each failure is its own (directly in
one transaction, rerun each in a nested one if one fails), one commit, one flush. Its own
contract is about order, outcomes and wake-ups: see the class docstring.

**Parked writes.** A thread that serves many requests at once, each in a coroutine of its own
(the server's write batcher runs each request in a greenlet), cannot sleep in :meth:`GroupCommit.submit`:
that would stop every request it serves. Inside :meth:`GroupCommit.parking` a write is handed to a
``park`` function instead, which switches to the thread's scheduler; the scheduler commits every
parked write together with :meth:`GroupCommit.submit_all` (one group, one flush) and then resumes
each request with its own outcome. Same contract as threads: own tx, own error, nothing returned
before the flush.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: The most operations (items written) one group may hold. A write that alone declares more, or
#: declares no cost at all (``cost=None``: unknown, e.g. dropping a namespace or a compaction
#: chunk), is committed in a group of its own. Bounds the size of one LMDB transaction.
MAX_GROUP_COST = 10_000


class Member(Generic[T]):
    """One submitted write: what to run, whether it wants a flush, and its outcome once committed.

    The committer sets exactly one of :attr:`result` (with :attr:`done`) or :attr:`error` per
    member; :meth:`reset` clears both before it reruns a group.
    """

    __slots__ = ("_thread", "_wake", "cost", "done", "error", "fn", "late", "lead", "parts", "result", "sync")

    def __init__(self, fn: Callable[[Any], T], sync: bool, cost: int | None) -> None:
        self.fn = fn
        #: For the placeholder :meth:`GroupCommit.submit_all` queues: the writes it stands for.
        self.parts: list[Member[Any]] | None = None
        #: For that placeholder: the scheduler's writes parked after it took its turn (see submit_all).
        self.late: Callable[[], list[Member[Any]]] | None = None
        self.sync = sync
        self.cost = MAX_GROUP_COST if cost is None else cost
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False
        self.lead = False  # set when this member's thread must lead the next group
        self._wake: threading.Lock | None = None
        self._thread = 0  # the submitting thread's ident, once queued

    def reset(self) -> None:
        self.result, self.error, self.done = None, None, False

    def succeed(self, result: T) -> None:
        self.result, self.error, self.done = result, None, True

    def fail(self, error: BaseException) -> None:
        self.result, self.error, self.done = None, error, False

    def outcome(self) -> T:
        """The member's result, or its exception raised in the calling thread."""
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # done: the committer set the result


class _Parkers(threading.local):
    """Per thread: the ``park`` function of :meth:`GroupCommit.parking`, None outside it. A class
    attribute, so a thread that never parked reads None without the AttributeError a plain
    ``threading.local`` raises (and ``getattr`` swallows) on every write."""

    park: Callable[[Member[Any]], bool] | None = None


class GroupCommit:
    """Combine concurrent writes of one process into groups committed together.

    Contract (``commit_group`` and ``flush_group`` are the committer's two halves):

    * ``submit(fn, sync=, cost=)`` returns only after the group holding the write went through
      ``commit_group(group)`` and, if that returned a token (a positive int; 0: no flush owed),
      ``flush_group(group, token)``: the member's
      outcome (``fn``'s result, or its exception raised in the caller's thread) is final by then,
      so nothing is acknowledged before the flush that makes it durable.
    * Groups are committed one at a time, members in submission order (a group is a contiguous
      run of the queue), so what the committer numbers in order is gapless and in queue order.
      A group's flush runs after the next group's leader is woken: the next commit overlaps it.
    * ``commit_group`` must set every member's outcome (:meth:`Member.succeed` or
      :meth:`Member.fail`); ``flush_group`` may turn them into failures. If either raises
      instead (an interrupt in the leader's thread), the other members get a
      :class:`RuntimeError` saying so (nothing unflushed is acknowledged), the leader's caller
      gets the exception, and the queue moves on: no thread waits for a group that is gone.
    * A group holds at most :data:`MAX_GROUP_COST` summed member costs, its first member always
      included; a group of one is its leader's own write. The committer may call :meth:`more`
      once it has run the members, to add the writes that queued meanwhile. A write submitted from inside a
      committing ``fn`` raises :class:`RuntimeError` (it would wait for itself).
    * Not for use across ``fork()``: its lock may be held by a thread the child does not have
      (:class:`engine.backend.Backend` refuses to write after a fork before reaching it).
    """

    def __init__(self, commit_group: Callable[[list[Member[Any]]], int],
                 flush_group: Callable[[list[Member[Any]], int], None]) -> None:
        self._commit_group = commit_group
        self._flush_group = flush_group
        self._lock = threading.Lock()
        self._queue: deque[Member[Any]] = deque()
        self._busy = False  # a leader is committing a group; invariant: queue non-empty => busy
        self._leader = 0  # the leading thread's ident, while busy
        self._late: Callable[[], list[Member[Any]]] | None = None  # the group being committed's late()
        self._parkers = _Parkers()

    @contextmanager
    def parking(self, park: Callable[[Member[Any]], bool]) -> Iterator[None]:
        """While inside, :meth:`submit` in this thread hands its write to ``park(member)`` instead
        of queueing it and sleeping. ``park`` returns True once ``member``'s outcome is final (its
        scheduler committed it with :meth:`submit_all` and flushed it), or False at once to have
        the write submitted as usual (say, when called from the scheduler itself)."""
        before = self._parkers.park
        self._parkers.park = park
        try:
            yield
        finally:
            self._parkers.park = before

    def submit(self, fn: Callable[[Any], T], *, sync: bool, cost: int | None) -> T:
        member = Member(fn, sync, cost)
        park = self._parkers.park
        if park is not None and park(member):
            return member.outcome()
        if self._wait_turn(member):
            self._lead(member)
        return member.outcome()

    def _wait_turn(self, member: Member[Any]) -> bool:
        """Queue ``member`` behind the group in progress and sleep until the leader wakes it, or,
        with no group in progress, take the lead at once. True when this thread must lead the next
        group; False when a leader committed ``member`` (its outcome is final). A queued
        :meth:`submit_all` placeholder is only ever woken to lead."""
        with self._lock:
            if self._busy:
                thread = threading.get_ident()
                if self._leader == thread:  # queueing would wait for itself forever
                    raise RuntimeError("a write function must not start another write")
                wake = member._wake = threading.Lock()
                wake.acquire()
                member._thread = thread
                self._queue.append(member)
            else:
                self._busy = True
                self._leader = threading.get_ident()
                return True
        wake.acquire()  # released by the leader: either done, or this thread leads next
        return member.lead

    def submit_all(self, members: list[Member[Any]], *, defer_flush: bool = False,
                   late: Callable[[], list[Member[Any]]] | None = None) -> Callable[[], None] | None:
        """Commit ``members`` (parked writes, see :meth:`parking`) together, in order, as one group
        this thread leads once the group in progress is done, with the writes queued by then (its
        cost bound is not applied to ``members`` themselves: whoever parked them bounds them).
        Returns when every member's outcome is final and flushed when asked; an interrupt while
        committing fails every member and is raised here.

        With ``defer_flush`` it returns as soon as the group is committed (the next group may
        commit at once), with the rest of the work to call, from any thread, before any outcome
        of the group is used: the flush, then waking the other threads' writes of the group.
        Outcomes are final once it returns; until then a member's success is not durable.

        ``late()``, if given, is called (in this thread) by :meth:`more` once the committer holds
        the write transaction, and returns the writes parked since (by requests that arrived while
        this thread waited for its turn or for the store's write lock): they join this group, and
        their outcomes are final when the others' are. It may be called more than once (a group
        that runs again); each call returns only writes not returned before."""
        if not members:
            return None
        ticket: Member[None] = Member(_nothing, sync=False, cost=0)
        ticket.parts = members
        ticket.late = late
        self._wait_turn(ticket)  # True: no group takes a placeholder in, so it is woken only to lead
        finish = self._lead(ticket, defer_flush=defer_flush)
        if ticket.error is not None:
            raise ticket.error
        return finish

    def _take(self, own: Member[Any]) -> list[Member[Any]]:
        """The next group: ``own`` (the head of the queue, if queued) and the writes behind it."""
        if own.parts is None and not self._queue:  # a lone write (the usual case), without the lock:
            return [own]  # a write queued just now joins the commit through more(), or leads the next
        with self._lock:
            queue = self._queue
            if queue and queue[0] is own:
                queue.popleft()
            group = [own] if own.parts is None else list(own.parts)
            if queue:
                self._extend(group)
            return group

    def _extend(self, group: list[Member[Any]]) -> bool:
        """Move queued writes into ``group`` while they fit its cost; whether any did. Lock held."""
        queue, total, before = self._queue, sum(m.cost for m in group), len(group)
        # A queued submit_all placeholder is never taken in: its thread leads its own writes.
        while queue and queue[0].parts is None and total + queue[0].cost <= MAX_GROUP_COST:
            total += queue[0].cost
            group.append(queue.popleft())
        return len(group) > before

    def more(self, group: list[Member[Any]]) -> bool:
        """For the committer, once it has run ``group``'s members and before it commits: add the
        writes queued meanwhile (within the cost bound). Whether it added any."""
        late = self._late
        joined = late() if late is not None else None
        if joined:
            group.extend(joined)
        if not self._queue:  # the usual answer, without the lock: a write queued just now joins the next group
            return bool(joined)
        with self._lock:
            return self._extend(group) or bool(joined)

    def _lead(self, own: Member[Any], defer_flush: bool = False) -> Callable[[], None] | None:
        """Commit the next group, led by ``own``; flush and wake it now, or (``defer_flush``)
        return the function that does."""
        group = self._take(own)
        self._late = own.late
        try:
            try:
                flush = self._commit_group(group)
            finally:
                self._late = None
                self._hand_off()  # the next group commits while this one flushes
        except BaseException as exc:
            self._interrupted(group, own, exc)
            self._wake(group, own)
            return None
        if defer_flush:
            return partial(self._finish, group, own, flush)
        if flush or len(group) > 1 or group[0] is not own:
            self._finish(group, own, flush)
        return None  # else a lone write owing no flush (the usual case): nothing to flush, no one to wake

    def _finish(self, group: list[Member[Any]], own: Member[Any], flush: int) -> None:
        """Flush a committed group if asked, then wake its other threads' writes."""
        try:
            if flush:
                self._flush_group(group, flush)
        except BaseException as exc:
            self._interrupted(group, own, exc)
        finally:
            self._wake(group, own)

    @staticmethod
    def _interrupted(group: list[Member[Any]], own: Member[Any], exc: BaseException) -> None:
        """The leader's commit or flush raised ``exc`` (an interrupt): no member is acknowledged."""
        mine = own.parts or ()
        for member in group:  # even one that committed: its flush is not known to have happened
            if member is not own and member not in mine:
                member.fail(RuntimeError("the thread committing this write was interrupted; "
                                         "it may or may not have committed"))
        for member in mine:
            member.fail(exc)
        own.fail(exc)

    @staticmethod
    def _wake(group: list[Member[Any]], own: Member[Any]) -> None:
        for member in group:
            if member is not own and member._wake is not None:
                member._wake.release()

    def _hand_off(self) -> None:
        """Wake the first queued write's thread to lead the next group, or mark the queue idle."""
        with self._lock:
            if self._queue:
                successor = self._queue[0]
                successor.lead = True
                self._leader = successor._thread
                assert successor._wake is not None
                successor._wake.release()
            else:
                self._busy, self._leader = False, 0


def _nothing(_txn: Any) -> None:
    """The function of :meth:`GroupCommit.submit_all`'s placeholder, which is never run."""
