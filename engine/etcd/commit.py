"""The write path on etcd: one Strata tx is one etcd txn, committed at most once.

For a validated :class:`engine.txn.Batch` (the same one the LMDB write path takes, built by the same
validation, so bad input raises the same errors), :func:`commit` sends::

    compare: create_revision(P/tx/<id>) == 0      # retry safety (engine.etcd.once.commit_once)
             mod_revision(P/d/ns/k) == revision(t) # each expect {k: t}; version == 0 for t = 0
             version(P/d/ns/k) > 0                 # each delete: the key exists (else a no-op)
    success: put P/tx/<id> = msgpack [time_us, note, runs, fingerprint, None]
             put P/d/ns/k = record (puts, clears) / delete P/d/ns/k + put P/m/ns/k = record (deletes)
             put P/u/ns; txn {create_revision(P/n/ns) == 0 -> put P/n/ns} per namespace touched
             put P/log = <id>                      # the log index (engine.etcd.layout)
             range P/sys/hk                        # -> tx = R - base - count (engine.etcd.timeline)
    failure: range P/tx/<id>; range each compared key; range P/sys/hk

Records are byte for byte what the LMDB write path stores (:mod:`engine.codec`: a bare msgpack value, the
clear and delete records, the extended record of a long key), so both backends chain the same bytes.

The rules of :func:`engine.txn.commit`, kept exactly: ``expect`` conditions are checked first (a failed
one raises ``CONFLICT`` with the same message and ``details["conflicts"]``, writing nothing); a delete of
a key that does not exist is a no-op, dropped from the tx (its compare fails, the failure branch shows
which keys are absent, and the txn is sent again without them); a write left with nothing takes no tx
and returns the latest tx. Runs left empty are dropped and neighbours of one namespace and op merged, as
the tx log of the LMDB backend regroups them.

etcd's own limits, checked before sending (nothing is written): a txn of more operations than the
cluster's ``--max-txn-ops`` (items + delete markers + 4 + 2 per namespace, and a compare per delete and
expect) is ``BATCH_TOO_LARGE``; a put whose key and record alone do not fit in ``--max-request-bytes``
(less :data:`RESERVED_BYTES` for the rest of the txn) is ``VALUE_TOO_LARGE``, a txn over it
``BATCH_TOO_LARGE``.

Request ids: 16 random bytes per call unless the caller gives one (``request_id``): a retry with the
same id, after an answer was lost, returns the tx that committed instead of writing a second one.

Not yet: puts with an expiry or metadata (``NotImplementedError``), the expiry sweep, the engine's
idempotency claims (scoped keys, recorded answers and refusals).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import ormsgpack

from .. import errors
from ..codec import CLEAR_RECORD, DELETE, DELETE_RECORD, PUT, extended_record
from ..encoding import SHORT_MAX, escape
from ..txn import Batch, Expect, Run
from .answers import DEFAULT_MAX_REQUEST_BYTES
from .kv import Compare, DeleteRange, KeyValue, Put, Range, RangeResult, Request, Txn
from .once import commit_once
from .timeline import MAX_REVISION, Timeline, count_of

#: Bytes of a request kept for everything but one value (bookkeeping entry, markers, framing).
RESERVED_BYTES = 8192
#: Framing etcd's protobuf adds per operation, give or take (for the request-size estimate).
OP_FRAMING = 16
#: Sends of one request before giving up on a housekeeping cache that will not settle.
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class EtcdLimits:
    """The cluster's limits (its ``--max-txn-ops`` and ``--max-request-bytes``; etcd's defaults)."""

    max_txn_ops: int = 128
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES


def records_of(run: Run) -> list[bytes]:
    """The version records a run stores, as the LMDB write path encodes them (engine.txn.apply_batch)."""
    if run.opts is not None:
        raise NotImplementedError("puts with an expiry or metadata are not built on etcd yet")
    op = run.op
    records = list(run.packed) if op == PUT else [CLEAR_RECORD if op != DELETE else DELETE_RECORD] * len(run.raws)
    for i, raw in enumerate(run.raws):
        if len(escape(raw)) > SHORT_MAX:  # a long key: LMDB keeps it in a bucket, its record names it
            records[i] = extended_record(op, run.keys[i], run.packed[i] if op == PUT else None)
    return records


def fingerprint(batch: Batch, note: dict[str, Any] | None) -> bytes:
    """What identifies the request (not the attempt): its runs, values, expects and note."""
    body = [[[r.namespace, r.op, r.keys, r.packed] for r in batch.runs],
            [[e.namespace, e.key, str(e.tx)] for e in batch.expects], note]  # str: a tx may be over 64 bits
    return hashlib.sha256(msgpack.packb(body, use_bin_type=True)).digest()[:16]


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
            out[-1] = Run(last.namespace, last.op, last.keys + run.keys, last.raws + run.raws,
                          last.packed + run.packed)
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


def plan(timeline: Timeline, runs: list[Run], expects: list[Expect], note: dict[str, Any] | None,
         now_us: int, request_id: bytes, request_fingerprint: bytes) -> Plan:
    """The txn writing ``runs`` under ``expects`` (see the module docstring). Every namespace's registry
    is checked by a nested txn, every time: a process cannot know that no other process dropped it."""
    layout = timeline.layout
    compare: list[Compare] = []
    checked: dict[bytes, None] = {}
    for exp in expects:
        key = layout.data(exp.namespace, exp.raw)
        revision = timeline.revision_of(exp.tx)
        if exp.tx == 0:
            compare.append(Compare(key, "VERSION", "==", 0))
        elif revision > MAX_REVISION:  # a tx no store can reach: the condition cannot hold
            compare.append(Compare(key, "MOD", "<", 0))
        else:
            compare.append(Compare(key, "MOD", "==", revision))
        checked[key] = None
    success: list[Request] = []
    namespaces: dict[str, None] = {}
    for run in runs:
        namespaces[run.namespace] = None
        records = records_of(run)
        for raw, record in zip(run.raws, records, strict=True):
            key = layout.data(run.namespace, raw)
            if run.op == DELETE:
                compare.append(Compare(key, "VERSION", ">", 0))
                checked[key] = None
                success.append(DeleteRange(key))
                success.append(Put(layout.marker(run.namespace, raw), record))
            else:
                success.append(Put(key, record))
    created = ormsgpack.packb({"created_us": now_us})
    for ns in namespaces:
        success.append(Put(layout.updated(ns), b""))
        registry = layout.registry(ns)
        success.append(Txn((Compare(registry, "CREATE", "==", 0),), (Put(registry, created),)))
    success.append(Put(layout.log, request_id))
    success.append(Range(layout.housekeeping))
    logged = [[r.namespace, r.op, r.keys] for r in runs]
    entry = msgpack.packb([now_us, note, logged, request_fingerprint, None], use_bin_type=True)
    failure: list[Request] = [*(Range(k) for k in checked), Range(layout.housekeeping)]
    return Plan(compare, success, failure, list(checked), entry)


def check_limits(p: Plan, request_key: bytes, limits: EtcdLimits, items: int) -> None:
    """``BATCH_TOO_LARGE`` / ``VALUE_TOO_LARGE`` for a txn etcd would refuse (before sending it)."""
    nested = any(isinstance(op, Txn) for op in p.success)
    ops = max(len(p.compare) + 1, len(p.success) + 1, len(p.failure) + 1) + (1 if nested else 0)
    if ops > limits.max_txn_ops:
        raise errors.BatchTooLarge(
            f"a write of {items} operations needs {ops} etcd txn operations; the cluster allows "
            f"{limits.max_txn_ops} (its --max-txn-ops)", count=items, ops=ops, limit=limits.max_txn_ops)  # fmt: skip
    puts = [op for op in p.success if isinstance(op, Put)]
    room = limits.max_request_bytes - RESERVED_BYTES
    for put in puts:
        if put.size > room:
            raise errors.ValueTooLarge(
                f"value is {len(put.value)} bytes encoded; with its key it is over what one etcd request "
                f"holds ({room} bytes of the cluster's --max-request-bytes {limits.max_request_bytes})",
                key=put.key.decode("utf-8", "backslashreplace"), size=put.size, limit=room)  # fmt: skip
    total = len(request_key) + len(p.entry) + sum(put.size + OP_FRAMING for put in puts) + sum(
        len(c.key) + OP_FRAMING for c in p.compare) + sum(len(k) + OP_FRAMING for k in p.checked)
    if total > limits.max_request_bytes:
        raise errors.BatchTooLarge(
            f"a write of {items} operations is {total} bytes as an etcd txn; the cluster takes at most "
            f"{limits.max_request_bytes} (its --max-request-bytes): split it",
            count=items, size=total, limit=limits.max_request_bytes)  # fmt: skip


def commit(timeline: Timeline, batch: Batch, note: dict[str, Any] | None, now_us: int,
           limits: EtcdLimits, request_id: bytes | None = None) -> int:
    """Write ``batch`` as the next tx and return it; see the module docstring for the rules and errors.
    ``request_id`` (default: 16 random bytes) names the request: a call with an id that already
    committed the same request returns that commit's tx."""
    request_id = request_id or os.urandom(16)
    request_key = timeline.layout.request(request_id)
    request_fp = fingerprint(batch, note)
    items = sum(len(run.keys) for run in batch.runs)
    runs = list(batch.runs)
    for _ in range(MAX_ATTEMPTS):
        p = plan(timeline, runs, batch.expects, note, now_us, request_id, request_fp)
        check_limits(p, request_key, limits, items)
        result = commit_once(timeline.client, request_key, p.entry, p.compare, p.success, p.failure,
                             same_request=lambda stored: _fingerprint_of(stored) == request_fp)
        if result.succeeded:
            if result.replayed:
                timeline.refresh()
                return timeline.tx_of(result.revision)
            return _tx_from(timeline, result.revision, result.responses[-1])
        housekeeping = result.responses[-1]
        assert isinstance(housekeeping, RangeResult)
        count = count_of(housekeeping.kvs)
        timeline.learn(count, result.revision)
        found = _found(result.responses[:-1], p.checked)
        conflicts = _conflicts(timeline, batch.expects, found)
        if conflicts:
            raise conflict(conflicts)
        absent = {(run.namespace, key) for run in runs if run.op == DELETE
                  for key, raw in zip(run.keys, run.raws, strict=True)
                  if found.get(timeline.layout.data(run.namespace, raw)) is None}
        runs = without(runs, absent)
        if not runs:  # every operation was a no-op delete: no tx, the latest one answers
            return result.revision - timeline.base - count
    raise errors.StorageError("the etcd commit did not settle: housekeeping txns kept landing in between",
                              attempts=MAX_ATTEMPTS)


