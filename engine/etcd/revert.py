"""Revert on etcd: :meth:`engine.Namespace.revert`'s contract (:mod:`engine.revert`) on a store on etcd.

The same plan as on LMDB, from the same pieces (:func:`engine.revert.check_scope`, the note, the content
comparison, :func:`engine.revert.batch_of`): the keys the tx log says were touched after ``to_tx`` (or the
keys named), each compared at ``to_tx`` and at the latest tx as a latest read at the revert's commit time
sees it, and one tx writing what differs. The answers, the tx log entry, the records written and the
errors are LMDB's (``tests/etcd/test_revert_compact_etcd.py`` holds them to it).

**Atomic without a write lock.** LMDB plans inside its write transaction. Here the plan reads ``P/log``
(put by every tx) with the latest versions, at one revision, and the revert's txn compares its mod
revision: if any tx committed since the plan, the txn fails, nothing is written, and the plan is made
again. Housekeeping txns (sealing) in between do not matter: they change no key in scope.

**Order, as on LMDB**: input checks; the idempotency claim's look-up (a replay writes nothing); the plan,
whose refusals (``FUTURE_TX``, ``TX_COMPACTED``, ``BATCH_TOO_LARGE``) come before anything is written;
the expiry sweep every write does (a tx of its own, before the revert's: the plan is made again after it,
and does not change, since it counts a value expired at the revert's time as absent either way); the
revert's tx. A revert that changes nothing takes no tx and answers the latest tx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import expiry as lmdb_expiry
from ..errors import BatchTooLarge, StorageError
from ..history import Change
from ..idempotency import Claim
from ..revert import RevertResult, _content, _kind, _record, _Step, batch_of, check_request, check_scope, revert_note
from . import commit as _commit
from . import sweep as _sweep
from .diff import changed_keys
from .expiry import View
from .idempotency import run as run_claimed
from .kv import Compare, Range, RangeResult, Request
from .reads import snapshot
from .timeline import Timeline

if TYPE_CHECKING:
    from .idempotency import ClaimGuard
    from .storage import EtcdStorage
    from .store import EtcdStore

#: Plans made again because a tx committed between the plan and the revert's txn, before giving up.
MAX_PLANS = 20


@dataclass(frozen=True, slots=True)
class Plan:
    """What to write (``steps``), planned at the latest tx ``latest``, whose ``P/log`` mod revision is ``log``."""

    latest: int
    log: int
    steps: list[_Step]


def revert(store: EtcdStore, name: str, to_tx: Any, *, keys: Iterable[str] | None = None, prefix: str | None = None,
           dry_run: bool = False, note: dict[str, Any] | None = None,
           idempotency: Claim | None = None) -> RevertResult:
    """:func:`engine.revert.revert` on etcd: the same checks in the same order, the same answer."""
    check_request(to_tx, dry_run, idempotency)
    storage = store.storage()
    limits = storage.limits
    chosen, raws = check_scope(keys, prefix, limits.max_batch, limits.max_key_bytes)
    full_note = revert_note(note, to_tx, chosen, prefix, limits.max_note_bytes)
    if dry_run:
        planned = plan(storage, name, to_tx, chosen, raws, prefix, storage._now_us())
        return RevertResult(planned.latest, to_tx, [s.change for s in planned.steps], False)
    return run_claimed(store, idempotency, lambda claim: _write(storage, name, to_tx, chosen, raws, prefix, full_note,
                                                                claim))


def _write(storage: EtcdStorage, name: str, to_tx: int, keys: list[str] | None, raws: list[bytes] | None,
           prefix: str | None, note: dict[str, Any], claim: ClaimGuard | None) -> RevertResult:
    now = storage._now_us()
    if claim is not None:
        claim.look()  # a retry replays here, before anything (the sweep included) is written
    planned = plan(storage, name, to_tx, keys, raws, prefix, now)
    again = _swept(storage, now)
    for _ in range(MAX_PLANS):
        if again:
            planned = plan(storage, name, to_tx, keys, raws, prefix, now)
        if not planned.steps:
            return RevertResult(planned.latest, to_tx, [], False)
        changes = [s.change for s in planned.steps]
        pin = Pinned(storage.timeline, planned.log, claim, _result_of(to_tx, changes))
        try:
            tx = _commit.commit(storage.timeline, batch_of(name, planned.steps), note, now, storage.etcd_limits,
                                claim=pin)
        except _Moved:
            again = True
            continue
        return RevertResult(tx, to_tx, changes, True)
    raise _unsettled()


def _result_of(to_tx: int, changes: list[Change]) -> Callable[[int], RevertResult]:
    return lambda tx: RevertResult(tx, to_tx, changes, True)


def _unsettled() -> StorageError:
    return StorageError("the revert did not settle: other writers kept committing between its plan and its txn",
                        attempts=MAX_PLANS)


def _swept(storage: EtcdStorage, now: int) -> bool:
    """The expiry sweep a write does first (:meth:`engine.etcd.storage.EtcdStorage._sweep_due`); whether
    it wrote a tx."""
    limit = lmdb_expiry.SWEEP_PER_WRITE
    if limit > 0 and _sweep.pending(storage.timeline, now):
        return _sweep.sweep(storage.timeline, now, limit, storage.etcd_limits)[0] > 0
    return False


def plan(storage: EtcdStorage, name: str, to_tx: int, keys: list[str] | None, raws: list[bytes] | None,
         prefix: str | None, now: int) -> Plan:
    """The keys to write so that ``name`` (or its ``keys``, or its keys under ``prefix``) reads, at the
    revert's time (``max(now, the latest tx's time)``), as at ``to_tx``: :func:`engine.revert.plan`'s
    steps; ``FUTURE_TX``/``TX_COMPACTED`` for ``to_tx``, ``BATCH_TOO_LARGE`` past the tx limit."""
    timeline = storage.timeline
    layout = timeline.layout
    snapshot(timeline, to_tx, [])  # FUTURE_TX, TX_COMPACTED, in LMDB's order
    for _ in range(MAX_PLANS):
        latest = timeline.latest()[0]
        if keys is None or raws is None:
            chosen = [k for k in changed_keys(timeline, name, to_tx, latest) if prefix is None or k.startswith(prefix)]
            encoded = [k.encode() for k in chosen]
        else:
            order = sorted(range(len(keys)), key=raws.__getitem__)
            chosen, encoded = [keys[i] for i in order], [raws[i] for i in order]
        data = [Range(layout.data(name, raw)) for raw in encoded]
        _, _, then = snapshot(timeline, to_tx, data)
        at, _, answers = snapshot(timeline, None, [Range(layout.log), *data])
        if at != latest and keys is None:
            continue  # a tx committed while the touched keys were listed: list them again
        log = answers[0].kvs[0].mod_revision if answers[0].kvs else 0
        eval_us = View(timeline, at, lambda: now).eval_us()
        return Plan(at, log, _steps(timeline, storage.limits.max_batch, chosen, encoded, then, answers[1:], eval_us))
    raise _unsettled()


def _steps(timeline: Timeline, limit: int, keys: list[str], raws: list[bytes], then: list[RangeResult],
           now: list[RangeResult], eval_us: int) -> list[_Step]:
    steps: list[_Step] = []
    for key, raw, old, new in zip(keys, raws, then, now, strict=True):
        target = _content(old.kvs[0].value if old.kvs else None, eval_us)
        current = _content(new.kvs[0].value if new.kvs else None, eval_us)
        if target == current:
            continue
        if len(steps) == limit:
            raise BatchTooLarge(f"the revert would write more than {limit} keys, the most one tx may hold; "
                                "nothing was written: revert in parts, by prefix or keys", limit=limit)
        then_tx = timeline.tx_of(old.kvs[0].mod_revision) if old.kvs else 0
        now_tx = timeline.tx_of(new.kvs[0].mod_revision) if new.kvs else 0
        change = Change(key, _kind(current, target), _record(key, now_tx, current), _record(key, then_tx, target))
        steps.append(_Step(key, raw, target, change))
    return steps


class _Moved(Exception):
    """A tx committed between the plan and the revert's txn: plan again."""


