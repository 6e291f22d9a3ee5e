"""Server-side pieces of the data lifecycle: where HTTP backups may go, and who runs retention.

**Backup paths.** ``POST /v4/admin/backup`` writes only inside the server's backup directory
(``strata serve --backup-dir DIR``; default ``backups`` beside the data directory). The client
names a path *relative to it*: one or more segments of ``A-Z a-z 0-9 . _ -``, none empty, ``.``,
``..`` or starting with a dot (hidden names are the engine's temporary ``.NAME.partial-*``
directories), so an absolute path, ``..``, a backslash or a NUL byte can never name a place
outside it. The resolved target is checked again after following symlinks already present on
disk (a symlink inside the backup directory cannot lead out of it either).

**Background work under several workers.** Two jobs run in the background of a server: retention
passes (``--retain-txs`` / ``--retain-for``) and expiry sweeps (``--expire-every``: record the
expiries that are due as deletes, so namespace ``key_count`` and ``size_bytes`` stay exact and the
history shows them even when nobody writes). gunicorn runs several worker processes, each with its
own ``Store``; N workers would run N redundant passes, each taking LMDB's writer lock. So workers
open their store *without* a policy and each runs a :class:`LifecycleLeader`: a thread that tries,
every tick, to take an exclusive ``flock`` on ``DATA/strata-lifecycle.lock``; the one worker that
holds it runs the jobs (:func:`engine.retention.apply`, ``Store.expire``), the others only retry
the lock (a non-blocking system call). The kernel releases the lock when its holder exits or dies,
however it dies, so leadership moves to another live worker within one tick: after a crash, a
``max_requests`` restart, or a graceful reload (``HUP``), where gunicorn starts new workers while
the old ones still run, so "the first worker to boot" or "worker 0" would leave nobody in charge
once the old generation exits. The gunicorn master never runs it: it must not open the LMDB
environment before forking.

**A store on etcd** (``--data etcd://...``) has no data directory to hold a lock file and needs none:
retention is refused at startup (not supported there yet), and the expiry sweep is safe to run in
every worker at once (each sweep's deletes are guarded by the expiring version, so concurrent sweepers
record each expiry once; see :mod:`engine.etcd.sweep`), so every worker leads.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from engine import Retention, errors
from engine import retention as _retention

log = logging.getLogger("strata.server")

LOCK_NAME = "strata-lifecycle.lock"
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
MAX_BACKUP_PATH = 255
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``1d12h``, ``90m``, ``45s``, ``2w`` or plain seconds (``3600``) as a
    timedelta; ValueError for anything else or for zero."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        seconds = float(text)
    else:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{text!r} is not a duration: use a number with a unit s, m, h, d or w, "
                             "such as 30d, 12h or 1d12h")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not seconds > 0:
        raise ValueError(f"a duration must be above zero, not {text!r}")
    return timedelta(seconds=seconds)


def idempotency_ttl(text: str) -> float:
    """``--idempotency-ttl`` in seconds (a duration of 1 s to 10 years); ValueError naming the flag."""
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise ValueError(f"--idempotency-ttl: {exc}") from None
    if not 1 <= seconds <= 10 * 366 * 86400:
        raise ValueError(f"--idempotency-ttl must be 1 second to 10 years, not {text!r}")
    return seconds


def retention_policy(txs: int | None, duration: str | None) -> Retention | None:
    """The policy of ``--retain-txs`` / ``--retain-for`` (both: the laxer wins), None for neither.
    ValueError with a readable message for a bad value."""
    if txs is None and duration is None:
        return None
    if txs is not None and txs < 1:
        raise ValueError("--retain-txs must be at least 1")
    seconds = parse_duration(duration).total_seconds() if duration is not None else None
    return Retention(txs=txs, seconds=seconds)


def policy_json(policy: Retention | None) -> dict[str, Any] | None:
    """The policy as JSON (None: keep everything)."""
    if policy is None:
        return None
    return {"txs": policy.txs, "seconds": policy.seconds, "interval": policy.interval}


def backup_target(backup_dir: Path, name: str) -> Path:
    """The absolute target for the client-given relative ``name`` inside ``backup_dir``.

    ValueError (with the reason) for anything that is not a plain relative path of allowed
    segments, or that would resolve outside ``backup_dir`` through a symlink.
    """
    if not name or len(name) > MAX_BACKUP_PATH:
        raise ValueError(f"path must be 1 to {MAX_BACKUP_PATH} characters")
    if name.startswith("/"):
        raise ValueError("path must be relative to the server's backup directory, not absolute")
    segments = name.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ValueError("path must not contain empty, '.' or '..' segments")
        if not _SEGMENT.fullmatch(segment):
            raise ValueError("each path segment must be 1 to 128 characters of A-Z a-z 0-9 . _ - and not "
                             "start with a dot")
    root = backup_dir.resolve()
    target = root.joinpath(*segments)
    if not target.resolve().is_relative_to(root):
        raise ValueError("path leads outside the server's backup directory")
    return target


class LifecycleLeader(threading.Thread):
    """Runs retention passes (``policy``) and expiry sweeps (every ``expire_every`` seconds) on
    ``store``, only while this process holds the lifecycle lock of ``data_dir`` (see the module
    docstring). ``stop()`` ends it between two compaction chunks and releases the lock."""

    def __init__(self, store: Any, data_dir: str | os.PathLike[str], policy: Retention | None = None,
                 expire_every: float | None = None) -> None:
        super().__init__(name="strata-lifecycle-leader", daemon=True)
        if policy is None and not expire_every:
            raise ValueError("a LifecycleLeader needs a retention policy or an expiry period")
        self.store = store
        self.policy = policy
        self.expire_every = expire_every or None
        self.tick = min(t for t in (policy.interval if policy else None, self.expire_every) if t)
        local = getattr(store, "backend", "lmdb") == "lmdb"
        self.lock_path = Path(data_dir) / LOCK_NAME if local else None  # None: no lock, every process leads
        self._fd: int | None = None
        self._stop_event = threading.Event()

    @property
    def leading(self) -> bool:
        """Whether this process holds the lock (and so runs the jobs)."""
        return self._fd is not None

    def _try_lock(self) -> bool:
        if self.lock_path is None:
            self._fd = -1  # leading without a lock: nothing to release
            return True
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        log.info("lifecycle: this worker (pid %d) runs retention and expiry", os.getpid())
        return True

    def run(self) -> None:
        last_sweep = time.monotonic()
        try:
            while not self._stop_event.wait(self.tick):
                try:
                    if self._fd is None and not self._try_lock():
                        continue
                    if self.policy is not None:
                        _retention.apply(self.store, self.policy, self._stop_event.is_set)
                    if self.expire_every and time.monotonic() - last_sweep >= self.expire_every:
                        last_sweep = time.monotonic()
                        if deleted := self.store.expire():
                            log.info("lifecycle: recorded %d expired keys as deletes", deleted)
                except errors.StoreClosed:
                    return
                except (errors.EngineError, OSError) as exc:  # a full disk: try again at the next tick
                    log.warning("lifecycle pass failed: %s", exc)
        finally:
            self._release()

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the only descriptor releases the flock

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=30)
