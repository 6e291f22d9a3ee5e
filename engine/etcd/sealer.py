"""The background sealer: keeps the hash chain sealed a batch interval behind the latest tx.

Readers seal what they ask for anyway (:func:`engine.etcd.chain.links`), so this thread is about latency,
not correctness: with it, ``tx_info``, ``changes`` and ``head`` of a tx older than one batch interval
find its hash sealed and write nothing. Each :class:`~engine.etcd.store.EtcdStore` runs one (every server
worker, then), and the one that holds the **sealer seat** (:mod:`engine.etcd.seat`: an etcd lease) seals;
the others look at the seat every :data:`engine.etcd.seat.TTL` seconds and take it over when its holder's
lease expires. Even two sealers at once would be safe: a seal is guarded by the sealed head's mod
revision, and sealers computing the same txs write the same bytes.

The holder's loop: seal up to the latest tx; once nothing is left to seal, follow a watch on the log
index ``P/log`` from the revision after the one the latest tx was read at (so no tx committed meanwhile
is missed, and the watch starts at the next revision: etcd serves a watch that starts in the past only
from its 100 ms sync loop, one that starts next at once); on the first tx it shows, close the watch,
wait :attr:`Sealer.interval` seconds for more txs to gather (one seal txn per batch, not per tx), and go
round again. Each seal grows the Merkle tree too (:mod:`engine.etcd.txtree`), so proofs lag exactly as
receipts do. The watch is also closed every third of the lease's TTL, to renew the lease. **Lag bound**
in steady state: ``interval`` + one watch delivery + one seal (a few txns); after the holder dies: its
lease's TTL + up to one TTL until another looks + one housekeeping txn + the backlog at hashing speed. A
seal that fails (the cluster unreachable, or a tx that cannot be hashed: see
:func:`engine.etcd.chain.seal`) is logged and retried after :data:`RETRY_SECONDS`; readers asking for
those txs get the error themselves. A holder whose seal finds the seat taken by another steps down.
"""

from __future__ import annotations

import logging
import threading

from ..errors import Conflict, EngineError
from .chain import seal, sealed_head
from .seat import Seat
from .timeline import Timeline
from .watch import Watch

log = logging.getLogger(__name__)

#: Seconds a batch gathers after the first tx the sealer sees (the steady-state receipt lag's main part).
INTERVAL = 0.05
#: Seconds before trying again after a seal failed.
RETRY_SECONDS = 1.0


class Sealer:
    """A daemon thread sealing ``timeline``'s store (see the module docstring); :meth:`close` stops it."""

    def __init__(self, timeline: Timeline, interval: float = INTERVAL, seat: Seat | None = None) -> None:
        self.timeline, self.interval = timeline, interval
        self.seat = seat or Seat(timeline)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watch: Watch | None = None
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
                    if not self.seat.hold():
                        self._stop.wait(self.seat.ttl)
                        continue
                    latest, revision = self.timeline.latest()
                    if sealed_head(self.timeline)[0].tx < latest:
                        seal(self.timeline, latest, self.seat.fence)
                        continue  # the seal took a revision: read the latest again before watching
                    if not self._await_tx(revision + 1, self.seat.ttl / 3):
                        continue  # no tx for a third of the TTL: renew the lease
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
                    continue
                self._stop.wait(self.interval)
        finally:
            self.seat.step_down()

    def _await_tx(self, start_revision: int, timeout: float) -> bool:
        """Block until a tx is committed at or after ``start_revision`` (True), ``timeout`` seconds pass or
        :meth:`close` is called (False)."""
        with self._lock:
            if self._stop.is_set():
                return False
            watch = self._watch = self.timeline.client.watch(self.timeline.layout.log, None, start_revision)
        timer = threading.Timer(timeout, watch.close)
        timer.start()
        try:
            return next(watch, None) is not None
        finally:
            timer.cancel()
            with self._lock:
                self._watch = None
            watch.close()
