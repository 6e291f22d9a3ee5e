"""The hash chain on etcd: computed after the fact by a sealer, stored in sealed segments.

Each tx's chain hash is :func:`engine.txlog.chain_hash` of its predecessor's hash and the same
canonical entry the LMDB backend hashes (``[tx, time_us, note, [[namespace, op, keys, records], ...]]``),
so a history written to etcd has the hashes, tx for tx, that the same history has on LMDB. Writers do
not compute it: chaining inside each commit needs the previous tx's hash, a compare on one head key that
every writer would fight over. Instead a **sealer** (any process; several at once are safe) reads the log
after the fact and stores the hashes:

* **What it hashes.** For tx ``T`` at revision ``R``: the log entry (``P/log`` at ``R`` names the
  bookkeeping key, read at the latest revision, as :meth:`tx_info` shows it), and each key's record at
  ``R``: ``P/d/<ns>/<key>`` for a put or clear, the delete marker ``P/m/<ns>/<key>`` for a delete (the
  bytes LMDB stores for it); each must have been written at ``R`` exactly. A namespace drop writes no
  per-key marker: its deletes (the drop marker ``P/m/<ns>`` written at ``R`` says so) hash the delete
  record the LMDB drop stores. A revision that holds no log entry (a write to the cluster that is no
  Strata tx) stops the sealer with ``STORAGE_ERROR``: the tx numbering, and so the chain, is broken there.
  A stream run (``[stream, op, count, seq]``, :mod:`engine.etcd.stream_log`) hashes LMDB's run
  ``[stream, op, count]`` and the event records of ``P/e/<stream>/<seq>``, which must have been written
  at ``R``. A seal takes the txs its own process committed from :mod:`engine.etcd.written` instead of
  reading them back (the same bytes: what the writer's txn put at ``R``); nothing else does.
* **The commit time** hashed is LMDB's clamped one: ``max(written time, previous tx's time)`` (writers on
  several machines cannot clamp inside their txn); :meth:`tx_info` and :meth:`changes` show it.
* **Where hashes live.** ``P/seal/<first_tx:016x>``: segments of :data:`SEGMENT` txs, msgpack
  ``[[hash, time_us], ...]`` from ``first_tx`` (one past a multiple of :data:`SEGMENT`, so a tx's segment
  is one key); ``P/seal/head``: ``[tx, hash, time_us]`` of the last sealed tx. A seal is one
  housekeeping txn (a revision, no tx: :mod:`engine.etcd.timeline`) putting the head and the segments it
  extended, up to :data:`MAX_SEAL` txs, guarded by the head's mod revision: two sealers computing the same
  txs write the same bytes and one of them wins; the other reads the new head and goes on from it.
  The same txn grows the Merkle tree by the same txs (:mod:`engine.etcd.txtree`, guarded by the tree
  head too), so a seal adds at most :func:`engine.etcd.txtree.seal_limit` txs (``--max-txn-ops``).
* **When.** :func:`links` (what ``tx_info``, ``changes`` and ``head`` call) seals up to the highest tx
  asked for first, so an answered hash is always the chain's, never a guess; the lag a reader can meet
  is the unsealed window, which a background sealer (:mod:`engine.etcd.sealer`) keeps short.

Sealed hashes are only appended to, never rewritten: a segment's entries stay as they were, so a range
of segments read after the head holds at least the txs the head names. :mod:`engine.etcd.verify`
recomputes the chain from the log and compares it with what was sealed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import ormsgpack

from .. import errors
from ..codec import CLEAR, DELETE, PUT
from ..txlog import GENESIS, canonical_entry, chain_hash
from ..txn import Run
from .commit import records_of
from .kv import Compare, Put, Range, RangeResult
from .stream_log import is_stream_run
from .stream_log import records_of as event_records
from .tail import Memo, Seen, Tail
from .timeline import Timeline
from .txlog import records_at
from .written import Written

#: Txs per sealed segment (a segment is rewritten, longer, by each seal that extends it: ~11 KB at most).
SEGMENT = 256
#: Txs one seal txn stores at most (a few hundred KB, far under etcd's default request limit).
MAX_SEAL = 16 * SEGMENT


@dataclass(frozen=True, slots=True)
class Link:
    """One tx's place in the chain: its hash and its (clamped) commit time."""

    tx: int
    hash: bytes
    time_us: int


GENESIS_LINK = Link(0, GENESIS, 0)


@dataclass(frozen=True, slots=True)
class Material:
    """What the chain hashes of one tx: its log entry (the time as written) and the records it stored."""

    tx: int
    revision: int
    time_us: int
    note: dict[str, Any] | None
    runs: list[list[Any]]
    records: list[list[bytes]]


