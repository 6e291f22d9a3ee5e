"""A Strata store's data on an etcd cluster: commit a batch as the next tx, read at any tx, history, log.

:class:`EtcdStorage` is the etcd side of the backend seam (docs/design.md, "Strata on etcd"): the
Strata-level operations the LMDB engine implements over its own key layout, implemented over etcd's
native versions instead. Users reach it through ``Store.open("etcd://...")``, which returns the facade
:class:`engine.etcd.store.EtcdStore` over it; the differential test (``tests/etcd/test_differential.py``)
holds it to the LMDB engine's answers.

Contract (what holds today):

* **Writes** (:meth:`put`, :meth:`clear`, :meth:`delete`, :meth:`transaction`, :meth:`commit`): one
  Strata tx is one etcd txn (:mod:`engine.etcd.commit`), retry-safe (a lost answer is resolved by the
  request key, never committed twice); txs are numbered 1, 2, 3, ... from the store's base revision
  (:mod:`engine.etcd.timeline`). Input is validated by the engine's own functions (same errors as the
  LMDB engine); ``expect`` gives ``CONFLICT`` with the same details; a delete of an absent key is a
  no-op and a write of only no-ops takes no tx; records are byte for byte the LMDB engine's. etcd's
  limits give ``BATCH_TOO_LARGE`` / ``VALUE_TOO_LARGE`` before anything is sent.
* **Reads** at the latest or any past tx (:meth:`read`, :meth:`get`, :meth:`scan`): the LMDB engine's
  records, ``FUTURE_TX`` above the latest tx, ``TX_COMPACTED`` below the compaction horizon
  (:mod:`engine.etcd.compaction`); one etcd round trip for up to ``--max-txn-ops`` - 2 keys.
* **Expiry and metadata** (:mod:`engine.etcd.expiry`): :meth:`put` and :meth:`transaction` take ``ttl``,
  ``expiration`` and ``metadata`` (batch-wide, or per :class:`~engine.records.Item`), validated by the
  engine's own function (same errors); the record is LMDB's 6-field extended record byte for byte
  (``created_us`` included), and each expiring put writes its expiry index entry
  ``P/x/<expire_us:016x>/<ns>/<key>``. Reads apply LMDB's read rule: an expired value is absent at a
  tx whose commit time is at or past its expiry, and from a latest read once ``now`` is; ``metadata=True``
  and ``fields`` (``created_at``, ``updated_at``, ``expire_time``) fill those fields as on LMDB, and
  :meth:`history` shows each version's metadata and expiry. ``expect`` counts an expired value as
  absent (``expect={k: 0}`` holds, its stored tx does not), and a delete of it is a real delete (a tx),
  as on LMDB. Such writes (``expect``, or a put with options) read the keys first: one more round trip.
* **History** (:meth:`history`) in both orders, deletes included, :meth:`diff` between two txs, and
  **the tx log** (:meth:`tx_info`: time, note, operations, chain hash; :meth:`changes`; :meth:`latest_tx`;
  :meth:`wait_for`).
* **The hash chain** (:mod:`engine.etcd.chain`): each tx's hash is the LMDB backend's for the same
  history, computed after the fact and stored in sealed segments (:meth:`tx_info` and :meth:`changes`
  seal what they show first); commit times are clamped there as on LMDB. :meth:`head` and :meth:`verify`
  (:mod:`engine.etcd.verify`). **Reads by time**: :meth:`tx_at` bisects those clamped times
  (:mod:`engine.etcd.timeseek`).
* **Namespaces**: :meth:`namespaces`, :meth:`create_namespace` (a housekeeping txn: no tx number),
  :meth:`drop_namespace`, :meth:`namespace_info` (``size_bytes`` costs a range of the
  namespace's keys, see :mod:`engine.etcd.namespaces`).

**The expiry sweep** (:mod:`engine.etcd.sweep`), with the LMDB engine's semantics: every write whose
``expect`` holds first records up to :data:`engine.expiry.SWEEP_PER_WRITE` (24) due expiries as deletes in
a tx of their own (note ``{"expired": true}``), right before its own tx and at the same commit time;
:meth:`expire` records everything due (txs of as many entries as one etcd txn holds, up to
:data:`engine.expiry.SWEEP_PER_TX`), :meth:`next_expiry` says when the next falls due. A write's sweep takes
the same entries in the same order as LMDB's, whatever the cluster's limits (:mod:`engine.etcd.limits`), so
tx numbers, history, diff, the log and the change feed show the sweep txs as on LMDB (an ``expire()`` of
more than one etcd txn holds takes more txs than LMDB's), and ``namespace_info`` counts are exact after
:meth:`expire`. Each
sweep's deletes are guarded by the expiring version's ``mod_revision``: concurrent sweepers record each
expiry once. A write proves in its own txn that nothing is due (a compare over the expiry index's due
range, :mod:`engine.etcd.due`): one round trip when none is, a sweep and the txn again when some is. A
namespace drop and a revert still read the due range first (one more round trip).

The Merkle tree, its proofs and proof reads work on the storage's timeline (:mod:`engine.etcd.txtree`,
:mod:`engine.etcd.proved_read`, called by the facade). Not yet (each raises ``NotImplementedError`` or
is simply absent): commit-time clamping outside the log (history's times and the expiry read rule at a
tx use the writer's clock as written). Backups are :mod:`engine.etcd.backup`, streams
:mod:`engine.etcd.stream`, both over this storage's timeline.
The tx numbering needs a cluster no one else writes to (revisions are cluster-wide); a foreign write
is detected by the sealer (it stops there with ``STORAGE_ERROR``) and named by :meth:`verify`, not
refused when it happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import ormsgpack

from .. import errors, schema
from .. import expiry as lmdb_expiry
from ..codec import CLEAR, DELETE
from ..conditions import expects_of
from ..expiry import check_fields
from ..history import Change, Version
from ..records import Item, Limits, NamespaceInfo, ReadResult, Record
from ..storage_ops import StorageOps
from ..txlog import check_note, check_replay
from ..txn import Batch, prepare_keys, prepare_puts
from ..validation import check_namespace, check_tx
from ..verify import VerifyReport
from . import chain, reads, timeseek, txlog
from . import commit as _commit
from . import diff as _diff
from . import history as _history
from . import namespaces as _namespaces
from . import sweep as _sweep
from . import verify as _verify
from .client import EtcdClient
from .kv import Compare, Put, Range, RangeResult
from .layout import Layout
from .limits import EtcdLimits
from .replay_guard import NextTx
from .timeline import Timeline
from .transaction import EtcdTransaction
from .txlog import TxEntry

#: Version of the key layout a store's ``P/meta`` records.
FORMAT = 1


class EtcdStorage:
    """One Strata store under ``prefix`` on the cluster ``client`` talks to; see the module docstring.

    ``limits``: the engine's per-request limits (as for :class:`engine.Store`); ``etcd_limits``: the
    cluster's own (``--max-txn-ops``, ``--max-request-bytes``; default: etcd's defaults, the request
    limit taken from the client); ``clock``: now as epoch seconds (default ``time.time``), for commit
    times. Thread-safe; the client stays the caller's to close."""

    def __init__(self, client: EtcdClient, layout: Layout, base: int, *, limits: Limits | None = None,
                 etcd_limits: EtcdLimits | None = None, clock: Callable[[], float] | None = None) -> None:
        self.client = client
        self.layout = layout
        self.limits = limits or Limits()
        self.etcd_limits = etcd_limits or EtcdLimits(max_request_bytes=client.max_request_bytes)
        self._clock = clock
        self.timeline = Timeline(client, layout, base, self.etcd_limits.max_txn_ops)
        self.timeline.refresh()

    @classmethod
    def open(cls, client: EtcdClient, prefix: str, *, limits: Limits | None = None,
             etcd_limits: EtcdLimits | None = None, clock: Callable[[], float] | None = None) -> EtcdStorage:
        """The store at ``prefix``, created (``P/meta`` written: its revision becomes the base) if the
        prefix holds none. Two processes creating one store at once agree on its base."""
        layout = Layout.of(prefix)
        meta = ormsgpack.packb({"format": FORMAT, "created_us": _now_us(clock)})
        result = client.txn([Compare(layout.meta, "CREATE", "==", 0)], [Put(layout.meta, meta)], [Range(layout.meta)])
        if result.succeeded:
            base = result.revision
        else:
            found = result.responses[0]
            assert isinstance(found, RangeResult)
            stored = ormsgpack.unpackb(found.kvs[0].value)
            if stored.get("format") != FORMAT:
                raise errors.StorageError(f"the etcd store at {prefix!r} has layout format {stored.get('format')!r}; "
                                          f"this engine reads format {FORMAT}", prefix=prefix)
            base = found.kvs[0].create_revision
        return cls(client, layout, base, limits=limits, etcd_limits=etcd_limits, clock=clock)

    def _now_us(self) -> int:
        return _now_us(self._clock)

    # -- writes ----------------------------------------------------------------------------------------

    def commit(self, batch: Batch, *, note: dict[str, Any] | None = None, request_id: bytes | None = None,
               claim: ClaimGuard | None = None) -> int:
        """Write a validated batch as the next tx (see :mod:`engine.etcd.commit`); returns the tx.

        ``request_id`` (default: 16 random bytes, so only this call's own retries are safe) names the
        request: calling again with the id of a request that committed returns its tx and writes nothing
        (``IDEMPOTENCY_KEY_REUSED`` if the id named another request). A caller that got
        ``STORAGE_UNAVAILABLE`` with ``outcome="unknown"`` retries with the same id. ``claim``: an
        idempotency claim the txn stores too (:mod:`engine.etcd.idempotency`)."""
        now = self._now_us()
        return _commit.commit(self.timeline, batch, note, now, self.etcd_limits, request_id,
                              sweep=self._sweeper(now), claim=claim)

    def replay(self, batch: Batch, note: dict[str, Any] | None, tx: int, time_us: int,
               last_us: int | None = None) -> int:
        """Write ``batch`` as tx ``tx`` committed at ``time_us`` (an imported history's tx,
        :mod:`engine.etcd.replay`): exactly the runs given, no expiry sweep first. ``INVALID_PARAMETERS``
        with LMDB's words (:func:`engine.txlog.check_replay`) unless ``tx`` is the next tx and the time
        is not before the latest tx's; nothing is written then. The txn itself is guarded
        (:class:`engine.etcd.replay_guard.NextTx`): if another tx commits first, it fails and the replay is
        refused, so it never takes another number. ``last_us``: the commit time of tx ``tx - 1`` when the
        caller knows it (the previous row of a replay, which the guard proves is the latest tx), else read
        from the log (``tx_info``, which seals the chain up to it first: one seal per tx of a long replay)."""
        latest = self.latest_tx
        if last_us is None or latest != tx - 1:
            last = self.tx_info(latest) if latest else None
            last_us = 0 if last is None else last.time_us
        check_replay(latest + 1, last_us, tx, time_us)
        got = _commit.commit(self.timeline, batch, note, time_us, self.etcd_limits, claim=NextTx(self.timeline, tx,
                                                                                                 time_us))
        if got != tx:  # only deletes of absent keys: this store is not a copy of the source up to tx - 1
            raise errors.InvalidParameters(f"cannot replay tx {tx}: it deletes only keys this store does not hold "
                                           f"(it is not a copy of the exported store up to tx {tx - 1})",
                                           parameter="tx", tx=tx)
        return got

    def renumbered(self, batch: Batch, note: dict[str, Any] | None) -> int | None:
        """Write an imported tx as the next tx, now (``renumber``): deletes of absent keys left out, None
        when nothing is left (no tx taken), as the LMDB import writes it (no expiry sweep first)."""
        if not batch.runs:
            return None
        latest = self.latest_tx
        tx = _commit.commit(self.timeline, batch, note, self._now_us(), self.etcd_limits)
        return None if tx <= latest else tx

    # -- expiry ----------------------------------------------------------------------------------------

    def _sweeper(self, now: int) -> Callable[[], bool] | None:
        """The sweep a write's txn runs when it finds expiries due at ``now`` (:func:`engine.etcd.commit.commit`):
        up to :data:`engine.expiry.SWEEP_PER_WRITE` recorded as a delete tx of their own, just before the
        writer's; it returns whether some are still due. None when writes sweep nothing."""
        limit = lmdb_expiry.SWEEP_PER_WRITE
        if limit <= 0:
            return None
        return lambda: _sweep.sweep(self.timeline, now, limit, self.etcd_limits)[1]

    def _sweep_due(self, now: int) -> None:
        """What a write does first, as on LMDB: record up to :data:`engine.expiry.SWEEP_PER_WRITE`
        expiries due at ``now`` as a delete tx of its own, just before the writer's (one range of one key
        when none is due)."""
        limit = lmdb_expiry.SWEEP_PER_WRITE
        if limit > 0 and _sweep.pending(self.timeline, now):
            _sweep.sweep(self.timeline, now, limit, self.etcd_limits)

    def expire(self) -> int:
        """Record every expiry that is due as a delete; return how many keys it deleted, as
        :meth:`engine.Store.expire` (txs of as many index entries as one etcd txn holds, up
        to LMDB's :data:`engine.expiry.SWEEP_PER_TX`; note ``{"expired": true}``; see :mod:`engine.etcd.sweep`)."""
        total = 0
        while True:
            count, more = _sweep.sweep(self.timeline, self._now_us(), lmdb_expiry.SWEEP_PER_TX, self.etcd_limits)
            total += count
            if not more:
                return total

    def next_expiry(self) -> datetime | None:
        """When the earliest expiry not yet recorded falls due (None if none is pending)."""
        found = _sweep.next_expiry_us(self.timeline)
        return None if found is None else schema.time_of(found)

    def put(self, namespace: str, items: Mapping[str, Any] | Iterable[Item | tuple[str, Any]], *,
            note: dict[str, Any] | None = None, ttl: float | None = None, expiration: float | None = None,
            metadata: Any = None, expect: Mapping[str, int] | None = None, claim: ClaimGuard | None = None) -> int:
        """:meth:`engine.Namespace.put`: ``ttl`` (seconds from the commit), ``expiration`` (epoch seconds;
        ``ttl`` wins) and ``metadata`` for every item that does not set its own (see :class:`Item`); ``claim``: an
        idempotency claim the write's txn stores too (:mod:`engine.etcd.idempotency`; also for the other writes)."""
        check_namespace(namespace)
        if note is not None:  # check_note(None) and expects_of(..., None) return None and []: not called for them
            note = check_note(note, self.limits.max_note_bytes)
        options = None
        if ttl is not None or expiration is not None or metadata is not None:
            options = (ttl, expiration, metadata)
        batch = prepare_puts(namespace, items, self.limits, options, self._now_us)
        if expect is not None:
            batch.expects = expects_of(namespace, expect, self.limits)
        return self.commit(batch, note=note, claim=claim)

    def clear(self, namespace: str, keys: Iterable[str], *, note: dict[str, Any] | None = None,
              expect: Mapping[str, int] | None = None, claim: ClaimGuard | None = None) -> int:
        """:meth:`engine.Namespace.clear`."""
        return self._keys(namespace, keys, CLEAR, note, expect, claim)

    def delete(self, namespace: str, keys: Iterable[str], *, note: dict[str, Any] | None = None,
               expect: Mapping[str, int] | None = None, claim: ClaimGuard | None = None) -> int:
        """:meth:`engine.Namespace.delete`."""
        return self._keys(namespace, keys, DELETE, note, expect, claim)

    def _keys(self, namespace: str, keys: Iterable[str], op: int, note: dict[str, Any] | None,
              expect: Mapping[str, int] | None, claim: ClaimGuard | None = None) -> int:
        check_namespace(namespace)
        note = check_note(note, self.limits.max_note_bytes)
        batch = prepare_keys(namespace, keys, op, self.limits)
        batch.expects = expects_of(namespace, expect, self.limits)
        return self.commit(batch, note=note, claim=claim)

    def transaction(self, *, note: dict[str, Any] | None = None) -> EtcdTransaction:
        """Several operations on several namespaces as one tx (as :meth:`engine.Store.transaction`)."""
        return EtcdTransaction(self, note=note)

    # -- reads -----------------------------------------------------------------------------------------

    @property
    def latest_tx(self) -> int:
        """The latest committed tx (0 for an empty store)."""
        return self.timeline.latest()[0]

    def read(self, namespace: str, keys: Iterable[str], *, tx: int | None = None, metadata: bool = False,
             fields: Iterable[str] | None = None) -> ReadResult:
        """Records of ``keys`` at ``tx`` (latest if None), expired values left out, as
        :meth:`engine.Namespace.read` (``metadata=True`` and ``fields`` fill those fields)."""
        check_namespace(namespace)
        chosen = check_fields(fields)
        return reads.read(self.timeline, namespace, keys, tx, self.limits, self._now_us, bool(metadata), chosen)

    def get(self, namespace: str, key: str, *, tx: int | None = None, metadata: bool = False,
            fields: Iterable[str] | None = None) -> Record | None:
        """The record of one key at ``tx`` (latest if None), as :meth:`engine.Namespace.get`."""
        records = self.read(namespace, [key], tx=tx, metadata=metadata, fields=fields).records
        return records[0] if records else None

    def scan(self, namespace: str, prefix: str = "", *, tx: int | None = None, after: str | None = None,
             limit: int | None = None, metadata: bool = False, fields: Iterable[str] | None = None) -> ReadResult:
        """The records :meth:`engine.Namespace.scan` yields, as a list with the tx read (a latest scan
        evaluates expiry once, when it reads)."""
        check_namespace(namespace)
        chosen = check_fields(fields)
        return reads.scan(self.timeline, namespace, prefix, tx, after, limit, self.limits, self._now_us,
                          bool(metadata), chosen)

    def history(self, namespace: str, key: str, *, before: int | None = None, after: int | None = None,
                limit: int = 100, order: str = "desc") -> list[Version]:
        """Versions of ``key`` with ``after < tx < before``, as :meth:`engine.Namespace.history`."""
        check_namespace(namespace)
        raw = _history.check(key, before, after, limit, order, self.limits.max_key_bytes)
        return _history.history(self.timeline, namespace, key, raw, before=before, after=after, limit=limit,
                                newest_first=order == "desc")

    def diff(self, namespace: str, from_tx: int, to_tx: int) -> list[Change]:
        """Keys whose content differs between the snapshots at ``from_tx`` and ``to_tx``, in key order,
        as :meth:`engine.Namespace.diff` yields them."""
        check_namespace(namespace)
        return _diff.diff(self.timeline, namespace, from_tx, to_tx)

    def tx_info(self, tx: int) -> TxEntry | None:
        """Commit time (clamped as on LMDB), note, operations and chain hash of ``tx``; None if it was not
        committed. Seals the chain up to ``tx`` first if it is not yet (:mod:`engine.etcd.chain`)."""
        entry = txlog.entry(self.timeline, tx)
        return None if entry is None else self._chained([entry])[0]

    def tx_at(self, time_us: int) -> int:
        """The last tx committed at or before ``time_us`` (UTC microseconds, clamped commit times as on
        LMDB); 0 if none. Seals the chain up to the latest tx first if it is not yet
        (:mod:`engine.etcd.timeseek`)."""
        return timeseek.tx_at(self.timeline, time_us)

    def _chained(self, entries: list[TxEntry]) -> list[TxEntry]:
        """``entries`` with their chain hash and the clamped commit time the chain hashes."""
        found = chain.links(self.timeline, (e.tx for e in entries))
        return [TxEntry(e.tx, schema.time_of(found[e.tx].time_us), found[e.tx].time_us, e.note, e.operations,
                        found[e.tx].hash.hex()) for e in entries]

    def head(self) -> tuple[int, str]:
        """``(latest tx, its chain hash in hex)``, sealing up to the latest tx first; ``(0, 64 zeros)``
        for an empty store, as :meth:`engine.Store.head` (without the Merkle tree's root)."""
        latest = self.latest_tx
        head = chain.seal(self.timeline, latest)
        if head.tx == latest:
            return latest, head.hash.hex()
        return latest, chain.sealed_links(self.timeline, latest, latest)[latest].hash.hex()

    def verify(self, receipt: tuple[int, str] | None = None) -> VerifyReport:
        """Recompute the chain from the log and the records and compare it with the sealed one
        (:func:`engine.etcd.verify.verify`)."""
        return _verify.verify(self.timeline, receipt)

    def changes(self, since: int = 0, *, limit: int = 1000, namespace: str | None = None) -> list[TxEntry]:
        """Committed txs after ``since``, in tx order, at most ``limit`` (with ``namespace``: only the txs
        that touched it, with only its operations), as :meth:`engine.Store.changes` (no hash yet)."""
        check_tx(since, "since")
        if type(limit) is not int or not 1 <= limit <= 10_000:
            raise errors.InvalidParameters(f"limit must be an integer from 1 to 10000, not {limit!r}",
                                           parameter="limit")
        if namespace is not None:
            check_namespace(namespace)
        return self._chained(txlog.changes(self.timeline, since, limit, namespace))

    def wait_for(self, tx: int, timeout: float | None = None) -> bool:
        """Block until ``tx`` is committed (by any process); False if ``timeout`` seconds pass first, as
        :meth:`engine.Store.wait_for` (a watch, no polling: see :func:`engine.etcd.txlog.wait_for`)."""
        check_tx(tx)
        return txlog.wait_for(self.timeline, tx, timeout)

    def namespaces(self) -> list[str]:
        """The names of every namespace ever written, in name order (drop is not built yet)."""
        return _namespaces.names(self.timeline)

    def create_namespace(self, name: str, *, claim: ClaimGuard | None = None) -> NamespaceInfo:
        """Create an empty namespace (no tx is consumed: a housekeeping txn); ``NAMESPACE_EXISTS`` if it
        exists, as :meth:`engine.Store.create_namespace`."""
        check_namespace(name)
        return _namespaces.create(self.timeline, name, self._now_us(), claim)

    def drop_namespace(self, name: str, *, note: dict[str, Any] | None = None, claim: ClaimGuard | None = None) -> int:
        """Delete every live key of ``name`` in one tx and forget the namespace; returns the tx (the
        latest tx, and no tx taken, when it has no live keys), as :meth:`engine.Store.drop_namespace`."""
        check_namespace(name)
        note = check_note(note, self.limits.max_note_bytes)
        now = self._now_us()
        return _namespaces.drop(self.timeline, name, note, now, self.etcd_limits, before=lambda: self._sweep_due(now),
                                claim=claim)

    def namespace_info(self, name: str) -> NamespaceInfo | None:
        """What ``name`` holds at the latest tx, or None if it was never written, as
        :meth:`engine.Store.namespace_info` (``size_bytes`` costs a range of its keys here)."""
        check_namespace(name)
        return _namespaces.info(self.timeline, name)


def _now_us(clock: Callable[[], float] | None) -> int:
    return time.time_ns() // 1000 if clock is None else round(clock() * 1_000_000)


if TYPE_CHECKING:
    from .idempotency import ClaimGuard

    def _implements_the_boundary(storage: EtcdStorage) -> StorageOps:
        return storage  # mypy checks that EtcdStorage has every operation of the boundary
