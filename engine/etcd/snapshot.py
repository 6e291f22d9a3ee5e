"""Snapshot export and import (:func:`engine.transfer.export_snapshot`, :func:`engine.transfer.import_snapshot`)
of a store on etcd: the LMDB functions' rows, checks and errors.

**Export.** The live records of one namespace at one tx, in key order, as the LMDB export yields them
(the same header, the same rows: :func:`engine.transfer._snapshot_rows` writes both). The first page is
read by :func:`engine.etcd.reads.snapshot` (which resolves the tx and raises ``FUTURE_TX`` /
``TX_COMPACTED`` with LMDB's words), each further page by one range at that same etcd revision: MVCC
makes every page one consistent cut while writers continue, and at most :data:`PAGE` records are held
at a time. Expiry is judged at one time for the whole export, as LMDB's scan fixes it when it starts
(the tx's commit time, or ``max(now, commit time of the latest tx)`` for the latest tx). The header's
``count`` is the namespace's key count when, as on LMDB, the namespace has not changed since the tx
and no prefix is given (one ``count_only`` range at that revision), else null. ``NAMESPACE_NOT_FOUND``
unless the namespace exists (for the latest tx) or has existed (for an explicit tx: its registry or a tx
that wrote it remains; a namespace created and dropped without ever being written leaves neither on
etcd, where LMDB keeps its dropped entry).

**Import.** The rows are checked by the LMDB import's own code (:class:`engine.transfer._SnapshotBatch`,
``batch`` records per group, so the same errors at the same ``details["row"]``) **before anything is
written**: a refused import leaves the store as it was. Meanwhile the checked rows are spooled to an
anonymous temporary file (msgpack), so memory holds one group, not the snapshot. They are then read back
and written, one tx per group, as the LMDB import writes them (puts then clears, no expiry sweep first:
:meth:`engine.etcd.storage.EtcdStorage.renumbered`). A group that does not fit in one etcd txn (the
cluster's ``--max-txn-ops`` and ``--max-request-bytes``; LMDB's default of 1000 records does not fit etcd's
default of 128 operations) is split in halves until each fits, and later groups start at the size that
fit: a tx then holds fewer records than ``batch``. An etcd failure while writing leaves the txs already
written (atomic per tx, as on LMDB; ``details["row"]`` names the first row not written).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

import msgpack

from ..errors import BatchTooLarge, EngineError, NamespaceExists, NamespaceNotFound
from ..records import Record
from ..transfer import (
    FORMAT,
    VERSION,
    ImportReport,
    Progress,
    _row_error,
    _snapshot_rows,
    _SnapshotBatch,
    snapshot_import_args,
)
from ..validation import check_namespace, check_prefix
from .expiry import View
from .kv import Range, RangeResult, prefix_end
from .reads import PAGE, snapshot
from .storage import EtcdStorage
from .timeline import Timeline

#: The fields of a snapshot row the import writes (the rest, such as ``tx``, is not written back).
_ROW_FIELDS = ("key", "cleared", "value", "binary", "expire_us", "metadata")


# -- export -------------------------------------------------------------------------------------


def export_snapshot(store: Any, namespace: str, *, tx: int | None = None, prefix: str = "",
                    progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    """The header, then every live record of ``namespace`` at ``tx`` (latest if None) in key order, as
    :func:`engine.transfer.export_snapshot` (arguments checked at the call); ``store`` is an
    :class:`~engine.etcd.store.EtcdStore`."""
    storage: EtcdStorage = store.storage()
    check_namespace(namespace)
    check_prefix(prefix)
    timeline = storage.timeline
    layout = timeline.layout
    base = layout.data_prefix(namespace)
    start, end = base + prefix.encode(), prefix_end(base + prefix.encode())
    snap, revision, answers = snapshot(timeline, tx, [Range(start, end, 0, PAGE), Range(base, prefix_end(base),
                                                                                         0, count_only=True)])
    first, counted = answers
    exists, changed_tx = _existence(storage, namespace, latest=tx is None)
    if not exists:
        raise NamespaceNotFound(f"namespace {namespace!r} does not exist", namespace=namespace)
    count = counted.total if changed_tx is not None and changed_tx <= snap and not prefix else None
    now = storage._now_us()  # one expiry time for every page, as LMDB's scan fixes it when it starts
    view = View(timeline, snap, None if tx is not None else (lambda: now), metadata=True,
                fields=frozenset({"expire_time"}))
    header = {"format": FORMAT, "version": VERSION, "mode": "snapshot", "namespace": namespace, "tx": snap,
              "prefix": prefix, "count": count}
    return _snapshot_rows(header, _records(timeline, namespace, view, first, end, revision), progress, count)


def _existence(storage: EtcdStorage, namespace: str, *, latest: bool) -> tuple[bool, int | None]:
    """Whether the export may read ``namespace`` (it exists; or, not ``latest``, it has existed), and the
    tx of its last change if it exists now (0: created, never written), in one txn at the latest revision."""
    timeline = storage.timeline
    layout = timeline.layout
    result = timeline.client.txn((), [Range(layout.registry(namespace)), Range(layout.updated(namespace))])
    registry, updated = result.responses
    assert isinstance(registry, RangeResult) and isinstance(updated, RangeResult)
    if not registry.kvs:
        return (not latest and bool(updated.kvs)), None
    return True, (timeline.tx_of(updated.kvs[0].mod_revision) if updated.kvs else 0)


def _records(timeline: Timeline, namespace: str, view: View, first: RangeResult, end: bytes,
             revision: int) -> Iterator[Record]:
    """The records of the pages from ``first`` on, each further page one range at ``revision``."""
    page = first
    while True:
        kvs = list(page.kvs)
        view.prefetch(kvs)
        for kv in kvs:
            rec = view.record(timeline.layout.key_of(namespace, kv.key), kv.key, kv)
            if rec is not None:
                yield rec
        if not page.more or not kvs:
            return
        page = timeline.client.range(kvs[-1].key + b"\0", end, revision, limit=PAGE)


# -- import -------------------------------------------------------------------------------------


def import_snapshot(store: Any, rows: Iterable[dict[str, Any]], *, namespace: str | None = None,
                    batch: int = 1000, note: dict[str, Any] | None = None, progress: Progress | None = None,
                    total: int | None = None) -> ImportReport:
    """Write a snapshot export's records into ``namespace`` (default: the header's) of ``store`` (an
    :class:`~engine.etcd.store.EtcdStore`), as :func:`engine.transfer.import_snapshot`; see the module
    docstring for what differs (every row checked first; groups split to fit an etcd txn)."""
    started = time.perf_counter()
    storage: EtcdStorage = store.storage()
    body, start, namespace, note, total = snapshot_import_args(rows, namespace, batch, note, total, storage.limits)
    with tempfile.TemporaryFile() as spool:
        groups = _checked(storage, namespace, body, start, batch, spool)
        spool.seek(0)
        writer = _Writer(storage, namespace, note, progress, total)
        for (first_row, _), group in zip(groups, _groups(spool, groups), strict=True):
            writer.write(first_row, group)
    if not _existence(storage, namespace, latest=True)[0]:  # (namespace_info would read every key)
        with contextlib.suppress(NamespaceExists):  # created meanwhile: as wanted
            storage.create_namespace(namespace)  # as on LMDB, also for no record (no tx)
    return ImportReport(writer.first, writer.last, writer.txs, writer.items, time.perf_counter() - started)


def _checked(storage: EtcdStorage, namespace: str, body: Iterable[Any], start: int, batch: int,
             spool: IO[bytes]) -> list[tuple[int, int]]:
    """Check every row as the LMDB import does (groups of ``batch``), spooling each; returns each group's
    ``(first row, rows)``."""
    groups: list[tuple[int, int]] = []
    current = _SnapshotBatch(namespace, storage.limits)
    packer = msgpack.Packer(use_bin_type=True)
    for index, row in enumerate(body, start=start):
        try:
            current.add(row)
        except EngineError as exc:
            raise _row_error(index, exc) from None
        spool.write(packer.pack({k: row[k] for k in _ROW_FIELDS if k in row}))
        if len(current.seen) == 1:
            groups.append((index, 0))
        groups[-1] = (groups[-1][0], len(current.seen))
        if len(current.seen) >= batch:
            current = _SnapshotBatch(namespace, storage.limits)
    return groups


def _groups(spool: IO[bytes], groups: list[tuple[int, int]]) -> Iterator[list[dict[str, Any]]]:
    """The spooled rows, read back group by group."""
    unpacker = msgpack.Unpacker(spool, raw=False, strict_map_key=False)
    for _, rows in groups:
        yield [next(unpacker) for _ in range(rows)]


class _Writer:
    """Writes groups of checked rows, one tx each, split in halves when one does not fit an etcd txn."""

    def __init__(self, storage: EtcdStorage, namespace: str, note: dict[str, Any] | None,
                 progress: Progress | None, total: int | None) -> None:
        self.storage, self.namespace, self.note = storage, namespace, note
        self.progress, self.total = progress, total
        self.fits: int | None = None  # the size of the last group split to fit, where later ones start
        self.first = self.last = self.txs = self.items = self.done = 0

    def write(self, first_row: int, group: list[dict[str, Any]]) -> None:
        size = len(group) if self.fits is None else min(len(group), self.fits)
        for at in range(0, len(group), size):
            self._fit(first_row + at, group[at:at + size])
        if self.progress is not None:
            self.progress(self.done, self.total)

    def _fit(self, first_row: int, rows: list[dict[str, Any]]) -> None:
        current = _SnapshotBatch(self.namespace, self.storage.limits)
        for row in rows:
            current.add(row)
        try:
            tx = self.storage.renumbered(current.batch(), self.note)
        except BatchTooLarge as exc:
            if len(rows) == 1:
                raise _row_error(first_row, exc) from None
            half = (len(rows) + 1) // 2
            self.fits = half if self.fits is None else min(self.fits, half)
            self._fit(first_row, rows[:half])
            self._fit(first_row + half, rows[half:])
            return
        except EngineError as exc:
            raise _row_error(first_row, exc) from None
        if tx is not None:
            self.first, self.last, self.txs = self.first or tx, tx, self.txs + 1
        self.items += len(rows)
        self.done += len(rows)


__all__ = ["export_snapshot", "import_snapshot"]
