"""The WSGI application: route, authenticate, dispatch, and turn every failure into a problem.

``create_app(data_dir, ...)`` returns an :class:`App`, a WSGI callable that works under gunicorn
(``strata serve``) or any WSGI server. Guarantees:

- The LMDB store is opened lazily, in the process that serves the request, and reopened if the
  process id changes: an LMDB environment must never cross a ``fork()``, and gunicorn builds the
  app in its master before forking workers. (``warm()`` opens it early, from a post-fork hook.)
- Nothing a client sends crashes a worker: problems are answered as RFC 9457 documents; an
  unexpected exception is logged with its traceback and answered as a bare 500.
- Bodies are never read before routing, auth and the size check have passed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from engine import Retention, Store, errors
from engine.idempotency import Replay
from engine.signed_head import HeadSigner
from engine.txtree import Head
from server.auth import KeyRing
from server.http import Request, problem_response
from server.idempotency import replayed, reused
from server.lifecycle import LifecycleLeader
from server.metrics import Metrics
from server.pid import current as current_pid
from server.problems import INTERNAL_ERROR, HTTPProblem, from_engine_error, status_line
from server.routes import Router
from server.validation import MAX_KEY_BYTES
from server.watch import StreamSlots, TxWatch

log = logging.getLogger("strata.server")

DEFAULT_MAX_BODY = 100_000_000  # 100 MB, the Cloudflare KV bulk-write limit the seeds follow
DEFAULT_MAX_BATCH = 10_000
DEFAULT_OPENAPI = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
DEFAULT_HEARTBEAT = 15.0  # seconds between SSE heartbeat comments
DEFAULT_MAX_NOTE = 4096
StartResponse = Callable[..., Any]


class App:
    """The Strata WSGI callable (see the module docstring for its guarantees).

    ``store`` is this process's open :class:`engine.Store`; ``keyring`` the API keys (empty: auth
    off); ``metrics`` the shared counters; ``max_body`` the request body limit in bytes;
    ``heartbeat`` the seconds between SSE heartbeats; ``max_streams`` the open SSE streams one
    process may hold (None: no cap; ``strata serve`` sets it from its thread count);
    ``retention`` the policy one process at a time applies in the background, and ``expire_every``
    the seconds between its expiry sweeps (None: only writes record expiries; see
    :mod:`server.lifecycle`); ``backup_dir`` the only directory ``POST /v4/admin/backup`` writes
    into (default: ``backups`` beside the data directory; a store on etcd has no data directory, so
    there it is None unless given, and the route says to start the server with ``--backup-dir``);
    ``signer`` the key that signs the heads it serves (``GET /v4/head``, proof reads; None: heads are not signed).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        keyring: KeyRing | None = None,
        sync: bool = True,
        store_options: dict[str, Any] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_key_bytes: int = MAX_KEY_BYTES,
        openapi_path: str | os.PathLike[str] | None = DEFAULT_OPENAPI,
        heartbeat: float = DEFAULT_HEARTBEAT,
        max_streams: int | None = None,
        retention: Retention | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
        expire_every: float | None = None,
        signer: HeadSigner | None = None,
    ) -> None:
        self.data_dir = os.fspath(data_dir)
        self.signer = signer
        self.retention = retention
        self.expire_every = expire_every or None
        self.backup_dir: Path | None = _backup_dir(self.data_dir, backup_dir)
        self._lifecycle_leader: LifecycleLeader | None = None
        self.heartbeat = heartbeat
        self.max_streams = max_streams
        self.max_note_bytes = DEFAULT_MAX_NOTE
        self.keyring = keyring or KeyRing([])
        self.sync = sync
        self.store_options = dict(store_options or {})
        self.max_body = max_body
        self.max_batch = max_batch
        self.max_key_bytes = max_key_bytes
        self.router = Router()
        self.metrics = Metrics(self.router.endpoints)
        self.openapi: bytes | None = None
        if openapi_path is not None:
            try:
                self.openapi = Path(openapi_path).read_bytes()
            except OSError:
                log.warning("OpenAPI document %s not found; /openapi.json will answer 500", openapi_path)
        self._store: Any = None
        self._store_pid = 0
        self._watch: tuple[int, TxWatch, StreamSlots] | None = None
        self._worker: Any = None
        self._closed = False

    def sign_head(self, head: Head) -> dict[str, Any] | None:
        """The server's signature over ``head``, made now, as the JSON member ``signed`` of an answer;
        None when the server has no signing key or the head no root (its tree is not built)."""
        if self.signer is None or head.root is None:
            return None
        return self.signer.sign(head.size, head.root, head.hash, time.time_ns() // 1000).to_dict()

    @property
    def store(self) -> Any:
        """This process's store, opened on first use after any fork."""
        if self._store_pid != current_pid() or self._store is None:
            if self._store is not None:
                # A store inherited across fork() is abandoned, not closed: closing it would act on
                # the parent's LMDB environment. py-lmdb refuses a second open in the child, so the
                # open below fails: the parent must never open the store before forking.
                log.error("the store was opened before this process forked; build the app in the "
                          "master but open the store only in workers (see server.app)")
            self._store = Store.open(self.data_dir, sync=self.sync, **self.store_options)
            self._store_pid = os.getpid()
            self._closed = False
            limits = getattr(self._store, "limits", None)  # the engine's limits win over defaults
            self.max_batch = getattr(limits, "max_batch", self.max_batch)
            self.max_key_bytes = getattr(limits, "max_key_bytes", self.max_key_bytes)
            self.max_note_bytes = getattr(limits, "max_note_bytes", self.max_note_bytes)
            if self.retention is not None or self.expire_every:
                self._lifecycle_leader = LifecycleLeader(self._store, self.data_dir, self.retention, self.expire_every)
                self._lifecycle_leader.start()
        return self._store

    def _streams(self) -> tuple[TxWatch, StreamSlots]:
        """This process's tx watch and stream slots (new ones after a fork: threads do not survive it)."""
        current = self._watch
        if current is None or current[0] != os.getpid():
            store = self.store
            current = (os.getpid(), TxWatch(lambda: int(store.latest_tx), store.wait_for),
                       StreamSlots(self.max_streams))
            self._watch = current
        return current[1], current[2]

    @property
    def watch(self) -> TxWatch:
        """Wakes live streams when any process commits a tx."""
        return self._streams()[0]

    @property
    def stream_slots(self) -> StreamSlots:
        """The open-stream count of this process, capped at ``max_streams``."""
        return self._streams()[1]

    @property
    def serving(self) -> bool:
        """False once this process is shutting down: live streams end so the worker can exit."""
        return not self._closed and getattr(self._worker, "alive", True)

    def long_running(self, method: str, path: str, body: bytes | bytearray | None = None) -> bool:
        """Whether a request can run or wait for long (a stream, whole-store work, a write, an answer
        whose size a limit sets; :data:`server.routes.LONG_RUNNING`; a read that may ask for proofs,
        judged from ``body``, its whole raw body: :data:`server.routes.LONG_RUNNING_BODIES`):
        :mod:`server.worker` runs those on a pool thread and answers the others on its event loop.
        ``path`` as in ``PATH_INFO``. Without ``body`` (not all here yet) a read is not judged long:
        the worker asks again once the body is whole."""
        return self.router.long_running(method, path, body)

    def batched(self, method: str, path: str) -> bool:
        """Whether the worker's write batcher (:mod:`server.write_batch`) may answer this request:
        a small write (:data:`server.routes.BATCHED`) on a store whose writes can park (LMDB's)."""
        return self.store.parks_writes and self.router.batched(method, path)

    def attach_worker(self, worker: Any) -> None:
        """Called in a gunicorn worker after the fork: open the store and watch ``worker.alive``."""
        self._worker = worker
        self._closed = False
        self.warm()

    def warm(self) -> None:
        """Open the store now (for a post-fork hook, so a bad data dir fails the worker's boot)."""
        _ = self.store

    def close(self) -> None:
        """End this process's live streams and close its store (if this process opened one)."""
        self._closed = True
        if self._watch is not None and self._watch[0] == os.getpid():
            self._watch[1].stop()
        self._watch = None
        if self._lifecycle_leader is not None and self._store_pid == os.getpid():
            self._lifecycle_leader.stop()
        self._lifecycle_leader = None
        if self._store is not None and self._store_pid == os.getpid():
            self._store.close()
        self._store = None
        self._store_pid = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        t0 = perf_counter_ns()
        path = environ.get("PATH_INFO", "")
        router = self.router
        metric = router.unmatched_metric
        try:
            route, params = router.match(path)
            metric = route.other_metric
            endpoint = router.endpoint(route, environ.get("REQUEST_METHOD", ""))
            metric = endpoint.metric
            request = Request(environ, params, t0, self.max_body)
            if endpoint.scope is not None and self.keyring.enabled:
                key = self.keyring.authenticate(environ.get("HTTP_AUTHORIZATION"))
                ns = params.get(endpoint.namespace_param) if endpoint.namespace_param else None
                KeyRing.authorize(key, endpoint.scope, ns)
                request.principal = key
            status, headers, body = endpoint.handler(self, request)
        except HTTPProblem as problem:
            status, headers, body = problem_response(problem, path)
        except Replay as replay:  # a retry under an idempotency key: the first answer, nothing written
            status, headers, body = replayed(replay.answer)
        except errors.IdempotencyKeyReused as exc:
            status, headers, body = problem_response(reused(exc), path)
        except errors.EngineError as exc:
            status, headers, body = problem_response(from_engine_error(exc), path)
            if status >= 500 and status != 501:  # 501: the store's backend lacks the operation, nothing broke
                log.error("%s %s -> %d %s: %s", environ.get("REQUEST_METHOD"), path[:200], status, exc.code,
                          exc.message)
        except Exception:
            log.exception("unexpected error in %s %s", environ.get("REQUEST_METHOD"), path[:200])
            status, headers, body = problem_response(
                HTTPProblem(500, INTERNAL_ERROR, "the server hit an unexpected error; it has been logged"), path
            )
        if type(body) is list and body:  # bytes the app has all of: their length, not a chunked answer
            headers = [*headers, ("Content-Length", str(len(body[0]) if len(body) == 1 else sum(map(len, body))))]
        start_response(status_line(status), headers)
        self.metrics.observe(metric, status, perf_counter_ns() - t0)
        return body


def create_app(
    data_dir: str | os.PathLike[str],
    *,
    keys_file: str | os.PathLike[str] | None = None,
    sync: bool = True,
    store_options: dict[str, Any] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    openapi_path: str | os.PathLike[str] | None = DEFAULT_OPENAPI,
    heartbeat: float = DEFAULT_HEARTBEAT,
    max_streams: int | None = None,
    retention: Retention | None = None,
    backup_dir: str | os.PathLike[str] | None = None,
    expire_every: float | None = None,
    signing_key: str | os.PathLike[str] | None = None,
) -> App:
    """Build the WSGI app serving the store at ``data_dir``.

    ``keys_file`` (default: ``$STRATA_KEYS_FILE``, if set) enables API-key auth (format in
    :mod:`server.auth`); ``sync=False`` trades durability of the last commits for speed;
    ``store_options`` are passed to ``Store.open`` (``map_size``, ``limits``); ``heartbeat`` is
    the seconds between SSE heartbeat comments; ``max_streams`` caps the open SSE streams per process;
    ``retention`` (an :class:`engine.Retention`) is applied in the background by one process at a
    time, which also records due expiries as deletes every ``expire_every`` seconds (None: only
    writes do); ``backup_dir`` is where ``POST /v4/admin/backup`` may write (default ``DATA/../backups``;
    none for a store on etcd);
    ``signing_key`` is an Ed25519 private key file (PKCS#8 PEM, ``strata keygen``) that signs every head
    served (:class:`engine.signed_head.KeyFileError`, a ValueError, if it cannot be used).
    """
    if keys_file is None:
        keys_file = os.environ.get("STRATA_KEYS_FILE") or None
    keyring = KeyRing.load(keys_file) if keys_file is not None else KeyRing([])
    return App(data_dir, keyring=keyring, sync=sync, store_options=store_options, max_body=max_body,
               openapi_path=openapi_path, heartbeat=heartbeat, max_streams=max_streams, retention=retention,
               backup_dir=backup_dir, expire_every=expire_every,
               signer=None if signing_key is None else HeadSigner.load(signing_key))


def _backup_dir(data_dir: str, given: str | os.PathLike[str] | None) -> Path | None:
    """Where ``POST /v4/admin/backup`` writes: ``given``, else ``backups`` beside an LMDB data directory;
    None for a store on etcd without one (it has no data directory to put backups beside, and the
    server's working directory is no place a user chose)."""
    if given:
        return Path(given).absolute()
    if data_dir.startswith("etcd://"):
        return None
    return (Path(data_dir).absolute().parent / "backups").absolute()