class Broken(Exception):
    """Tx ``tx`` cannot be hashed (or does not match what was sealed): ``problem`` says why."""

    def __init__(self, tx: int, problem: str) -> None:
        super().__init__(problem)
        self.tx, self.problem = tx, problem


def next_link(prev: Link, m: Material) -> Link:
    """The link of ``m``'s tx after ``prev``: its time clamped to ``prev``'s, its hash chained."""
    time_us = max(m.time_us, prev.time_us)
    return Link(m.tx, chain_hash(prev.hash, m.tx, time_us, m.note, m.runs, m.records), time_us)


def chained(prev: Link, found: Sequence[Material]) -> tuple[list[Link], list[bytes]]:
    """The links of ``found`` after ``prev`` (as :func:`next_link` chains them) and each tx's canonical
    entry, which its hash and its Merkle leaf both hash (:func:`engine.txlog.chain_hash`), encoded once."""
    links: list[Link] = []
    entries: list[bytes] = []
    for m in found:
        time_us = max(m.time_us, prev.time_us)
        entry = canonical_entry(m.tx, time_us, m.note, m.runs, m.records)
        prev = Link(m.tx, hashlib.sha256(prev.hash + entry).digest(), time_us)
        links.append(prev)
        entries.append(entry)
    return links, entries


# -- reading what a tx wrote ---------------------------------------------------------------------


def _ranges(timeline: Timeline, ops: list[Range]) -> list[RangeResult]:
    out: list[RangeResult] = []
    step = timeline.max_txn_ops
    for start in range(0, len(ops), step):
        result = timeline.client.txn((), ops[start:start + step])
        out += [r for r in result.responses if isinstance(r, RangeResult)]
    return out


def _requests(timeline: Timeline, revision: int, runs: list[list[Any]]) -> list[Range]:
    """Per key: its record at ``revision`` (data key, or delete marker); per delete run: the drop marker."""
    layout = timeline.layout
    out = []
    for run in runs:
        if is_stream_run(run):  # the stream tx key of its seq (engine.etcd.stream_log)
            out.append(Range(layout.stream_tx(run[0], run[3]), revision=revision))
            continue
        namespace, op, keys = run
        for key in keys:
            raw = key.encode()
            out.append(Range(layout.marker(namespace, raw) if op == DELETE else layout.data(namespace, raw),
                             revision=revision))
        if op == DELETE:
            out.append(Range(layout.dropped(namespace), revision=revision))
    return out


def _written_at(answer: RangeResult, revision: int) -> bytes | None:
    return answer.kvs[0].value if answer.kvs and answer.kvs[0].mod_revision == revision else None


def _well_formed(time_us: Any, note: Any, runs: Any) -> bool:
    return type(time_us) is int and (note is None or type(note) is dict) and type(runs) is list and all(
        (type(run) is list and len(run) == 3 and type(run[0]) is str and run[1] in (PUT, CLEAR, DELETE)
         and type(run[2]) is list and all(type(key) is str for key in run[2]))
        or (is_stream_run(run) and type(run[0]) is str and type(run[2]) is int and type(run[3]) is int)
        for run in runs)


def _stream_records(m_tx: int, revision: int, run: list[Any], answer: RangeResult) -> list[bytes]:
    """The records of a stream run (LMDB's, in index order), from its stream tx key written at ``revision``."""
    found = _written_at(answer, revision)
    records = None if found is None else event_records(found)
    if records is None or len(records) != run[2]:
        raise Broken(m_tx, f"the events of stream {run[0]!r} written by this tx are missing")
    return records


def _records(m_tx: int, revision: int, runs: list[list[Any]], answers: list[RangeResult]) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    at = 0
    for run in runs:
        if is_stream_run(run):
            out.append(_stream_records(m_tx, revision, run, answers[at]))
            at += 1
            continue
        namespace, op, keys = run
        found: list[bytes | None] = [_written_at(a, revision) for a in answers[at:at + len(keys)]]
        at += len(keys)
        if op == DELETE:
            dropped = _written_at(answers[at], revision) is not None
            at += 1
            if dropped:  # a namespace drop: no marker per key, LMDB stores the delete record of each
                found = list(records_of(Run(namespace, DELETE, keys, [k.encode() for k in keys])))
        for key, record in zip(keys, found, strict=True):
            if record is None:
                raise Broken(m_tx, f"the version of {namespace}/{key!r} written by this tx is missing")
        out.append([r for r in found if r is not None])
    return out


