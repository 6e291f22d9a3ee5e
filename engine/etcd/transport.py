"""POSTs to an etcd cluster's JSON gateway with failover across its members, bounded retries and timeouts.

Contract of :meth:`Transport.call`:

* It talks to one member at a time (the last one that answered, shared by every thread) and moves to the
  next member when the current one cannot serve: the connection is refused or times out, or the member
  answers that it has no leader, is not the leader, is overloaded or unavailable (see
  :mod:`engine.etcd.answers`).
* A write refused with ``STORAGE_FULL`` (etcd's NOSPACE) carries ``outcome="unknown"`` too: etcd
  applies the write that crosses the quota and answers NOSPACE all the same.
* A **read** (``write=False``) is retried on the next member whatever went wrong, since reading twice
  changes nothing.
* A **write** is retried only when it certainly was not proposed: the connection was never made, or the
  member refused before proposing (no leader, ...). When the request was sent and the answer is lost (the
  connection dropped, the read timed out, the member said its proposal timed out), the write may still
  commit: the call raises :class:`~engine.errors.StorageUnavailable` with ``outcome="unknown"`` at once
  and does not retry, because a blind retry could commit twice. :mod:`engine.etcd.once` makes such a
  retry safe.
* Every member is tried once; further rounds (each waiting a little longer, from 50 ms up to 500 ms)
  only while ``retry_timeout`` seconds have not passed since the call began. Then it raises
  ``StorageUnavailable`` naming every member tried and what each said, with ``outcome="not_written"``
  for writes.
* Every attempt has a connect timeout and a read timeout (``request_timeout``, 5 s by default, as
  etcdctl's), cut after the first round to what is left of ``retry_timeout``; a watch stream has only the
  connect timeout unless it asks for an idle timeout. The read timeout is what bounds a write stall when
  the leader dies: a follower holds a write it forwarded to the dead leader until etcd's own timeout
  (5 s + 2 election timeouts, 7 s by default) while a new leader is usually elected in 1-2 s. A write
  answered later than the read timeout is reported ``outcome="unknown"``; writes that go through
  :mod:`engine.etcd.once` (which retries those safely) can use a shorter one (2 s: stalls under 3 s
  in the leader-kill test) where plain writes want room for a slow disk.

Connections are pooled per member (``pool_size`` kept-alive connections each, enough for that many
threads); a member whose connection broke gets a fresh pool, so the dead sockets of a killed member are
not tried one by one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError

from .. import errors
from .answers import Context, error_of

_HEADERS = {"Content-Type": "application/json"}


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``host, port`` of ``http://host:port`` or ``host:port`` (etcd's client port, 2379 by default)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if parts.scheme != "http" or not parts.hostname:
        raise errors.InvalidParameters(f"an etcd endpoint is http://host:port, not {endpoint!r}", endpoint=endpoint)
    return parts.hostname, parts.port or 2379


class Transport:
    """HTTP to every member of one etcd cluster. Thread-safe; ``close()`` drops every connection."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        connect_timeout: float = 1.0,
        request_timeout: float = 5.0,
        retry_timeout: float = 10.0,
        pool_size: int = 32,
    ) -> None:
        if not endpoints:
            raise errors.InvalidParameters("an etcd client needs at least one endpoint")
        self.endpoints = [f"http://{h}:{p}" for h, p in map(parse_endpoint, endpoints)]
        self.connect_timeout, self.request_timeout, self.retry_timeout = connect_timeout, request_timeout, retry_timeout
        self._pool_size = pool_size
        self._pools = [self._new_pool(e) for e in self.endpoints]
        self._current = 0  # index of the member calls go to first
        self._lock = threading.Lock()

    def _new_pool(self, endpoint: str) -> urllib3.HTTPConnectionPool:
        host, port = parse_endpoint(endpoint)
        return urllib3.HTTPConnectionPool(host, port, maxsize=self._pool_size, block=False, retries=False)

    @property
    def current(self) -> str:
        """The member calls go to first."""
        return self.endpoints[self._current]

    def _failed(self, index: int, broken: bool) -> None:
        """Move past member ``index`` (unless another thread already did); drop its connections if broken."""
        with self._lock:
            if broken:
                old, self._pools[index] = self._pools[index], self._new_pool(self.endpoints[index])
                old.close()
            if self._current == index:
                self._current = (index + 1) % len(self.endpoints)

    def mark_failed(self, endpoint: str) -> None:
        """A stream from ``endpoint`` broke: drop its connections and start from the next member."""
        self._failed(self.endpoints.index(endpoint), broken=True)

    def call(self, path: str, body: dict[str, Any], *, write: bool,
             ctx: Context | Callable[[], Context] | None = None) -> Any:
        """POST ``body`` to ``path`` on the current member (failing over as the module says); the parsed
        JSON answer, or the engine error the cluster's answer maps to. ``ctx``: what the error mapping
        needs to know about the call, or a function making it (called only for a refusal: a txn's
        context takes a pass over its operations)."""
        payload = orjson.dumps(body)
        deadline = time.monotonic() + self.retry_timeout
        tried: dict[str, str] = {}
        pause = 0.05
        first_round = True
        while True:
            start = self._current
            for step in range(len(self.endpoints)):
                index = (start + step) % len(self.endpoints)
                endpoint = self.endpoints[index]
                # Every member gets one full attempt; after that, no attempt outlives retry_timeout.
                left = deadline - time.monotonic()
                if left <= 0 and not first_round:
                    break
                budget = max(left, self.request_timeout) if first_round else left
                timeout = urllib3.Timeout(
                    connect=min(self.connect_timeout, budget), read=min(self.request_timeout, budget)
                )
                try:
                    resp = self._pools[index].urlopen("POST", path, body=payload, headers=_HEADERS, timeout=timeout)
                except ConnectTimeoutError as exc:  # never connected (refused, unreachable): nothing was sent
                    tried[endpoint] = f"cannot connect: {reason(exc)}"
                    self._failed(index, broken=True)
                    continue
                except HTTPError as exc:  # sent, answer lost: a write may have been proposed
                    tried[endpoint] = f"connection lost after sending: {reason(exc)}"
                    self._failed(index, broken=True)
                    if write:
                        raise unavailable(path, tried, "unknown") from exc
                    continue
                if resp.status == 200:
                    return orjson.loads(resp.data)
                answer = error_of(resp.status, resp.data, (ctx() if callable(ctx) else ctx) or Context())
                if isinstance(answer, errors.EngineError):
                    if write and isinstance(answer, errors.StorageFull):
                        # etcd applies the write that crosses the quota and still answers NOSPACE
                        # (seen in 2 of 4 runs here): a refused write may have committed.
                        answer.details["outcome"] = "unknown"
                    raise answer
                tried[endpoint] = answer.reason
                self._failed(index, broken=False)
                if write and answer.applied is None:
                    raise unavailable(path, tried, "unknown")
            first_round = False
            if time.monotonic() + pause > deadline:
                raise unavailable(path, tried, "not_written" if write else None, self.retry_timeout)
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def open_stream(self, path: str, body: dict[str, Any], idle_timeout: float | None) -> tuple[str, Any]:
        """Open a streamed POST (a watch) on the first member that accepts the connection: ``(endpoint,
        response)``; read the response with ``read1`` and ``close()`` it when done. Raises
        ``StorageUnavailable`` when no member accepts within ``retry_timeout``."""
        payload = orjson.dumps(body)
        timeout = urllib3.Timeout(connect=self.connect_timeout, read=idle_timeout)
        deadline = time.monotonic() + self.retry_timeout
        tried: dict[str, str] = {}
        pause = 0.05
        while True:
            start = self._current
            for step in range(len(self.endpoints)):
                index = (start + step) % len(self.endpoints)
                endpoint = self.endpoints[index]
                try:
                    resp = self._pools[index].urlopen(
                        "POST", path, body=payload, headers=_HEADERS, timeout=timeout, preload_content=False
                    )
                except HTTPError as exc:
                    tried[endpoint] = f"cannot open a stream: {reason(exc)}"
                    self._failed(index, broken=True)
                    continue
                if resp.status == 200:
                    return endpoint, resp
                data = resp.read()
                resp.release_conn()
                answer = error_of(resp.status, data, Context())
                if isinstance(answer, errors.EngineError):
                    raise answer
                tried[endpoint] = answer.reason
                self._failed(index, broken=False)
            if time.monotonic() + pause > deadline:
                raise unavailable(path, tried, None, self.retry_timeout)
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def call_one(self, endpoint: str, path: str, body: dict[str, Any]) -> Any:
        """POST to one given member, no failover (status of that member). ``StorageUnavailable`` if it
        does not answer; its engine error if it refuses."""
        host, port = parse_endpoint(endpoint)
        if f"http://{host}:{port}" not in self.endpoints:
            raise errors.InvalidParameters(f"{endpoint} is not one of {self.endpoints}", endpoint=endpoint)
        index = self.endpoints.index(f"http://{host}:{port}")
        timeout = urllib3.Timeout(connect=self.connect_timeout, read=self.request_timeout)
        try:
            resp = self._pools[index].urlopen("POST", path, body=orjson.dumps(body), headers=_HEADERS, timeout=timeout)
        except HTTPError as exc:
            self._failed(index, broken=True)
            raise unavailable(path, {self.endpoints[index]: reason(exc)}, None) from exc
        if resp.status == 200:
            return orjson.loads(resp.data)
        answer = error_of(resp.status, resp.data, Context())
        if isinstance(answer, errors.EngineError):
            raise answer
        raise unavailable(path, {self.endpoints[index]: answer.reason}, None)

    def close(self) -> None:
        for pool in self._pools:
            pool.close()


def reason(exc: BaseException) -> str:
    """A short cause for an error detail ("Connection refused", "read timed out", ...)."""
    cause: BaseException = exc
    while cause.__context__ is not None and not str(cause):
        cause = cause.__context__
    text = str(cause)
    for marker in ("Connection refused", "timed out", "Connection reset", "Connection aborted", "RemoteDisconnected"):
        if marker in text:
            return marker
    return text[:200] or type(exc).__name__


def unavailable(
    path: str, tried: dict[str, str], outcome: str | None, retried: float | None = None
) -> errors.StorageUnavailable:
    """The error for a call no member served; ``outcome`` (writes only) is ``not_written`` or ``unknown``."""
    listed = "; ".join(f"{e}: {why}" for e, why in tried.items())
    details: dict[str, Any] = {"endpoints": [{"endpoint": e, "error": why} for e, why in tried.items()]}
    if outcome == "unknown":
        message = f"etcd {path}: the answer was lost after sending ({listed}); the write may have committed"
    else:
        during = f" for {retried:g} s" if retried is not None else ""
        message = f"etcd cluster unreachable for {path}: tried{during} {listed}"
    if outcome is not None:
        details["outcome"] = outcome
    return errors.StorageUnavailable(message, **details)
