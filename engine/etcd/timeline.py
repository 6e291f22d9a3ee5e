"""Strata tx numbers on etcd revisions: ``tx = revision - base - housekeeping revisions below it``.

etcd has one revision counter per cluster and every write txn takes exactly one revision (a txn of many
puts and deletes included; a failed compare, a delete of nothing, a read-only txn and a nested txn take
none). A store's **base** is the revision that created its ``P/meta`` key; every later revision is either
a Strata tx (one bookkeeping put ``P/tx/<request id>``) or a **housekeeping txn** (a write that is not a
tx: sealed segments, elections, namespace creation, the horizon), and every housekeeping txn puts
``P/sys/hk = count + 1``. So:

* the writer of a tx learns its own number from its own txn's answer: the txn ranges ``P/sys/hk`` in its
  success branch, at its own revision ``R``, and gets the count ``c`` of housekeeping revisions below
  ``R`` (a txn applies at one point of etcd's serial order): ``tx = R - base - c``. No compare on a shared
  counter, so writers never conflict over the numbering;
* a reader maps tx ``T`` back to its revision with the list of housekeeping revisions (the versions of
  ``P/sys/hk``: version ``i`` was written at the ``i``-th housekeeping revision), cached here and
  refreshed whenever a read sees a count the cache does not know.

The numbering assumes **nothing else writes the cluster** between the store's txs (a dedicated cluster):
a foreign write takes a revision no one counts and shifts every later tx. This module does not detect
that; the sealer does (:mod:`engine.etcd.chain`: a revision it maps to a tx must hold that tx's log
entry), and :func:`engine.etcd.verify.verify` names the tx number such a write occupies.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

import ormsgpack

from .. import errors
from . import compacted
from .client import EtcdClient
from .kv import Compare, KeyValue, Put, Range, RangeResult, Request, Response
from .layout import Layout
from .written import Written

#: Revisions are int64 in etcd: a tx whose revision would be beyond this cannot exist (and etcd could
#: not parse a request naming it), so callers answer for it without asking etcd.
MAX_REVISION = (1 << 63) - 1


def count_of(kvs: Sequence[KeyValue]) -> int:
    """The housekeeping count a range of ``P/sys/hk`` shows (0 when the key was never written)."""
    return int(ormsgpack.unpackb(kvs[0].value)) if kvs else 0


def newest_of(kvs: Sequence[KeyValue]) -> int:
    """The newest housekeeping revision a range of ``P/sys/hk`` shows (0 when the key was never written)."""
    return kvs[0].mod_revision if kvs else 0


class Timeline:
    """The tx <-> revision mapping of one store (``base`` and the housekeeping revisions), with what every
    operation on the store needs: its client, its layout, the cluster's ``--max-txn-ops``. Thread-safe."""

    def __init__(self, client: EtcdClient, layout: Layout, base: int, max_txn_ops: int = 128) -> None:
        self.client, self.layout, self.base, self.max_txn_ops = client, layout, base, max_txn_ops
        self._housekeeping: list[int] = []  # revisions of the housekeeping txns known so far, ascending
        self._shifted: list[int] = []  # _housekeeping[i] - i, for revision_of
        #: The revision etcd is compacted at, as last seen (0: never); lower revisions are read from the
        #: indexes a compaction writes (:mod:`engine.etcd.compacted`). Raised when a read finds it higher.
        self.compacted_revision = 0
        #: What this process's commits wrote, for its own sealer (:mod:`engine.etcd.written`).
        self.written = Written()
        #: Namespaces whose registry ``P/n/<ns>`` this process has seen, with its create revision: a write
        #: to one asserts it with a compare instead of a nested txn (:func:`engine.etcd.commit.plan`).
        self.registered: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- the mapping -------------------------------------------------------------------------------

    def tx_of(self, revision: int) -> int:
        """The tx written at ``revision`` (for a revision that is no tx's, such as a snapshot's read
        revision: the latest tx at or below it). Exact when the housekeeping list is current up to
        ``revision``: callers :meth:`learn` the count seen by the same read first."""
        known = self._housekeeping
        return revision - self.base - bisect.bisect_right(known, revision)

    def revision_of(self, tx: int) -> int:
        """The revision of tx ``tx`` (``base`` for tx 0): ``base + tx`` plus the housekeeping revisions
        below it. O(log n) in the housekeeping revisions (about one per sealed batch, so many)."""
        # The i-th housekeeping revision h[i] lies below tx's revision iff h[i] <= base + tx + i, i.e.
        # h[i] - i <= base + tx; h[i] - i never decreases (revisions are distinct, ascending), so those
        # are a prefix of the list, found by bisection.
        return self.base + tx + bisect.bisect_right(self._shifted, self.base + tx)

    def count_below(self, revision: int) -> int:
        """How many known housekeeping revisions are at or below ``revision``."""
        return bisect.bisect_right(self._housekeeping, revision)

    def housekeeping_revisions(self) -> list[int]:
        """The housekeeping revisions known so far, ascending (a copy)."""
        return list(self._housekeeping)

    def learn(self, count: int, revision: int, newest: int = 0) -> None:
        """A read at ``revision`` saw housekeeping count ``count``: refresh the list if it knows fewer.
        ``newest``: the mod revision of ``P/sys/hk`` that read saw (0: not given), the newest housekeeping
        revision at or below ``revision``; when the list lacks exactly that one, it is appended without
        a read.

        Many writers see a new housekeeping revision at once (each commit after a seal does): with
        ``newest``, none of them reads; without, the first refreshes and the others, waiting on the same
        lock, find it known and read nothing."""
        if self.count_below(revision) == count:
            return
        if newest:
            with self._lock:
                known = self._housekeeping
                if len(known) == count - 1 and (not known or known[-1] < newest):
                    self._shifted = [*self._shifted, newest - len(known)]
                    self._housekeeping = [*known, newest]
                    return
        self.refresh((count, revision))

    def refresh(self, unless: tuple[int, int] | None = None) -> None:
        """Reload every housekeeping revision from the versions of ``P/sys/hk`` (one range per version
        not known yet, walking back from the newest: housekeeping is rare); below a compaction, from the
        index it wrote (:mod:`engine.etcd.compacted`). ``unless=(count, revision)``: nothing to do when
        the list already holds ``count`` revisions at or below ``revision`` (another thread refreshed it
        while this one waited for the lock)."""
        with self._lock:
            if unless is not None and self.count_below(unless[1]) == unless[0]:
                return
            known = self._housekeeping
            found: list[int] = []
            rng = self.client.range(self.layout.housekeeping)
            while rng.kvs:
                kv = rng.kvs[0]
                if known and kv.mod_revision <= known[-1]:
                    break
                found.append(kv.mod_revision)
                if kv.version <= 1:
                    break
                try:
                    rng = self.client.range(self.layout.housekeeping, revision=kv.mod_revision - 1)
                except errors.TxCompacted:  # the older versions are in the compaction's index
                    floor = known[-1] if known else 0
                    below = compacted.housekeeping_below(self.client, self.layout)
                    found += [h for h in reversed(below) if floor < h < kv.mod_revision]
                    break
            added = found[::-1]
            self._shifted = self._shifted + [h - (len(known) + i) for i, h in enumerate(added)]
            self._housekeeping = known + added

    def _learn_own(self, count: int, seen_at: int, revision: int) -> None:
        """Our housekeeping txn landed at ``revision``, right after the ``count`` housekeeping revisions seen
        at ``seen_at`` (its guard held: none landed in between). If the list knew exactly those, ours is
        the next one: append it without reading (a seal per batch saves its round trips); else reload."""
        with self._lock:
            known = self._housekeeping
            at = bisect.bisect_left(known, revision)
            if at == count and at < len(known) and known[at] == revision:
                return  # a writer whose commit landed after it refreshed it in already
            if bisect.bisect_right(known, seen_at) == count == len(known):
                self._shifted = [*self._shifted, revision - len(known)]
                self._housekeeping = [*known, revision]
                return
        self.refresh()

    # -- the store's head --------------------------------------------------------------------------

    def latest(self) -> tuple[int, int]:
        """``(latest tx, the revision it was read at)``: one read-only txn ranging ``P/sys/hk``."""
        latest, revision, _ = self.latest_with(())
        return latest, revision

    def latest_with(self, ranges: Sequence[Range], *, serializable: bool = False) -> tuple[int, int, list[RangeResult]]:
        """:meth:`latest` and the answers to ``ranges``, all read in the same read-only txn. ``serializable``
        (``ranges`` must be serializable too): served by the member asked from its own state, without a
        quorum round, so possibly a little behind the cluster's latest (still one consistent revision)."""
        result = self.client.txn((), [Range(self.layout.housekeeping, serializable=serializable), *ranges])
        answers: list[RangeResult] = []
        for answer in result.responses:
            assert isinstance(answer, RangeResult)
            answers.append(answer)
        count = count_of(answers[0].kvs)
        self.learn(count, result.revision, newest_of(answers[0].kvs))
        return result.revision - self.base - count, result.revision, answers[1:]

    def housekeeping(self, success: Sequence[Request] = (), compare: Sequence[Compare] = (),
                     read: tuple[RangeResult, int] | None = None) -> int:
        """Run a housekeeping txn (``success`` if ``compare`` holds) that takes no tx number; returns its
        revision. Guarded by ``P/sys/hk``'s mod revision, retried while another housekeeping txn lands
        in between; ``CONFLICT`` if the caller's own ``compare`` fails. ``read``: ``P/sys/hk`` as the
        caller read it and the revision it read at, used for the first attempt instead of a read."""
        key = self.layout.housekeeping
        while True:
            if read is not None:
                (current, read_at), read = read, None
            else:
                current = self.client.range(key)
                read_at = current.revision
            count = count_of(current.kvs)
            seen = current.kvs[0].mod_revision if current.kvs else 0
            guard = [Compare(key, "MOD", "==", seen), *compare]
            result = self.client.txn(guard, [Put(key, ormsgpack.packb(count + 1)), *success], [Range(key)])
            if result.succeeded:
                self._learn_own(count, read_at, result.revision)
                return result.revision
            after: Response = result.responses[0]
            assert isinstance(after, RangeResult)
            if (after.kvs[0].mod_revision if after.kvs else 0) == seen:
                raise errors.Conflict("a housekeeping txn's condition failed", revision=result.revision)
