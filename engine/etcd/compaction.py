"""Compaction on etcd: :meth:`engine.Store.compact`'s contract, done by etcd's own compaction.

**What is kept: LMDB's rule, which etcd's compaction already applies.** ``compact(H)`` makes ``H`` the
horizon: reads at a tx >= H answer exactly as before, reads below raise ``TX_COMPACTED``
(:mod:`engine.compaction`). etcd's ``/v3/kv/compaction`` at revision ``R = revision(H)`` keeps every
version above ``R`` and, of each key, its newest version at or below ``R`` unless that is a delete
(tombstone). A Strata key's puts and clears are versions of its data key ``P/d/<ns>/<key>`` and its deletes
are etcd deletes of it (:mod:`engine.etcd.layout`), so that is LMDB's rule for the data keys: a key deleted
below H (or at H) is gone at R, and a read at a tx >= H finds nothing for it, as before. What LMDB keeps of
the deletes themselves (a delete at exactly H, for history) is the delete marker's version at R, which etcd
keeps (a marker is a put); the history walk (:mod:`engine.etcd.history`) shows no marker below R. Expired
values are versions like any other: kept or freed by the same rule, swept or not.

**What Strata keeps beside it.** Two keys rewritten by every tx or housekeeping txn, ``P/log`` and
``P/sys/hk``, lose their old versions too: before compacting, their content up to R is written to the
indexes of :mod:`engine.etcd.compacted`, so the tx log (``tx_info``, ``changes``), the tx numbering, the
sealed hash chain and ``verify`` work below the horizon as on LMDB. The chain is sealed up to H first
(sealing re-reads a tx's records, which are gone below H afterwards).

**The steps**, each safe to repeat (a process killed between two resumes at the next ``compact()``):

1. seal the chain up to H; count what LMDB would free (``freed``: from the log of the txs in
   ``[old horizon, H]``, as LMDB visits them, and one read per key at the old horizon);
2. write the indexes (housekeeping txns);
3. raise the horizon: one housekeeping txn writes ``P/c/state`` with ``pending = [old horizon, H]``,
   guarded by its mod revision (two compacting processes: one wins, the other plans again). From here,
   reads below H raise ``TX_COMPACTED``;
4. ``/v3/kv/compaction`` at R with ``physical`` (it returns once the members freed the space);
5. clear ``pending`` and add ``freed`` to ``freed_versions``;
6. free the stream events below H (:mod:`engine.etcd.stream_compaction`: housekeeping txns, counted
   apart from ``freed``, as LMDB counts them apart).

**The cluster is shared by everything on it**: etcd compacts every key, not a prefix. ``compact`` refuses
with ``NOT_SUPPORTED`` when the cluster holds keys outside the store's prefix (another store's history
would be lost), before anything is written.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import ormsgpack

from .. import errors
from ..codec import DELETE
from ..compaction import CompactionReport
from ..validation import check_tx
from . import chain, compacted, stream_compaction
from .compacted import State
from .kv import Compare, Put, Range, RangeResult
from .timeline import Timeline
from .txlog import records_at, request_ids_at, storage_runs

if TYPE_CHECKING:
    from .storage import EtcdStorage

Progress = Callable[[int, int], None]

#: Index puts per housekeeping txn (segments of up to 18 KB each: well under etcd's request limit).
PUTS_PER_TXN = 32


def compact(storage: EtcdStorage, before_tx: int | None, *, progress: Progress | None = None,
            should_stop: Callable[[], bool] | None = None) -> CompactionReport:
    """Raise the horizon to ``before_tx`` (if higher) and compact etcd there; with None, only finish a
    pending compaction. The report's ``chunks`` is 1 (etcd compacts in one call); see the module docstring.
    ``should_stop()`` is asked once the horizon is raised (a retention thread stops when the store closes):
    True leaves the etcd compaction pending, for the next call to finish."""
    started = time.perf_counter()
    if before_tx is not None:
        check_tx(before_tx, "before_tx")
    timeline = storage.timeline
    layout = timeline.layout
    while True:
        state, mod = compacted.read_state(timeline.client, layout)
        latest = timeline.latest()[0]
        if before_tx is not None and before_tx > latest:
            raise errors.FutureTx(f"cannot compact before tx {before_tx}: the latest committed tx is {latest}",
                                  tx=before_tx, latest_tx=latest)
        if before_tx is None or before_tx <= state.horizon:
            if state.pending is None:
                stream_compaction.free_below(timeline, state.horizon)  # a pass cut short before: finish it
                if progress is not None:
                    progress(0, 0)
                return CompactionReport(state.horizon, 0, 0, 1, time.perf_counter() - started, False)
            break
        check_alone(timeline)
        chain.seal(timeline, before_tx)
        raised = _prepare(timeline, state, before_tx, storage.etcd_limits.max_request_bytes)
        try:
            timeline.housekeeping([Put(compacted.state_key(layout), raised.pack())],
                                  [Compare(compacted.state_key(layout), "MOD", "==", mod)])
        except errors.Conflict:
            continue  # another process compacted meanwhile: plan again from its state
        break
    if should_stop is not None and should_stop():  # asked between two steps, as LMDB between two chunks
        now, _ = compacted.read_state(timeline.client, layout)
        return CompactionReport(now.horizon, 0, 0, 0, time.perf_counter() - started, now.pending is not None)
    txs, freed = _finish(timeline)
    if progress is not None:
        progress(txs, txs)
    now, _ = compacted.read_state(timeline.client, layout)
    stream_compaction.free_below(timeline, now.horizon)
    return CompactionReport(now.horizon, freed, txs, 1, time.perf_counter() - started, now.pending is not None)


def check_alone(timeline: Timeline) -> None:
    """``NOT_SUPPORTED`` unless the cluster holds no key outside the store's prefix (one txn)."""
    result = timeline.client.txn((), compacted.outside(timeline.layout))
    foreign = sum(r.total for r in result.responses if isinstance(r, RangeResult))
    if foreign:
        raise errors.NotSupported(
            f"compaction on etcd is cluster-wide, and the cluster holds {foreign} keys outside this store's prefix "
            f"{timeline.layout.prefix.decode()!r}: their history would be lost; give the store a cluster of its own",
            operation="compact", backend="etcd", foreign_keys=foreign)


