"""The write path on etcd: one Strata tx is one etcd txn, committed at most once.

For a validated :class:`engine.txn.Batch` (the same one the LMDB write path takes, built by the same
validation, so bad input raises the same errors), :func:`commit` sends::

    compare: create_revision(P/tx/<id>) == 0      # retry safety (engine.etcd.once.commit_once)
             mod_revision(P/d/ns/k) == m           # each key read first (below): still version m
                                                   # (version == 0 if it was absent)
             version(P/d/ns/k) > 0                 # each delete: the key exists (else a no-op)
             create_revision([P/x/, P/x/<now + 1:016x>)) == 0   # nothing due (engine.etcd.due)
    success: put P/tx/<id> = msgpack [time_us, note, runs, fingerprint, None]
             put P/d/ns/k = record (puts, clears) / delete P/d/ns/k + put P/m/ns/k = record (deletes)
             put P/x/<expire_us:016x>/ns/k = ""     # each put with an expiry: the expiry index
             put P/u/ns per namespace touched, and its registry P/n/ns (below):
               txn {create_revision(P/n/ns) == 0 -> put P/n/ns; else range P/n/ns}   # not seen registered
             put P/log = <id>                      # the log index (engine.etcd.layout)
             range P/sys/hk                        # -> tx = R - base - count (engine.etcd.timeline)
    failure: range P/tx/<id>; range each compared key; range P/sys/hk
    after a failure, one read txn: range each asserted registry; range P/x/ .. P/x/<now + 1:016x> (limit 1)

**The namespace registry.** A namespace this process has seen registered (``Timeline.registered``: the
create revision of ``P/n/<ns>``, learnt from the nested txn of an earlier commit, which created it or
read it) gets a compare ``create_revision(P/n/ns) == <that>`` instead of the nested txn: one compare
costs the cluster less than a nested txn. When another process dropped the namespace since (or dropped
and created it again), the compare fails and a read of the registry after the failure says so: the
txn is planned again with the nested txn (or the new create revision), as for a key that moved.

**What a failure reads.** The failure branch holds only what a failed txn needs at its own revision:
the request key (a retry that committed), each compared key (an ``expect``, a key read first, a
delete's key) and ``P/sys/hk``. The registries a txn asserts and the first due entry are read after a
failure, in one read txn at the latest revision (:func:`deferred`): those compares fail rarely (a
drop by another process; an expiry falling due), and every range in the branch is sent, replicated
to every member and decoded with the txn whether or not it fails (measured on a 3-member loopback
cluster, 16 writer threads, 10 interleaved rounds: 6% less etcd CPU per durable write, 6% more
writes per second). A newer state than the failed txn saw is as good for planning the next attempt.

Records are byte for byte what the LMDB write path stores (:mod:`engine.codec`: a bare msgpack value, the
clear and delete records, the extended record of a long key, the 6-field record of a put with an expiry
or metadata), so both backends chain the same bytes.

**Keys read first.** The keys an ``expect`` names and those a put with an expiry or metadata writes are
read (one txn at the latest revision) before the commit: ``expect`` is decided on the key's newest
version with LMDB's rule (a value expired at the commit time counts as absent, so ``expect={k: 0}``
holds for it and its stored tx does not), and the put's ``created_us`` is derived from it
(:func:`engine.etcd.expiry.creation_for_write`). The txn then compares each such key's mod revision with
the version read; if another writer changed one meanwhile, the failure branch shows the new version and
the txn is planned again from it (up to :data:`MAX_GUARD_RETRIES` times). Writes with neither read
nothing first.

The rules of :func:`engine.txn.commit`, kept exactly: ``expect`` conditions are checked first (a failed
one raises ``CONFLICT`` with the same message and ``details["conflicts"]``, writing nothing); a delete of
a key that does not exist is a no-op, dropped from the tx (its compare fails, the failure branch shows
which keys are absent, and the txn is sent again without them); a write left with nothing takes no tx
and returns the latest tx. A delete of a key whose value expired but is still stored is a real delete,
as on LMDB before its sweep. Runs left empty are dropped and neighbours of one namespace and op merged
(options kept), as the tx log of the LMDB backend regroups them.

etcd's own limits, checked before sending (nothing is written): a txn of more operations than the
cluster's ``--max-txn-ops`` (items + delete markers + expiry entries + 4 + 2 per namespace, and a
compare per delete, key read first and asserted registry, and one for the due range) is ``BATCH_TOO_LARGE``; a put whose
key and record alone do not fit in ``--max-request-bytes`` (less :data:`RESERVED_BYTES` for the rest of
the txn) is ``VALUE_TOO_LARGE``, a txn over it ``BATCH_TOO_LARGE``.

Request ids: 16 random bytes per call unless the caller gives one (``request_id``): a retry with the
same id, after an answer was lost, returns the tx that committed instead of writing a second one. The
request's fingerprint covers its runs, values, options, expects and note.

**The expiry sweep** (``sweep``: :meth:`engine.etcd.storage.EtcdStorage.commit` passes one, a replay
none): LMDB's rule, a write first records the expiries due at its commit time, kept in one round trip
when none is due. The txn compares the expiry index's due range (:mod:`engine.etcd.due`): it commits
only if no entry is due at ``now`` when etcd applies it, so no writer commits past an unrecorded expiry.
When the compare fails (the read after the failure finds the first due entry), ``sweep`` records up to its limit
as a tx of its own (:mod:`engine.etcd.sweep`, its txs before this one) and the txn is sent again, still
guarded unless the sweep left some due (more than :data:`engine.expiry.SWEEP_PER_WRITE`: LMDB's write
leaves the rest too). A refused write (a failed ``expect``, before its txn or shown by its failure)
sweeps nothing. ``claim`` adds an
idempotency claim to the txn (its compares and put: :mod:`engine.etcd.idempotency`), looked up again
before a sweep (a replay writes nothing, the sweep included).
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgpack
import ormsgpack

from .. import errors
from ..codec import CLEAR_RECORD, DELETE, DELETE_RECORD, PUT, extended_record
from ..encoding import SHORT_MAX, escape
from ..txn import Batch, Expect, Run
from .due import due_range, first_due, found_due, nothing_due
from .expiry import Times, creation_for_write, live_tx, rich
from .kv import Compare, DeleteRange, KeyValue, Put, Range, RangeResult, Request, Txn, TxnResult, interned
from .layout import Layout
from .limits import EtcdLimits as EtcdLimits  # where callers have always found it
from .once import Commit, commit_once
from .reads import snapshot
from .timeline import Timeline, count_of, newest_of


class TxGuard(Protocol):
    """What :func:`commit` adds to its txn for a caller that must know the tx it will take: compares and
    puts from :meth:`guard` (given how the tx follows from the latest one), and :meth:`moved` after a
    failed txn (True: the guard's compares failed, send again). :class:`engine.etcd.idempotency.ClaimGuard`
    (an idempotency claim) and :class:`engine.etcd.replay.NextTx` (a replayed tx's number) are two."""

    written: bool

    def look(self) -> Any: ...

    def guard(self, result_of: Callable[[int], Any]) -> tuple[list[Compare], list[Request]]: ...

    def moved(self) -> bool: ...

#: Bytes of a request kept for everything but one value (bookkeeping entry, markers, framing).
RESERVED_BYTES = 8192
#: Framing etcd's protobuf adds per operation, give or take (for the request-size estimate).
OP_FRAMING = 16
#: Sends of one request before giving up on a housekeeping cache that will not settle.
MAX_ATTEMPTS = 5
#: Sends of one request again because a key it read first (an ``expect``'s, a put with options') was
#: written meanwhile by another writer.
MAX_GUARD_RETRIES = 100


# The operations every write sends unchanged (the housekeeping range; per namespace, its updated key's put,
# its registry's compare and read): made once, their gateway form kept (kv.interned), not per write.
# (Keyed by the store's prefix: a Layout's hash is a Python call, a bytes object's is cached.)
@functools.lru_cache(maxsize=64)
def _steady(prefix: bytes) -> tuple[bytes, Range]:
    """The log index key and the housekeeping range of the store at ``prefix``."""
    layout = Layout(prefix)
    return layout.log, interned(Range(layout.housekeeping))


@functools.lru_cache(maxsize=1024)
def _steady_namespace(prefix: bytes, namespace: str, create_revision: int) -> tuple[Put, Compare, Range]:
    """The put of ``namespace``'s updated key, the compare that its registry is still the one created at
    ``create_revision`` and the failure branch's read of that registry (the store at ``prefix``)."""
    layout = Layout(prefix)
    registry = layout.registry(namespace)
    return (interned(Put(layout.updated(namespace), b"")), interned(Compare(registry, "CREATE", "==", create_revision)),
            interned(Range(registry, keys_only=True)))


def records_of(run: Run) -> list[bytes]:
    """The version records of a run's operations without options, as the LMDB write path encodes them
    (engine.txn.apply_batch); a put with an expiry or metadata gets its record from :func:`plan`."""
    op = run.op
    records = list(run.packed) if op == PUT else [CLEAR_RECORD if op != DELETE else DELETE_RECORD] * len(run.raws)
    for i, raw in enumerate(run.raws):
        if len(escape(raw)) > SHORT_MAX:  # a long key: LMDB keeps it in a bucket, its record names it
            records[i] = extended_record(op, run.keys[i], run.packed[i] if op == PUT else None)
    return records


_packers = threading.local()
#: A packer whose output was larger is not kept (its buffer keeps the largest size it held).
PACKER_KEPT_BYTES = 64 << 10


def packb(obj: Any) -> bytes:
    """``msgpack.packb(obj, use_bin_type=True)`` (the same bytes), with a packer kept per thread:
    ``msgpack.packb`` makes a packer, and its buffer, per call (every write packs twice)."""
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    out: bytes = packer.pack(obj)
    if len(out) > PACKER_KEPT_BYTES:  # a large batch's fingerprint: its buffer is not kept by the thread
        _packers.packer = None
    return out


def fingerprint(batch: Batch, note: dict[str, Any] | None) -> bytes:
    """What identifies the request (not the attempt): its runs, values, options, expects and note."""
    body = [[[r.namespace, r.op, r.keys, r.packed, *([] if r.opts is None else [r.opts])] for r in batch.runs],
            [[e.namespace, e.key, str(e.tx)] for e in batch.expects], note]  # str: a tx may be over 64 bits
    return hashlib.sha256(packb(body)).digest()[:16]


def conflict(conflicts: list[dict[str, Any]]) -> errors.Conflict:
    """``CONFLICT`` worded as the LMDB write path words it (engine.txn._check_expects)."""
    c = conflicts[0]
    return errors.Conflict(
        f"{len(conflicts)} expectation(s) failed; key {c['key']!r} in {c['namespace']!r} was last "
        f"changed at tx {c['actual']}, not {c['expected']}",
        conflicts=conflicts,
    )


def without(runs: list[Run], absent: set[tuple[str, str]]) -> list[Run]:
    """``runs`` without the deletes of ``absent`` ``(namespace, key)`` pairs; empty runs dropped and
    neighbours of one namespace and op merged (engine.txn.without_noops)."""
    out: list[Run] = []
    for run in runs:
        if run.op == DELETE:
            keep = [i for i, key in enumerate(run.keys) if (run.namespace, key) not in absent]
            if not keep:
                continue
            run = Run(run.namespace, DELETE, [run.keys[i] for i in keep], [run.raws[i] for i in keep])
        if out and out[-1].namespace == run.namespace and out[-1].op == run.op:
            last = out[-1]
            opts = None
            if last.opts is not None or run.opts is not None:
                opts = (last.opts or [None] * len(last.keys)) + (run.opts or [None] * len(run.keys))
            out[-1] = Run(last.namespace, last.op, last.keys + run.keys, last.raws + run.raws,
                          last.packed + run.packed, opts)
        else:
            out.append(run)
    return out


@dataclass(slots=True)
class Plan:
    """One attempt's txn: compares, both branches, and the data keys the failure branch reads back."""

    compare: list[Compare]
    success: list[Request]
    failure: list[Request]
    checked: list[bytes]
    entry: bytes
    #: The records the success branch writes, per run of ``runs``: what a seal of the tx hashes.
    records: list[list[bytes]]
    #: The namespaces whose registry a compare asserts (known registered), in the order the read
    #: after a failure (``deferred``) reads their registry entries.
    registered: list[str] = field(default_factory=list)
    #: What a failure reads after the txn, not in its failure branch (see the module docstring):
    #: :func:`deferred` splices the answers in right before the housekeeping range's.
    deferred: list[Request] = field(default_factory=list)
    #: Whether the success branch holds a nested txn (a namespace not seen registered): only then does a
    #: success have registries to learn (most writes: every namespace known, nothing to scan).
    nested: bool = False
    #: A guarded write's commit time: its txn compares the due range at it (:mod:`engine.etcd.due`), and a
    #: failure reads the first due entry last among the reads after it. That read is made only then (in
    #: :func:`deferred`; most txns succeed), counted by :func:`check_limits` all the same.
    due_us: int | None = None


def plan(timeline: Timeline, runs: list[Run], seen: dict[bytes, KeyValue | None], note: dict[str, Any] | None,
         now_us: int, request_id: bytes, request_fingerprint: bytes,
         registered: dict[str, int] | None = None) -> Plan:
    """The txn writing ``runs`` (see the module docstring). ``seen``: the newest version read before the
    commit of every key an ``expect`` names or a put with options writes (None: absent); each must still
    be the newest (a compare), since the expect's answer and the put's ``created_us`` were derived from
    it. ``registered``: the registry entries this process has seen (namespace: create revision of
    ``P/n/<ns>``); a namespace in it gets a compare that its registry is still that one (another process
    may have dropped it since: the txn then fails and reads it, :func:`learn_registries`), any other a
    nested txn creating its registry if it is absent (its failure branch reads the one there)."""
    layout = timeline.layout
    compare: list[Compare] = []
    checked: dict[bytes, None] = {}
    for key, kv in seen.items():
        compare.append(Compare(key, "VERSION", "==", 0) if kv is None else Compare(key, "MOD", "==", kv.mod_revision))
        checked[key] = None
    success: list[Request] = []
    namespaces: dict[str, None] = {}
    times: Times | None = None  # made on the first put with options (most writes have none)
    written: list[list[bytes]] = []
    for run in runs:
        namespaces[run.namespace] = None
        records = records_of(run)
        written.append(records)
        for i, opts in enumerate(run.opts or ()):
            if opts is not None:  # a put with an expiry or metadata: the rich record, its expiry indexed
                key = layout.data(run.namespace, run.raws[i])
                times = times or Times(timeline)
                created = creation_for_write(timeline, key, seen[key], now_us, times)
                records[i], expire_us = rich(run.keys[i], run.raws[i], run.packed[i], opts, now_us, created)
                if expire_us is not None:
                    success.append(Put(layout.expiry(expire_us, run.namespace, run.raws[i]), b""))
        for raw, record in zip(run.raws, records, strict=True):
            key = layout.data(run.namespace, raw)
            if run.op == DELETE:
                compare.append(Compare(key, "VERSION", ">", 0))
                checked[key] = None
                success.append(DeleteRange(key))
                success.append(Put(layout.marker(run.namespace, raw), record))
            else:
                success.append(Put(key, record))
    known = registered or {}
    guarded: list[str] = []
    registries: list[Request] = []
    for ns in namespaces:
        if ns in known:  # registered when this process last looked: one compare instead of a nested txn
            touch, still, registry_range = _steady_namespace(layout.prefix, ns, known[ns])
            success.append(touch)
            compare.append(still)
            guarded.append(ns)
            registries.append(registry_range)
        else:
            success.append(Put(layout.updated(ns), b""))
            registry = layout.registry(ns)
            created_entry = ormsgpack.packb({"created_us": now_us})
            success.append(Txn((Compare(registry, "CREATE", "==", 0),), (Put(registry, created_entry),),
                               (Range(registry, keys_only=True),)))
    log, housekeeping = _steady(layout.prefix)
    success.append(Put(log, request_id))
    success.append(housekeeping)
    logged = [[r.namespace, r.op, r.keys] for r in runs]
    entry = packb([now_us, note, logged, request_fingerprint, None])
    # most writes compare no data key: no generator for an empty failure read-back
    failure: list[Request] = [*(Range(k) for k in checked), housekeeping] if checked else [housekeeping]
    return Plan(compare, success, failure, list(checked), entry, written, guarded, registries,
                len(guarded) < len(namespaces))


def deferred(timeline: Timeline, p: Plan, result: Commit) -> Commit:
    """``result`` of ``p``'s failed txn with the answers to ``p.deferred`` (read now, in one txn at the
    latest revision) spliced in right before its last answer, the housekeeping range's: the answers a
    failure branch holding them would have given, in its order, seen a little later."""
    if result.succeeded:
        return result
    reads = p.deferred if p.due_us is None else [*p.deferred, first_due(timeline.layout, p.due_us)]
    if not reads:
        return result
    later = timeline.client.txn((), reads).responses
    return result._replace(responses=[*result.responses[:-1], *later, result.responses[-1]])


def learn_registries(timeline: Timeline, p: Plan, result: Commit) -> bool:
    """Update ``timeline.registered`` from the answer to ``p``'s txn (not replayed): after a success, the
    registry of each namespace its nested txns looked at (created by this txn, or read in the nested
    failure branch); after a failure, those its compares asserted (read in the failure branch: absent ones
    are forgotten). Returns whether an asserted registry was not the one known (the txn must be planned
    again)."""
    registered, layout = timeline.registered, timeline.layout
    if result.succeeded:
        if not p.nested:  # every namespace was asserted by a compare: no nested txn answered
            return False
        for op, answer in zip(p.success, result.responses, strict=False):
            if isinstance(op, Txn) and isinstance(answer, TxnResult):
                name = layout.namespace_of_registry(op.compare[0].key)
                looked = answer.responses[0] if answer.responses else None
                if answer.succeeded:
                    registered[name] = result.revision
                elif isinstance(looked, RangeResult) and looked.kvs:
                    registered[name] = looked.kvs[0].create_revision
        return False
    moved = False
    answers = result.responses[len(p.checked):len(p.checked) + len(p.registered)]  # spliced in by deferred()
    for name, answer in zip(p.registered, answers, strict=True):
        assert isinstance(answer, RangeResult)
        now = answer.kvs[0].create_revision if answer.kvs else 0
        if now != registered.get(name):
            moved = True
        if now:
            registered[name] = now
        else:
            registered.pop(name, None)  # dropped: the next attempt creates it again (a nested txn)
    return moved


def guarded_keys(timeline: Timeline, batch: Batch) -> list[bytes]:
    """The data keys whose newest version a commit of ``batch`` reads first: those an ``expect`` names
    (an expired value counts as absent) and those a put with an expiry or metadata writes (its
    ``created_us``)."""
    if not batch.expects and all(run.opts is None for run in batch.runs):
        return []  # most writes: nothing read first
    layout = timeline.layout
    keys = {layout.data(e.namespace, e.raw): None for e in batch.expects}
    for run in batch.runs:
        for raw, opts in zip(run.raws, run.opts or (), strict=False):
            if opts is not None:
                keys[layout.data(run.namespace, raw)] = None
    return list(keys)


def newest(timeline: Timeline, keys: list[bytes]) -> dict[bytes, KeyValue | None]:
    """The newest version of each data key (None: absent), read at one revision."""
    if not keys:
        return {}
    _, _, answers = snapshot(timeline, None, [Range(k) for k in keys])
    return {k: (a.kvs[0] if a.kvs else None) for k, a in zip(keys, answers, strict=True)}


def check_limits(p: Plan, request_key: bytes, limits: EtcdLimits, items: int) -> None:
    """``BATCH_TOO_LARGE`` / ``VALUE_TOO_LARGE`` for a txn etcd would refuse (before sending it)."""
    # One pass over the success branch (every write checks this): its nested txns, its puts' sizes (the
    # first over the room one value has) and the request's bytes; the errors are raised in the order
    # they always were (the operation count first, then a value alone, then the whole request).
    room = limits.max_request_bytes - RESERVED_BYTES
    nested = 0
    too_large: Put | None = None
    total = len(request_key) + len(p.entry)
    for op in p.success:
        if type(op) is Put:
            size = len(op.key) + len(op.value)  # Put.size
            if size > room and too_large is None:
                too_large = op
            total += size + OP_FRAMING
        elif type(op) is Txn:
            nested += 1
    # Counted for the txn's larger shape whether or not this process has seen each namespace registered (a
    # compare and a read after a failure, or a nested txn: a write after another process's drop is sent again
    # with the nested txn), so that the batches a cluster takes do not depend on what this process has seen;
    # the reads after a failure are counted as if in the failure branch (as they were, and may be again).
    asserted = len(p.registered)
    ops = max(len(p.compare) + nested + 1, len(p.success) + asserted + 1,
              len(p.failure) + len(p.deferred) + (p.due_us is not None) + nested + 1) + (1 if nested or asserted else 0)
    if ops > limits.max_txn_ops:
        raise errors.BatchTooLarge(
            f"a write of {items} operations needs {ops} etcd txn operations; the cluster allows "
            f"{limits.max_txn_ops} (its --max-txn-ops)", count=items, ops=ops, limit=limits.max_txn_ops)  # fmt: skip
    if too_large is not None:
        raise errors.ValueTooLarge(
            f"value is {len(too_large.value)} bytes encoded; with its key it is over what one etcd request "
            f"holds ({room} bytes of the cluster's --max-request-bytes {limits.max_request_bytes})",
            key=too_large.key.decode("utf-8", "backslashreplace"), size=too_large.size, limit=room)  # fmt: skip
    for c in p.compare:
        total += len(c.key) + OP_FRAMING
    for k in p.checked:
        total += len(k) + OP_FRAMING
    if total > limits.max_request_bytes:
        raise errors.BatchTooLarge(
            f"a write of {items} operations is {total} bytes as an etcd txn; the cluster takes at most "
            f"{limits.max_request_bytes} (its --max-request-bytes): split it",
            count=items, size=total, limit=limits.max_request_bytes)  # fmt: skip


def commit(timeline: Timeline, batch: Batch, note: dict[str, Any] | None, now_us: int,
           limits: EtcdLimits, request_id: bytes | None = None, sweep: Callable[[], bool] | None = None,
           claim: TxGuard | None = None) -> int:
    """Write ``batch`` as the next tx and return it; see the module docstring for the rules and errors.
    ``request_id`` (default: 16 random bytes) names the request: a call with an id that already
    committed the same request returns that commit's tx. ``sweep``: records expiries due at ``now_us``
    as a tx of its own and returns whether some are still due; given, the txn commits only if none is
    due, and ``sweep`` runs whenever one was (the module docstring). ``claim``: an idempotency claim
    stored by the same txn (:mod:`engine.etcd.idempotency`), looked up before a sweep."""
    request_id = request_id or os.urandom(16)
    request_key = timeline.layout.request(request_id)
    request_fp = fingerprint(batch, note)
    items = sum(len(run.keys) for run in batch.runs)
    runs = list(batch.runs)
    seen = newest(timeline, guarded_keys(timeline, batch))
    guarded = sweep is not None  # the txn proves nothing is due (engine.etcd.due)
    settled = 0  # attempts that failed for a reason other than a guarded key changing or a sweep
    for _ in range(MAX_ATTEMPTS + MAX_GUARD_RETRIES):
        conflicts = _conflicts(timeline, batch.expects, seen, now_us) if batch.expects else None
        if conflicts:
            raise conflict(conflicts)
        p = plan(timeline, runs, seen, note, now_us, request_id, request_fp, timeline.registered)
        if guarded:  # its read after a failure goes last, right before the range of P/sys/hk once spliced
            due = due_range(timeline.layout, now_us)
            p.compare.append(nothing_due(timeline.layout, now_us, due))
            p.due_us = now_us  # its first due entry is read after a failure (deferred)
        if claim is not None:  # its put goes before the last request, the range of P/sys/hk the tx is read from
            compare, puts = claim.guard(lambda latest: latest + 1)
            p.compare.extend(compare)
            p.success[-1:-1] = puts
        check_limits(p, request_key, limits, items)
        result = commit_once(timeline.client, request_key, p.entry, p.compare, p.success, p.failure,
                             same_request=lambda stored: _fingerprint_of(stored) == request_fp)
        if result.succeeded:
            if not result.replayed:  # this attempt's txn wrote them: the local sealer need not read them back
                timeline.written.add(result.revision, p.entry, p.records)
                learn_registries(timeline, p, result)
            return committed_tx(timeline, result, claim)
        housekeeping = result.responses[-1]
        assert isinstance(housekeeping, RangeResult)
        count = count_of(housekeeping.kvs)
        timeline.learn(count, result.revision)
        found, moved = _moved(timeline, batch, seen, p, result, now_us)
        result = deferred(timeline, p, result)
        unregistered = learn_registries(timeline, p, result)  # a namespace dropped (or dropped and created)
        swept = guarded and found_due(result.responses[-2])
        if swept:
            assert sweep is not None
            if claim is not None:
                claim.look()  # a concurrent attempt committed this request: replay, sweeping nothing
            guarded = not sweep()  # some left due (over the sweep's limit): LMDB's write leaves them too
        absent = {(run.namespace, key) for run in runs if run.op == DELETE
                  for key, raw in zip(run.keys, run.raws, strict=True)
                  if found.get(timeline.layout.data(run.namespace, raw)) is None}
        runs = without(runs, absent)
        if not runs and not _conflicts(timeline, batch.expects, seen, now_us):  # only no-op deletes: no tx
            return timeline.latest()[0] if swept else result.revision - timeline.base - count  # the latest
        if not moved and not swept and not unregistered and (claim is None or not claim.moved()):
            settled += 1
            if settled >= MAX_ATTEMPTS:
                break
    raise errors.StorageError("the etcd commit did not settle: housekeeping txns or other writers kept landing "
                              "in between", attempts=MAX_ATTEMPTS)


def _moved(timeline: Timeline, batch: Batch, seen: dict[bytes, KeyValue | None], p: Plan, result: Commit,
           now_us: int) -> tuple[dict[bytes, KeyValue | None], dict[bytes, KeyValue | None]]:
    """After ``p``'s txn failed: the compared keys as its failure branch found them, and those of ``seen``
    that moved (``seen`` is updated). ``CONFLICT`` at once if that fails an ``expect``: a refused write
    writes nothing, not even the sweep of what is due (as on LMDB), and reads nothing more."""
    found = _found(result.responses[:len(p.checked)], p.checked)
    moved = {k: found[k] for k in seen if _revision(found[k]) != _revision(seen[k])}
    seen.update(moved)
    if moved and batch.expects:
        conflicts = _conflicts(timeline, batch.expects, seen, now_us)
        if conflicts:
            raise conflict(conflicts)
    return found, moved


def committed_tx(timeline: Timeline, result: Commit, claim: TxGuard | None) -> int:
    """The tx of a txn that committed (now, or earlier: a replay); a stream tx's too (:mod:`engine.etcd.stream_log`)."""
    if claim is not None:
        claim.written = True
    if result.replayed:
        timeline.refresh()
        return timeline.tx_of(result.revision)
    return _tx_from(timeline, result.revision, result.responses[-1])


def _revision(kv: KeyValue | None) -> int:
    return 0 if kv is None else kv.mod_revision


def _fingerprint_of(stored: bytes) -> bytes | None:
    try:
        fields = msgpack.unpackb(stored, raw=False)
        return bytes(fields[3])
    except (ValueError, TypeError, IndexError, msgpack.ExtraData):
        return None


def _tx_from(timeline: Timeline, revision: int, housekeeping: Any) -> int:
    assert isinstance(housekeeping, RangeResult)
    count = count_of(housekeeping.kvs)
    timeline.learn(count, revision, newest_of(housekeeping.kvs))
    return revision - timeline.base - count


def _found(responses: Sequence[Any], checked: list[bytes]) -> dict[bytes, KeyValue | None]:
    out: dict[bytes, KeyValue | None] = {}
    for key, rng in zip(checked, responses, strict=True):
        assert isinstance(rng, RangeResult)
        out[key] = rng.kvs[0] if rng.kvs else None
    return out


def _conflicts(timeline: Timeline, expects: list[Expect], seen: dict[bytes, KeyValue | None],
               now_us: int) -> list[dict[str, Any]]:
    """The failed ``expects``, given each key's newest version: a value expired at ``now_us`` counts as
    absent (tx 0), as on LMDB (:func:`engine.snapshot.live_tx`)."""
    out = []
    for exp in expects:
        actual = live_tx(timeline, seen[timeline.layout.data(exp.namespace, exp.raw)], now_us)
        if actual != exp.tx:
            out.append({"namespace": exp.namespace, "key": exp.key, "expected": exp.tx, "actual": actual})
    return out