def materials(timeline: Timeline, txs: Sequence[int],
              known: Written | None = None) -> tuple[list[Material], Broken | None]:
    """What the chain hashes of each tx of ``txs`` (committed txs, ascending): a few txns per
    ``--max-txn-ops`` keys. When a tx has no log entry or lacks a record: the txs before it, and
    :class:`Broken` naming it. ``known``: what this process's commits wrote (:mod:`engine.etcd.written`,
    a seal's only); the txs it holds are taken from it, not read back."""
    revisions = [timeline.revision_of(t) for t in txs]
    held = {} if known is None else known.take(revisions)
    entries = records_at(timeline, [r for r in revisions if r not in held])
    entries.update((revision, entry) for revision, (entry, _) in held.items())
    decoded = []
    broken = None
    for tx, revision in zip(txs, revisions, strict=True):
        if revision not in entries:
            broken = Broken(tx, f"revision {revision} holds no tx log entry: a write to the cluster that is no "
                                "Strata tx (the tx numbering is broken from here)")
            break
        try:
            time_us, note, runs = ormsgpack.unpackb(entries[revision])[:3]
        except (ValueError, TypeError) as exc:
            broken = Broken(tx, f"the tx log entry does not decode: {exc}")
            break
        if not _well_formed(time_us, note, runs):
            broken = Broken(tx, "the tx log entry is not [time_us, note, runs, ...] with runs of "
                                "[namespace, op, [key, ...]]")
            break
        decoded.append((tx, revision, time_us, note, runs))
    requests = [[] if revision in held else _requests(timeline, revision, runs) for _, revision, _, _, runs in decoded]
    answers = _ranges(timeline, [r for reqs in requests for r in reqs])
    out: list[Material] = []
    at = 0
    for (tx, revision, time_us, note, runs), reqs in zip(decoded, requests, strict=True):
        try:
            records = held[revision][1] if revision in held else _records(tx, revision, runs,
                                                                          answers[at:at + len(reqs)])
        except Broken as bad:
            return out, bad
        at += len(reqs)
        canonical = [run[:3] if is_stream_run(run) else run for run in runs]  # LMDB's [stream, op, count]
        out.append(Material(tx, revision, time_us, note, canonical, records))
    return out, broken


# -- sealed segments -----------------------------------------------------------------------------


def segment_start(tx: int) -> int:
    """The first tx of the segment holding ``tx`` (>= 1)."""
    return (tx - 1) // SEGMENT * SEGMENT + 1


def sealed_head(timeline: Timeline) -> tuple[Link, int]:
    """The last sealed tx's link (tx 0 when nothing is sealed) and the head key's mod revision."""
    return head_of(timeline.client.range(timeline.layout.seal_head))


def head_of(found: RangeResult) -> tuple[Link, int]:
    """:func:`sealed_head` from a range of ``P/seal/head``."""
    if not found.kvs:
        return GENESIS_LINK, 0
    tx, digest, time_us = ormsgpack.unpackb(found.kvs[0].value)
    return Link(tx, digest, time_us), found.kvs[0].mod_revision


def sealed_links(timeline: Timeline, first: int, last: int) -> dict[int, Link]:
    """The sealed links of txs ``first..last`` (those sealed: the caller knows the head)."""
    if last < first:
        return {}
    layout = timeline.layout
    start = segment_start(first)
    found = timeline.client.range(layout.segment(start), layout.segment(segment_start(last)) + b"\0")
    out = {}
    for kv in found.kvs:
        base = int(kv.key[-16:], 16)
        for i, (digest, time_us) in enumerate(ormsgpack.unpackb(kv.value)):
            if first <= base + i <= last:
                out[base + i] = Link(base + i, digest, time_us)
    return out


def segment_times(timeline: Timeline, start: int) -> list[int]:
    """The clamped commit times of the sealed txs of the segment starting at tx ``start`` (one past a
    multiple of :data:`SEGMENT`), in tx order; empty if that segment holds none yet."""
    found = timeline.client.range(timeline.layout.segment(start))
    return [time_us for _, time_us in ormsgpack.unpackb(found.kvs[0].value)] if found.kvs else []


def _segment_puts(timeline: Timeline, head: Link, links: list[Link],
                  tail: Tail | None = None) -> tuple[list[Put], list[list[Any]]]:
    """The segments ``links`` (the txs after ``head``) extend, each as its whole new value, and the entries
    of the last one. ``tail``: the head's segment as this process's last seal stored it (not read)."""
    layout = timeline.layout
    by_segment: dict[int, list[list[Any]]] = {}
    first = head.tx + 1
    if head.tx % SEGMENT:  # the head's segment is partly filled: extend what it holds
        if tail is not None:
            by_segment[segment_start(first)] = list(tail.segment)
        else:
            found = timeline.client.range(layout.segment(segment_start(first)))
            by_segment[segment_start(first)] = ormsgpack.unpackb(found.kvs[0].value)[: head.tx % SEGMENT]
    for link in links:
        by_segment.setdefault(segment_start(link.tx), []).append([link.hash, link.time_us])
    puts = [Put(layout.segment(start), ormsgpack.packb(entries)) for start, entries in by_segment.items()]
    return puts, by_segment[segment_start(links[-1].tx)] if links else []


