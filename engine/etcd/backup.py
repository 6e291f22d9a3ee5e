"""Backup and restore of a store on etcd: a backup is an LMDB store directory holding the whole history.

**Backup** (:meth:`engine.etcd.store.EtcdStore.backup`). ``store.backup(path)`` writes what
:func:`engine.backup.backup` writes for an LMDB store: a new directory holding ``data.mdb`` and
``strata-backup.json`` (``tx``, ``hash``, ``time``, ``source``: the store's URL), written under a
temporary ``.NAME.partial-PID-N`` name and renamed into place, never over anything (``CONFLICT``). The
``data.mdb`` is a self-contained LMDB store holding the etcd store's **whole history**, not only its
latest state: the history export of the store (:mod:`engine.etcd.history_export`) replayed into a fresh
LMDB store (:func:`engine.transfer.import_history`), so every tx keeps its number, commit time, note and
operations, and the hash chain comes out the same (checked: the copy's head must be the etcd store's
chain hash at that tx, else ``STORAGE_ERROR`` and nothing is placed). ``Store.open(path)`` then answers
as the etcd store did at every tx up to the backup's, and :func:`engine.restore` restores it into a
directory like any backup. Why a replay and not a copy of etcd's keys: etcd's snapshot holds the whole
cluster (every prefix, and etcd's own state), is restored only as a new cluster, and is no Strata store;
this backup is the store, readable anywhere, restorable onto either backend.

The backup is **one consistent cut** while writers continue: the last tx is fixed when it starts, and each
tx's records are read at that tx's own etcd revision, which later writes never change. The export reads
windows of 256 txs and the LMDB import writes 10,000 operations per LMDB transaction, so memory holds
one window, not the history. A store compacted past its first tx (``horizon`` above 1) no longer holds
the history a backup needs: ``NOT_SUPPORTED`` before anything is written (export a snapshot at the
horizon, or back up before compacting). LMDB's format could hold a compacted store (a horizon, the log
whole, only the kept versions), but this backup is built by replaying txs through the LMDB write path,
and a tx below the horizon cannot be replayed: its freed versions are part of its hash. Not carried over:
idempotency records (a retry of a write made before the backup is not recognised after a restore) and the
``created_at`` of namespaces created empty (the backup's time).

**Restore** (:func:`restore`, which :func:`engine.restore` calls for an ``etcd://`` target). The backup
(from either backend) is copied to a temporary directory and opened there (so the backup itself is never
written to); its head is checked against its manifest and, with ``verify`` (the default), its whole hash
chain is re-derived, all before anything is written to etcd. The target prefix must hold an empty store
(no tx, no namespace): anything else is ``CONFLICT``, as LMDB refuses a non-empty directory. The history is
then replayed onto etcd (:mod:`engine.etcd.replay`) in windows of :data:`WINDOW` txs (each window's rows
are held in memory while it is checked and written), with their tx numbers, times and notes; the restored
store's head must be the backup's (else ``STORAGE_ERROR``), and with ``verify`` its chain is re-derived
on etcd too. A
failure partway (the cluster lost, a tx the cluster's limits refuse, a concurrent writer on the prefix)
is undone (:mod:`engine.etcd.restore_undo`): the prefix is emptied again in one etcd txn, unless a tx that
is not the backup's is in it or the cluster cannot be reached, and the error says which
(``details["restore"]``: ``"undone"`` or ``"left"`` with ``details["left_tx"]``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..backup import (
    DATA_FILE,
    MANIFEST,
    BackupInfo,
    _check_target,
    _fsync,
    _make_parent,
    _partial_dir,
    _place,
    _utc_z,
    read_manifest,
    remove_abandoned_partials,
)
from ..errors import Conflict, InvalidParameters, NotSupported, StorageError
from ..store import Store
from ..transfer import export_history, import_history
from ..txlog import GENESIS
from .replay import import_history as replay_history
from .restore_undo import undo

#: Txs replayed onto etcd per window by a restore (parsed and held in memory while the window is written).
WINDOW = 1000
#: Files of an LMDB store directory that are not the store (LMDB's lock file).
_NOT_DATA = ("lock.mdb",)


# -- backup -------------------------------------------------------------------------------------


def backup(store: Any, path: str | os.PathLike[str]) -> BackupInfo:
    """Write the whole history of ``store`` (an :class:`~engine.etcd.store.EtcdStore`), up to its latest tx
    when the backup starts, as an LMDB store into the new directory ``path``; see the module docstring."""
    storage = store.storage()
    horizon = store.horizon
    if horizon > 1:
        raise NotSupported(f"backup of a compacted store is not supported on the etcd backend yet; it needs the "
                           f"LMDB backend (a store opened on a directory): a backup holds the whole history, and "
                           f"the txs before the horizon (tx {horizon}) are gone; export a snapshot at the horizon "
                           "instead", operation="backup of a compacted store", backend="etcd", horizon=horizon)
    target = Path(path).absolute()
    _check_target(target, "backup target")
    _make_parent(target, "backup target")
    remove_abandoned_partials(target.parent)
    with _partial_dir(target) as tmp:
        rows = export_history(store)  # the last tx is fixed here: the backup's cut
        header = next(rows)
        tx = header["until"]
        expected = _chain_hash(storage, tx)
        with Store.open(tmp, sync=False, limits=store.limits) as copy:
            import_history(copy, _chain(header, rows))
            copy.sync()
            got = copy.head()
        if (got.tx, got.hash) != (tx, expected):
            raise StorageError(f"the backup's copy is at tx {got.tx} ({got.hash}), but the store's chain at tx {tx} "
                               f"is {expected}: nothing was placed", path=str(target))
        for name in _NOT_DATA:
            (tmp / name).unlink(missing_ok=True)
        taken = datetime.now(UTC)
        manifest = {"format": "strata-backup", "version": 1, "tx": tx, "hash": expected, "time": _utc_z(taken),
                    "source": store.path}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        for name in (DATA_FILE, MANIFEST):
            _fsync(tmp / name)
        size = (tmp / DATA_FILE).stat().st_size
        _place(tmp, target, "backup target")
    return BackupInfo(str(target), tx, expected, size, taken)


def _chain_hash(storage: Any, tx: int) -> str:
    """The chain hash of ``tx`` on etcd (hex; the genesis hash for tx 0)."""
    if tx == 0:
        return GENESIS.hex()
    entry = storage.tx_info(tx)
    assert entry is not None and entry.hash is not None
    return str(entry.hash)


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


# -- restore ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _opened_copy(data: Path) -> Iterator[Store]:
    """The backup's ``data.mdb`` copied into a temporary directory and opened there."""
    with tempfile.TemporaryDirectory(prefix="strata-restore-") as tmp:
        shutil.copyfile(data, Path(tmp) / DATA_FILE)
        with Store.open(tmp, sync=False) as copy:
            yield copy


