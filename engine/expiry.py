"""Expiry (TTL) and per-key metadata: validation, the read rule, creation times, and the sweep.

**Where it lives.** A put that carries an expiry or metadata is stored as the 6-field extended
record ``C1 03 | msgpack([op, key | None, packed, expire_us | None, metadata | None, created_us])``
(see :mod:`engine.codec`); plain puts keep the bare msgpack record, byte for byte. An expiring
version also gets an entry ``expire_us (u64 BE) | keypart`` (empty value) in the ``expiry``
database, in the same write transaction, so expired keys are found in time order.

**The read rule.** A version with ``expire_us`` is visible to a read evaluated at time ``E`` iff
``expire_us > E``:

* a read at an explicit tx ``T`` (or ``at=``, which resolves to a tx) uses ``E = time_us(T)``, the
  tx's commit time from the log, so it returns the same records forever;
* a latest read (``tx=None``) resolves ``T = latest_tx`` and uses ``E = max(now, time_us(T))``:
  a value disappears the moment it expires, even if nothing has been written since. Its records
  are therefore the records of a read at ``T`` minus those that expired between ``time_us(T)`` and
  ``E``. A scan fixes ``E`` when it is created, so all its pages (and re-iterations) agree.

**Recording expiries.** Expired versions become ordinary deletes in the history: every write
(puts and transactions through :func:`engine.txn.commit`, reverts, stream publishes and drops,
namespace drops) first sweeps up to :data:`SWEEP_PER_WRITE` due entries of the
``expiry`` index and, if any key is still carrying that expiry, commits their deletes as a tx of
its own (note ``{"expired": true}``) just before the caller's tx, in the same LMDB transaction.
``Store.expire()`` sweeps everything due. The sweep's tx commits at a time >= every expiry it
records, so reads at it agree with the read rule; history, diff, the change feed and ``verify``
see plain deletes. Until a key's expiry is recorded, namespace ``key_count``/``size_bytes`` still
count it (after ``expire()`` they are exact).

**Creation time.** ``created_at`` is the start of the key's current life: the commit time of the
first put after it last did not exist (absent, deleted, or expired before being overwritten).
Extended records store it (``created_us``), computed by the write path from the key's previous
version; for versions written by plain puts it is found by walking the key's older versions back
to the last extended record, delete or expiry gap: O(plain versions since then), which compaction
bounds (after a compaction the walk may stop at the oldest surviving version).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from . import schema, txlog
from .codec import DELETE, MARK, decode_rich, pack_value
from .encoding import TX_MAX, inv_tx, key_of_short, pack_u64, unpack_u64_from
from .errors import (
    InvalidExpiration,
    InvalidExpirationTtl,
    InvalidMetadata,
    InvalidParameters,
    InvalidValue,
    MetadataTooLarge,
)
from .records import Limits, Record
from .validation import finite_number, short_repr

if TYPE_CHECKING:
    from .store import Store
    from .txn import Batch

#: Due expiry entries a write sweeps before its own tx (bounded work per write). The same on a store on
#: etcd, whose sweep tx must fit in etcd's default ``--max-txn-ops`` (128) whatever namespaces it spans
#: (:mod:`engine.etcd.limits`): so one history numbers its txs the same on both backends.
SWEEP_PER_WRITE = 24
#: Entries one ``Store.expire()`` tx sweeps: a backlog (a million sessions expiring at once) takes few
#: txs. A store on etcd takes as many as one etcd txn holds (:mod:`engine.etcd.sweep`), so beyond that
#: its ``expire()`` numbers txs differently; a write's sweep is the same on both.
SWEEP_PER_TX = 1000
#: The note of the txs that record expiries.
EXPIRED_NOTE: dict[str, Any] = {"expired": True}
#: Longest ttl accepted (about 317 years): keeps ``expire_us`` within 64 bits.
MAX_TTL = 10**10
FIELDS = frozenset({"created_at", "updated_at", "expire_time"})

#: Validated per-item options: ``(ttl_us | None, expire_us | None, metadata | None)``.
Opts = tuple[int | None, int | None, Any]


def check_opts(ttl: Any, expiration: Any, metadata: Any, limits: Limits, now_us: int) -> Opts | None:
    """Validate an item's expiry and metadata; None when it has neither (a plain put).

    ``ttl`` (seconds from the commit) wins over ``expiration`` (epoch seconds), which is then
    ignored, as in Cloudflare's bulk write. Both must be at least ``limits.min_ttl`` from now.
    """
    ttl_us = expire_us = None
    if ttl is not None:
        if not finite_number(ttl) or not limits.min_ttl <= ttl <= MAX_TTL:
            raise InvalidExpirationTtl(f"ttl must be a number of seconds from {limits.min_ttl:g} to {MAX_TTL}, "
                                       f"not {short_repr(ttl)}", min_ttl=limits.min_ttl)
        ttl_us = round(ttl * 1_000_000)
    elif expiration is not None:
        earliest = now_us / 1_000_000 + limits.min_ttl
        if not finite_number(expiration) or not earliest <= expiration <= earliest + MAX_TTL:
            raise InvalidExpiration(f"expiration must be epoch seconds at least {limits.min_ttl:g} s in the future "
                                    f"(>= {math.ceil(earliest)}), not {short_repr(expiration)}",
                                    min_ttl=limits.min_ttl)
        expire_us = round(expiration * 1_000_000)
    if metadata is not None:
        check_metadata(metadata, limits.max_metadata_bytes)
    elif ttl_us is None and expire_us is None:
        return None
    return ttl_us, expire_us, metadata


def check_metadata(metadata: Any, max_bytes: int) -> None:
    """Metadata is any JSON value (the value rules of :func:`engine.codec.pack_value`, without
    bytes) whose compact JSON encoding is at most ``max_bytes``."""
    if type(metadata) is bytes:
        raise InvalidMetadata("metadata must be JSON, not bytes")
    try:
        pack_value(metadata)
    except InvalidValue as exc:
        raise InvalidMetadata(exc.message.replace("value is not storable", "metadata is not JSON")) from None
    encoded = orjson.dumps(metadata)
    if len(encoded) > max_bytes:
        raise MetadataTooLarge(f"metadata is {len(encoded)} bytes as JSON; the limit is {max_bytes}",
                               size=len(encoded), limit=max_bytes)


def check_fields(fields: Any) -> frozenset[str]:
    """The ``fields`` argument of a read: an iterable of names from :data:`FIELDS`."""
    if fields is None:
        return frozenset()
    if isinstance(fields, str | bytes):
        fields = [fields]
    try:
        chosen = frozenset(fields)
    except TypeError:
        raise InvalidParameters(f"fields must be a list of {sorted(FIELDS)}", parameter="fields") from None
    unknown = chosen - FIELDS
    if unknown:
        raise InvalidParameters(f"unknown fields {sorted(map(str, unknown))}: choose from {sorted(FIELDS)}",
                                parameter="fields")
    return chosen


def tx_time(txn: Any, dbs: dict[str, Any], tx: int) -> int:
    """The commit time (UTC microseconds) of ``tx``; 0 for tx 0 or an unknown tx."""
    found = txlog.entry(txn, dbs, tx)
    return found[0] if found is not None else 0


def latest_eval_us(txn: Any, meta_db: Any, now_us: int) -> int:
    """The time a latest read evaluates expiry at: ``max(now, time of the latest tx)``."""
    return max(now_us, schema.get_u64(txn, meta_db, schema.LAST_TIME_US))


class ReadView:
    """How one read sees versions: the time expiry is evaluated at (computed on first need) and
    which optional fields to fill."""

    __slots__ = ("_eval", "_eval_fn", "_times", "dbs", "fields", "metadata", "txn")

    def __init__(self, txn: Any, dbs: dict[str, Any], eval_fn: Callable[[], int] | None = None, *,
                 eval_us: int | None = None, metadata: bool = False, fields: frozenset[str] = frozenset()) -> None:
        self.txn = txn
        self.dbs = dbs
        self._eval = eval_us
        self._eval_fn = eval_fn
        self.metadata = metadata
        self.fields = fields
        self._times: dict[int, int] = {}

    @classmethod
    def for_read(cls, txn: Any, dbs: dict[str, Any], tx: int, latest: bool, clock: Callable[[], int], *,
                 metadata: bool = False, fields: frozenset[str] = frozenset()) -> ReadView:
        """The view of a read at ``tx``: the latest (``latest=True``) or an explicit one."""
        if latest:
            return cls(txn, dbs, lambda: latest_eval_us(txn, dbs["meta"], clock()), metadata=metadata, fields=fields)
        return cls(txn, dbs, lambda: tx_time(txn, dbs, tx), metadata=metadata, fields=fields)

    def eval_us(self) -> int:
        if self._eval is None:
            assert self._eval_fn is not None
            self._eval = self._eval_fn()
        return self._eval

    def time_of_tx(self, tx: int) -> int:
        found = self._times.get(tx)
        if found is None:
            found = self._times[tx] = tx_time(self.txn, self.dbs, tx)
        return found

    def dress(self, rec: Record, kp: bytes, expire_us: int | None, metadata: Any, created_us: int | None) -> Record:
        """``rec`` with the optional fields this view asks for filled in."""
        fields = self.fields
        created = updated = expire = None
        if "created_at" in fields:
            if created_us is None:
                created_us = creation_from(self.txn, self.dbs, kp, rec.tx, self.time_of_tx)
            created = schema.time_of(created_us)
        if "updated_at" in fields:
            updated = schema.time_of(self.time_of_tx(rec.tx))
        if "expire_time" in fields and expire_us is not None:
            expire = schema.time_of(expire_us)
        return rec._replace(metadata=metadata if self.metadata else None, created_at=created, updated_at=updated,
                            expire_time=expire)


def creation_from(txn: Any, dbs: dict[str, Any], kp: bytes, vtx: int, time_of_tx: Callable[[int], int]) -> int:
    """When the life of a key that is live at its version ``vtx`` began (UTC microseconds).

    Walks older versions while they continue the same life: it ends below a delete, or below a
    version that expired before the next one was written; an extended record on the way knows
    its own creation time. O(versions walked).
    """
    cur = txn.cursor(db=dbs["versions"])
    if not cur.set_key(kp + inv_tx(vtx)):
        return time_of_tx(vtx)
    newer = vtx
    rec = cur.value()
    if rec[0] == MARK:
        created = decode_rich(rec)[5]
        if created is not None:
            return int(created)
    while cur.next():
        k, rec = cur.item()
        if not k.startswith(kp):
            break
        vtx = TX_MAX - unpack_u64_from(k, len(kp))[0]
        if rec[0] == MARK:
            op, _, _, expire_us, _, created = decode_rich(rec)
            if op == DELETE or (expire_us is not None and expire_us <= time_of_tx(newer)):
                break
            if created is not None:
                return int(created)
        newer = vtx
    return time_of_tx(newer)


def creation_for_write(txn: Any, dbs: dict[str, Any], kp: bytes, now: int) -> int:
    """``created_us`` of a new extended version of ``kp`` committed at ``now``."""
    cur = txn.cursor(db=dbs["versions"])
    if not cur.set_range(kp):
        return now
    k, rec = cur.item()
    if not k.startswith(kp):
        return now
    if rec[0] == MARK:
        op, _, _, expire_us, _, created = decode_rich(rec)
        if op == DELETE or (expire_us is not None and expire_us <= now):
            return now
        if created is not None:
            return int(created)
    return creation_from(txn, dbs, kp, TX_MAX - unpack_u64_from(k, len(kp))[0], lambda tx: tx_time(txn, dbs, tx))


def index(txn: Any, dbs: dict[str, Any], expire_us: int, kp: bytes) -> None:
    """Record that the version of ``kp`` being written expires at ``expire_us``."""
    txn.put(pack_u64(expire_us) + kp, b"", db=dbs["expiry"])


def due(txn: Any, dbs: dict[str, Any], now_us: int) -> bool:
    """Whether some expiry entry is due at ``now_us`` (one cursor step: the write path's check)."""
    cur = txn.cursor(db=dbs["expiry"])
    return bool(cur.first()) and unpack_u64_from(cur.key())[0] <= now_us


def next_expiry(txn: Any, dbs: dict[str, Any]) -> datetime | None:
    """When the earliest pending expiry entry falls due (None if there is none)."""
    cur = txn.cursor(db=dbs["expiry"])
    return schema.time_of(unpack_u64_from(cur.key())[0]) if cur.first() else None


def sweep(store: Store, txn: Any, now_us: int, limit: int) -> tuple[Batch | None, bool]:
    """Collect the deletes recording up to ``limit`` expiries due at ``now_us`` and drop their index
    entries (stale entries, of keys overwritten or deleted since, are just dropped).

    Returns the batch to commit (None if no key is still carrying a due expiry) and whether more
    due entries remain.
    """
    from .codec import DELETE as _DELETE
    from .txn import Batch, Run

    dbs = store._backend.dbs
    cur = txn.cursor(db=dbs["expiry"])
    vcur = txn.cursor(db=dbs["versions"])
    runs: dict[str, Run] = {}
    done: list[bytes] = []
    names: dict[bytes, str | None] = {}
    ok = cur.first()
    while ok:
        entry = bytes(cur.key())
        expire_us = unpack_u64_from(entry)[0]
        if expire_us > now_us:
            break
        if len(done) >= limit:
            break
        done.append(entry)
        kp = entry[8:]
        ok = cur.next()
        if not vcur.set_range(kp):
            continue
        k, rec = vcur.item()
        if not k.startswith(kp) or rec[0] != MARK:
            continue
        op, _, full, entry_expire, _, _ = decode_rich(bytes(rec))
        if op == _DELETE or entry_expire != expire_us:
            continue  # overwritten or deleted since: a stale entry
        ns = kp[:4]
        if ns not in names:
            names[ns] = store._ns_name(txn, ns)
        name = names[ns]
        if name is None:
            continue
        key = full if full is not None else key_of_short(kp)
        run = runs.get(name)
        if run is None:
            run = runs[name] = Run(name, _DELETE)
        run.keys.append(key)
        run.raws.append(key.encode())
    more = bool(ok) and len(done) >= limit and unpack_u64_from(cur.key())[0] <= now_us
    for entry in done:
        txn.delete(entry, db=dbs["expiry"])
    return (Batch(list(runs.values())) if runs else None), more
