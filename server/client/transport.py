"""One HTTP connection pool to a Strata server: timeouts, retries, and errors as engine exceptions.

Every call has a timeout (``connect`` and ``read``; a stalled server fails the call instead of hanging
it). What is retried, with exponential backoff and jitter, up to ``retries`` times:

* a request that never reached the server (the connection was refused or could not be opened):
  any request, since nothing was sent;
* a **read** (a request that changes nothing) after a dropped connection, a timeout, or a 502, 503
  or 504 answer (a gunicorn worker restarting, a proxy in front of one, a store closing);
* a **write** after the same failures only when it carries an ``Idempotency-Key``: the server then
  answers a retry with the first attempt's answer, so a write whose answer was lost commits once.

A problem document (``application/problem+json``) becomes the engine exception of its ``code``
(:func:`server.client.problems.error_from_problem`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ProtocolError, ReadTimeoutError

from .problems import ServerUnavailable, error_from_problem

RETRY_STATUSES = frozenset({502, 503, 504})
JSON = "application/json"


class Transport:
    """A keep-alive connection pool to one server (``http://host:port`` or ``https://...``).

    ``timeout`` is the read timeout of a call in seconds, ``connect_timeout`` the limit to open a
    connection; ``retries`` how many times a retryable failure is tried again (0: never);
    ``backoff`` the first pause, doubled per retry up to ``max_backoff``. Thread-safe: the pool
    hands each thread its own connection (``maxsize`` are kept open).
    """

    def __init__(self, url: str, *, key: str | None = None, timeout: float = 30.0, connect_timeout: float = 5.0,
                 retries: int = 5, backoff: float = 0.05, max_backoff: float = 2.0, maxsize: int = 8) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the server URL must be http://HOST[:PORT] or https://..., not {url!r}")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.base = parts.path.rstrip("/")
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=timeout)
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.pool = urllib3.connection_from_url(self.url, maxsize=maxsize, block=False, retries=False,
                                                timeout=self.timeout)
        self.headers = {"Accept": "application/json"}
        if key is not None:
            self.headers["Authorization"] = f"Bearer {key}"
        #: Retries made so far (a count for tests and for users who watch their connection).
        self.retried = 0

    def close(self) -> None:
        self.pool.close()

    def path(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        """``base + path`` with the query (None values left out)."""
        if query:
            pairs = [(k, v) for k, v in query.items() if v is not None]
            if pairs:
                return f"{self.base}{path}?{urlencode(pairs)}"
        return self.base + path

    def json(self, method: str, path: str, body: Any = None, *, query: Mapping[str, Any] | None = None,
             write: bool = False, headers: Mapping[str, str] | None = None,
             raw: bytes | None = None, content_type: str = JSON, read_timeout: float | None = None) -> Any:
        """Send a request and return the decoded JSON answer (None for an empty one); raise the
        engine exception of a problem document. ``write`` marks a request that changes the store:
        retried only when ``headers`` hold an ``Idempotency-Key``."""
        if raw is None and body is not None:
            raw = orjson.dumps(body)
        timeout = None if read_timeout is None else urllib3.Timeout(connect=self.timeout.connect_timeout,
                                                                   read=read_timeout)
        _, _, data = self.send(method, self.path(path, query), raw, headers, write=write,
                               content_type=content_type if raw is not None else None, timeout=timeout)
        return orjson.loads(data) if data else None

    def send(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str] | None = None, *,
             write: bool = False, content_type: str | None = None, ok: frozenset[int] = frozenset(),
             timeout: urllib3.Timeout | None = None) -> tuple[int, Any, bytes]:
        """``(status, headers, body)`` of a 2xx answer (or of a status in ``ok``), after the retries
        the rules above allow; a problem answer raises its engine exception."""
        sent = dict(self.headers)
        if content_type is not None:
            sent["Content-Type"] = content_type
        if headers:
            sent.update(headers)
        retry_any = not write or "Idempotency-Key" in sent
        attempt = 0
        while True:
            try:
                resp = self.pool.urlopen(method, url, body=body, headers=sent, retries=False, redirect=False,
                                         timeout=timeout or self.timeout, preload_content=True)
            except (NewConnectionError, ConnectTimeoutError) as exc:  # nothing was sent: any request may go again
                attempt = self._pause(attempt, exc)
                continue
            except (ProtocolError, ReadTimeoutError, HTTPError) as exc:
                if not retry_any:
                    raise ServerUnavailable(f"{method} {url}: the connection failed before the answer ({exc}); "
                                            "the write may or may not have committed", status=0) from None
                attempt = self._pause(attempt, exc)
                continue
            status = resp.status
            if 200 <= status < 300 or status in ok:
                return status, resp.headers, resp.data
            if status in RETRY_STATUSES and retry_any and attempt < self.retries:
                attempt = self._pause(attempt, None, resp.headers.get("Retry-After"))
                continue
            raise error_from_problem(status, resp.headers.get("Content-Type"), resp.data)

    def _pause(self, attempt: int, exc: BaseException | None, retry_after: str | None = None) -> int:
        """Sleep before retry number ``attempt + 1`` and return it, or raise when none is left."""
        if attempt >= self.retries:
            raise ServerUnavailable(f"the server did not answer after {attempt + 1} attempts: {exc}", status=0)
        pause = min(self.max_backoff, self.backoff * (2 ** attempt)) * (0.5 + random.random() / 2)
        if retry_after is not None and retry_after.isdigit():
            pause = min(self.max_backoff, float(retry_after))
        time.sleep(pause)
        self.retried += 1
        return attempt + 1

    def stream(self, path: str, headers: Mapping[str, str], read_timeout: float) -> Any:
        """An unread streaming response (for SSE): the caller reads it and releases it."""
        sent = {**self.headers, "Accept": "text/event-stream", **headers}
        resp = self.pool.urlopen("GET", path, headers=sent, retries=False, redirect=False,
                                 timeout=urllib3.Timeout(connect=self.timeout.connect_timeout, read=read_timeout),
                                 preload_content=False)
        if resp.status != 200:
            data = resp.read()
            resp.release_conn()
            raise error_from_problem(resp.status, resp.headers.get("Content-Type"), data)
        return resp
