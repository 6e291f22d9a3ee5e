"""The background sealer: keeps the hash chain sealed, in batches, a bounded time behind the latest tx.

Readers seal what they ask for anyway (:func:`engine.etcd.chain.links`), so this thread is about latency,
not correctness: with it, ``tx_info``, ``changes`` and ``head`` of a tx older than the lag bound below
find its hash sealed and write nothing. Each :class:`~engine.etcd.store.EtcdStore` runs one (every server
worker, then), and the one that holds the **sealer seat** (:mod:`engine.etcd.seat`: an etcd lease) seals;
the others look at the seat every :data:`engine.etcd.seat.TTL` seconds and take it over when its holder's
lease expires. Even two sealers at once would be safe: a seal is guarded by the sealed head's mod
revision, and sealers computing the same txs write the same bytes.

**When the holder seals.** A seal is a housekeeping txn (a revision, a raft entry and an fsync on the
cluster, like a write) plus a few reads, and after it every writer's next commit sees a new housekeeping
count; sealing each tx alone would cost writers nearly a write per write. So txs are sealed in runs. The
holder **looks** (one read: the latest tx and the sealed head) and seals up to the latest tx when
:attr:`Sealer.batch` txs or more wait unsealed, or when :attr:`Sealer.interval` seconds have passed
since a look or the watch first showed the oldest of those waiting; otherwise it waits until then and
looks again. It looks after every seal (so under a backlog of ``batch`` txs or more it seals back to
back) and at each due time. When nothing waits it follows a watch on the log index ``P/log`` from the
revision after the one the latest tx was read at (no tx committed meanwhile is missed, and the watch
starts at the next revision: etcd serves a watch that starts in the past only from its 100 ms sync
loop, one that starts next at once) until the first tx shows up, and closes it. The watch is also
closed every third of the lease's TTL, to renew the lease; the lease is renewed (a keepalive) only
when a third of its TTL has passed since the last renewal, not at every look.

**What a seal costs the cluster.** The look reads ``P/sys/hk``, the sealed head and the tree head in
one serializable read txn (the member's own state, no quorum round; a stale one only makes the seal's
guarded txn fail and read again), and the holder keeps what its last seal stored
(:mod:`engine.etcd.tail`), so a seal after its first is the seal txn alone: no read of the segments,
the tree or the housekeeping key (each linearizable read costs the cluster a quorum round, about what
a write costs it).

**Lag bound** (how long after its commit a tx can stay unsealed, in steady state, that is while the
sealer keeps up with the writers: hashing is about 1,700 txs per second here): ``interval`` + one
watch delivery + two seals (one under way when the tx committed, then its own: one etcd txn each in
steady state, plus hashing); under a write rate of ``batch / interval`` txs per
second and more, the time one seal takes, since each look then finds ``batch`` txs waiting. After the holder dies: its
lease's TTL + up to one TTL until another looks + one housekeeping txn + the backlog at hashing speed.
A seal that fails (the cluster unreachable, or a tx that cannot be hashed: see
:func:`engine.etcd.chain.seal`) is logged and retried after :data:`RETRY_SECONDS`; readers asking for
those txs get the error themselves. A holder whose seal finds the seat taken by another steps down.
"""

from __future__ import annotations

import logging
import threading
import time

from ..errors import Conflict, EngineError
from .chain import head_of, seal
from .kv import Range
from .seat import Seat
from .tail import Memo, Seen
from .timeline import Timeline
from .watch import Watch

log = logging.getLogger(__name__)

#: Seconds the oldest unsealed tx waits, at most, for more to seal with it (the lag bound's main part).
INTERVAL = 0.25
#: Unsealed txs that make the holder seal at once when it looks, without waiting out :data:`INTERVAL`.
BATCH = 64
#: Seconds before trying again after a seal failed.
RETRY_SECONDS = 1.0


