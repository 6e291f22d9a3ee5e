"""The guard that makes a replayed tx take exactly its own number (:meth:`engine.etcd.storage.EtcdStorage.replay`).

A tx's number follows from its revision (:mod:`engine.etcd.timeline`): it is the latest tx plus one when
no other tx commits between the moment the latest was read and the txn. :class:`NextTx` reads the log
index ``P/log`` (put by every tx, by no housekeeping txn) and the housekeeping count at one revision,
refuses with LMDB's ``cannot replay tx`` error if the next tx is not the replayed one, and adds the compare
``mod_revision(P/log) == seen`` to the commit's txn: if any tx lands in between, the txn fails, nothing
is written, and the next attempt sees the new latest tx and refuses. Housekeeping txns (sealing) in
between change no tx number and do not make it fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..txlog import check_replay
from .kv import Compare, Range, RangeResult, Request
from .timeline import Timeline, count_of


class NextTx:
    """A :class:`engine.etcd.commit.TxGuard` for replaying tx ``tx`` (at ``time_us``, for the error)."""

    def __init__(self, timeline: Timeline, tx: int, time_us: int) -> None:
        self.timeline, self.tx, self.time_us = timeline, tx, time_us
        self.written = False
        self._seen = -1

    def look(self) -> tuple[int, int]:
        """``(mod revision of P/log, latest tx)`` read at one revision."""
        layout = self.timeline.layout
        result = self.timeline.client.txn((), [Range(layout.log), Range(layout.housekeeping)])
        log, hk = result.responses
        assert isinstance(log, RangeResult) and isinstance(hk, RangeResult)
        count = count_of(hk.kvs)
        self.timeline.learn(count, result.revision)
        return (log.kvs[0].mod_revision if log.kvs else 0), result.revision - self.timeline.base - count

    def guard(self, result_of: Callable[[int], Any]) -> tuple[list[Compare], list[Request]]:
        """The compare keeping the latest tx as read; ``INVALID_PARAMETERS`` (LMDB's words) if the tx the
        write would take, ``result_of(latest)``, is not the replayed one."""
        self._seen, latest = self.look()
        check_replay(result_of(latest), self.time_us, self.tx, self.time_us)
        return [Compare(self.timeline.layout.log, "MOD", "==", self._seen)], []

    def moved(self) -> bool:
        """After a failed txn: whether a tx committed since :meth:`guard` read the latest one."""
        return self.look()[0] != self._seen