def _fingerprint_of(stored: bytes) -> bytes | None:
    try:
        fields = msgpack.unpackb(stored, raw=False)
        return bytes(fields[3])
    except (ValueError, TypeError, IndexError, msgpack.ExtraData):
        return None


def _tx_from(timeline: Timeline, revision: int, housekeeping: Any) -> int:
    assert isinstance(housekeeping, RangeResult)
    count = count_of(housekeeping.kvs)
    timeline.learn(count, revision)
    return revision - timeline.base - count


def _found(responses: Sequence[Any], checked: list[bytes]) -> dict[bytes, KeyValue | None]:
    out: dict[bytes, KeyValue | None] = {}
    for key, rng in zip(checked, responses, strict=True):
        assert isinstance(rng, RangeResult)
        out[key] = rng.kvs[0] if rng.kvs else None
    return out


def _conflicts(timeline: Timeline, expects: list[Expect], found: dict[bytes, KeyValue | None]) -> list[dict[str, Any]]:
    out = []
    for exp in expects:
        kv = found[timeline.layout.data(exp.namespace, exp.raw)]
        actual = 0 if kv is None else timeline.tx_of(kv.mod_revision)
        if actual != exp.tx:
            out.append({"namespace": exp.namespace, "key": exp.key, "expected": exp.tx, "actual": actual})
    return out
