"""What this process committed, kept for its own sealer: the bytes a seal would otherwise read back.

A seal hashes each tx's log entry and the records it wrote at its revision (:mod:`engine.etcd.chain`),
read back from etcd: three range operations per tx (``P/log`` at the revision, the entry, each record),
on the member every writer is talking to. For a tx committed by :func:`engine.etcd.commit.commit` in this
process, the writer already holds those exact bytes: etcd applied its txn's success branch atomically at
the revision its answer names, so ``P/tx/<id>`` holds the entry it sent and each data key or delete
marker the record it sent, written at that revision. :class:`Written` keeps them, by revision, until the
background sealer of the same process takes them, so a seal of txs this process wrote reads nothing but
its own bookkeeping (measured on a 3-member loopback cluster: the background sealer cost a 1-thread
writer of 1-item puts 10-14% of its writes per second without this, nothing measurable with it).

Contract: :meth:`Written.add` records a tx the writer saw commit (never a replayed one: its answer was
not this attempt's); :meth:`Written.take` hands back, and forgets, the ones asked for that it holds.
Only the seal uses it: ``verify``, proofs and the tree's catch-up read what etcd stores, so a log entry
or record rewritten behind Strata's back still shows there (a seal made from memory then disagrees
with what verify recomputes, which names the tx). Bounded: at most :data:`MAX_TXS` txs and
:data:`MAX_BYTES` bytes of entries and records (the oldest go first; a tx over :data:`MAX_TX_BYTES`
is not kept), so a process whose sealer does not hold the seat keeps a few MB at most. Thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

#: Txs kept at most (a seal takes up to 4,096; the sealer seals every 64 or 250 ms).
MAX_TXS = 8192
#: Bytes of entries and records kept at most.
MAX_BYTES = 16 << 20
#: A tx whose entry and records are larger is not kept (its seal reads it back).
MAX_TX_BYTES = 64 << 10


class Written:
    """Revision -> ``(log entry bytes, records per run)`` of txs this process committed, bounded."""

    def __init__(self) -> None:
        self._txs: OrderedDict[int, tuple[bytes, list[list[bytes]], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, revision: int, entry: bytes, records: list[list[bytes]]) -> None:
        """Tx at ``revision`` wrote ``entry`` at its request key and ``records`` (per logged run, in order)."""
        size = len(entry)
        for run in records:  # map(len) in C: no generator frame per record (every write adds one tx)
            size += sum(map(len, run))
        if size > MAX_TX_BYTES:
            return
        with self._lock:
            self._txs[revision] = (entry, records, size)
            self._bytes += size
            while len(self._txs) > MAX_TXS or self._bytes > MAX_BYTES:
                _, (_, _, dropped) = self._txs.popitem(last=False)
                self._bytes -= dropped

    def take(self, revisions: Sequence[int]) -> dict[int, tuple[bytes, list[list[bytes]]]]:
        """The held txs among ``revisions`` (ascending: a seal's), forgotten as they are handed out, with
        every held tx below the first (sealed already, by this seal's predecessors)."""
        out: dict[int, tuple[bytes, list[list[bytes]]]] = {}
        with self._lock:
            if not self._txs or not revisions:
                return out
            for revision in [r for r in self._txs if r < revisions[0]]:
                self._bytes -= self._txs.pop(revision)[2]
            for revision in revisions:
                held = self._txs.pop(revision, None)
                if held is not None:
                    out[revision] = (held[0], held[1])
                    self._bytes -= held[2]
        return out

    def __len__(self) -> int:
        return len(self._txs)
