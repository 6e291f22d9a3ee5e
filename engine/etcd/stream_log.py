"""Stream events on etcd: the registry, the write path of a stream tx and the reads of a page.

The LMDB layout (:mod:`engine.events`) keys each event by ``stream_id | tx | index``; an etcd writer
cannot know its tx before etcd applies its txn (:mod:`engine.etcd.timeline`), so events are keyed by a
per-stream sequence number instead::

    P/s/<stream>             msgpack [created_us, updated_us, seq, event_count, size_bytes, dropped, base_seq,
                             created_seq, tx]
    P/e/<stream>/<seq:016x>  msgpack [op, [record, ...]]: the seq-th stream tx of the stream (op 3 a publish
                             and its event records in index order, op 4 a drop and no record)

A stream tx (a publish, or the drop of a stream with events) is one etcd txn, guarded by the registry
entry's mod revision as read: it puts the registry entry with ``seq + 1``, the key of that seq (so
stream txs of one stream are serialized, and seq order is tx order), the log entry and ``P/log``. The
log entry's runs are LMDB's ``[stream, op, count]`` with the seq appended: ``[stream, op, count, seq]``
(:func:`engine.etcd.txlog.storage_runs` leaves stream runs out of what key history, diff and the change
feed walk). The chain hashes the run's first three fields and the records of ``P/e/<stream>/<seq>``
written at the tx's revision (:mod:`engine.etcd.chain`): LMDB's canonical entry, so the same history has
the same hashes on both backends. An event's tx is its key's mod revision's tx.

Reading after tx ``T``: the registry entry at ``revision(T)`` gives the seq of the stream's last stream
tx at or before T (:func:`seq_at`), and the page is ranges of ``P/e/<stream>/`` by key from the next seq
(from that seq itself to continue inside T's publish), at the latest tx's revision: O(page) whatever the
number of publishes. If etcd compacted ``revision(T)``, the first range starts at ``base_seq + 1`` with
``min_mod_revision = revision(T) + 1`` instead, which etcd filters over the stream's keys from there.
Keys are written once and never updated, so etcd's compaction (which keeps every key's newest version)
never frees one; Strata's deletes those below its horizon
(:mod:`engine.etcd.stream_compaction`). Creating a stream, and dropping one without events, are
housekeeping txns (no tx number), as they take no tx on LMDB. ``updated_us`` is the writer's clock as
written (as a namespace's ``updated_at`` on etcd: the chain clamps commit times after the fact).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import ormsgpack

from .. import errors
from ..codec import unpack_value
from ..events import DROP_STREAM, KEY_LEN, PUBLISH, Event, StreamRun
from .commit import MAX_ATTEMPTS, MAX_GUARD_RETRIES, OP_FRAMING, RESERVED_BYTES, EtcdLimits, TxGuard, committed_tx
from .due import first_due, found_due, nothing_due
from .kv import Compare, KeyValue, Put, Range, RangeResult, Request, prefix_end
from .layout import Layout
from .once import commit_once
from .timeline import Timeline, count_of

#: Stream tx keys read per range of a page (each holds a publish's events: at least one).
CHUNK = 256


@dataclass(slots=True)
class Entry:
    """A stream's registry entry (see the module docstring), mutable while a write plans it."""

    created_us: int
    updated_us: int
    seq: int
    event_count: int
    size_bytes: int
    dropped: bool
    base_seq: int
    #: The seq of the stream tx that created (or brought back) the stream, 0 if ``create_stream`` did (or
    #: a compaction freed that key and stored its commit time in ``created_us``).
    created_seq: int = 0
    #: The stream's last tx once a compaction freed the key at ``seq`` (``updated_us`` then that tx's commit
    #: time), else 0: the key's mod revision says.
    tx: int = 0

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        return cls(*ormsgpack.unpackb(raw))

    def encode(self) -> bytes:
        return ormsgpack.packb([self.created_us, self.updated_us, self.seq, self.event_count, self.size_bytes,
                                self.dropped, self.base_seq, self.created_seq, self.tx])


def for_write(found: KeyValue | None, now_us: int) -> Entry:
    """The entry of a stream about to be written: new, or brought back after a drop (LMDB's
    :func:`engine.events.entry_for_write`)."""
    if found is None:
        return Entry(now_us, now_us, 0, 0, 0, False, 0)
    entry = Entry.decode(found.value)
    if entry.dropped:
        entry.dropped, entry.created_us, entry.created_seq = False, now_us, 0
    return entry


def registry_guard(key: bytes, found: KeyValue | None) -> Compare:
    """The registry entry is still as read (absent: still absent)."""
    return Compare(key, "CREATE", "==", 0) if found is None else Compare(key, "MOD", "==", found.mod_revision)


def is_stream_run(run: Any) -> bool:
    """Whether a logged run is a stream run (``[stream, op, count, seq]``, op 3 or 4)."""
    return type(run) is list and len(run) == 4 and run[1] in (PUBLISH, DROP_STREAM)