class Sealer:
    """A daemon thread sealing ``timeline``'s store (see the module docstring); :meth:`close` stops it.
    ``interval`` (seconds, >= 0; 0 seals every tx as soon as it is seen) and ``batch`` (txs, >= 1) decide
    when it seals."""

    def __init__(self, timeline: Timeline, interval: float = INTERVAL, seat: Seat | None = None,
                 batch: int = BATCH) -> None:
        self.timeline, self.interval, self.batch = timeline, interval, batch
        self.seat = seat or Seat(timeline)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watch: Watch | None = None
        self._renew_at = 0.0  # monotonic time after which the seat's lease is renewed at the next look
        self._due: float | None = None  # monotonic time by which the waiting txs are sealed (None: none wait)
        self._memo = Memo()  # what this sealer's last seal stored (engine.etcd.tail)
        self._thread = threading.Thread(target=self._run, name="strata-etcd-sealer", daemon=True)

    def start(self) -> Sealer:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and wait for it (a seal under way finishes first); give the seat up."""
        self._stop.set()
        with self._lock:
            if self._watch is not None:
                self._watch.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if not self._holds():
                        self._due = None  # another holds the seat: what waits is its to seal
                        self._stop.wait(self.seat.ttl)
                        continue
                    self._step()
                except Exception as exc:  # a daemon thread: one that died would leave readers to seal alone
                    if self._stop.is_set():
                        return
                    if isinstance(exc, Conflict):  # the seat was taken over: the holder's seals are fenced off
                        self.seat.lease = 0
                    elif isinstance(exc, EngineError):
                        log.warning("sealing the hash chain failed (retrying in %s s): %s", RETRY_SECONDS, exc)
                    else:
                        log.exception("sealing the hash chain failed (retrying in %s s)", RETRY_SECONDS)
                    self._stop.wait(RETRY_SECONDS)
        finally:
            self.seat.step_down()

    def _holds(self) -> bool:
        """Whether this process holds the seat (:meth:`Seat.hold`), renewing its lease only once a third
        of its TTL has passed since the last renewal: one keepalive per third of the TTL, not per look."""
        now = time.monotonic()
        if self.seat.lease and now < self._renew_at:
            return True
        held = self.seat.hold()
        if held:
            self._renew_at = now + self.seat.ttl / 3
        return held

    def _step(self) -> None:
        """Seal up to the latest tx if :attr:`batch` txs wait or the oldest has waited :attr:`interval`
        seconds; else wait for that (:meth:`_gather`). The latest tx and the sealed head: one read."""
        layout = self.timeline.layout
        # A serializable read: no quorum round for the cluster. A member a little behind shows an older
        # latest tx (sealed at the next look) or an older head (the seal's compares fail: it reads again).
        latest, revision, (hk, head, tree) = self.timeline.latest_with(
            [Range(k, serializable=True) for k in (layout.housekeeping, layout.seal_head, layout.tree_head)],
            serializable=True)
        waiting = latest - head_of(head)[0].tx
        if waiting <= 0:
            self._due = None
        elif self._due is None:
            self._due = time.monotonic() + self.interval
        if waiting >= self.batch or (waiting > 0 and self._due is not None and time.monotonic() >= self._due):
            # This look's read and the last seal's tail spare the seal its reads (engine.etcd.tail).
            seal(self.timeline, latest, self.seat.fence, seen=Seen(revision, hk, head, tree), memo=self._memo)
            self._due = None  # txs committed during the seal start their own wait at the next look
            return
        self._gather(revision + 1, waiting)

    def _gather(self, start_revision: int, waiting: int) -> None:
        """Wait until the due time (or the lease's renewal) when txs wait (``waiting``); else follow the log index from
        ``start_revision`` until the first tx shows up (it is due :attr:`interval` seconds later: wait
        until then), a third of the lease's TTL passes with none, or :meth:`close` is called. The watch
        is closed at the first tx: following every tx would cost this process a parse per tx and the
        cluster an event per tx for nothing."""
        if waiting <= 0:
            with self._lock:
                if self._stop.is_set():
                    return
                watch = self._watch = self.timeline.client.watch(self.timeline.layout.log, None, start_revision)
            timer = self._closing(watch)
            try:
                if next(watch, None) is not None:
                    self._due = time.monotonic() + self.interval
            finally:
                timer.cancel()
                with self._lock:
                    self._watch = None
                watch.close()
        if self._due is not None:  # waking to renew the lease first if that comes sooner (then looking again)
            self._stop.wait(max(0.0, min(self._due, self._renew_at) - time.monotonic()))

    def _closing(self, watch: Watch) -> threading.Timer:
        """A started timer closing ``watch`` at the due time (when txs wait) or after a third of the TTL."""
        timeout = self.seat.ttl / 3 if self._due is None else max(0.0, self._due - time.monotonic())
        timer = threading.Timer(timeout, watch.close)
        timer.start()
        return timer
