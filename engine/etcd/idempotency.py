"""Idempotency keys on etcd: :mod:`engine.idempotency`'s semantics, with the claim record in the write's own txn.

A :class:`~engine.idempotency.Claim` is stored at ``P/i/<ident>`` (``ident`` as on LMDB:
``sha256(scope)[:8] | key``) as msgpack ``[stored_us, expires_us, fingerprint, answer]``. The answer is
bytes the caller's ``answer`` function made from the write's result, and a write's result (its tx) must be
known before etcd applies the txn that stores it. So an idempotent write's txn carries, besides the
write's own compares (:mod:`engine.etcd.commit`)::

    compare: mod_revision(P/i/<ident>) == m     # the claim as read: absent (0) or expired (its revision)
             mod_revision(P/log) == l           # no tx committed since the read ...
             mod_revision(P/sys/hk) == h        # ... and no housekeeping txn: this txn's tx is latest + 1
    success: put P/i/<ident> = [now, now + ttl, fingerprint, answer(latest + 1)]

Of any number of concurrent attempts under one key exactly one txn commits the claim (the first compare);
the others find it on their next read and raise :class:`~engine.idempotency.Replay` with its answer (same
fingerprint) or ``IDEMPOTENCY_KEY_REUSED`` (another). The last two compares serialize idempotent writes
against every other write of the store (a tx landing in between sends the txn again, planned from the new
latest tx): what LMDB's single writer does anyway. Writes without a claim are untouched.

A write that takes **no tx** records its claim in a housekeeping txn (:meth:`Timeline.housekeeping`: no tx
number is consumed), guarded by the claim's mod revision: a refusal of a class in ``claim.recorded``
raised before anything was written (a failed ``expect``'s ``CONFLICT``, ``NAMESPACE_NOT_FOUND`` of a drop),
stored as ``answer(None, exc)`` and then raised, and a write of only no-op deletes or a drop of an empty
namespace (``answer(latest tx)``). As on LMDB, the claim is looked up once the input is validated and
before anything is written: a retry with the same fingerprint writes nothing (the expiry sweep included).
A refusal found in the store's state and not recorded (a drop's ``NAMESPACE_NOT_FOUND`` when the claim
records only ``CONFLICT``) looks the claim up again before it is raised: an attempt that lost the race to
a concurrent one under the same key replays it, as it would have on LMDB, where the two run one after
the other.

**Expiry**: a claim whose ``expires_us`` is at or before the store's clock counts as absent; the next
write under its key replaces it (guarded by its mod revision). Expired claims that are never used again
stay in etcd (a few hundred bytes each) until the store's prefix is deleted: there is no claim sweep yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgpack

from .. import errors
from ..idempotency import Claim, Replay
from .kv import Compare, Put, Range, RangeResult, Request
from .timeline import Timeline, count_of

if TYPE_CHECKING:
    from .store import EtcdStore

T = TypeVar("T")

#: Refusals decided by the store's state (what LMDB finds inside its write transaction, after the claim's
#: look-up): one not recorded is raised only if no concurrent attempt committed the claim meanwhile.
FOUND_IN_STATE = (errors.Conflict, errors.NamespaceNotFound, errors.NamespaceExists)


@dataclass(frozen=True, slots=True)
class Seen:
    """What one read showed: the claim key's mod revision (0: absent), ``P/log``'s and ``P/sys/hk``'s, and
    the latest tx at that read."""

    claim: int
    log: int
    housekeeping: int
    latest: int


class ClaimGuard:
    """One idempotent write's claim on the store of ``timeline``: the reads, compares and put that make the
    write's txn store it (see the module docstring). ``written`` turns True once a txn carrying the claim
    committed. Not shared between threads (one per write call)."""

    def __init__(self, timeline: Timeline, claim: Claim, now_us: Callable[[], int], ttl_us: int) -> None:
        self.timeline, self.claim, self._now_us, self.ttl_us = timeline, claim, now_us, ttl_us
        self.key = timeline.layout.prefix + b"/i/" + claim.ident
        self.written = False
        self._seen: Seen | None = None

    def look(self) -> Seen:
        """Read the claim, ``P/log`` and ``P/sys/hk`` at one revision: :class:`Replay` if a live claim holds
        this fingerprint, ``IDEMPOTENCY_KEY_REUSED`` if it holds another, else what was seen."""
        layout = self.timeline.layout
        result = self.timeline.client.txn((), [Range(self.key), Range(layout.log), Range(layout.housekeeping)])
        found, log, hk = result.responses
        assert isinstance(found, RangeResult) and isinstance(log, RangeResult) and isinstance(hk, RangeResult)
        count = count_of(hk.kvs)
        self.timeline.learn(count, result.revision)
        claim_revision = 0
        if found.kvs:
            _, expires_us, fingerprint, answer = msgpack.unpackb(found.kvs[0].value, raw=False)
            if expires_us > self._now_us():
                if fingerprint != self.claim.fingerprint:
                    raise errors.IdempotencyKeyReused(
                        f"idempotency key {self.claim.key!r} was used for a different request; use a new key "
                        "for a new request", idempotency_key=self.claim.key)  # fmt: skip
                raise Replay(answer)
            claim_revision = found.kvs[0].mod_revision
        return Seen(claim_revision, log.kvs[0].mod_revision if log.kvs else 0,
                    hk.kvs[0].mod_revision if hk.kvs else 0, result.revision - self.timeline.base - count)

    def _put(self, answer: bytes) -> Put:
        now = self._now_us()
        return Put(self.key, msgpack.packb([now, now + self.ttl_us, self.claim.fingerprint, answer], use_bin_type=True))

    def guard(self, result_of: Callable[[int], Any]) -> tuple[list[Compare], list[Request]]:
        """The compares and put to add to a txn whose result is ``result_of(latest tx)`` if it commits (a tx
        write: ``latest + 1``); reads first (:meth:`look`, so it may raise :class:`Replay`)."""
        seen = self._seen = self.look()
        layout = self.timeline.layout
        compare = [Compare(self.key, "MOD", "==", seen.claim), Compare(layout.log, "MOD", "==", seen.log),
                   Compare(layout.housekeeping, "MOD", "==", seen.housekeeping)]
        return compare, [self._put(self.claim.answer(result_of(seen.latest), None))]

    def moved(self) -> bool:
        """After a failed txn: whether the claim, the log or the housekeeping count changed since
        :meth:`guard` read them (the txn failed for this guard: send it again), raising :class:`Replay` if
        a concurrent attempt committed the claim."""
        return self.look() != self._seen

    def record(self, answer_of: Callable[[int], bytes]) -> None:
        """Store ``answer_of(latest tx)`` under the claim in a housekeeping txn (no tx number), guarded by
        the claim's mod revision; :class:`Replay` if a concurrent attempt stored it first."""
        while True:
            seen = self.look()
            try:
                self.timeline.housekeeping([self._put(answer_of(seen.latest))],
                                           [Compare(self.key, "MOD", "==", seen.claim)])
            except errors.Conflict:
                continue  # the claim was written meanwhile: the next look replays or refuses
            self.written = True
            return


