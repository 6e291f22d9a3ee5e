"""The change feed: committed txs in order, and waiting for the next one across processes.

LMDB has no notifications, so :func:`wait_for` polls the tx counter (one small read, a few
microseconds) with a short sleep that grows from 0.5 ms to 5 ms: a writer in another process is
seen within a few milliseconds, and an idle waiter costs almost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import schema, txlog
from .txlog import Operation, TxInfo

MIN_SLEEP = 0.0005
MAX_SLEEP = 0.005


def changes(txn: Any, dbs: dict[str, Any], since: int, limit: int, namespace: str | None) -> list[TxInfo]:
    """Txs after ``since`` in order, at most ``limit``; with ``namespace``, only the txs touching
    it, with only its operations."""
    latest = schema.get_u64(txn, dbs["meta"], schema.LATEST_TX)
    out: list[TxInfo] = []
    tx = since
    while tx < latest and len(out) < limit:
        tx += 1
        info = txlog.read(txn, dbs, tx)
        if info is None:
            continue
        if namespace is not None:
            ops = [op for op in info.operations if op.namespace == namespace]
            if not ops:
                continue
            info = TxInfo(info.tx, info.time, info.time_us, info.note, ops, info.hash)
        out.append(info)
    return out


def wait_for(latest: Callable[[], int], tx: int, timeout: float | None) -> bool:
    """Block until ``latest() >= tx``; False if ``timeout`` seconds pass first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = MIN_SLEEP
    while latest() < tx:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
        else:
            time.sleep(pause)
        pause = min(pause * 2, MAX_SLEEP)
    return True


__all__ = ["Operation", "TxInfo", "changes", "wait_for"]
