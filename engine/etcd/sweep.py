"""The expiry sweep on etcd: due expiries recorded as deletes, each sweep a tx of its own.

The LMDB engine (:func:`engine.expiry.sweep`) records expiries due at ``now`` as an ordinary delete tx
with note ``{"expired": true}``. On etcd one txn is one revision is one tx, so a sweep cannot share the
caller's txn: :func:`sweep` is one etcd txn of its own (the write path of :mod:`engine.etcd.commit`,
given the deletes)::

    range P/x/ .. P/x/<now + 1:016x>  (limit n + 1)        # the due index entries, oldest first
    range each entry's data key                              # its newest version, read at one revision
    txn  compare: create_revision(P/tx/<id>) == 0
                  mod_revision(P/d/ns/k) == the expiring version's, version > 0   (each key deleted)
         success: the delete tx (P/tx/<id>, delete P/d/ns/k + put P/m/ns/k, P/u/ns, P/log, ...)
                  delete P/x/... for every entry swept (stale ones too)

An entry is **stale** (its key was overwritten, deleted or its namespace dropped since) when the key's
newest version is not a put or clear carrying that very ``expire_us``: it is dropped, not recorded. The
``mod_revision`` compares make two sweepers (or a sweeper and a writer) never record one expiry twice:
if a key changed in between, the txn fails and the sweep reads again. A sweep whose entries are all
stale deletes them in a housekeeping txn (a revision, no tx), as LMDB drops them without a tx.

Order (so the tx log's operations are LMDB's): entries sorted by ``(expire_us, namespace id, keypart)``,
keypart being LMDB's key encoding (:func:`engine.encoding.keypart`, long keys in their hash buckets),
one run per namespace in first-seen order. LMDB's namespace ids follow the order names were first
created or written; etcd has no ids, so :func:`namespace_ranks` takes the oldest ``create_revision`` of
the registry ``P/n/<ns>`` and of ``P/u/<ns>`` (never deleted). They differ only for a namespace created
empty, dropped and written again later than another one (its registry is gone and ``P/u`` is newer).
Which entries make the ``limit`` is LMDB's order too: etcd's key order (hex time, name, raw key) agrees
with it up to the microsecond, so when more than ``limit`` entries are due, :func:`due_entries` also reads
every entry of the last microsecond it reached (one more range) and cuts in LMDB's order.

Batch size: at most ``limit`` index entries per sweep (:data:`engine.expiry.SWEEP_PER_WRITE` before a
write, LMDB's, so both backends take the same sweep txs; :data:`engine.expiry.SWEEP_PER_TX` per ``expire()``
tx, or as many as fit), stale ones included as on LMDB. A store's ``--max-txn-ops`` is at least
:data:`engine.etcd.limits.MIN_TXN_OPS`, which holds a write's sweep in as many namespaces; a sweep that
does not fit (an ``expire()`` tx, or a storage given less: :class:`engine.etcd.storage.EtcdStorage`
directly) takes as many as fit (:func:`per_txn`, :func:`fitting`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from .. import errors
from ..codec import CLEAR, DELETE, MARK, PUT, decode_rich
from ..encoding import keypart
from ..expiry import EXPIRED_NOTE
from ..txn import Batch, Run
from . import txlog
from .commit import _tx_from, fingerprint, plan
from .due import due_range
from .kv import Compare, DeleteRange, KeyValue, Range, RangeResult
from .limits import EtcdLimits, sweep_txn_ops
from .once import commit_once
from .reads import snapshot
from .timeline import Timeline, count_of

#: Attempts of one sweep whose txn failed because a key changed meanwhile, before giving up this round.
MAX_ATTEMPTS = 20
#: A namespace id's width in LMDB keyparts (only the order of what follows matters here).
_NS = b"\0\0\0\0"


def per_txn(limits: EtcdLimits) -> int:
    """Index entries one sweep txn may hold in one namespace (:func:`engine.etcd.limits.sweep_txn_ops`;
    :func:`fitting` cuts a sweep across namespaces further)."""
    return max(1, (limits.max_txn_ops - sweep_txn_ops(0, 1)) // 3)


Entry = tuple[int, str, bytes, bytes, int]


def due_entries(timeline: Timeline, now_us: int, limit: int) -> tuple[list[Entry], bool]:
    """Up to ``limit`` index entries due at ``now_us`` as ``(expire_us, namespace, raw key, entry key,
    its mod revision)``, in LMDB's order, and whether more are due."""
    layout = timeline.layout
    start, end = due_range(layout, now_us)
    found = timeline.client.range(start, end, limit=limit)
    kvs = {kv.key: kv for kv in found.kvs}
    if found.more and kvs:  # the cut may fall inside a microsecond: read all of it, cut in LMDB's order
        last = start + found.kvs[-1].key[len(start):len(start) + 16]
        kvs.update((kv.key, kv) for kv in timeline.client.range(last + b"/", last + b"0", found.revision).kvs)
    out = []
    for kv in kvs.values():
        rest = kv.key[len(start):]
        hexed, ns, raw = rest[:16], *rest[17:].split(b"/", 1)
        out.append((int(hexed, 16), ns.decode(), raw, kv.key, kv.mod_revision))
    ranks = namespace_ranks(timeline, {e[1] for e in out})
    out.sort(key=lambda e: (e[0], ranks[e[1]], keypart(_NS, e[2])))
    return out[:limit], found.more


