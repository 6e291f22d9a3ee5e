"""What an etcd member's refusal means, in Strata's terms: an engine error, or "ask another member".

The JSON gateway answers a failed call with an HTTP status and ``{"error", "message", "code"}``, where
``code`` is the gRPC status (3 invalid argument, 8 resource exhausted, 11 out of range, 14 unavailable)
and ``message`` etcd's error text (``etcdserver: ...``, stable across 3.x: clients match on it). This is
the one table from those answers to Strata's errors:

========================================================  =========================================
etcd answer                                               Strata
========================================================  =========================================
``request is too large``, gRPC ``message larger than max``  ``VALUE_TOO_LARGE`` if one put alone is over
                                                          the request limit, else ``BATCH_TOO_LARGE``
``too many operations in txn request``                    ``BATCH_TOO_LARGE``
``mvcc: database space exceeded`` (the NOSPACE alarm)     ``STORAGE_FULL`` (a write's outcome is unknown:
                                                          etcd applies the one that crosses the quota)
``mvcc: required revision has been compacted``            ``TX_COMPACTED``
``mvcc: required revision is a future revision``          ``FUTURE_TX``
``duplicate key given in txn request``                    ``DUPLICATE_KEY``
``key is not provided``                                   ``INVALID_KEY``
no leader, not leader, leader changed, too many requests,  :class:`Refusal`, ``applied=False``: nothing
unhealthy cluster, raft proposal dropped                  was proposed; try the next member
any other unavailable / timeout / cancelled answer        :class:`Refusal`, ``applied=None``: a write
                                                          may have been proposed and may still commit
anything else                                             ``STORAGE_ERROR`` with etcd's words
========================================================  =========================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .. import errors
from .kv import Put, show_key

#: etcd's default ``--max-request-bytes`` (1.5 MiB): the largest request a member takes.
DEFAULT_MAX_REQUEST_BYTES = 3 * 512 * 1024

# Answers given before anything is proposed to raft: retrying on another member cannot commit twice.
_NOT_PROPOSED = (
    "etcdserver: no leader",
    "etcdserver: not leader",
    "etcdserver: leader changed",
    "etcdserver: too many requests",
    "etcdserver: unhealthy cluster",
    "etcdserver: not capable",
    "raft proposal dropped",  # raft had no leader to hand the proposal to (gRPC code 2, HTTP 500)
)
_TOO_LARGE = ("request is too large", "message larger than max")
# gRPC codes the gateway passes through for "this member cannot serve it now".
_UNAVAILABLE_CODES = frozenset({1, 4, 14})  # cancelled, deadline exceeded, unavailable


@dataclass(frozen=True, slots=True)
class Refusal:
    """A member could not serve the call. ``applied`` is False when the call was certainly not proposed
    (another member may be asked, even for a write) and None when a write may still commit."""

    reason: str
    applied: bool | None


@dataclass(frozen=True, slots=True)
class Context:
    """What the mapper needs to know about the call: the revision it read at (for compaction and future
    answers), its puts (to tell a too-large value from a too-large batch), its operation count and the
    request limit the cluster was started with."""

    revision: int = 0
    puts: Sequence[Put] = ()
    ops: int = 0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES


def parse(status: int, body: bytes) -> tuple[str, int]:
    """``(message, grpc_code)`` of a gateway error answer; a body that is not the gateway's JSON gives its
    first 200 bytes and code -1 (a proxy or a member shutting down may answer anything)."""
    try:
        answer: Any = orjson.loads(body)
        return str(answer.get("message") or answer.get("error") or ""), int(answer.get("code", -1))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}", -1


def error_of(status: int, body: bytes, ctx: Context) -> errors.EngineError | Refusal:
    """The engine error for a non-200 gateway answer, or a :class:`Refusal` worth another member."""
    message, code = parse(status, body)
    if any(text in message for text in _TOO_LARGE):
        return too_large(message, ctx)
    if "too many operations in txn request" in message:  # a store checks first: it was told too high a limit
        return errors.BatchTooLarge(
            f"etcd refused a txn of {ctx.ops} operations: more than its --max-txn-ops allows (a store on etcd "
            "must not be told a higher max_txn_ops than the cluster's)",
            ops=ctx.ops, etcd=message)  # fmt: skip
    if "database space exceeded" in message:
        return errors.StorageFull(
            "the etcd cluster is full (NOSPACE alarm: its --quota-backend-bytes is reached); it stays "
            "readable: compact, defragment and disarm the alarm, or raise the quota", etcd=message)  # fmt: skip
    if "required revision has been compacted" in message:
        return errors.TxCompacted(f"revision {ctx.revision} is compacted in etcd", revision=ctx.revision, etcd=message)
    if "required revision is a future revision" in message:
        return errors.FutureTx(f"revision {ctx.revision} is above etcd's latest", revision=ctx.revision, etcd=message)
    if "duplicate key given in txn request" in message:
        return errors.DuplicateKey("a txn names the same key twice", etcd=message)
    if "key is not provided" in message:
        return errors.InvalidKey("an etcd key must not be empty", etcd=message)
    if any(text in message for text in _NOT_PROPOSED):
        return Refusal(message, applied=False)
    if code in _UNAVAILABLE_CODES or status in (502, 503, 504) or code == -1:
        return Refusal(message, applied=None)
    return errors.StorageError(f"etcd refused the call: {message}", etcd=message, grpc_code=code, http_status=status)


def too_large(message: str, ctx: Context) -> errors.EngineError:
    """``VALUE_TOO_LARGE`` naming the put that alone exceeds the request limit, else ``BATCH_TOO_LARGE``."""
    limit = ctx.max_request_bytes
    largest = max(ctx.puts, key=lambda p: p.size, default=None)
    if largest is not None and largest.size >= limit:
        return errors.ValueTooLarge(
            f"the value of {show_key(largest.key)!r} ({largest.size:,} bytes with its key) is over etcd's "
            f"request limit ({limit:,} bytes)",
            key=show_key(largest.key), size=largest.size, limit=limit, etcd=message)  # fmt: skip
    total = sum(p.size for p in ctx.puts)
    if total < limit:  # not too large for what the caller was told: the cluster's limit is lower
        return errors.BatchTooLarge(
            f"etcd refused a txn of {ctx.ops} operations and {total:,} bytes of keys and values as too large, "
            f"though it was to take {limit:,} bytes: the cluster's --max-request-bytes is lower (a store on etcd "
            "must not be told a higher max_request_bytes than the cluster's)",
            ops=ctx.ops, size=total, limit=limit, etcd=message)  # fmt: skip
    return errors.BatchTooLarge(
        f"a txn of {ctx.ops} operations and {total:,} bytes of keys and values is over etcd's request limit "
        f"({limit:,} bytes): split it",
        ops=ctx.ops, size=total, limit=limit, etcd=message)  # fmt: skip