class Pinned:
    """The :class:`engine.etcd.commit.TxGuard` of a revert's txn: ``mod_revision(P/log)`` as the plan saw
    it (no tx since), and the idempotency claim's compares and put when there is one (its answer made
    from ``result(tx)``, the revert's result if the txn commits as ``tx``)."""

    def __init__(self, timeline: Timeline, log: int, claim: ClaimGuard | None,
                 result: Callable[[int], RevertResult]) -> None:
        self.timeline, self.log, self.claim, self.result = timeline, log, claim, result
        self._written = False

    @property
    def written(self) -> bool:
        return self._written

    @written.setter
    def written(self, value: bool) -> None:
        self._written = value
        if self.claim is not None:
            self.claim.written = value

    def look(self) -> Any:
        return None if self.claim is None else self.claim.look()

    def guard(self, result_of: Callable[[int], Any]) -> tuple[list[Compare], list[Request]]:
        compare: list[Compare] = [Compare(self.timeline.layout.log, "MOD", "==", self.log)]
        puts: list[Request] = []
        if self.claim is not None:
            more, puts = self.claim.guard(lambda latest: self.result(result_of(latest)))
            compare += more
        return compare, puts

    def moved(self) -> bool:
        found = self.timeline.client.range(self.timeline.layout.log)
        if (found.kvs[0].mod_revision if found.kvs else 0) != self.log:
            raise _Moved
        return self.claim is not None and self.claim.moved()