def run(store: EtcdStore, claim: Claim | None, write: Callable[[ClaimGuard | None], T]) -> T:
    """``write(guard)``, idempotent under ``claim`` (``write(None)`` without one). ``write`` passes the guard
    to the commit, which adds it to its txn; a write that committed no txn carrying it (a no-op, or a
    recorded refusal) has the claim stored in a housekeeping txn here."""
    if claim is None:
        return write(None)
    storage = store.storage()
    guard = ClaimGuard(storage.timeline, claim, storage._now_us, store.idempotency_ttl_us)
    try:
        result = write(guard)
    except claim.recorded as exc:
        refusal = exc
        guard.record(lambda latest: claim.answer(None, refusal))
        raise
    except FOUND_IN_STATE:
        guard.look()  # a concurrent attempt may have committed first (and changed the state): replay it
        raise
    if not guard.written:
        guard.record(lambda latest: claim.answer(result, None))
    return result


def check_first(store: EtcdStore, claim: Claim) -> None:
    """:func:`engine.idempotency.check_first` on etcd: one read; :class:`Replay` or ``IDEMPOTENCY_KEY_REUSED``
    as the write would raise them."""
    storage = store.storage()
    ClaimGuard(storage.timeline, claim, storage._now_us, store.idempotency_ttl_us).look()
