"""Streams on a store on etcd: :class:`engine.stream.Stream`'s API and answers (``store.stream(name)``).

The same checks, errors, events, cursors and txs as the LMDB store for the same calls (held to them by
``tests/etcd/test_stream_etcd.py``); the layout is in :mod:`engine.etcd.stream_log`. A publish (and the
drop of a stream with events) is one tx on the store's timeline, after the expiry sweep every write
makes first; creating a stream and dropping one without events take no tx (housekeeping txns).
Idempotency claims are stored with the write (:mod:`engine.etcd.idempotency`). A compaction frees the
events below its horizon as on LMDB (:mod:`engine.etcd.stream_compaction`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .. import events, schema
from .. import idempotency as _idempotency
from ..errors import Conflict, FutureTx, NamespaceExists, NamespaceNotFound, TxCompacted
from ..events import Event, StreamInfo, StreamRun
from ..stream import READ_LIMIT_DEFAULT, StreamPage, follow, format_cursor, read_start
from ..txlog import check_note
from ..validation import check_namespace
from . import chain, compacted, stream_log
from .idempotency import ClaimGuard
from .idempotency import run as run_claimed
from .kv import Put, Range, RangeResult
from .stream_log import Entry, for_write, registry_guard
from .timeline import Timeline, count_of

if TYPE_CHECKING:
    from .store import EtcdStore


class EtcdStream:
    """Publish, read and follow the events of one stream, as :class:`engine.stream.Stream`."""

    __slots__ = ("_store", "name")

    def __init__(self, store: EtcdStore, name: str) -> None:
        self._store = store
        self.name = name

    def __repr__(self) -> str:
        return f"Stream({self.name!r})"

    def publish(self, items: Iterable[Any], *, note: dict[str, Any] | None = None, sync: bool | None = None,
                idempotency: _idempotency.Claim | None = None) -> int:
        """Publish ``items`` as one tx; return the tx (:meth:`engine.stream.Stream.publish`)."""
        store = self._store
        note = check_note(note, store.limits.max_note_bytes)
        run = StreamRun(self.name, events.PUBLISH, events.prepare(items, store.limits))
        return run_claimed(store, idempotency, lambda claim: _write(store, [run], note, claim))

    def read(self, start_tx: int | None = None, end_tx: int | None = None, limit: int = READ_LIMIT_DEFAULT, *,
             cursor: str | None = None) -> StreamPage:
        """A page of events (:meth:`engine.stream.Stream.read`: same checks, errors and cursors)."""
        return _page(self._store, self.name, read_start(start_tx, end_tx, limit, cursor), end_tx, limit)

    def follow(self, start_tx: int | None = None, *, cursor: str | None = None,
               timeout: float | None = None) -> Iterator[Event]:
        """Yield events as they are published (:meth:`engine.stream.Stream.follow`)."""
        return follow(self, self._store, start_tx, cursor, timeout)

    def info(self) -> StreamInfo | None:
        """What the stream holds, or None if it does not exist."""
        return stream_info(self._store, self.name)

    def drop(self, *, note: dict[str, Any] | None = None, sync: bool | None = None,
             idempotency: _idempotency.Claim | None = None) -> int:
        """Drop the stream (see :func:`drop_stream`)."""
        return drop_stream(self._store, self.name, note=note, sync=sync, idempotency=idempotency)


def _write(store: EtcdStore, runs: list[StreamRun], note: dict[str, Any] | None, claim: ClaimGuard | None,
           must_exist: bool = False) -> int:
    """A stream tx, recording the expiries due first as every write does (its txn proves none is due, as a
    key write's: :mod:`engine.etcd.due`); a retry under a claim replays before anything is written, the
    sweep included."""
    storage = store.storage()
    if claim is not None:
        claim.look()
    now = storage._now_us()
    return stream_log.commit_runs(storage.timeline, runs, note, now, storage.etcd_limits, claim=claim,
                                  must_exist=must_exist, sweep=storage._sweeper(now))


def _page(store: EtcdStore, name: str, after: tuple[int, int | None] | None, end_tx: int | None,
          limit: int) -> StreamPage:
    timeline = store.storage().timeline
    layout = timeline.layout
    result = timeline.client.txn((), [Range(layout.housekeeping), Range(compacted.state_key(layout)),
                                      Range(layout.stream(name))])
    hk, state, registry = result.responses
    assert isinstance(hk, RangeResult) and isinstance(state, RangeResult) and isinstance(registry, RangeResult)
    count = count_of(hk.kvs)
    timeline.learn(count, result.revision)
    latest = result.revision - timeline.base - count
    horizon = compacted.state_of(state)[0].horizon
    for bound, which in ((after[0] if after else None, "start_tx"), (end_tx, "end_tx")):
        if bound is not None and bound > latest:
            raise FutureTx(f"{which} {bound} is in the future: the latest committed tx is {latest}", tx=bound,
                           latest_tx=latest, parameter=which)
    if after is None:
        after = (max(horizon - 1, 0), None)
    elif after[0] + 1 < horizon:
        raise TxCompacted(f"tx {after[0] + 1} was compacted away: the oldest readable tx is {horizon}",
                          tx=after[0] + 1, horizon=horizon)
    end = latest if end_tx is None else end_tx
    found: list[Event] = []
    more = split = False
    if registry.kvs:
        entry = Entry.decode(registry.kvs[0].value)
        if not entry.dropped:
            found, more, split = stream_log.page(timeline, name, entry, after, end, limit, result.revision)
    if more:
        cursor = format_cursor(found[-1].tx, found[-1].index)
    else:
        cursor = format_cursor(end, None) if end >= after[0] else format_cursor(*after)
    return StreamPage(found, cursor, more, latest, split)


def streams(store: EtcdStore) -> list[StreamInfo]:
    """Every stream that exists (created or published to, not dropped), by name."""
    timeline = store.storage().timeline
    start, end = timeline.layout.streams
    found = timeline.client.range(start, end)
    timeline.latest()  # the housekeeping list current up to the read (tx_of below)
    pairs = [(timeline.layout.stream_of_registry(kv.key), Entry.decode(kv.value)) for kv in found.kvs]
    return infos(timeline, [(name, entry) for name, entry in pairs if not entry.dropped], found.revision)


def infos(timeline: Timeline, pairs: list[tuple[str, Entry]], revision: int) -> list[StreamInfo]:
    """The :class:`StreamInfo` of each ``(name, entry)`` read at ``revision``, with LMDB's times: ``tx`` is
    the stream's last stream tx (0 if none), ``updated_at`` that tx's clamped commit time (the chain's,
    sealed first if need be), ``created_at`` that of the tx that created the stream when one did (both
    stored in the entry instead once a compaction freed the key they come from)."""
    wanted = {(name, seq): 0 for name, entry in pairs
              for seq in (0 if entry.tx else entry.seq, entry.created_seq) if seq}
    txs = stream_log.txs_of(timeline, list(wanted), revision)
    links = chain.links(timeline, set(txs.values()))
    out = []
    for name, entry in pairs:
        tx = entry.tx or (txs[(name, entry.seq)] if entry.seq else 0)
        created = links[txs[(name, entry.created_seq)]].time_us if entry.created_seq else entry.created_us
        updated = links[tx].time_us if tx and not entry.tx else entry.updated_us
        out.append(StreamInfo(name, schema.time_of(created), schema.time_of(updated), tx, entry.event_count,
                              entry.size_bytes))
    return out


def stream_info(store: EtcdStore, name: str) -> StreamInfo | None:
    """What stream ``name`` holds, or None if it does not exist."""
    check_namespace(name)
    timeline = store.storage().timeline
    revision, (kv,) = stream_log.read_entries(timeline, [name])
    if kv is None:
        return None
    entry = Entry.decode(kv.value)
    return None if entry.dropped else infos(timeline, [(name, entry)], revision)[0]


def create_stream(store: EtcdStore, name: str, *, idempotency: _idempotency.Claim | None = None) -> StreamInfo:
    """Create an empty stream without a tx (a housekeeping txn); ``NAMESPACE_EXISTS`` if it exists, as
    :func:`engine.stream.create_stream`."""
    check_namespace(name)
    return run_claimed(store, idempotency, lambda claim: _create(store, name, claim))


def _create(store: EtcdStore, name: str, claim: ClaimGuard | None) -> StreamInfo:
    storage = store.storage()
    timeline = storage.timeline
    key = timeline.layout.stream(name)
    while True:
        revision, (kv,) = stream_log.read_entries(timeline, [name])
        if kv is not None and not Entry.decode(kv.value).dropped:
            raise NamespaceExists(f"stream {name!r} already exists", namespace=name)
        latest = timeline.tx_of(revision)  # as on LMDB, created no earlier than the latest tx's commit time
        floor = chain.links(timeline, [latest])[latest].time_us if latest else 0
        entry = for_write(kv, max(storage._now_us(), floor))
        info = infos(timeline, [(name, entry)], revision)[0]
        if _housekeeping(store, key, kv, entry, claim, lambda _, made=info: made):
            return info


def _housekeeping(store: EtcdStore, key: bytes, kv: Any, entry: Entry, claim: ClaimGuard | None,
                  result_of: Any) -> bool:
    """Put ``entry`` at ``key`` in a housekeeping txn guarded by the entry as read (and ``claim``);
    False when a guard failed (read again)."""
    timeline = store.storage().timeline
    compare, puts = claim.guard(result_of) if claim is not None else ([], [])
    try:
        timeline.housekeeping([Put(key, entry.encode()), *puts], [registry_guard(key, kv), *compare])
    except Conflict:
        return False
    if claim is not None:
        claim.written = True
    return True


def drop_stream(store: EtcdStore, name: str, *, note: dict[str, Any] | None = None, sync: bool | None = None,
                idempotency: _idempotency.Claim | None = None) -> int:
    """Forget stream ``name`` and its events; return the tx of the drop, as :func:`engine.stream.drop_stream`
    (a stream with events: a tx of its own; without: no tx, the latest tx returned)."""
    check_namespace(name)
    note = check_note(note, store.limits.max_note_bytes)
    return run_claimed(store, idempotency, lambda claim: _drop(store, name, note, claim))


def _drop(store: EtcdStore, name: str, note: dict[str, Any] | None, claim: ClaimGuard | None) -> int:
    timeline = store.storage().timeline
    key = timeline.layout.stream(name)
    if claim is not None:
        claim.look()  # as on LMDB, a retry replays before anything is read or written
    while True:
        _, (kv,) = stream_log.read_entries(timeline, [name])
        entry = None if kv is None else Entry.decode(kv.value)
        if entry is None or entry.dropped:
            raise NamespaceNotFound(f"stream {name!r} does not exist", namespace=name)
        if entry.event_count:
            return _write(store, [StreamRun(name, events.DROP_STREAM, [])], note, claim, must_exist=True)
        entry.dropped = True
        if _housekeeping(store, key, kv, entry, claim, lambda latest: latest):
            return timeline.latest()[0]