def records_of(value: bytes) -> list[bytes]:
    """The event records a stream tx key holds (none for a drop)."""
    return [bytes(r) for r in ormsgpack.unpackb(value)[1]]


# -- reads ---------------------------------------------------------------------------------------------


def read_entries(timeline: Timeline, names: list[str], revision: int = 0) -> tuple[int, list[KeyValue | None]]:
    """``(revision read at, the registry entry of each name or None)``, in one txn (the housekeeping list
    made current up to that revision)."""
    layout = timeline.layout
    result = timeline.client.txn((), [Range(layout.housekeeping, revision=revision),
                                      *(Range(layout.stream(n), revision=revision) for n in names)])
    hk, *found = result.responses
    assert isinstance(hk, RangeResult)
    at = revision or result.revision
    timeline.learn(count_of(hk.kvs), at)
    out: list[KeyValue | None] = []
    for answer in found:
        assert isinstance(answer, RangeResult)
        out.append(answer.kvs[0] if answer.kvs else None)
    return at, out


def txs_of(timeline: Timeline, wanted: list[tuple[str, int]], revision: int) -> dict[tuple[str, int], int]:
    """The tx of each ``(stream, seq)``'s stream tx key (its mod revision's), read at ``revision``."""
    found: dict[tuple[str, int], int] = {}
    step = timeline.max_txn_ops
    for start in range(0, len(wanted), step):
        chunk = wanted[start:start + step]
        result = timeline.client.txn((), [Range(timeline.layout.stream_tx(n, s), revision=revision) for n, s in chunk])
        for pair, answer in zip(chunk, result.responses, strict=True):
            assert isinstance(answer, RangeResult)
            found[pair] = timeline.tx_of(answer.kvs[0].mod_revision)
    return found


def seq_at(timeline: Timeline, name: str, tx: int) -> int | None:
    """The seq of ``name``'s last stream tx at or before ``tx`` (its registry entry at ``tx``'s revision; 0
    if it had none then), or None if etcd compacted that revision. Seqs grow with txs and are never reused
    (a drop keeps the entry, a compaction rewrites it with the same seq)."""
    if tx == 0:
        return 0
    try:
        found = timeline.client.range(timeline.layout.stream(name), revision=timeline.revision_of(tx))
    except errors.TxCompacted:
        return None
    return Entry.decode(found.kvs[0].value).seq if found.kvs else 0


def page(timeline: Timeline, name: str, entry: Entry, after: tuple[int, int | None], end_tx: int, limit: int,
         revision: int) -> tuple[list[Event], bool, bool]:
    """The events of ``name`` after ``after`` up to ``end_tx``, at most ``limit``, read at ``revision``;
    whether more follow; whether the next is of the last one's tx (as :func:`engine.events.read_after`)."""
    layout = timeline.layout
    tx, index = after
    low = timeline.revision_of(tx) + (1 if index is None else 0)
    seq = seq_at(timeline, name, tx)
    # Keys of seq > seq_at(tx) were written after tx: the first page starts there, read by key like the
    # next pages. Without it (tx's revision compacted in etcd), etcd filters by revision, over every key of
    # the stream from base_seq on (it fetches them all before filtering).
    first_seq = entry.base_seq + 1 if seq is None else max(entry.base_seq + 1, seq + (1 if index is None else 0))
    start, end = layout.stream_tx(name, first_seq), prefix_end(layout.stream_txs(name))
    out: list[Event] = []
    first = seq is None
    while True:
        rng = Range(start, end, revision, limit=CHUNK, min_mod_revision=low if first else 0)
        found = timeline.client.txn((), [rng]).responses[0]
        assert isinstance(found, RangeResult)
        first = False
        for kv in found.kvs:
            if kv.mod_revision < low:  # seq_at(tx)'s own key when continuing inside tx: written before tx
                continue
            etx = timeline.tx_of(kv.mod_revision)
            if etx > end_tx:
                return out, False, False
            for i, record in enumerate(records_of(kv.value)):
                if etx == tx and index is not None and i <= index:
                    continue
                if len(out) >= limit:
                    return out, True, etx == out[-1].tx
                data = unpack_value(record)
                out.append(Event(etx, i, data, type(data) is bytes))
        if not found.more or not found.kvs:
            return out, False, False
        start = found.kvs[-1].key + b"\0"


# -- the write path of a stream tx -------------------------------------------------------------------


def _fingerprint(runs: list[StreamRun], note: dict[str, Any] | None) -> bytes:
    body = [[[r.stream, r.op, r.records] for r in runs], note]
    return hashlib.sha256(msgpack.packb(body, use_bin_type=True)).digest()[:16]


def _same(fp: bytes) -> Callable[[bytes], bool]:
    def same(stored: bytes) -> bool:
        try:
            return bytes(msgpack.unpackb(stored, raw=False)[3]) == fp
        except (ValueError, TypeError, IndexError, msgpack.ExtraData):
            return False
    return same


