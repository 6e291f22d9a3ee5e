"""Idempotent writes: a retried write answers what the first one answered and writes nothing.

A caller that cannot tell whether its write committed (a timeout, a dropped connection, a crash
between commit and answer) retries it with the same *idempotency key*. The first write stores,
**in the same LMDB write transaction as the write itself**, the key, a fingerprint of the request
and the answer it gave. A retry finds that record inside its own write transaction (LMDB admits one
writer at a time across processes, and a group commit's members run one after another), so of any
number of concurrent or repeated attempts exactly one writes, and every other one gets
:class:`Replay` with the stored answer. A crash before the commit loses both the write and the
record (the retry then writes); a crash after it keeps both (the retry replays). There is no window
in which one exists without the other.

The engine does not interpret answers: a :class:`Claim` carries an ``answer`` function that turns
the write's result (or a refusal the caller chose to record, such as a failed condition) into bytes,
called inside the write transaction once the result is known. :class:`Replay` hands those bytes
back. A retry whose fingerprint differs is refused with :class:`~engine.errors.IdempotencyKeyReused`.

**Layout** (named database ``idempotency``; see ``docs/design.md``)::

    01 | ident                      -> u64 stored_us | u64 expires_us | fingerprint(32) | answer
    02 | u64 expires_us | ident     -> b""        (the sweep's index, oldest expiry first)

``ident`` is ``sha256(scope)[:8] | key`` (ASCII): the scope keeps the keys of different callers (the
server uses the API key's digest) apart without storing who they are. Integers are big-endian.

**Expiry.** A record lives ``ttl`` (``Store.open(idempotency_ttl=...)``, 24 h by default) from its
write; an expired record counts as absent (a retry after it writes again). Each write that stores
a record first deletes up to :data:`SWEEP_PER_WRITE` expired ones, oldest first: bounded work, and
the database never holds much more than a ttl's worth of keys.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import Conflict, EngineError, IdempotencyKeyReused, InvalidParameters

if TYPE_CHECKING:
    from .store import Store

T = TypeVar("T")

#: The default time a record is kept: a day, as the payment APIs keep theirs.
DEFAULT_TTL_SECONDS = 24 * 3600
#: Expired records deleted (at most) by each write that stores one.
SWEEP_PER_WRITE = 16
MAX_KEY_LENGTH = 255
FINGERPRINT_BYTES = 32
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII: safe in a header, a log line and a URL
_RECORD, _BY_EXPIRY = b"\x01", b"\x02"
_u64 = struct.Struct(">Q")
_head = struct.Struct(">QQ32s")

#: What a claim's ``answer`` gets: the write's result, or the refusal it records instead.
Answer = Callable[[Any, EngineError | None], bytes]


class Replay(Exception):
    """The write was already done under this idempotency key: ``answer`` is what it answered.
    Nothing was written by the attempt that raised it."""

    def __init__(self, answer: bytes) -> None:
        super().__init__("replayed")
        self.answer = answer


@dataclass(frozen=True, slots=True)
class Claim:
    """What one idempotent write stores: under ``key`` (in ``scope``), the request's ``fingerprint``
    (32 bytes, e.g. a SHA-256 of it) and the bytes ``answer(result, None)`` returns once the write
    has its result. A refusal of a class in ``recorded`` (raised by the write before it wrote
    anything) is stored as ``answer(None, exc)`` and then raised: a retry gets the same refusal."""

    key: str
    fingerprint: bytes
    answer: Answer
    scope: str = ""
    recorded: tuple[type[EngineError], ...] = (Conflict,)
    #: ``sha256(scope)[:8] | key``: the record's name (see the layout above), hashed once per claim.
    ident: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        check_key(self.key)
        if type(self.fingerprint) is not bytes or len(self.fingerprint) != FINGERPRINT_BYTES:
            raise InvalidParameters(f"fingerprint must be {FINGERPRINT_BYTES} bytes", parameter="fingerprint")
        if type(self.scope) is not str:
            raise InvalidParameters("scope must be a str", parameter="scope")
        object.__setattr__(self, "ident", hashlib.sha256(self.scope.encode()).digest()[:8] + self.key.encode("ascii"))


def check_key(key: Any) -> str:
    """``key`` if it is 1 to 255 visible ASCII characters (0x21-0x7E), else :class:`InvalidParameters`."""
    if type(key) is not str or not _KEY.fullmatch(key):
        raise InvalidParameters(f"an idempotency key is 1 to {MAX_KEY_LENGTH} visible ASCII characters "
                                "(no spaces or control characters)", parameter="idempotency_key")
    return key


@dataclass(frozen=True, slots=True)
class _Refused:
    error: EngineError


def find(txn: Any, db: Any, claim: Claim, now_us: int) -> bytes | None:
    """Raise :class:`Replay` if a live record of ``claim``'s key holds the same fingerprint,
    :class:`IdempotencyKeyReused` if it holds another; if there is none, return None, if it
    expired, return it (for :func:`record` to replace)."""
    raw = txn.get(_RECORD + claim.ident, db=db)
    if raw is None:
        return None
    raw = bytes(raw)
    _, expires_us, fingerprint = _head.unpack_from(raw)
    if expires_us <= now_us:
        return raw
    if fingerprint != claim.fingerprint:
        raise IdempotencyKeyReused(
            f"idempotency key {claim.key!r} was used for a different request; use a new key for a new request",
            idempotency_key=claim.key)
    raise Replay(raw[_head.size:])


def record(txn: Any, db: Any, claim: Claim, answer: bytes, now_us: int, ttl_us: int, stale: bytes | None) -> None:
    """Store ``answer`` under ``claim``'s key until ``now_us + ttl_us`` (after sweeping a few expired
    records). ``stale`` is what :func:`find` returned in this transaction: the expired record of the
    same key this one replaces, or None."""
    sweep(txn, db, now_us, SWEEP_PER_WRITE)
    ident = claim.ident
    if stale is not None:  # its index entry goes with it (a no-op if the sweep just deleted both)
        txn.delete(_BY_EXPIRY + stale[8:16] + ident, db=db)
    expires = _u64.pack(now_us + ttl_us)
    txn.put(_RECORD + ident, _head.pack(now_us, now_us + ttl_us, claim.fingerprint) + answer, db=db)
    txn.put(_BY_EXPIRY + expires + ident, b"", db=db)


def sweep(txn: Any, db: Any, now_us: int, limit: int) -> int:
    """Delete up to ``limit`` records expired at ``now_us``, oldest first; return how many."""
    cur = txn.cursor(db=db)
    done = 0
    while done < limit and cur.set_range(_BY_EXPIRY):
        index_key = bytes(cur.key())
        if _u64.unpack_from(index_key, 1)[0] > now_us:
            break
        cur.delete()
        txn.delete(_RECORD + index_key[9:], db=db)
        done += 1
    return done


def count(txn: Any, db: Any) -> int:
    """How many records the database holds (expired ones not yet swept included)."""
    cur = txn.cursor(db=db)
    n = 0
    if cur.set_range(_RECORD):
        for k in cur.iternext(values=False):
            if not bytes(k).startswith(_RECORD):
                break
            n += 1
    return n


def guarded(store: Store, claim: Claim, fn: Callable[[Any], T]) -> Callable[[Any], T | _Refused]:
    """``fn`` (a write function for :meth:`engine.backend.Backend.write`) made idempotent under
    ``claim``: replay or refuse first, else run ``fn`` and record its answer in the same transaction.
    A refusal in ``claim.recorded`` must be raised by ``fn`` before it writes anything: it is recorded
    and returned wrapped, for :func:`unwrap` to raise after the commit."""
    db = store._backend.dbs["idempotency"]

    def write(txn: Any) -> T | _Refused:
        now = store._now_us()
        stale = find(txn, db, claim, now)
        try:
            result = fn(txn)
        except claim.recorded as exc:
            record(txn, db, claim, claim.answer(None, exc), now, store.idempotency_ttl_us, stale)
            return _Refused(exc)
        record(txn, db, claim, claim.answer(result, None), now, store.idempotency_ttl_us, stale)
        return result

    return write


def unwrap(result: T | _Refused) -> T:
    """The result of a :func:`guarded` write, raising the refusal it recorded."""
    if isinstance(result, _Refused):
        raise result.error
    return result


def check_first(store: Store, claim: Claim) -> None:
    """The read-only early look: raise :class:`Replay` or :class:`IdempotencyKeyReused` as the write
    would. A retry is then answered without parsing, validating or waiting for the write lock; the
    write transaction still checks again (a concurrent first attempt may commit in between).
    On etcd, :func:`engine.etcd.idempotency.check_first`."""
    if getattr(store, "backend", "lmdb") == "etcd":
        from .etcd.idempotency import check_first as check_first_on_etcd  # the etcd package imports this module

        check_first_on_etcd(store, claim)  # type: ignore[arg-type]
        return
    backend = store._backend
    backend.read(lambda txn: find(txn, backend.dbs["idempotency"], claim, store._now_us()))


def run(store: Store, claim: Claim | None, fn: Callable[[Any], T], *, sync: bool | None = None,
        cost: int | None = None) -> T:
    """``store``'s ``backend.write(fn)``, idempotent under ``claim`` when one is given."""
    if claim is None:
        return store._backend.write(fn, sync=sync, cost=cost)
    return unwrap(store._backend.write(guarded(store, claim, fn), sync=sync, cost=cost))
