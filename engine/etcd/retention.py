"""Retention on etcd: one pass of a :class:`engine.retention.Retention` policy over a store on etcd.

The policy's horizon is computed as on LMDB (:meth:`engine.retention.Retention.horizon`): the last
``txs`` txs stay readable, and/or every tx committed within ``seconds`` of the store's clock (the last tx
committed at or before ``now - seconds``, found by :meth:`engine.etcd.storage.EtcdStorage.tx_at` over the
sealed, clamped commit times), the lower of the two. The pass then compacts up to it
(:mod:`engine.etcd.compaction`). The background thread is :class:`engine.retention.RetentionThread`, the
LMDB store's own (it calls :func:`engine.retention.apply`, which hands a store on etcd to :func:`apply`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..compaction import CompactionReport
from ..retention import Retention
from . import compacted
from .compaction import compact

if TYPE_CHECKING:
    from .store import EtcdStore


def horizon(store: EtcdStore, policy: Retention) -> int:
    """The horizon ``policy`` allows now (``store``'s clock)."""
    storage = store.storage()
    latest = storage.latest_tx
    targets = []
    if policy.txs is not None:
        targets.append(max(0, latest - policy.txs + 1))
    if policy.seconds is not None:
        now_us = storage._now_us()
        targets.append(storage.tx_at(max(0, now_us - round(policy.seconds * 1_000_000))))
    return min(targets)


def apply(store: EtcdStore, policy: Retention,
          should_stop: Callable[[], bool] | None = None) -> CompactionReport | None:
    """One retention pass: compact up to the policy's horizon (and finish a pending compaction); None
    when there was nothing to do, as :func:`engine.retention.apply`."""
    storage = store.storage()
    target = horizon(store, policy)
    state, _ = compacted.read_state(storage.client, storage.layout)
    if target <= state.horizon and state.pending is None:
        return None
    return compact(storage, target if target > state.horizon else None, should_stop=should_stop)
