"""Hot backups and restores of a whole store.

:func:`backup` writes a consistent copy of the store as of one tx while readers and writers keep
working: a dense rebuild (:meth:`Backend.copy_dense`) walks each database of one read transaction
in key order and appends its entries (``MDB_APPEND``) to a new environment, so every B-tree page of
the copy is full and free pages are left behind (LMDB's compacting copy, ``mdb_env_copy2``, would
keep each page as full as it was, about two thirds after random inserts). Writers are never
blocked; this process's map growth waits until the copy ends (the copy holds the gate of
:mod:`engine.backend` like any read).

A backup is a directory holding ``data.mdb`` and ``strata-backup.json`` (the tx and chain hash it
holds, and when it was taken). It is written under a temporary name, flushed, then renamed into
place, so a backup directory that exists is complete. :func:`restore` copies ``data.mdb`` into an
empty data directory the same way, then checks the restored head against the manifest and (by
default) re-derives the whole hash chain with ``verify()``.

Neither ever overwrites: a target in the way (a non-empty directory, a file, a file where a parent
directory should be, or a backup another caller placed there first while this one was copying) is
refused with ``CONFLICT``; exactly one of several concurrent backups to one new name succeeds.

**Partial directories.** The temporary ``.NAME.partial-PID-N`` directory is held, while it is
written, by an exclusive ``flock`` on the directory itself. A process killed mid-copy leaves it
behind; :func:`remove_abandoned_partials` removes those whose creator is gone: its pid is not a
live process *and* nobody holds the lock (the kernel drops the lock of a dead process, and the
pid check covers the instant between ``mkdir`` and ``flock``). A live backup's directory is never
removed. :func:`backup` and :func:`restore` run it on the directory they write into.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import schema, txlog
from .errors import Conflict, InvalidParameters, StorageError

if TYPE_CHECKING:
    from .store import Store

MANIFEST = "strata-backup.json"
DATA_FILE = "data.mdb"
_PARTIAL = re.compile(r"\.(.+)\.partial-(\d+)-(\d+)")


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup holds: the store as of ``tx``, whose chain hash is ``hash`` (hex)."""

    path: str
    tx: int
    hash: str
    size_bytes: int
    time: datetime

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data; ``time`` in UTC with microseconds and a ``Z``, like every answer."""
        out = asdict(self)
        out["time"] = _utc_z(self.time)
        return out


def _utc_z(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _in_the_way(what: str, path: Path, blocking: Path, reason: str) -> Conflict:
    return Conflict(f"{what} {str(path)!r} {reason}; refusing to overwrite it", parameter="path", path=str(path),
                    blocking=str(blocking))


def _check_target(path: Path, what: str) -> None:
    """Conflict unless ``path`` is absent or an empty directory, and its parent can be a directory."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise _in_the_way(what, path, path, "exists and is not an empty directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise _in_the_way(what, path, parent, f"cannot be created: {str(parent)!r} is a file")
            break


def _make_parent(path: Path, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file appeared where a directory must go
        blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        raise _in_the_way(what, path, blocking, f"cannot be created: {str(blocking)!r} is a file") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@contextlib.contextmanager
def _partial_dir(target: Path) -> Iterator[Path]:
    """A new ``.NAME.partial-PID-N`` directory beside ``target``, locked (see the module docstring)
    while the body writes it; removed if the body raises."""
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    fd = -1
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if fd >= 0:
            os.close(fd)  # releases the lock


def remove_abandoned_partials(directory: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """Remove the ``.NAME.partial-PID-N`` directories in ``directory`` left by a backup or restore
    whose process died (see the module docstring); with ``recursive``, in its subdirectories too
    (not inside backups or partial directories). Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        m = _PARTIAL.fullmatch(entry.name)
        if m is None:
            if recursive and not os.path.exists(os.path.join(entry.path, MANIFEST)):
                removed += remove_abandoned_partials(entry.path, recursive=True)
            continue
        if _pid_alive(int(m.group(2))):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its creator is alive (in another pid namespace, say)
            os.close(fd)
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        finally:
            os.close(fd)
    return removed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _place(tmp: Path, target: Path, what: str) -> None:
    """Rename the finished ``tmp`` directory to ``target``: rename(2) replaces an empty directory
    atomically and refuses anything else, so of several callers racing for one name exactly one
    wins and the others get ``CONFLICT``."""
    try:
        os.rename(tmp, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise _in_the_way(what, target, target, "was created by someone else while this copy was written "
                              "(exists and is not an empty directory)") from None
        raise
    _fsync(target.parent)


def backup(store: Store, path: str | os.PathLike[str]) -> BackupInfo:
    """Copy the store, as of the latest tx when the copy starts, into the new directory ``path``
    (``CONFLICT`` if something is in the way; see the module docstring)."""
    target = Path(path).absolute()
    _check_target(target, "backup target")
    _make_parent(target, "backup target")
    remove_abandoned_partials(target.parent)
    backend = store._backend
    meta = backend.meta

    with _partial_dir(target) as tmp:
        def copy(txn: Any) -> tuple[int, bytes]:
            # The copy and the head come from one read transaction: the copy holds exactly this tx.
            backend.copy_dense(txn, str(tmp))
            return (schema.get_u64(txn, meta, schema.LATEST_TX),
                    bytes(txn.get(txlog.HEAD_HASH, db=meta) or txlog.GENESIS))

        tx, digest = backend.read(copy)
        taken = datetime.now(UTC)
        size = (tmp / DATA_FILE).stat().st_size
        info = BackupInfo(str(target), tx, digest.hex(), size, taken)
        manifest = {"format": "strata-backup", "version": 1, "tx": tx, "hash": digest.hex(),
                    "time": _utc_z(taken), "source": os.path.abspath(store.path)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        for name in (DATA_FILE, MANIFEST):
            _fsync(tmp / name)
        _place(tmp, target, "backup target")
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
    """Restore the backup directory ``backup_path`` into the new (or empty) ``data_dir``, or into the empty
    store an ``etcd://`` URL names (:func:`engine.etcd.backup.restore`).

    The restored store's head must match the backup's manifest; with ``verify`` (the default) its
    whole hash chain is re-derived too (O(all operations)). Raises ``STORAGE_ERROR`` if either
    check fails (the restored directory is then left in place for inspection), ``CONFLICT`` if
    ``data_dir`` is in the way (see the module docstring).
    """
    from .store import Store

    if type(data_dir) is str and data_dir.startswith("etcd:"):
        from .etcd.backup import restore as on_etcd  # imported only for etcd targets

        return on_etcd(backup_path, data_dir, verify=verify)
    source = Path(backup_path)
    data = source / DATA_FILE if source.is_dir() else source
    if not data.is_file():
        raise InvalidParameters(f"{str(source)!r} is not a backup (no {DATA_FILE} in it)", parameter="backup_path")
    target = Path(data_dir).absolute()
    _check_target(target, "restore target")
    _make_parent(target, "restore target")
    remove_abandoned_partials(target.parent)
    with _partial_dir(target) as tmp:
        shutil.copyfile(data, tmp / DATA_FILE)
        _fsync(tmp / DATA_FILE)
        _place(tmp, target, "restore target")
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
