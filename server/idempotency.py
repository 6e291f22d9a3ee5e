"""The ``Idempotency-Key`` header of the write routes: a retry gets the first answer, and nothing is written.

Every write route takes an optional ``Idempotency-Key: <1-255 visible ASCII characters>``: ``write``,
``delete``, ``POST``/``DELETE .../key``, ``revert``, creating and dropping a namespace, publishing to
a stream (``POST /v4/stream/{stream}/write``) and creating and dropping a stream namespace. (The
whole-store admin operations, ``compact`` and ``backup``, ignore it: both are safe to repeat.) The
IETF draft's quoted form ``"..."`` is the same key. The engine records the answer in the same LMDB
write transaction as the write (:mod:`engine.idempotency`; on etcd in the write's own etcd txn,
:mod:`engine.etcd.idempotency`), so across workers, restarts, crashes
between commit and answer, backups and restores, one key commits at most once. This module turns
requests into claims and stored answers back into responses:

* The **fingerprint** is a SHA-256 of the method, path, query string, body, and the headers that
  change what a write does (``Content-Type``, ``X-Strata-Note``, ``If-Match``, ``If-None-Match``).
  The same key with another fingerprint is 422 ``IDEMPOTENCY_KEY_REUSED``.
* The **scope** is the API key that sent the request (its digest; one shared scope when auth is
  off): two clients' keys never collide.
* **What is stored**: every answer of a request that reached the store's write transaction, the
  refusals found there included (412 ``CONFLICT``, 409 ``NAMESPACE_EXISTS``, 404
  ``NAMESPACE_NOT_FOUND`` of a drop, a revert's ``FUTURE_TX``, ``TX_COMPACTED`` and
  ``BATCH_TOO_LARGE``). Requests refused before (400 validation, 401, 403, 413, 415) and 5xx
  answers store nothing: fixed and sent again under the same key, they run. A revert's dry run
  writes nothing: its key is checked (:func:`key_of`) but neither looked up nor stored.
* A **replayed** answer is byte for byte the first one (status, ``Content-Type``, ``ETag``, body,
  its ``tx`` and ``duration`` included) plus ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack

from engine import errors
from engine.idempotency import Claim, check_first, check_key
from server.http import Headers, Response
from server.problems import INVALID_PARAMETERS, HTTPProblem, bad_request

if TYPE_CHECKING:
    from server.app import App
    from server.http import Request

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
ENVIRON = "HTTP_IDEMPOTENCY_KEY"
_LOCATION = "header.Idempotency-Key"
#: Request headers that change what a write does, so they are part of the fingerprint.
_FINGERPRINTED = ("CONTENT_TYPE", "HTTP_X_STRATA_NOTE", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH")
#: Response headers a replay repeats (the rest are the server's own: Date, Content-Length, ...).
_REPLAYED = frozenset({"content-type", "etag"})


def key_of(req: Request) -> str | None:
    """The request's idempotency key (None without the header); a bad one is a 400 problem."""
    raw = req.environ.get(ENVIRON)
    if raw is None:
        return None
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    try:
        return check_key(key)
    except errors.EngineError as exc:
        raise bad_request(INVALID_PARAMETERS, f"{HEADER}: {exc.message}", _LOCATION, raw[:300]) from None


def fingerprint(req: Request, body: bytes) -> bytes:
    """What makes two requests the same request (see the module docstring), as 32 bytes."""
    environ = req.environ
    parts = [environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""),
             *(environ.get(name) for name in _FINGERPRINTED), body]
    return hashlib.sha256(msgpack.packb(parts, use_bin_type=True)).digest()


def encode(response: Response) -> bytes:
    """A response as the bytes the engine stores (status, the replayed headers, body)."""
    status, headers, body = response
    kept = [[name, value] for name, value in headers if name.lower() in _REPLAYED]
    return msgpack.packb([status, kept, b"".join(body)], use_bin_type=True)  # type: ignore[no-any-return]


def replayed(answer: bytes) -> Response:
    """The stored ``answer`` as the response a retry gets."""
    status, headers, body = msgpack.unpackb(answer, raw=False)
    out: Headers = [(name, value) for name, value in headers]
    out.append((REPLAYED_HEADER, "true"))
    return status, out, [body]


class Idempotent:
    """The idempotency of one request: ``Idempotent(app, req, body)`` reads the header and, when
    there is one, answers a retry at once (raising :class:`engine.idempotency.Replay`, which the app
    turns into the stored response) or refuses a reused key (422); ``claim(answer)`` then gives the
    :class:`~engine.idempotency.Claim` to pass to the engine's write (None without the header), and
    after the write :meth:`answered` the response to send: the one recorded with it, made once."""

    __slots__ = ("_answer", "fingerprint", "key", "made", "scope", "store")

    def __init__(self, app: App, req: Request, body: bytes) -> None:
        self.key = key_of(req)
        self.store = app.store
        self._answer: Callable[[Any, errors.EngineError | None], Response] | None = None
        #: The response ``answer`` made inside the write transaction, when one was recorded.
        self.made: Response | None = None
        self.scope = ""
        self.fingerprint = b""
        if self.key is not None:  # without the header (most writes) nothing else is computed
            if req.principal is not None:
                self.scope = req.principal.digest.hex()
            self.fingerprint = fingerprint(req, body)
            claim = Claim(self.key, self.fingerprint, _never, self.scope)
            try:
                check_first(self.store, claim)
            except errors.IdempotencyKeyReused as exc:
                raise reused(exc) from None

    def claim(self, answer: Callable[[Any, errors.EngineError | None], Response],
              recorded: tuple[type[errors.EngineError], ...] = (errors.Conflict,)) -> Claim | None:
        """The claim whose stored answer is ``encode(answer(result, refusal))``; None without a key."""
        self._answer, self.made = answer, None
        if self.key is None:
            return None
        return Claim(self.key, self.fingerprint, self._record, self.scope, recorded)

    def _record(self, result: Any, error: errors.EngineError | None) -> bytes:
        assert self._answer is not None
        self.made = self._answer(result, error)
        return encode(self.made)

    def answered(self, result: Any) -> Response:
        """The answer to a write that returned ``result``: the one made inside its write transaction
        when it was recorded (byte for byte what a retry gets, its ``duration`` included), else the
        ``answer`` given to :meth:`claim`, made now."""
        assert self._answer is not None, "claim() first"
        return self.made if self.made is not None else self._answer(result, None)


def _never(result: Any, error: Any) -> bytes:
    raise AssertionError("a look-up claim records nothing")


def reused(exc: errors.EngineError) -> HTTPProblem:
    """The 422 problem of a key reused for another request, pointing at the header."""
    return HTTPProblem(422, exc.code, exc.message,
                       [{"location": _LOCATION, "message": "already used for a different request",
                         "value": exc.details.get("idempotency_key")}])
