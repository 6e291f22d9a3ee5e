"""Retention policies: how much history a store keeps, applied by a background thread.

``Store.open(path, retention=...)`` takes ``None`` (keep everything, the default), a
:class:`Retention`, an ``int`` N (keep the last N txs readable) or a ``timedelta`` (keep every tx
committed within it, and the state as of its start). A pass computes the horizon the policy
allows and runs :func:`engine.compaction.compact` up to it.

**Why a background thread, not work at commit.** The write path stays exactly as fast as without
retention (no commit pays for an occasional compaction), and compaction already works in bounded
chunks, each its own short write transaction, so a pass interleaves with writers instead of
stalling one of them. A pass every ``interval`` seconds (default 1) moves the horizon by about one
second of txs, and compaction's cost is O(operations in that window), so the work per pass is
proportional to the write rate, not to the store's size. Several processes with the same policy
each run a thread; they coordinate through the progress kept in ``meta`` (a chunk reads it inside
its write transaction), so the only cost of that is a few redundant cheap passes.

:meth:`Store.apply_retention` runs one pass synchronously (tests, cron jobs, the CLI).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import compaction, schema, txlog
from .compaction import CompactionReport
from .errors import EngineError, NotSupported, StoreClosed

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Retention:
    """Keep the last ``txs`` txs readable, and/or every tx of the last ``seconds`` seconds (and the
    state as of that moment). With both, the horizon is the lower one (more is kept). ``interval``:
    seconds between background passes."""

    txs: int | None = None
    seconds: float | None = None
    interval: float = 1.0

    def __post_init__(self) -> None:
        if self.txs is None and self.seconds is None:
            raise ValueError("a Retention needs txs or seconds (use retention=None to keep everything)")
        if self.txs is not None and (type(self.txs) is not int or self.txs < 1):
            raise ValueError(f"txs must be a positive integer, not {self.txs!r}")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"seconds must be positive, not {self.seconds!r}")
        if not self.interval > 0:
            raise ValueError(f"interval must be positive, not {self.interval!r}")

    @classmethod
    def of(cls, policy: Retention | int | timedelta | None) -> Retention | None:
        """A policy from what ``Store.open(retention=...)`` accepts."""
        if policy is None or isinstance(policy, Retention):
            return policy
        if isinstance(policy, timedelta):
            return cls(seconds=policy.total_seconds())
        if type(policy) is int:
            return cls(txs=policy)
        raise ValueError(f"retention must be None, a Retention, an int (txs) or a timedelta, not {policy!r}")

    def horizon(self, txn: Any, dbs: dict[str, Any], now_us: int) -> int:
        """The horizon this policy allows, read in one transaction."""
        latest = schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)
        targets = []
        if self.txs is not None:
            targets.append(max(0, latest - self.txs + 1))
        if self.seconds is not None:
            targets.append(txlog.tx_at(txn, dbs, max(0, now_us - round(self.seconds * 1_000_000))))
        return min(targets)


def apply(store: Store, policy: Retention, should_stop: Any = None) -> CompactionReport | None:
    """One retention pass: compact up to the policy's horizon (and finish a pending compaction). A store
    on etcd has its own pass (:func:`engine.etcd.retention.apply`)."""
    if getattr(store, "backend", "lmdb") == "etcd":
        from .etcd.retention import apply as apply_on_etcd  # the etcd package imports this module

        return apply_on_etcd(store, policy, should_stop)  # type: ignore[arg-type]
    NotSupported.unless_lmdb(store, "retention")
    backend = store._backend
    now_us = store._now_us()  # the store's clock, which also stamped the commit times compared with it

    def plan(txn: Any) -> tuple[int, int, bool]:
        return (policy.horizon(txn, backend.dbs, now_us), compaction.horizon(txn, backend.meta),
                txn.get(schema.COMPACTION, db=backend.meta) is not None)

    target, current, pending = backend.read(plan)
    if target <= current and not pending:
        return None
    return compaction.compact(store, target if target > current else None, should_stop=should_stop)


class RetentionThread(threading.Thread):
    """Applies a policy every ``policy.interval`` seconds until :meth:`stop`."""

    def __init__(self, store: Store, policy: Retention) -> None:
        super().__init__(name=f"strata-retention:{store.path}", daemon=True)
        self.store = store
        self.policy = policy
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.policy.interval):
            try:
                apply(self.store, self.policy, self._stop_event.is_set)
            except StoreClosed:
                return
            except EngineError as exc:  # e.g. a full disk: try again at the next pass
                log.warning("retention pass failed: %s", exc)

    def stop(self) -> None:
        self._stop_event.set()
        if self is not threading.current_thread():
            self.join(timeout=30)
