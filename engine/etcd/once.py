"""Commit a txn exactly once, however often it is retried: etcd's half of Strata's retry safety.

A write whose answer was lost (the member died after taking it) may or may not have committed, and a
blind retry of a committed one would commit it twice: a second tx. :func:`commit_once` makes the retry
safe with a *request key*, a key named after the request's id that only this request ever creates:

* the txn is guarded by ``create_revision(request_key) == 0`` ("no one committed this request yet") and
  puts ``request_value`` at ``request_key`` along with ``success``; its ``failure`` branch reads the
  request key back;
* when the answer is lost (``StorageUnavailable`` with ``outcome="unknown"``) the same guarded txn is
  sent again, until an answer comes or the client's ``retry_timeout`` has passed. If the first attempt had
  committed, the guard now fails and the read-back shows the request key: the call returns the revision
  it committed at, ``replayed=True``, instead of committing again.

A txn refused with ``STORAGE_FULL`` (etcd's NOSPACE alarm) may also have committed: etcd applies the
write that crosses the quota and still refuses it. The request key is read back (reads work under the
alarm): present, the call returns its commit; absent, ``STORAGE_FULL`` with ``outcome="not_written"``.

The same holds across processes: a client that retries a request id after a crash gets the tx of the
first commit. A request key holding another request's value (by default: other bytes; see
``same_request``) means the id was reused for another request: ``IDEMPOTENCY_KEY_REUSED``. A replayed
commit returns no ``responses`` (they were the lost answer's). The request key must outlive every retry
of its request: deleting it re-opens the request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from .. import errors
from .client import EtcdClient
from .kv import Compare, KeyValue, Put, Range, RangeResult, Request, Response, show_key


class Commit(NamedTuple):
    """``succeeded``: the request committed (now or earlier); ``revision``: its revision (or, when the
    caller's compares failed, the revision they were checked at); ``responses``: those of the branch that
    ran, without the request key's own; ``replayed``: the commit was learnt by reading the request key
    back (it had committed before this call, or an attempt of this call committed and its answer was
    lost or was etcd's NOSPACE refusal); ``responses`` is then empty."""

    succeeded: bool
    revision: int
    responses: list[Response]
    replayed: bool


def commit_once(
    client: EtcdClient,
    request_key: bytes,
    request_value: bytes,
    compare: Sequence[Compare] = (),
    success: Sequence[Request] = (),
    failure: Sequence[Request] = (),
    *,
    same_request: Callable[[bytes], bool] | None = None,
) -> Commit:
    """Run the txn (``compare``, ``success``, ``failure``) and put ``request_value`` at ``request_key`` in
    the same revision, at most once per request key; see the module docstring for retries and errors.

    ``same_request(stored)`` says whether the value found at the request key is this request's (default:
    the same bytes); a record that also holds what differs between attempts (a commit time taken by
    another process) compares only the request's fingerprint."""
    matches = same_request or (lambda stored: stored == request_value)
    guard = [Compare(request_key, "CREATE", "==", 0), *compare]
    then = [Put(request_key, request_value), *success]
    otherwise = [Range(request_key), *failure]
    deadline = time.monotonic() + client.transport.retry_timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            result = client.txn(guard, then, otherwise)
            break
        except errors.StorageFull as exc:  # NOSPACE: this very txn may have committed; reads still work
            committed = _read_back(client, request_key, matches)
            if committed is not None:
                return committed
            exc.details.update(outcome="not_written", request_key=show_key(request_key), attempts=attempts)
            raise
        except errors.StorageUnavailable as exc:
            if exc.details.get("outcome") != "unknown" or time.monotonic() > deadline:
                exc.details.update(request_key=show_key(request_key), attempts=attempts)
                if attempts > 1:
                    exc.details["outcome"] = "unknown"  # an earlier attempt may have committed
                raise
    if result.succeeded:
        return Commit(True, result.revision, result.responses[1:], False)
    first = result.responses[0]
    assert isinstance(first, RangeResult)
    if first.kvs:
        return _replay(request_key, matches, first.kvs[0])
    return Commit(False, result.revision, result.responses[1:], False)


def _read_back(client: EtcdClient, request_key: bytes, matches: Callable[[bytes], bool]) -> Commit | None:
    """The commit of ``request_key`` if it is there (a read, retried on any member), else None."""
    kvs = client.range(request_key).kvs
    return _replay(request_key, matches, kvs[0]) if kvs else None


def _replay(request_key: bytes, matches: Callable[[bytes], bool], kv: KeyValue) -> Commit:
    if not matches(kv.value):
        raise errors.IdempotencyKeyReused(
            f"request {show_key(request_key)!r} already committed a different request at revision {kv.mod_revision}",
            request_key=show_key(request_key), revision=kv.mod_revision)  # fmt: skip
    return Commit(True, kv.mod_revision, [], True)