def fitting(entries: list[Entry], limits: EtcdLimits) -> int:
    """How many of ``entries`` (in order) one txn holds (:func:`engine.etcd.limits.sweep_txn_ops`)."""
    names: set[str] = set()
    for i, (_, ns, _, _, _) in enumerate(entries):
        names.add(ns)
        if sweep_txn_ops(i + 1, len(names)) > limits.max_txn_ops:
            return i
    return len(entries)


def namespace_ranks(timeline: Timeline, names: set[str]) -> dict[str, tuple[int, int, str]]:
    """A sort key per namespace in LMDB's namespace id order (the order names were first created or
    written): the oldest ``create_revision`` of its registry and of ``P/u/<ns>`` (which no drop deletes),
    then, for namespaces first written by the same tx, their order in its log (LMDB's id order there)."""
    if len(names) < 2:
        return {name: (0, 0, name) for name in names}
    layout = timeline.layout
    ordered = sorted(names)
    ranges = [Range(k) for name in ordered for k in (layout.registry(name), layout.updated(name))]
    step = max(2, timeline.max_txn_ops - timeline.max_txn_ops % 2)  # a microsecond may span many namespaces
    answers = [a for i in range(0, len(ranges), step) for a in timeline.client.txn((), ranges[i:i + step]).responses]
    first: dict[str, int] = {}
    for i, name in enumerate(ordered):
        revisions = [a.kvs[0].create_revision for a in answers[2 * i:2 * i + 2]
                     if isinstance(a, RangeResult) and a.kvs]
        first[name] = min(revisions, default=0)
    ranks = {}
    orders: dict[int, list[str]] = {}
    for name, revision in first.items():
        position = 0
        if revision and list(first.values()).count(revision) > 1:  # first written by one tx: its log's order
            if revision not in orders:
                entry = txlog.entry(timeline, timeline.tx_of(revision))
                orders[revision] = [] if entry is None else list(dict.fromkeys(o.namespace for o in entry.operations))
            order = orders[revision]
            position = order.index(name) if name in order else len(order)
        ranks[name] = (revision, position, name)
    return ranks


def _live(kv: KeyValue | None, expire_us: int) -> bool:
    """Whether ``kv`` (a key's newest version) is the version that expires at ``expire_us``."""
    if kv is None or kv.value[0] != MARK:
        return False
    op, _, _, entry_expire, _, _ = decode_rich(kv.value)
    return op in (PUT, CLEAR) and entry_expire == expire_us


def sweep(timeline: Timeline, now_us: int, limit: int, limits: EtcdLimits) -> tuple[int, bool]:
    """Record up to ``limit`` expiries due at ``now_us`` as one delete tx (note ``{"expired": true}``);
    returns ``(keys deleted, whether more entries are due)``. No tx when every entry was stale."""
    layout = timeline.layout
    for _ in range(MAX_ATTEMPTS):
        entries, more = due_entries(timeline, now_us, min(limit, per_txn(limits)))
        if not entries:
            return 0, False
        room = fitting(entries, limits)
        if room < len(entries):  # many namespaces: fewer entries fit
            entries, more = entries[:room], True
        data_keys = [layout.data(ns, raw) for _, ns, raw, _, _ in entries]
        _, _, answers = snapshot(timeline, None, [Range(k) for k in data_keys])
        runs: dict[str, Run] = {}
        seen: dict[bytes, KeyValue | None] = {}
        for (expire_us, ns, raw, _, _), key, answer in zip(entries, data_keys, answers, strict=True):
            assert isinstance(answer, RangeResult)
            kv = answer.kvs[0] if answer.kvs else None
            if not _live(kv, expire_us) or key in seen:
                continue
            seen[key] = kv
            run = runs.setdefault(ns, Run(ns, DELETE))
            run.keys.append(raw.decode())
            run.raws.append(raw)
        unindex = [DeleteRange(entry) for _, _, _, entry, _ in entries]
        still = [Compare(entry, "MOD", "==", revision) for _, _, _, entry, revision in entries]
        if not runs:
            with contextlib.suppress(errors.Conflict):  # an entry swept or written again meanwhile: read again
                timeline.housekeeping(unindex, still)
            limit -= len(entries)  # stale entries count against the limit, as on LMDB
            if limit <= 0:
                return 0, True
            continue
        batch = Batch(list(runs.values()))
        request_id = os.urandom(16)
        request_key = layout.request(request_id)
        p = plan(timeline, batch.runs, seen, EXPIRED_NOTE, now_us, request_id, fingerprint(batch, EXPIRED_NOTE))
        p.success[-2:-2] = unindex  # before P/log and the housekeeping range, whose answer gives the tx
        p.compare.extend(still)  # an entry written again meanwhile (same key, same microsecond) stays
        result = commit_once(timeline.client, request_key, p.entry, p.compare, p.success, p.failure)
        if result.succeeded:
            _tx_from(timeline, result.revision, result.responses[-1])
            return len(seen), more
        housekeeping: Any = result.responses[-1]
        assert isinstance(housekeeping, RangeResult)
        timeline.learn(count_of(housekeeping.kvs), result.revision)
    return 0, True


def pending(timeline: Timeline, now_us: int) -> bool:
    """Whether some index entry is due at ``now_us`` (one range of one key)."""
    start, end = due_range(timeline.layout, now_us)
    return bool(timeline.client.range(start, end, limit=1, keys_only=True).kvs)


def next_expiry_us(timeline: Timeline) -> int | None:
    """When the earliest pending index entry falls due (None if there is none)."""
    start = timeline.layout.prefix + b"/x/"
    found = timeline.client.range(start, start[:-1] + b"0", limit=1, keys_only=True).kvs
    return int(found[0].key[len(start):len(start) + 16], 16) if found else None

