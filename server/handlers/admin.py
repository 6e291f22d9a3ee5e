"""Admin operations on the whole store: compaction and hot backups (``/v4/admin/...``, admin scope).

* ``POST /v4/admin/compact``: ``{"before_tx": N}`` makes N the compaction horizon and frees every
  version no read at a tx >= N can see. Without ``before_tx``: one pass of the server's retention
  policy (``--retain-txs`` / ``--retain-for``) if it has one, else only finish a compaction that
  was interrupted. The answer is the engine's ``CompactionReport`` with ``mode`` and ``duration``.
* ``GET /v4/admin/compaction``: the horizon, versions freed so far, pending work, the policy.
* ``POST /v4/admin/backup``: ``{"path": "NAME"}`` writes a hot backup to ``NAME`` *inside the
  server's backup directory* (see :mod:`server.lifecycle` for the path rules). A name already
  taken, or a file where a directory of the path must go, is 409 ``CONFLICT``: of concurrent
  backups to one new name exactly one gets 201. Each backup first removes the partial
  directories that killed backups left anywhere in the backup directory
  (:func:`engine.backup.remove_abandoned_partials`).

These act on every namespace, so a key limited to some namespaces gets 403 even with admin scope.
"""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import errors
from engine.backup import remove_abandoned_partials
from server.http import Request, Response, duration, json_response
from server.lifecycle import backup_target, policy_json
from server.problems import FORBIDDEN, INVALID_PARAMETERS, HTTPProblem, bad_request, from_engine_error
from server.validation import check_fields, check_tx

if TYPE_CHECKING:
    from server.app import App

_NO_QUERY: frozenset[str] = frozenset()
_COMPACT_FIELDS = frozenset({"before_tx"})
_BACKUP_FIELDS = frozenset({"path"})


def _whole_store(req: Request) -> None:
    key = req.principal
    if key is not None and key.namespaces is not None:
        raise HTTPProblem(403, FORBIDDEN, f"API key {key.name!r} is limited to some namespaces; admin operations "
                          "act on the whole store and need a key for all of them")


def compact(app: App, req: Request) -> Response:
    """``POST /v4/admin/compact`` with ``{"before_tx": N}`` or ``{}`` (see the module docstring)."""
    _whole_store(req)
    req.query(_NO_QUERY)
    body = check_fields(req.json(empty={}), _COMPACT_FIELDS, 'compact takes {"before_tx": N} or {}')
    before_tx = check_tx(body.get("before_tx"), "/before_tx")
    store = app.store
    if before_tx is not None:
        mode = "before_tx"
        try:
            report = store.compact(before_tx)
        except errors.EngineError as exc:
            raise from_engine_error(exc, tx_location="/before_tx") from None
    elif app.retention is not None:
        mode = "retention"
        report = store.apply_retention(app.retention)
        if report is None:  # nothing to do: the horizon is where the policy wants it
            report = store.compact()
    else:
        mode = "resume"
        report = store.compact()
    out: dict[str, Any] = {"mode": mode, **report.to_dict(), "duration": duration(req.t0)}
    return json_response(200, out)


def compaction_status(app: App, req: Request) -> Response:
    """``GET /v4/admin/compaction``: ``horizon``, ``freed_versions``, ``pending``, ``latest_tx`` and
    the server's ``retention`` policy (null: keep everything)."""
    _whole_store(req)
    req.query(_NO_QUERY)
    store = app.store
    status = store.compaction_status()
    pending = status.get("pending")
    out = {
        "horizon": status["horizon"],
        "freed_versions": status["freed_versions"],
        "pending": None if pending is None else {"next_tx": pending[0], "target": pending[1]},
        "latest_tx": store.latest_tx,
        "retention": policy_json(app.retention),
        "duration": duration(req.t0),
    }
    return json_response(200, out)


def backup(app: App, req: Request) -> Response:
    """``POST /v4/admin/backup`` with ``{"path": "NAME"}`` (optional: ``backup-<UTC time>``): 201
    and the backup's ``path`` (on the server), ``name``, ``tx``, ``hash``, ``size_bytes``, ``time``.
    The same on a store on etcd (the backup is an LMDB store with the whole history; see
    :mod:`engine.etcd.backup`), written by the server that took the request into its ``--backup-dir``:
    without one (a store on etcd has no data directory to put backups beside) 501 ``NOT_SUPPORTED``
    saying so, before anything is read or written."""
    _whole_store(req)
    req.query(_NO_QUERY)
    backup_dir = app.backup_dir
    if backup_dir is None:
        raise errors.NotSupported("backup over HTTP needs a backup directory: a store on etcd has no data directory "
                                  "to put backups beside; start strata serve with --backup-dir DIR (on several "
                                  "servers, a directory they share), or run strata backup",
                                  operation="backup", backend="etcd")
    body = check_fields(req.json(empty={}), _BACKUP_FIELDS, 'backup takes {"path": "name"}')
    name = body.get("path")
    if name is None:
        name = datetime.now(UTC).strftime("backup-%Y%m%dT%H%M%S.%fZ")
    if type(name) is not str:
        raise bad_request(INVALID_PARAMETERS, "path must be a string", "/path", None)
    try:
        target = backup_target(backup_dir, name)
    except ValueError as exc:
        raise bad_request(INVALID_PARAMETERS, f"invalid backup path: {exc}", "/path", name[:200]) from None
    remove_abandoned_partials(backup_dir, recursive=True)
    try:
        info = app.store.backup(target)
    except errors.Conflict as exc:  # something is in the way, or another backup took the name first
        raise _backup_conflict(backup_dir, name, exc) from None
    except OSError as exc:
        code, status = ("STORAGE_FULL", 507) if exc.errno == errno.ENOSPC else ("STORAGE_ERROR", 500)
        raise HTTPProblem(status, code, f"the backup could not be written: {exc.strerror or exc}") from None
    return json_response(201, {"name": name, **info.to_dict(), "duration": duration(req.t0)})


def _backup_conflict(backup_dir: Path, name: str, exc: errors.Conflict) -> HTTPProblem:
    """409 ``CONFLICT`` naming what is in the way, relative to the backup directory: the server's
    own directory layout is never echoed back."""
    problem = from_engine_error(exc)
    problem.extra = {}  # "path" and "blocking" are server paths
    blocking = Path(str(exc.details.get("blocking", ""))).resolve()
    root = backup_dir.resolve()
    where = blocking.relative_to(root).as_posix() if blocking.is_relative_to(root) else name
    if blocking == root:
        message = "the server's backup directory is a file"
        problem.detail = "the server's backup directory (strata serve --backup-dir) is a file, not a directory"
    elif where == name:
        message = "exists (another backup, or something else, holds this name)"
        problem.detail = f"backup {name!r} exists and is not an empty directory; choose another path"
    else:
        message = f"{where!r} is a file, not a directory"
        problem.detail = f"backup {name!r} cannot be written: {where!r} in the backup directory is a file"
    problem.errors = [{"location": "/path", "message": message, "value": name}]
    return problem