def seal(timeline: Timeline, upto: int, fence: Compare | None = None, *, seen: Seen | None = None,
         memo: Memo | None = None) -> Link:
    """Seal every tx up to ``upto`` (a committed tx) that is not sealed yet; return the sealed head (at
    or past ``upto``). ``STORAGE_ERROR`` when a tx cannot be hashed (its log entry or a record is gone,
    or a foreign write broke the numbering): the chain cannot go past it. ``fence``: a compare every seal
    txn also carries (the sealer seat's, :mod:`engine.etcd.seat`); ``CONFLICT`` when it fails. The same
    txns grow the Merkle tree (:mod:`engine.etcd.txtree`), first building what a store sealed before it
    had a tree lacks.

    The background sealer's shortcuts (:mod:`engine.etcd.tail`): ``seen``, the heads it has just read
    (not read again for the first seal txn); ``memo``, what its last seal stored (the segments and tree
    entries are then not read back while the sealed head is still that seal's), updated by each seal."""
    from . import txtree  # the tree builds on this module's materials and links: imported when used

    while True:
        head, mod, housekeeping, tail = _heads(timeline, seen, memo)
        seen = None  # the caller's read is good for one attempt (its txn is guarded by what it saw)
        if head.tx >= upto:
            return head
        txs = range(head.tx + 1, min(upto, head.tx + txtree.seal_limit(timeline)) + 1)
        found, broken = materials(timeline, txs, timeline.written)
        if not found and broken is not None:
            raise errors.StorageError(f"the hash chain cannot be sealed past tx {broken.tx - 1}: tx {broken.tx}: "
                                      f"{broken.problem}", tx=broken.tx)
        links, entries = chained(head, found)
        prev = links[-1] if links else head
        # The Merkle tree grows in the same txn; from the tail, its entries are those the tail kept.
        tree = txtree.extension(timeline, head.tx, found, links, None if tail is None else (mod, dict(tail.tree)),
                                entries)
        if tree is None:
            txtree.catch_up(timeline, head.tx, fence)
            continue
        segments, last_segment = _segment_puts(timeline, head, links, tail)
        head_put = Put(timeline.layout.seal_head, ormsgpack.packb([prev.tx, prev.hash, prev.time_us]))
        puts = [*segments, *tree[0], head_put]
        guard = [Compare(timeline.layout.seal_head, "MOD", "==", mod), tree[1], *([] if fence is None else [fence])]
        if memo is not None:
            memo.tail = None  # until this seal is known to have landed
        try:
            revision = timeline.housekeeping(puts, guard, housekeeping)
        except errors.Conflict:
            if fence is not None and not holds(timeline, fence):
                raise
            continue  # another sealer sealed meanwhile: go on from its head
        if memo is not None and links:
            memo.tail = Tail(revision, prev.tx, prev.hash, prev.time_us, last_segment,
                             txtree.kept_for_next(tree[2], prev.tx))
        if prev.tx >= upto:
            return prev


def _heads(timeline: Timeline, seen: Seen | None,
           memo: Memo | None) -> tuple[Link, int, tuple[RangeResult, int] | None, Tail | None]:
    """The sealed head and its mod revision (from ``seen`` if given, else read), ``P/sys/hk`` as ``seen``
    showed it (None: read it), and ``memo``'s tail if it is still what is stored (:mod:`engine.etcd.tail`)."""
    tail = memo.tail if memo is not None else None
    if seen is not None:
        (head, mod), housekeeping = head_of(seen.head), (seen.housekeeping, seen.revision)
        if tail is not None and (seen.tree.kvs[0].mod_revision if seen.tree.kvs else 0) != tail.revision:
            tail = None
    else:
        (head, mod), housekeeping = sealed_head(timeline), None
    if tail is not None and (tail.revision, tail.tx, tail.hash, tail.time_us) != (mod, head.tx, head.hash,
                                                                                   head.time_us):
        tail = None  # another seal landed since this process's last one: read what it stored
    return head, mod, housekeeping, tail


def holds(timeline: Timeline, compare: Compare) -> bool:
    """Whether ``compare`` (on a key's mod revision) holds now."""
    found = timeline.client.range(compare.key)
    return (found.kvs[0].mod_revision if found.kvs else 0) == compare.value


def links(timeline: Timeline, txs: Iterable[int]) -> dict[int, Link]:
    """The links of committed ``txs``, sealing up to the highest first if it is not sealed yet."""
    wanted = sorted(set(txs))
    if not wanted:
        return {}
    seal(timeline, wanted[-1])
    chosen = set(wanted)
    return {t: link for t, link in sealed_links(timeline, wanted[0], wanted[-1]).items() if t in chosen}