def _groups(puts: list[Put], most: int, max_bytes: int) -> list[list[Put]]:
    """``puts`` in groups of at most ``most`` puts and (unless one alone is larger) ``max_bytes`` of values."""
    groups: list[list[Put]] = []
    size = 0
    for put in puts:
        if not groups or len(groups[-1]) >= most or size + len(put.value) > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(put)
        size += len(put.value)
    return groups


def _prepare(timeline: Timeline, state: State, horizon: int, max_bytes: int) -> State:
    """Write the indexes up to ``horizon`` and return the state that raises it (steps 1 and 2)."""
    layout = timeline.layout
    revision = timeline.revision_of(horizon)
    first = state.pending[0] if state.pending is not None else state.horizon
    freed = count_freed(timeline, state.horizon, horizon)
    ids = {} if horizon <= state.indexed else _ids(timeline, range(state.indexed + 1, horizon + 1))
    timeline.refresh()
    housekeeping = [h for h in timeline.housekeeping_revisions() if h <= revision]
    puts = compacted.index_puts(timeline.client, layout, state, ids, housekeeping)
    for group in _groups(puts, min(PUTS_PER_TXN, timeline.max_txn_ops - 4), max_bytes // 2):
        timeline.housekeeping(group)
    return State(horizon, revision, state.freed, (first, horizon), state.pending_freed + freed, len(housekeeping),
                 max(state.indexed, horizon))


def _ids(timeline: Timeline, txs: range) -> dict[int, bytes]:
    """The request ids of ``txs`` (read from ``P/log`` at their revisions, above any earlier compaction)."""
    revisions = {timeline.revision_of(t): t for t in txs}
    found = request_ids_at(timeline, revisions)
    missing = [t for r, t in revisions.items() if r not in found]
    if missing:
        raise errors.StorageError(f"tx {missing[0]} has no tx log entry: the store cannot be compacted past it "
                                  "(run verify)", tx=missing[0])
    return {revisions[r]: i for r, i in found.items()}


def _finish(timeline: Timeline) -> tuple[int, int]:
    """Steps 4 and 5 for the pending compaction, if any: ``(txs visited, versions freed)``."""
    layout = timeline.layout
    while True:
        state, mod = compacted.read_state(timeline.client, layout)
        if state.pending is None:
            return 0, 0
        # TX_COMPACTED: compacted there (or higher) already, by a process that stopped before step 5.
        with contextlib.suppress(errors.TxCompacted):
            timeline.client.compact(state.revision, physical=True)
        timeline.compacted_revision = max(timeline.compacted_revision, state.revision)
        done = state.with_(freed=state.freed + state.pending_freed, pending=None, pending_freed=0)
        try:
            timeline.housekeeping([Put(compacted.state_key(layout), done.pack())],
                                  [Compare(compacted.state_key(layout), "MOD", "==", mod)])
        except errors.Conflict:
            continue
        first, target = state.pending
        return target - first + 1, state.pending_freed


def count_freed(timeline: Timeline, old: int, horizon: int) -> int:
    """How many versions LMDB's compaction from horizon ``old`` to ``horizon`` frees: for each key a tx in
    ``[old, horizon]`` wrote, every version at or below ``horizon`` but its newest, and that one too if it
    is a delete below ``horizon``. Each key holds at most one version below ``old`` (a put or clear,
    kept by the last compaction): one read per key at ``revision(old)`` says."""
    ops: dict[tuple[str, str], list[tuple[int, int]]] = {}
    step = timeline.max_txn_ops
    for start in range(max(old, 1), horizon + 1, step):
        revisions = {timeline.revision_of(t): t for t in range(start, min(start + step, horizon + 1))}
        for revision, record in records_at(timeline, revisions).items():
            for ns, op, keys in storage_runs(ormsgpack.unpackb(record)[2]):
                for key in keys:
                    ops.setdefault((ns, key), []).append((revisions[revision], op))
    kept = _kept_below(timeline, old, list(ops)) if old > 0 else set()
    freed = 0
    for name, written in ops.items():
        last_tx, last_op = written[-1]
        freed += len(written) - 1 + (name in kept) + (last_op == DELETE and last_tx < horizon)
    return freed


def _kept_below(timeline: Timeline, old: int, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """The keys holding a version below tx ``old`` (the one the compaction to ``old`` kept)."""
    revision = timeline.revision_of(old)
    layout = timeline.layout
    out: set[tuple[str, str]] = set()
    step = timeline.max_txn_ops
    for start in range(0, len(keys), step):
        chunk = keys[start:start + step]
        result = timeline.client.txn((), [Range(layout.data(ns, key.encode()), revision=revision) for ns, key in chunk])
        for name, answer in zip(chunk, result.responses, strict=True):
            assert isinstance(answer, RangeResult)
            if answer.kvs and answer.kvs[0].mod_revision < revision:
                out.add(name)
    return out
