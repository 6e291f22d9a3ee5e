"""Scans: the keys of a namespace at one tx, in UTF-8 byte order, page by page.

For each keypart the scan seeks the newest version <= T (one seek, or none when the newest is
already old enough), then skips the key's older versions with one seek to ``keypart | NO_TX``.

Keys longer than a bucket name are stored in buckets that sit before some keys they should follow
(see :mod:`engine.encoding`). The scan keeps bucket keys it has met in a heap and emits each one
just before the first short key that sorts after it, which restores exact byte order: a bucket
precedes, in encoded order, every short key its members must follow, and no key it must precede.

A :class:`Scan` reads in chunks, each in its own short LMDB transaction. A long-lived LMDB reader
would pin pages and make the file grow; chunks need no pinning because versions <= T never change
(unless a compaction raises the horizon above T meanwhile: the next chunk then raises
``TX_COMPACTED`` rather than return a partial answer).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from .codec import DELETE, MARK, decode_record, is_delete, unpack_value
from .encoding import (
    BUCKET_PREFIX,
    NO_TX,
    TX_MAX,
    escape,
    inv_tx,
    is_long,
    key_of_short,
    keypart,
    range_start,
    unpack_u64_from,
)
from .expiry import ReadView
from .latest import split
from .records import Record
from .schema import LATEST_TX, get_u64
from .snapshot import check_horizon, decode_version

CHUNK = 512

Reader = Callable[[Callable[[Any], Any]], Any]


class Scan:
    """An iterable of :class:`Record` at tx :attr:`tx`, keys in UTF-8 byte order.

    ``prefix`` keeps keys that start with it; ``after`` starts strictly after that key (the
    cursor of the previous page); ``limit`` stops after that many records. Iterating again
    starts over and returns the same records.

    ``eval_us`` is the time expiry is evaluated at (fixed when the scan is created: see
    :mod:`engine.expiry`); None skips expiry (every value shown). ``metadata`` and ``fields``
    fill the optional record fields, as for reads.
    """

    def __init__(
        self,
        read: Reader,
        versions_db: Any,
        ns_prefix: bytes | None,
        tx: int,
        prefix: str = "",
        after: str | None = None,
        limit: int | None = None,
        meta_db: Any = None,
        *,
        dbs: dict[str, Any] | None = None,
        eval_us: int | None = None,
        metadata: bool = False,
        fields: frozenset[str] = frozenset(),
        latest_db: Any = None,
    ) -> None:
        self.tx = tx
        self._latest_db = latest_db
        self._dbs = dbs
        self._eval_us = eval_us
        self._metadata = metadata
        self._fields = fields
        self._meta = meta_db
        self._read = read
        self._db = versions_db
        self._ns = ns_prefix
        self._prefix = prefix
        self._after = after
        self._limit = limit

    def __iter__(self) -> Iterator[Record]:
        if self._ns is None or self._limit == 0:
            return iter(())
        return self._records()

    def _start(self) -> tuple[bytes, bytes]:
        """(bytes every matching keypart starts with, first seek position)."""
        assert self._ns is not None
        bound = range_start(self._ns, self._prefix.encode())
        pos = bound
        if self._after is not None:
            raw = self._after.encode()
            if len(escape(raw)) > BUCKET_PREFIX - 1:
                # Buckets named by a prefix of `after` sit before it and may hold later keys.
                pos = max(pos, range_start(self._ns, raw))
            else:
                pos = max(pos, keypart(self._ns, raw) + NO_TX)
        return bound, pos

    def _records(self) -> Iterator[Record]:
        prefix, after, limit = self._prefix, self._after, self._limit
        emitted = 0
        for rec in self._merged():
            if rec.key.startswith(prefix) and (after is None or rec.key > after):
                yield rec
                emitted += 1
                if emitted == limit:
                    return

    def _merged(self) -> Iterator[Record]:
        """Every live record from the start position on, bucket keys merged into byte order."""
        bound, pos = self._start()
        heap: list[tuple[str, Record]] = []
        done = False
        while not done:
            chunk: list[Record | tuple[str, Record]] = []
            pos, done = self._read(partial(self._chunk, bound=bound, pos=pos, out=chunk))
            for item in chunk:
                if isinstance(item, Record):
                    while heap and heap[0][0] < item.key:
                        yield heapq.heappop(heap)[1]
                    yield item
                else:
                    heapq.heappush(heap, item)
        while heap:
            yield heapq.heappop(heap)[1]

    def _view(self, txn: Any) -> ReadView | None:
        if self._dbs is None:
            return None
        return ReadView(txn, self._dbs, eval_us=-1 if self._eval_us is None else self._eval_us,
                        metadata=self._metadata, fields=self._fields)

    def _chunk(self, txn: Any, bound: bytes, pos: bytes, out: list[Any]) -> tuple[bytes, bool]:
        """Read up to CHUNK keyparts from ``pos``; live records go to ``out`` (bucket keys as
        ``(key, record)`` pairs). Returns where to resume and whether the range is exhausted."""
        at = self.tx
        if self._meta is not None:  # a compaction may have raised the horizon since the last chunk
            check_horizon(txn, self._meta, at)
            if self._latest_db is not None and get_u64(txn, self._meta, LATEST_TX) == at:
                return self._newest_chunk(txn, bound, pos, out)
        seek_at = inv_tx(at)
        view = self._view(txn)
        plain = not self._fields
        new = tuple.__new__
        cur = txn.cursor(db=self._db)
        set_range = cur.set_range
        ok = set_range(pos)
        n = 0
        while ok:
            k = cur.key()
            if not k.startswith(bound):
                return pos, True
            kp = k[:-8]
            if TX_MAX - unpack_u64_from(k, len(kp))[0] > at:
                if not set_range(kp + seek_at):
                    return pos, True
                k = cur.key()
                if not k.startswith(kp):
                    continue  # no version <= T: the cursor is already on the next keypart
            raw = cur.value()
            vtx = TX_MAX - unpack_u64_from(k, len(kp))[0]
            if raw[0] != MARK and plain and kp[-1] != 1:  # the hot path: a plain put of a short key
                value = unpack_value(raw)
                out.append(new(Record, (key_of_short(kp), value, vtx, type(value) is bytes, False, None, None, None,
                                        None)))
            else:
                _emit(kp, vtx, raw, view, out)
            pos = kp + NO_TX
            n += 1
            if n >= CHUNK:
                return pos, False
            ok = set_range(pos)
        return pos, True

    def _newest_chunk(self, txn: Any, bound: bytes, pos: bytes, out: list[Any]) -> tuple[bytes, bool]:
        """:meth:`_chunk` when :attr:`tx` is this transaction's latest tx: the keys' newest versions
        are the latest-version index's entries, in the same keypart order, one cursor step each
        (a position ``kp | suffix`` compares with other keyparts as ``kp`` does: none is a prefix of
        another)."""
        view = self._view(txn)
        plain = not self._fields
        new = tuple.__new__
        cur = txn.cursor(db=self._latest_db)
        ok = cur.set_range(pos)
        n = 0
        while ok:
            kp, found = cur.item()
            if not kp.startswith(bound):
                return pos, True
            if found[1] != MARK and plain and kp[-1] != 1:  # the hot path: a plain put of a short key
                value, vtx = unpack_value(found)  # the entry is msgpack [value, tx] (engine/latest.py)
                out.append(new(Record, (key_of_short(kp), value, vtx, type(value) is bytes, False, None, None, None,
                                        None)))
            else:
                _emit(kp, *split(found), view, out)
            pos = kp + NO_TX
            n += 1
            if n >= CHUNK:
                return pos, False
            ok = cur.next()
        return pos, True


def _emit(kp: bytes, vtx: int, raw: bytes, view: ReadView | None, out: list[Any]) -> None:
    """Append the record a version shows (a bucket key's as a ``(key, record)`` pair), if live."""
    if is_long(kp):
        op, _, full = decode_record(raw)
        if op != DELETE and full is not None:
            rec = decode_version(full, vtx, raw, view, kp)
            if rec is not None:
                out.append((full, rec))
    elif not is_delete(raw):
        rec = decode_version(key_of_short(kp), vtx, raw, view, kp)
        if rec is not None:
            out.append(rec)


def live_keys(txn: Any, latest_db: Any, ns_prefix: bytes) -> list[str]:
    """Every key of a namespace that is live at the latest tx, in no particular order, from the
    latest-version index ``latest_db`` (which lists exactly the keys whose newest version is not a
    delete).

    Runs inside one transaction (a write transaction, when dropping a namespace), so the answer
    is exact for the tx that transaction will commit.
    """
    cur = txn.cursor(db=latest_db)
    out: list[str] = []
    ok = cur.set_range(ns_prefix)
    while ok:
        kp, found = cur.item()
        if not kp.startswith(ns_prefix):
            break
        full = decode_record(split(found)[1])[2] if is_long(kp) else None
        out.append(full if full is not None else key_of_short(kp))
        ok = cur.next()
    return out
