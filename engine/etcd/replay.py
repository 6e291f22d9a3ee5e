"""Import of an exported history into a store on etcd, replayed with its tx numbers, times and notes.

:func:`engine.transfer.import_history` hands a store on etcd to :func:`import_history`. The rows are
parsed and validated by the function the LMDB import uses (:func:`engine.transfer.history_entry`: same
errors, same ``details["row"]``), then each tx is committed as one etcd txn at the row's commit time
(:meth:`engine.etcd.storage.EtcdStorage.replay`: no expiry sweep first, the txn guarded by
:class:`engine.etcd.replay_guard.NextTx` so that it takes the row's tx number or fails).
Records and log entries are the LMDB write path's, so the sealed chain, and ``head()``, come out as the
source's.

Unlike the LMDB import, every row is read and checked **before anything is written**: a bad row (LMDB's
error), a tx number that does not follow the store's latest tx (LMDB's ``cannot replay tx`` error, so an
import into a non-empty store is refused as on LMDB), a time before the previous tx's, or something the
etcd backend does not support, or a replayed tx too large for one etcd txn whatever the store holds
(more operations than the cluster's ``--max-txn-ops`` less 2: ``BATCH_TOO_LARGE``) leaves the store as it
was. The parsed history is held in memory meanwhile. A write that fails after others (the cluster lost, a
tx over the cluster's limits by what only its commit knows, a writer racing the import) leaves the txs
written before it, as LMDB's import leaves the txs before a bad row; its error says which
(``details["imported"]``: ``[first, last]``), with ``details["row"]`` the first row not written.

``renumber=True`` commits each tx as the next one, now (:meth:`engine.etcd.storage.EtcdStorage.renumbered`:
no-op deletes left out, a tx left with nothing takes none), as on LMDB.

Stream txs are replayed as stream txs (:mod:`engine.etcd.stream_history`) and the header's ``streams``
applied at the end as on LMDB (a tx with two ops on one stream is ``INVALID_PARAMETERS`` on both backends:
:func:`engine.stream_transfer.parse_ops`). ``NOT_SUPPORTED`` (naming what): ops on no key / txs with no op
(written by LMDB stores of old versions, which etcd's log cannot hold without creating the namespace).

The header's ``namespaces`` is applied at the end as on LMDB, without a tx: missing ones created,
existing ones not listed and holding no key dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import BatchTooLarge, EngineError, NotSupported
from ..events import StreamRun
from ..transfer import ImportReport, Progress, _check_header, _check_since, _row_error, _split_header, history_entry
from ..txlog import check_replay
from ..txn import Batch
from ..validation import check_namespace
from . import stream_history

if TYPE_CHECKING:
    from .storage import EtcdStorage


def import_history(store: Any, rows: Iterable[dict[str, Any]], *, renumber: bool = False,
                   rename: dict[str, str] | None = None, progress: Progress | None = None,
                   total: int | None = None, say_left: bool = True) -> ImportReport:
    """Replay a history export into ``store`` (an :class:`~engine.etcd.store.EtcdStore`); see the module docstring and
    :func:`engine.transfer.import_history` (whose contract holds, but for what is written before a bad row).
    ``say_left=False``: a write's error does not name the txs this call wrote before it (a restore, which
    undoes them, says what became of them)."""
    started = time.perf_counter()
    storage = store.storage()
    rename = rename or {}
    header, body, start = _split_header(rows)
    if header is not None:
        _check_header(header, "history")
        total = total if total is not None else header.get("txs")
        _check_since(store, header, renumber)
    streams = None if header is None else stream_history.check_names(header.get("streams"))
    entries = _parsed(storage, body, start, rename, renumber)
    names = _wanted(header, rename)
    first = last_tx = txs = items = 0
    previous_us: int | None = None  # the first replayed tx reads the latest tx's time; later ones, the last row's
    for done, (index, batch, note, replay) in enumerate(entries, start=1):
        try:
            tx = _write(storage, batch, note, replay, previous_us)
        except EngineError as exc:
            raise _left(_row_error(index, exc), first, last_tx if say_left else 0) from None
        previous_us = None if replay is None else replay[1]
        if tx is not None:
            first, last_tx, txs = first or tx, tx, txs + 1
        # as on LMDB: the operations given (no-ops included), a stream tx's events
        items += sum(len(r.records) for r in batch) if isinstance(batch, list) else sum(len(r.keys) for r in batch.runs)
        if progress is not None and (done % 100 == 0 or done == len(entries)):
            progress(done, total)
    if names is not None and header is not None and (
            renumber or header.get("namespace") is not None or header.get("until") == storage.latest_tx):
        _apply_namespaces(storage, names, header, rename, renumber)
    if streams is not None and (renumber or (header is not None and header.get("until") == storage.latest_tx)):
        stream_history.apply_names(storage, streams, may_drop=not renumber)
    return ImportReport(first, last_tx, txs, items, time.perf_counter() - started)


def _left(exc: EngineError, first: int, last: int) -> EngineError:
    """``exc`` saying which txs this import wrote before it (they stay: each tx is one etcd txn, and a
    history is many), if any: ``details["imported"]`` is ``[first, last]``."""
    if not last:
        return exc
    return type(exc)(f"{exc.message}; this import wrote txs {first} to {last} before it, which stay",
                     **exc.details, imported=[first, last])


def _write(storage: EtcdStorage, batch: Batch | list[StreamRun], note: dict[str, Any] | None,
           replay: tuple[int, int] | None, last_us: int | None) -> int | None:
    """Commit one imported tx: replayed at its number and time (``last_us``: the previous tx's time,
    if known), or renumbered (None: it took no tx)."""
    if isinstance(batch, list):  # a stream tx
        if replay is None:
            return stream_history.renumbered(storage, batch, note)
        return stream_history.replay(storage, batch, note, *replay)
    if replay is None:
        return storage.renumbered(batch, note)
    return storage.replay(batch, note, *replay, last_us=last_us)


def _parsed(storage: EtcdStorage, body: Iterable[Any], start: int, rename: dict[str, str], renumber: bool
            ) -> list[tuple[int, Batch | list[StreamRun], dict[str, Any] | None, tuple[int, int] | None]]:
    """Every row parsed and checked (LMDB's errors, ``details["row"]``) before anything is written."""
    latest = storage.latest_tx
    last = storage.tx_info(latest) if latest and not renumber else None
    next_tx, last_us = latest + 1, (0 if last is None else last.time_us)
    entries: list[tuple[int, Batch | list[StreamRun], dict[str, Any] | None, tuple[int, int] | None]] = []
    for index, row in enumerate(body, start=start):
        try:
            batch, note, replay = history_entry(row, rename, storage.limits, renumber)
            _check_supported(batch, replay is not None)
            if replay is not None:
                _check_fits(batch, storage.etcd_limits.max_txn_ops)
                check_replay(next_tx, last_us, *replay)
                next_tx, last_us = replay[0] + 1, replay[1]
        except EngineError as exc:
            raise _row_error(index, exc) from None
        entries.append((index, batch, note, replay))
    return entries


def _check_supported(batch: Any, replay: bool) -> None:
    """``NOT_SUPPORTED`` for a tx the etcd backend cannot replay."""
    if isinstance(batch, list):  # one op per stream: checked by the parser, on both backends
        return
    if replay and (not batch.runs or any(not run.keys for run in batch.runs)):
        raise NotSupported.needs_lmdb("import_history of txs with an op on no key (old LMDB stores)")


def _check_fits(batch: Batch | list[StreamRun], max_txn_ops: int) -> None:
    """``BATCH_TOO_LARGE`` for a replayed storage tx that cannot fit one etcd txn whatever the store holds:
    each of its operations is at least one etcd txn operation (a replay writes every one, deletes of absent
    keys included), and the log index put is one more, on top of etcd's count of the largest branch."""
    if isinstance(batch, list):  # a publish is one key, whatever its events: its size is checked at commit
        return
    items = sum(len(run.keys) for run in batch.runs)
    if items + 2 > max_txn_ops:
        raise BatchTooLarge(f"a write of {items} operations needs at least {items + 2} etcd txn operations; the "
                            f"cluster allows {max_txn_ops} (its --max-txn-ops)", count=items, ops=items + 2,
                            limit=max_txn_ops)


def _wanted(header: dict[str, Any] | None, rename: dict[str, str]) -> set[str] | None:
    wanted = None if header is None else header.get("namespaces")
    if type(wanted) is not list:
        return None
    return {check_namespace(rename.get(n, n)) for n in wanted}


def _apply_namespaces(storage: EtcdStorage, names: set[str], header: dict[str, Any], rename: dict[str, str],
                      renumber: bool) -> None:
    """The namespace list of the export's end, as :func:`engine.transfer._apply_namespaces`."""
    exported = header.get("namespace")
    scope = None if exported is None else {rename.get(exported, exported)}
    existing = set(storage.namespaces())
    for name in sorted(names - existing):
        storage.create_namespace(name)
    if scope is None and renumber:
        return  # a whole-store history renumbered into a store of its own: nothing of the store's is dropped
    for name in sorted(existing - names):
        info = storage.namespace_info(name)
        if (scope is None or name in scope) and info is not None and info.key_count == 0:
            storage.drop_namespace(name)  # no live key: a housekeeping txn, no tx
