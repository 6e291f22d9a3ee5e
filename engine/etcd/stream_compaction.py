"""Compaction of stream events on etcd: LMDB's :func:`engine.events.free_below`, run by ``compact``.

Events of a tx below the horizon are unreadable (``TX_COMPACTED``); LMDB deletes them and lowers the
stream's ``event_count`` and ``size_bytes`` by those readers could still see (after its last drop). Here,
per stream: the stream tx keys ``P/e/<stream>/<seq:016x>`` written below ``revision(horizon)`` (a prefix
of the stream's keys: seq order is tx order) are deleted by one range delete, and the registry entry
``P/s/<stream>`` put back with its counters lowered, in one housekeeping txn (no tx) guarded by the
entry's mod revision (a publish in between: read again). Safe to repeat: what is deleted is gone from
the next pass's count. The chain is sealed past them before (``compact`` seals up to the horizon
first), and ``verify`` checks only the log below the horizon, as on LMDB. The deletes are tombstones at a
revision above the compaction's: etcd frees their bytes at the next compaction.
"""

from __future__ import annotations

from .. import errors
from ..events import KEY_LEN
from . import chain
from .kv import DeleteRange, Put
from .stream_log import Entry, records_of, registry_guard, txs_of
from .timeline import Timeline

#: Stream tx keys read per range while looking for those below the horizon.
CHUNK = 256


def free_below(timeline: Timeline, horizon: int) -> int:
    """Delete every stream's events of txs below ``horizon``; return how many events were freed."""
    if horizon <= 1:
        return 0
    layout = timeline.layout
    below = timeline.revision_of(horizon)
    start, end = layout.streams
    freed = 0
    for kv in timeline.client.range(start, end).kvs:
        name = layout.stream_of_registry(kv.key)
        while True:
            try:
                freed += _free_stream(timeline, name, below)
            except errors.Conflict:
                continue  # the stream was written meanwhile: read it again
            break
    return freed


def _free_stream(timeline: Timeline, name: str, below: int) -> int:
    """One stream's pass (see the module docstring); ``CONFLICT`` if its entry moved meanwhile."""
    layout = timeline.layout
    found = timeline.client.range(layout.stream(name))
    if not found.kvs:
        return 0
    kv = found.kvs[0]
    entry = Entry.decode(kv.value)
    prefix = layout.stream_txs(name)
    first = layout.stream_tx(name, 0)
    last = None
    events = 0
    while True:  # the keys below the horizon are a prefix of the stream's keys
        page = timeline.client.range(first, layout.stream_tx(name, entry.seq) + b"\0", found.revision, limit=CHUNK)
        inside = [k for k in page.kvs if k.mod_revision < below]
        for key in inside:
            records = records_of(key.value)  # none for a drop
            events += len(records)
            if int(key.key[len(prefix):], 16) > entry.base_seq:  # readers could still see these
                entry.event_count -= len(records)
                entry.size_bytes -= KEY_LEN * len(records) + sum(map(len, records))
            last = key.key
        if len(inside) < len(page.kvs) or not page.more:
            break
        first = page.kvs[-1].key + b"\0"
    if last is None:
        return 0
    _resolve(timeline, name, entry, last)
    timeline.housekeeping([DeleteRange(layout.stream_tx(name, 0), last + b"\0"), Put(layout.stream(name),
                                                                                     entry.encode())],
                          [registry_guard(layout.stream(name), kv)])
    return events


def _resolve(timeline: Timeline, name: str, entry: Entry, last: bytes) -> None:
    """Store in ``entry`` what :func:`engine.etcd.stream.infos` reads from the keys about to be freed: the
    last tx and its commit time, the creating tx's commit time (from the sealed chain)."""
    freed = int(last[len(timeline.layout.stream_txs(name)):], 16)
    wanted = [(name, seq) for seq in (0 if entry.tx else entry.seq, entry.created_seq) if 0 < seq <= freed]
    if not wanted:
        return
    txs = txs_of(timeline, wanted, 0)
    links = chain.links(timeline, set(txs.values()))
    if (name, entry.seq) in txs and not entry.tx:
        entry.tx = txs[(name, entry.seq)]
        entry.updated_us = links[entry.tx].time_us
    if (name, entry.created_seq) in txs:
        entry.created_us, entry.created_seq = links[txs[(name, entry.created_seq)]].time_us, 0