def _check_size(success: list[Request], entry: bytes, limits: EtcdLimits, count: int) -> None:
    total = len(entry) + RESERVED_BYTES + sum(op.size + OP_FRAMING for op in success if isinstance(op, Put))
    if total > limits.max_request_bytes:
        raise errors.BatchTooLarge(
            f"a publish of {count} events is {total} bytes as an etcd txn; the cluster takes at most "
            f"{limits.max_request_bytes} (its --max-request-bytes): split it",
            count=count, size=total, limit=limits.max_request_bytes)  # fmt: skip


def _plan(layout: Layout, runs: list[StreamRun], found: list[KeyValue | None], now_us: int, must_exist: bool
          ) -> tuple[list[Compare], list[Request], list[list[Any]]]:
    """The registry compares, the puts and the logged runs of a stream tx, given each stream's entry."""
    compare: list[Compare] = []
    success: list[Request] = []
    logged = []
    for run, kv in zip(runs, found, strict=True):
        absent = kv is None or Entry.decode(kv.value).dropped
        if must_exist and absent:
            raise errors.NamespaceNotFound(f"stream {run.stream!r} does not exist", namespace=run.stream)
        entry = for_write(kv, now_us)
        entry.seq, entry.tx = entry.seq + 1, 0
        if absent:  # this tx creates the stream: its created_at is the tx's (clamped) commit time
            entry.created_seq = entry.seq
        if run.op == PUBLISH:
            entry.dropped = False
            entry.event_count += len(run.records)
            entry.size_bytes += KEY_LEN * len(run.records) + sum(map(len, run.records))
        else:
            entry.dropped, entry.base_seq, entry.event_count, entry.size_bytes = True, entry.seq, 0, 0
        entry.updated_us = now_us
        key = layout.stream(run.stream)
        compare.append(registry_guard(key, kv))
        success += [Put(key, entry.encode()),
                    Put(layout.stream_tx(run.stream, entry.seq), ormsgpack.packb([run.op, run.records]))]
        logged.append([run.stream, run.op, len(run.records), entry.seq])
    return compare, success, logged


def commit_runs(timeline: Timeline, runs: list[StreamRun], note: dict[str, Any] | None, now_us: int,
                limits: EtcdLimits, *, claim: TxGuard | None = None, must_exist: bool = False,
                sweep: Callable[[], bool] | None = None) -> int:
    """Write ``runs`` (one per stream) as the next tx at ``now_us`` and return it (see the module docstring).
    ``claim``: a guard whose compares and puts the txn carries too (an idempotency claim, a replay's
    :class:`~engine.etcd.replay_guard.NextTx`). ``must_exist``: ``NAMESPACE_NOT_FOUND`` if a stream does
    not exist when the txn is planned (a drop). ``sweep``: as for :func:`engine.etcd.commit.commit`, the
    txn proves nothing is due at ``now_us`` (:mod:`engine.etcd.due`) and, when something is, ``sweep``
    records it first (a tx of its own) and the txn is sent again. Retry-safe as every tx
    (:mod:`engine.etcd.once`)."""
    layout = timeline.layout
    names = [run.stream for run in runs]
    if len(set(names)) != len(names):
        raise errors.InvalidParameters("a stream tx holds one op per stream", parameter="ops")
    request_id = os.urandom(16)
    fp = _fingerprint(runs, note)
    count = sum(len(run.records) for run in runs)
    guarded = sweep is not None
    for _ in range(MAX_ATTEMPTS + MAX_GUARD_RETRIES):
        _, found = read_entries(timeline, names)
        compare, success, logged = _plan(layout, runs, found, now_us, must_exist)
        success.append(Put(layout.log, request_id))
        if claim is not None:
            more, puts = claim.guard(lambda latest: latest + 1)
            compare += more
            success += puts
        success.append(Range(layout.housekeeping))
        failure: list[Request] = [Range(layout.housekeeping)]
        if guarded:
            compare.append(nothing_due(layout, now_us))
            failure.insert(0, first_due(layout, now_us))
        record = msgpack.packb([now_us, note, logged, fp, None], use_bin_type=True)
        _check_size(success, record, limits, count)
        result = commit_once(timeline.client, layout.request(request_id), record, compare, success, failure,
                             same_request=_same(fp))
        if result.succeeded:
            return committed_tx(timeline, result, claim)
        if guarded and found_due(result.responses[0]):
            assert sweep is not None
            if claim is not None:
                claim.look()  # a concurrent attempt committed this request: replay, sweeping nothing
            guarded = not sweep()  # some left due (over the sweep's limit): LMDB's write leaves them too
            continue
        if claim is not None:
            claim.moved()  # raises Replay when a concurrent attempt committed the claim
    raise errors.StorageError("the stream write did not settle: other writers kept landing in between",
                              attempts=MAX_ATTEMPTS + MAX_GUARD_RETRIES)
