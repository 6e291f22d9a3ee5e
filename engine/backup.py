"""Hot backups and restores of a whole store.

:func:`backup` writes a consistent copy of the store as of one tx while readers and writers keep
working: LMDB's compacting copy (``mdb_env_copy2`` with ``MDB_CP_COMPACT``) walks the B-trees of
one read transaction and writes only the pages in use, renumbered, so the copy is also defragmented
(free pages are left behind). Writers are never blocked; this process's map growth waits until the
copy ends (the copy holds the gate of :mod:`engine.backend` like any read).

A backup is a directory holding ``data.mdb`` and ``strata-backup.json`` (the tx and chain hash it
holds, and when it was taken). It is written under a temporary name, flushed, then renamed into
place, so a backup directory that exists is complete. :func:`restore` copies ``data.mdb`` into an
empty data directory the same way, then checks the restored head against the manifest and (by
default) re-derives the whole hash chain with ``verify()``.

Neither ever overwrites: an existing non-empty target is refused with ``INVALID_PARAMETERS``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import schema, txlog
from .errors import InvalidParameters, StorageError

if TYPE_CHECKING:
    from .store import Store

MANIFEST = "strata-backup.json"
DATA_FILE = "data.mdb"


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup holds: the store as of ``tx``, whose chain hash is ``hash`` (hex)."""

    path: str
    tx: int
    hash: str
    size_bytes: int
    time: datetime

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["time"] = self.time.isoformat()
        return out


def _check_target(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidParameters(f"{what} {str(path)!r} exists and is not an empty directory; refusing to "
                                "overwrite it", parameter="path", path=str(path))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _place(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` directory to ``target`` (an empty ``target`` is replaced)."""
    if target.exists():
        target.rmdir()  # empty, checked before we started
    os.rename(tmp, target)
    _fsync(target.parent)


def backup(store: Store, path: str | os.PathLike[str]) -> BackupInfo:
    """Copy the store, as of the latest tx when the copy starts, into the new directory ``path``."""
    target = Path(path).absolute()
    _check_target(target, "backup target")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    backend = store._backend
    meta = backend.meta

    def copy(txn: Any) -> tuple[int, bytes]:
        # The copy and the head come from one read transaction: the copy holds exactly this tx.
        backend.env.copy(str(tmp), compact=True, txn=txn)
        return schema.get_u64(txn, meta, schema.LATEST_TX), bytes(txn.get(txlog.HEAD_HASH, db=meta) or txlog.GENESIS)

    try:
        tx, digest = backend.read(copy)
        taken = datetime.now().astimezone()
        size = (tmp / DATA_FILE).stat().st_size
        info = BackupInfo(str(target), tx, digest.hex(), size, taken)
        manifest = {"format": "strata-backup", "version": 1, "tx": tx, "hash": digest.hex(),
                    "time": taken.isoformat(), "source": store.path}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        for name in (DATA_FILE, MANIFEST):
            _fsync(tmp / name)
        _place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of the backup directory ``path``, or None if it has none."""
    file = Path(path) / MANIFEST
    if not file.exists():
        return None
    data: dict[str, Any] = json.loads(file.read_text())
    return data


def restore(backup_path: str | os.PathLike[str], data_dir: str | os.PathLike[str], *,
            verify: bool = True) -> BackupInfo:
    """Restore the backup directory ``backup_path`` into the new (or empty) ``data_dir``.

    The restored store's head must match the backup's manifest; with ``verify`` (the default) its
    whole hash chain is re-derived too (O(all operations)). Raises ``STORAGE_ERROR`` if either
    check fails (the restored directory is then left in place for inspection).
    """
    from .store import Store

    source = Path(backup_path)
    data = source / DATA_FILE if source.is_dir() else source
    if not data.is_file():
        raise InvalidParameters(f"{str(source)!r} is not a backup (no {DATA_FILE} in it)", parameter="backup_path")
    target = Path(data_dir).absolute()
    _check_target(target, "restore target")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    try:
        shutil.copyfile(data, tmp / DATA_FILE)
        _fsync(tmp / DATA_FILE)
        _place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest = read_manifest(source) if source.is_dir() else None
    with Store.open(target) as store:
        tx, digest = store.head()
        if manifest is not None and (manifest["tx"], manifest["hash"]) != (tx, digest):
            raise StorageError(f"the restored store is at tx {tx} ({digest}), but the backup's manifest says "
                               f"tx {manifest['tx']} ({manifest['hash']})", path=str(target))
        if verify:
            report = store.verify()
            if not report.ok:
                raise StorageError(f"the restored store fails verification at tx {report.bad_tx}: {report.problem}",
                                   path=str(target), bad_tx=report.bad_tx)
    size = (target / DATA_FILE).stat().st_size
    when = datetime.fromisoformat(manifest["time"]) if manifest else datetime.now().astimezone()
    return BackupInfo(str(target), tx, digest, size, when)
