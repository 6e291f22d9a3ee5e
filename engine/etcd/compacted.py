"""What a compacted store on etcd keeps beside etcd's MVCC: the horizon, and the indexes of what etcd freed.

etcd's compaction at revision ``R`` frees every version at or below ``R`` that a later one replaced, for
every key of the cluster (:mod:`engine.etcd.compaction`). Two keys of the layout lose what Strata still
needs below the horizon that way, because each is one key rewritten over and over:

* ``P/log`` (the log index: each tx puts its request id there), so the log entry of a tx below the
  horizon could no longer be found (``tx_info``, ``changes``, ``verify`` and the commit times of the
  versions a compaction keeps need it);
* ``P/sys/hk`` (one version per housekeeping txn), so the tx <-> revision mapping
  (:mod:`engine.etcd.timeline`) could no longer be rebuilt by a process that opens the store later.

So before it compacts, a compaction writes what those versions said into keys written once per segment
(housekeeping txns: revisions, no tx numbers), and then the state:

==============================  ======================================================================
key                             value
==============================  ======================================================================
``P/c/state``                   msgpack ``[horizon, revision, freed, pending, pending_freed,
                                housekeeping, indexed]``: the lowest readable tx, its revision (where
                                etcd is compacted), versions freed so far, ``[from_tx, to_tx]`` of a
                                compaction whose etcd compaction is not done yet (else nil) and what it
                                frees, how many housekeeping revisions lie at or below ``revision``,
                                and the last tx whose request id is indexed
``P/c/hk/<i:08x>``              msgpack list of the housekeeping revisions ``i*SEGMENT`` to
                                ``(i+1)*SEGMENT - 1`` (0-based, ascending)
``P/c/tx/<i:08x>``              msgpack list of the request ids of txs ``i*SEGMENT + 1`` to
                                ``(i+1)*SEGMENT``
==============================  ======================================================================

A segment is rewritten only while it fills (the same bytes each time for what it held), so a compaction
writes O(txs in its window) bytes. Readers use the indexes only below the compacted revision; above it
``P/log`` and ``P/sys/hk`` answer as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import ormsgpack

from .client import EtcdClient
from .kv import Put, Range, RangeResult, prefix_end
from .layout import Layout

#: Entries per index segment (about 18 KB of request ids, 5 KB of revisions).
SEGMENT = 1024


@dataclass(frozen=True, slots=True)
class State:
    """``P/c/state`` (see the module docstring); the default is a store never compacted."""

    horizon: int = 0
    revision: int = 0
    freed: int = 0
    pending: tuple[int, int] | None = None
    pending_freed: int = 0
    housekeeping: int = 0
    indexed: int = 0

    def pack(self) -> bytes:
        pending = None if self.pending is None else list(self.pending)
        return ormsgpack.packb([self.horizon, self.revision, self.freed, pending, self.pending_freed,
                                self.housekeeping, self.indexed])

    @classmethod
    def unpack(cls, raw: bytes) -> State:
        horizon, revision, freed, pending, pending_freed, housekeeping, indexed = ormsgpack.unpackb(raw)
        return cls(horizon, revision, freed, None if pending is None else (pending[0], pending[1]), pending_freed,
                   housekeeping, indexed)

    def with_(self, **changes: Any) -> State:
        return replace(self, **changes)


def state_key(layout: Layout) -> bytes:
    return layout.prefix + b"/c/state"


def _hk_key(layout: Layout, index: int) -> bytes:
    return layout.prefix + b"/c/hk/" + b"%08x" % index


def _tx_key(layout: Layout, index: int) -> bytes:
    return layout.prefix + b"/c/tx/" + b"%08x" % index


def state_of(answer: RangeResult) -> tuple[State, int]:
    """The state a range of ``P/c/state`` shows, and its mod revision (0: never compacted)."""
    if not answer.kvs:
        return State(), 0
    return State.unpack(answer.kvs[0].value), answer.kvs[0].mod_revision


def read_state(client: EtcdClient, layout: Layout) -> tuple[State, int]:
    """The store's compaction state (at the latest revision) and its mod revision."""
    return state_of(client.range(state_key(layout)))


def _segments(client: EtcdClient, layout: Layout, key_of: Any, indexes: Iterable[int]) -> dict[int, list[Any]]:
    wanted = sorted(set(indexes))
    out: dict[int, list[Any]] = {}
    for start in range(0, len(wanted), 64):
        chunk = wanted[start:start + 64]
        result = client.txn((), [Range(key_of(layout, i)) for i in chunk])
        for i, answer in zip(chunk, result.responses, strict=True):
            assert isinstance(answer, RangeResult)
            out[i] = list(ormsgpack.unpackb(answer.kvs[0].value)) if answer.kvs else []
    return out


def housekeeping_below(client: EtcdClient, layout: Layout) -> list[int]:
    """Every housekeeping revision at or below the compacted revision, ascending (from the index)."""
    state, _ = read_state(client, layout)
    count = state.housekeeping
    found = _segments(client, layout, _hk_key, range((count + SEGMENT - 1) // SEGMENT))
    return [h for i in sorted(found) for h in found[i]][:count]


def request_ids(client: EtcdClient, layout: Layout, txs: Iterable[int]) -> dict[int, bytes]:
    """The request ids (names of the log entries) of indexed ``txs`` (a tx not indexed is left out)."""
    wanted = sorted(set(txs))
    found = _segments(client, layout, _tx_key, ((tx - 1) // SEGMENT for tx in wanted))
    out = {}
    for tx in wanted:
        segment = found[(tx - 1) // SEGMENT]
        at = (tx - 1) % SEGMENT
        if at < len(segment):
            out[tx] = bytes(segment[at])
    return out


def index_puts(client: EtcdClient, layout: Layout, state: State, ids: dict[int, bytes],
               housekeeping: list[int]) -> list[Put]:
    """The puts that extend the indexes of ``state`` with the request ids ``ids`` (of txs
    ``state.indexed + 1`` on, consecutive) and the housekeeping revisions ``housekeeping`` (every one at
    or below the new compacted revision, ascending): the segments they touch, each whole."""
    puts: list[Put] = []
    if ids:
        first, last = min(ids), max(ids)
        indexes = range((first - 1) // SEGMENT, (last - 1) // SEGMENT + 1)
        found = _segments(client, layout, _tx_key, indexes[:1])  # only the first can hold older entries
        for i in indexes:
            segment = found.get(i, [])[:max(0, first - 1 - i * SEGMENT)]
            lo = i * SEGMENT + 1 + len(segment)
            segment += [ids[tx] for tx in range(lo, min(last, (i + 1) * SEGMENT) + 1)]
            puts.append(Put(_tx_key(layout, i), ormsgpack.packb(segment)))
    if len(housekeeping) > state.housekeeping:
        for i in range(state.housekeeping // SEGMENT, (len(housekeeping) - 1) // SEGMENT + 1):
            puts.append(Put(_hk_key(layout, i), ormsgpack.packb(housekeeping[i * SEGMENT:(i + 1) * SEGMENT])))
    return puts


def outside(layout: Layout) -> list[Range]:
    """Ranges counting the cluster's keys outside the store's prefix (a compaction is cluster-wide)."""
    own = layout.prefix + b"/"
    return [Range(b"\0", own, count_only=True), Range(prefix_end(own), b"\0", count_only=True)]
