"""Point reads at one tx: the read path every ``read`` and ``get`` takes.

A read at tx T of a key is one cursor seek to ``keypart | inv_tx(T)`` (see :mod:`engine.encoding`):
the entry found, if it belongs to the key, is its newest version with tx <= T. Versions are never
rewritten, so the same T gives the same answer in any LMDB transaction, from any process, forever.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from itertools import chain, compress, repeat
from operator import is_, sub
from typing import Any

from . import schema, txlog
from .codec import CLEAR, DELETE, MARK, decode_rich, put_value, unpack_value
from .encoding import SHORT_MAX, TERMINATOR, TX_LEN, TX_MAX, inv_tx, keypart, pack_u64, unpack_u64_from
from .errors import FutureTx, InvalidParameters, TxCompacted
from .expiry import ReadView
from .latest import split
from .records import ReadResult, Record

#: Builds a Record from a full tuple without NamedTuple's Python-level ``__new__`` (hot paths).
_new = tuple.__new__
#: The msgpack header of an array of ``n`` elements (``dd`` + u32, valid for any ``n``): put before
#: ``n`` concatenated msgpack values, one decode gives them all.
_array_head = struct.Struct(">BI").pack
_u64_from = struct.Struct(">Q").unpack_from


def resolve_tx(txn: Any, meta_db: Any, tx: Any, at_us: int | None = None, dbs: dict[str, Any] | None = None) -> int:
    """The tx a read sees: the latest for ``None``, else ``tx`` checked against the latest; with
    ``at_us`` (a time, exclusive with ``tx``), the last tx committed at or before it."""
    latest = schema.get_u64(txn, meta_db, schema.LATEST_TX)
    if at_us is not None:
        if tx is not None:
            raise InvalidParameters("give tx or at, not both", parameter="at")
        assert dbs is not None
        return check_horizon(txn, meta_db, txlog.tx_at(txn, dbs, at_us))
    if tx is None:
        return latest  # the latest tx is never below the horizon
    check_readable(tx, latest)
    return check_horizon(txn, meta_db, tx)


def resolve_read(backend: Any, txn: Any, tx: Any) -> int:
    """:func:`resolve_tx` without ``at_us``, for a read transaction of ``backend``: the snapshot's
    latest tx and horizon come from :meth:`Backend.read_txs` (no meta lookups when remembered)."""
    latest, horizon = backend.read_txs(txn)
    if tx is None:
        return latest  # type: ignore[no-any-return]
    check_readable(tx, latest)
    if tx < horizon:
        raise _compacted(tx, horizon)
    return tx  # type: ignore[no-any-return]


def check_readable(tx: Any, latest: int) -> None:
    """Raise unless ``tx`` is an integer from 0 to ``latest``."""
    if type(tx) is not int or tx < 0:
        raise InvalidParameters(f"tx must be a non-negative integer or None, not {tx!r}", parameter="tx")
    if tx > latest:
        raise FutureTx(f"tx {tx} is in the future: the latest committed tx is {latest}", tx=tx, latest_tx=latest)


def _compacted(tx: int, horizon: int) -> TxCompacted:
    return TxCompacted(f"tx {tx} was compacted away: the oldest readable tx is {horizon}", tx=tx, horizon=horizon)


def check_horizon(txn: Any, meta_db: Any, tx: int) -> int:
    """``tx`` if it is at or above the compaction horizon, else raise :class:`TxCompacted`."""
    raw = txn.get(schema.HORIZON, db=meta_db)
    if raw is not None:
        horizon = unpack_u64_from(raw)[0]
        if tx < horizon:
            raise _compacted(tx, horizon)
    return tx


def decode_version(key: str, vtx: int, raw: bytes, view: ReadView | None, kp: bytes) -> Record | None:
    """The record a version shows at a read, or None for a delete (or, given a ``view``, a value
    expired at the view's time). ``view`` also says which optional fields to fill; ``kp`` is the
    version's keypart (needed to derive ``created_at``: no default, which would silently give the
    version's own tx time)."""
    if raw[0] != MARK:
        value = unpack_value(raw)
        rec = _new(Record, (key, value, vtx, type(value) is bytes, False, None, None, None, None))
        return rec if view is None or not view.fields else view.dress(rec, kp, None, None, None)
    op, packed, _, expire_us, metadata, created_us = decode_rich(raw)
    if op == DELETE:
        return None
    if expire_us is not None and view is not None and expire_us <= view.eval_us():
        return None
    if op == CLEAR:
        rec = Record(key, None, vtx, False, True)
    else:
        value = put_value(packed)
        rec = Record(key, value, vtx, type(value) is bytes, False)
    if view is None or not (view.fields or view.metadata):
        return rec
    return view.dress(rec, kp, expire_us, metadata, created_us)


def read_keys(txn: Any, versions_db: Any, prefix: bytes, keys: list[str], raws: list[bytes], at: int,
              make_view: Callable[[], ReadView], plain: bool, latest_db: Any = None) -> list[Record]:
    """Records of ``keys`` (UTF-8 in ``raws``) at tx ``at``, in order, absent, deleted and expired
    left out. ``make_view()`` gives the read's :class:`ReadView`, called only when a record needs
    it; ``plain`` is False when the view asks for fields that plain records need too.
    ``latest_db``, the latest-version index, may be given when ``at`` is the snapshot's latest tx:
    each key is then one ``get`` on it instead of a seek among every version."""
    # The hot path of every read, written as comprehensions: the per-key work is C calls, which a
    # comprehension runs with less interpreter overhead than a loop body (about 10% of a read).
    # ``0 not in raw`` tests for a NUL byte with memchr; ``b"\x00" not in raw`` costs 9x more (3.11).
    if latest_db is not None and plain and max(map(len, raws), default=0) <= SHORT_MAX and 0 not in b"".join(raws):
        newest = _read_newest_plain(txn, latest_db, prefix, keys, raws)  # short keys, no NUL: the usual batch
        if newest is not None:
            return newest
    join = b"".join  # one allocation where prefix + raw + TERMINATOR makes two
    kps = [join((prefix, raw, TERMINATOR)) if len(raw) <= SHORT_MAX and 0 not in raw else keypart(prefix, raw)
           for raw in raws]
    if latest_db is not None:
        return _read_newest(txn, latest_db, keys, kps, make_view, plain)
    cur = txn.cursor(db=versions_db)
    seek = inv_tx(at)
    set_range, item = cur.set_range, cur.item
    new = tuple.__new__  # Record(...) would run NamedTuple's Python-level __new__ per record
    if plain:  # the common case: every version found a plain put
        # Any other record starts with C1, which msgpack never emits: its decode raises ValueError and
        # the batch is read again below, the general way.
        try:
            return [new(Record, (key, (value := unpack_value(found[1])),
                                 TX_MAX - unpack_u64_from(found[0], len(kp))[0], type(value) is bytes, False, None,
                                 None, None, None))
                    for key, kp in zip(keys, kps, strict=True)
                    if set_range(kp + seek) and (found := item())[0].startswith(kp)]
        except ValueError:
            pass
    hits = [(key, kp, found) for key, kp in zip(keys, kps, strict=True)
            if set_range(kp + seek) and (found := item())[0].startswith(kp)]
    out: list[Record] = []
    view: ReadView | None = None
    for key, kp, (k, rec) in hits:
        vtx = TX_MAX - unpack_u64_from(k, len(kp))[0]
        if rec[0] != MARK and plain:
            value = unpack_value(rec)
            out.append(new(Record, (key, value, vtx, type(value) is bytes, False, None, None, None, None)))
            continue
        if view is None:
            view = make_view()
        record = decode_version(key, vtx, rec, view, kp)
        if record is not None:
            out.append(record)
    return out


def _plain_keys(keys: list[Any], count: int, key_max: int) -> tuple[list[str], list[bytes]] | None:
    """``keys`` (``count`` of them) each once, in order, and their UTF-8, when every one is a
    non-empty str of at most ``key_max`` bytes without NUL (what the plain batch paths read); else
    None, and the general path answers (or says why not)."""
    # One join, one encode and one split for the whole batch instead of an encode per key and a join
    # to look for NUL: a key holding NUL splits in two, so the count tells. No len per key either: a
    # key of 2B bytes or more (B = (key_max + 1) // 2) holds a whole aligned B-byte block of the
    # joined batch, so when every whole block has a NUL every key has at most 2B - 1 <= key_max
    # bytes; one find per block (per B bytes of keys, not per key) settles it for short keys.
    # Measured on 100 keys of 16 bytes: about 140 instructions less per key than a len per key.
    try:
        joined = "\0".join(keys).encode()
    except (TypeError, UnicodeEncodeError):  # a key that is not a str, or not encodable: the general path says why
        return None
    raws = joined.split(b"\0")
    if len(raws) != count or not all(raws):
        return None
    block, size = (key_max + 1) // 2, len(joined)
    if -1 in map(joined.find, repeat(b"\0"), range(0, size - block + 1, block), range(block, size + 1, block)) \
            and max(map(len, raws)) > key_max:  # a long key somewhere: the exact check
        return None
    if len(set(keys)) == count:
        return keys[:], raws  # a copy: the caller's list may change
    unique = list(dict.fromkeys(keys))
    return unique, list(map(str.encode, unique))


def _plain_keyparts(keys: list[Any], count: int, key_max: int, prefix: bytes,
                    tail: bytes = TERMINATOR) -> tuple[list[str], list[bytes]] | None:
    """``keys`` (``count`` of them) each once, in order, and each one's ``prefix | UTF-8 | tail`` (with
    the default ``tail``, its keypart), when every key is a non-empty str of at most ``key_max``
    bytes without NUL, as :func:`_plain_keys` accepts them; else None, and the general path answers
    (or says why not). Also None for a batch holding a key with the separator byte chosen below (a
    control character: the general path reads it, at its usual cost)."""
    # What _plain_keys does, with the keyparts made by the same passes: the keys joined by a separator
    # byte that neither prefix nor tail holds, one replace that puts ``tail | sep | prefix`` at every
    # separator, and one split at the separators, which yields every keypart whole. Measured on 100
    # keys of 16 bytes: one allocation and one bytes.join call per key fewer than a split into UTF-8
    # followed by a join per key (callgrind: about 650 instructions per key).
    bound = prefix + tail
    sep = 1
    while sep in bound:  # at most len(bound) steps: some control character is free
        sep += 1
    mark = _SEPARATORS[sep]
    try:
        joined = _CHARS[sep].join(keys).encode()
    except (TypeError, UnicodeEncodeError):  # a key that is not a str, or not encodable: the general path says why
        return None
    if 0 in joined:  # a key holding NUL
        return None
    distinct = set(keys)
    if "" in distinct:
        return None
    # The length: as in _plain_keys, one find per block of B = (key_max + 1) // 2 bytes: a key of 2B
    # bytes or more holds a whole aligned block without a separator.
    block, size = (key_max + 1) // 2, len(joined)
    if -1 in map(joined.find, repeat(mark), range(0, size - block + 1, block), range(block, size + 1, block)) \
            and max(map(len, joined.split(mark))) > key_max:  # a long key somewhere: the exact check
        return None
    kps = b"".join((prefix, joined.replace(mark, tail + mark + prefix), tail)).split(mark)
    if len(kps) != count:  # a key holding the separator
        return None
    if len(distinct) == count:
        return keys[:], kps  # a copy: the caller's list may change
    firsts = dict(zip(keys, kps, strict=True))  # each key in the place it first has (a repeat changes none)
    return list(firsts), list(firsts.values())


#: The separator bytes :func:`_plain_keyparts` may choose, as bytes and as one-character strings.
_SEPARATORS = [bytes([c]) for c in range(32)]
_CHARS = [chr(c) for c in range(32)]


def _binary_flags(payload: bytes, values: Any) -> Iterator[bool]:
    """``Record.binary`` of each of ``values``, decoded from the msgpack ``payload``: whether it is
    ``bytes``. Every msgpack ``bin`` starts with C4, C5 or C6, so a payload without those bytes
    (text values, most numbers) holds no bytes value: three ``memchr`` scans instead of two C
    calls per value (measured on 100 keys: about 170 instructions less per key)."""
    if 0xC4 in payload or 0xC5 in payload or 0xC6 in payload:
        return map(is_, map(type, values), repeat(bytes))
    return repeat(False)


def read_batch(backend: Any, store: Any, name: str, keys: list[Any]) -> ReadResult | None:
    """``read(keys)`` at the latest tx of a plain batch (no ``tx``, ``at``, metadata or fields)
    when every key is a short ``str`` without NUL, the namespace's prefix is known and every key
    found is a plain put; None otherwise (the caller reads the general way, which also raises for
    bad keys). Same answer as :func:`read_keys` with the latest-version index: one ``get`` per key.
    """
    # Why written this way: every per-key step is a C-level ``map``/``zip`` (no bytecode per key),
    # and the index entries found (each the msgpack of ``[value, tx]`` for a plain put, see
    # engine/latest.py) are decoded in ONE ormsgpack call over their concatenation behind an array
    # header. Any other entry has C1 at byte 1, which msgpack never emits: the one decode then
    # raises ValueError and the caller reads the batch the general way. Measured with callgrind on
    # 100 keys of 100,000 x 10 versions: 10,100 instructions per key before, 8,900 after (the
    # floor's get and decode: 3,750); most of the rest is allocation (keyparts, Records).
    # (The same treatment of a past read is read_batch_at: with its one decode it measured 5-6%
    # fewer instructions per key than read_keys' comprehension; an earlier try without it measured 3% more.)
    # The gets run in Backend.get_each, whose transaction has the index as its default database: each
    # txn.get takes the key alone (measured: 8,925 -> 8,768 instructions per key on the same data; a
    # 2-key read, which also sheds the closure and a layer: 65,074 -> 60,158 per call).
    prefix = store._prefixes.get(name)
    limits = store.limits
    count = len(keys)
    if prefix is None or not 1 < count <= limits.max_read_keys:
        return None
    plain = _plain_keyparts(keys, count, min(SHORT_MAX, limits.max_key_bytes), prefix)
    if plain is None:
        return None
    unique, kps = plain

    found, snap = backend.get_each(backend.latest, kps)
    if not all(found):  # an absent key (or one whose newest version is a delete) has no entry
        unique, found = list(compress(unique, found)), list(filter(None, found))
        if not found:
            return _new(ReadResult, ([], snap))
    entries: list[bytes] = found  # all() above: no None left
    payload = _array_head(0xDD, len(entries)) + b"".join(entries)
    try:
        values, txs = zip(*unpack_value(payload), strict=True)
    except (ValueError, TypeError):  # an entry that is not a plain put's (or not well formed)
        return None
    binary = _binary_flags(payload, values)
    none = repeat(None)
    records = list(map(_new, repeat(Record), zip(unique, values, txs, binary, repeat(False), none, none, none, none)))
    return _new(ReadResult, (records, snap))


def read_batch_at(backend: Any, store: Any, name: str, keys: list[Any], tx: Any) -> ReadResult | None:
    """``read(keys, tx=tx)`` of a plain batch (no ``at``, metadata or fields) when every key is a
    short ``str`` without NUL, the namespace's prefix is known, ``tx`` is readable and every version
    found is a plain put; None otherwise (the caller reads the general way, which also raises for
    bad keys and txs). Same answer as :func:`read_keys`: one seek per key among the versions.
    """
    # Why written this way: as in read_batch, every per-key step is a C-level map/zip. The cursor's
    # seek and item() alternate through one zip in Backend.seek_each (zip asks its iterators in order,
    # so each item() follows its own set_range; one backend call, no closure), the versions found are
    # decoded in ONE ormsgpack call over their concatenation (a plain put's record is one msgpack
    # value; any other starts with C1, which msgpack never emits, so the decode raises ValueError and
    # the caller reads the general way), and each key's tx comes from the last 8 bytes of its version key.
    head = store._heads.get(name)
    count = len(keys)
    if head is None or not 1 < count <= store.limits.max_read_keys or type(tx) is not int or not 0 <= tx <= TX_MAX:
        return None
    plain = _plain_keyparts(keys, count, store._lean_key_max, head[0])
    if plain is None:
        return None
    unique, kps = plain
    probes = list(map(bytes.__add__, kps, repeat(inv_tx(tx))))  # keypart | inv_tx(tx)

    found, latest, horizon = backend.seek_each(backend.versions, probes)
    if not horizon <= tx <= latest:
        return None  # the general path raises FUTURE_TX or TX_COMPACTED
    ks, recs = zip(*found, strict=True)
    hits = list(map(bytes.startswith, ks, kps))  # the version is the key's
    if not all(hits):  # keys absent at tx
        unique, ks, recs = list(compress(unique, hits)), tuple(compress(ks, hits)), tuple(compress(recs, hits))
        if not unique:
            return _new(ReadResult, ([], tx))
    payload = _array_head(0xDD, len(recs)) + b"".join(recs)
    try:
        values = unpack_value(payload)
    except (ValueError, TypeError):  # a record that is not a plain put's
        return None
    txs = map(sub, repeat(TX_MAX), chain.from_iterable(map(_u64_from, ks, repeat(-TX_LEN))))
    binary = _binary_flags(payload, values)
    none = repeat(None)
    records = list(map(_new, repeat(Record), zip(unique, values, txs, binary, repeat(False), none, none, none, none)))
    return _new(ReadResult, (records, tx))


def _read_newest_plain(txn: Any, latest_db: Any, prefix: bytes, keys: list[str],
                       raws: list[bytes]) -> list[Record] | None:
    """:func:`read_keys` at the snapshot's latest tx, from the latest-version index, of short keys
    without NUL (keypart ``prefix | raw | 00 00``) when every one found is a plain put; else None.

    The entry of a plain put is the msgpack of ``[value, tx]`` (:mod:`engine.latest`): one decode
    per key. Any other entry has ``C1`` at byte 1, which msgpack never emits, so its decode raises
    ``ValueError`` and the caller reads the batch the general way. An entry is never empty, so a
    found one is true.
    """
    get, join = txn.get, b"".join  # join: one allocation where prefix + raw + TERMINATOR makes two
    new = tuple.__new__
    try:
        return [new(Record, (key, (pair := unpack_value(found))[0], pair[1], type(pair[0]) is bytes, False, None,
                             None, None, None))
                for key, raw in zip(keys, raws, strict=True)
                if (found := get(join((prefix, raw, TERMINATOR)), None, latest_db))]
    except ValueError:
        return None


def _read_newest(txn: Any, latest_db: Any, keys: list[str], kps: list[bytes], make_view: Callable[[], ReadView],
                 plain: bool) -> list[Record]:
    """:func:`read_keys` at the snapshot's latest tx, from the latest-version index."""
    get = txn.get
    new = tuple.__new__
    hits = [(key, kp, found) for key, kp in zip(keys, kps, strict=True) if (found := get(kp, None, latest_db))]
    out: list[Record] = []
    view: ReadView | None = None
    for key, kp, found in hits:
        if found[1] != MARK and plain:
            value, vtx = unpack_value(found)
            out.append(new(Record, (key, value, vtx, type(value) is bytes, False, None, None, None, None)))
            continue
        vtx, rec = split(found)
        if view is None:
            view = make_view()
        record = decode_version(key, vtx, rec, view, kp)
        if record is not None:
            out.append(record)
    return out


def version_at(cur: Any, kp: bytes, tx: int | None = None) -> tuple[int, bytes] | None:
    """``(tx, record)`` of keypart ``kp``'s newest version at or before ``tx`` (its newest of all
    for None), leaving ``cur`` on it; None if there is none. One seek (see the module docstring)."""
    if not cur.set_range(kp if tx is None else kp + inv_tx(tx)):
        return None
    k, rec = cur.item()
    if not k.startswith(kp):
        return None
    return TX_MAX - unpack_u64_from(k, len(kp))[0], rec


def read_one(backend: Any, store: Any, name: str, key: str, raw: bytes, tx: Any, txn: Any,
             metadata: bool = False, fields: frozenset[str] = frozenset()) -> Record | None:
    """One key at ``tx`` (latest if None): :func:`read_keys` without the batch bookkeeping."""
    # The latest needs no lookup of the latest tx: in this snapshot every version is at or
    # before it, so the key's newest version is the one a read at the latest tx sees.
    if tx is None:
        return read_one_at(backend, store, name, key, raw, None, txn, metadata, fields)
    at = resolve_read(backend, txn, tx)
    return read_one_at(backend, store, name, key, raw, at, txn, metadata, fields, False,
                       at == backend.read_txs(txn)[0])


def read_one_at(backend: Any, store: Any, name: str, key: str, raw: bytes, at: int | None, txn: Any,
                metadata: bool = False, fields: frozenset[str] = frozenset(),
                latest: bool | None = None, newest: bool = False) -> Record | None:
    """One key at the resolved tx ``at`` (None: the snapshot's newest); ``latest`` says whether
    expiry is evaluated as for a read at the latest tx (default: ``at is None``); ``newest``, that
    ``at`` is the snapshot's latest tx (so the latest-version index has the answer)."""
    prefix = store._prefixes.get(name) or store._ns_prefix(txn, name)
    if prefix is None:
        return None
    kp = prefix + raw + TERMINATOR if len(raw) <= SHORT_MAX and 0 not in raw else keypart(prefix, raw)
    if at is None or newest:  # the snapshot's newest: one get on the latest-version index (engine/latest.py)
        found = txn.get(kp, None, backend.latest)
        if found is None:
            return None
        if found[1] != MARK and not fields:  # a plain put: the entry is msgpack [value, tx]
            value, vtx = unpack_value(found)
            return _new(Record, (key, value, vtx, type(value) is bytes, False, None, None, None, None))
        vtx, rec = split(found)
    else:
        cur = txn.cursor(db=backend.versions)
        if not cur.set_range(kp + pack_u64(TX_MAX - at)):  # kp | inv_tx(at)
            return None
        k, rec = cur.item()
        if not k.startswith(kp):
            return None
        vtx = TX_MAX - unpack_u64_from(k, len(kp))[0]
    if rec[0] != MARK and not fields:
        value = unpack_value(rec)
        return _new(Record, (key, value, vtx, type(value) is bytes, False, None, None, None, None))
    if latest is None:
        latest = at is None
    view = ReadView.for_read(txn, backend.dbs, 0 if at is None else at, latest, store._now_us, metadata=metadata,
                             fields=fields)
    return decode_version(key, vtx, rec, view, kp)


def current_tx(txn: Any, versions_db: Any, prefix: bytes, raw: bytes) -> tuple[int, bytes | None]:
    """The tx of a key's newest version and its record (``(0, None)`` if it has none)."""
    found = version_at(txn.cursor(db=versions_db), keypart(prefix, raw))
    return (0, None) if found is None else found


def live_tx(txn: Any, latest_db: Any, prefix: bytes, raw: bytes, now_us: int) -> int:
    """The tx of the key's record at the latest tx as a read at time ``now_us`` shows it (0 if
    absent, deleted or expired), from the latest-version index ``latest_db``."""
    found = txn.get(keypart(prefix, raw), db=latest_db)
    if found is None:  # no version, or a delete: the index has no entry
        return 0
    vtx, rec = split(found)
    if rec[0] == MARK:
        expire_us = decode_rich(rec)[3]
        if expire_us is not None and expire_us <= now_us:
            return 0
    return vtx