def restore(backup_path: str | os.PathLike[str], url: str, *, verify: bool = True) -> BackupInfo:
    """Restore the backup directory ``backup_path`` into the empty store at the ``etcd://`` URL ``url``
    (see the module docstring); returns what was restored (``path``: the URL; ``size_bytes``: the
    backup's ``data.mdb``)."""
    from .store import EtcdStore

    source = Path(backup_path)
    data = source / DATA_FILE if source.is_dir() else source
    if not data.is_file():
        raise InvalidParameters(f"{str(source)!r} is not a backup (no {DATA_FILE} in it)", parameter="backup_path")
    manifest = read_manifest(source) if source.is_dir() else None
    with EtcdStore.open(url, seal_interval=None) as target:  # no background sealer: an undo empties the prefix
        _check_empty(target, url)  # first: the cheap refusal, before the backup is copied
        with _opened_copy(data) as copy:
            tx, digest = _checked_backup(copy, manifest, source, verify)
            try:
                _replay(copy, target, tx)
                _check_restored(target, tx, digest, url, verify)
            except Exception as exc:
                raise undo(target, copy, url, exc) from None
        path = target.path
    when = datetime.fromisoformat(manifest["time"]) if manifest else datetime.now().astimezone()
    return BackupInfo(path, tx, digest, data.stat().st_size, when)


def _check_restored(target: Any, tx: int, digest: str, url: str, verify: bool) -> None:
    """``STORAGE_ERROR`` unless the restored store's head is the backup's and, with ``verify``, it verifies."""
    got = target.head()
    if (got.tx, got.hash) != (tx, digest):
        raise StorageError(f"the restored store is at tx {got.tx} ({got.hash}), but the backup holds tx {tx} "
                           f"({digest})", url=url)
    if verify:
        report = target.verify()
        if not report.ok:
            raise StorageError(f"the restored store fails verification at tx {report.bad_tx}: {report.problem}",
                               url=url, bad_tx=report.bad_tx)


def _checked_backup(copy: Store, manifest: dict[str, Any] | None, source: Path, verify: bool) -> tuple[int, str]:
    """The backup's head, checked against its manifest and, with ``verify``, its chain re-derived."""
    tx, digest = copy.head()
    if manifest is not None and (manifest["tx"], manifest["hash"]) != (tx, digest):
        raise StorageError(f"the backup holds tx {tx} ({digest}), but its manifest says tx {manifest['tx']} "
                           f"({manifest['hash']}): nothing was restored", path=str(source))
    if verify:
        report = copy.verify()
        if not report.ok:
            raise StorageError(f"the backup fails verification at tx {report.bad_tx}: {report.problem}; nothing "
                               "was restored", path=str(source), bad_tx=report.bad_tx)
    return tx, digest


def _check_empty(target: Any, url: str) -> None:
    """``CONFLICT`` unless the store at ``url`` has no tx and no namespace."""
    latest = target.latest_tx
    names = [] if latest else target.storage().namespaces()  # the names only: infos would read every key
    if latest or names:
        held = f"it is at tx {latest}" if latest else f"it holds {len(names)} namespace(s)"
        raise Conflict(f"restore target {url!r} is not an empty store ({held}); refusing to overwrite it: "
                       "restore into a new prefix", parameter="data_dir", path=url, latest_tx=latest)


def _replay(copy: Store, target: Any, end: int) -> None:
    """The copy's history replayed onto ``target``, :data:`WINDOW` txs at a time (the last window carries
    the namespace list)."""
    since = 0
    while True:
        until = min(since + WINDOW, end)
        replay_history(target, export_history(copy, since=since, until=until), say_left=False)  # undone on error
        since = until
        if since >= end:
            return
