"""Byte layouts of version keys: pure functions, no LMDB.

A version of a key lives in the ``versions`` database under::

    short form (escaped key <= 497 bytes; almost every key):
        ns_id(4, big-endian) | escaped(key) | 00 00 | inv_tx(8)
    long form (escaped key  > 497 bytes):
        ns_id(4) | escaped(key)[:480 or 481] | 00 01 | sha256(key)[:15] | 01 | inv_tx(8)

* ``escaped(key)`` is the key's UTF-8 with every ``00`` byte written as ``00 FF``. UTF-8 never
  contains ``FF``, so the escape is reversible, and ``00 00`` (the terminator) sorts before every
  continuation of the key: the encoded order of short keys is exactly the UTF-8 byte order of keys.
* ``inv_tx`` is ``2**64 - 1 - tx``, big-endian, so a key's versions sort newest first and a read at
  tx T is one B-tree seek to ``keypart | inv_tx(T)``: the first entry at or after it is the newest
  version with tx <= T. Reading an old version costs the same as reading the newest.
* LMDB caps keys at 511 bytes, and a key may be 512 UTF-8 bytes (1,024 escaped). Such keys live in
  a *bucket* named by their first 480/481 escaped bytes (cut so an ``00 FF`` pair is never split);
  the hash tells keys of one bucket apart and the full key is stored in the version record. A
  scan merges bucket keys back into byte order (see :mod:`engine.scan`).

``keypart`` below always means everything but the trailing ``inv_tx``.
"""

from __future__ import annotations

import hashlib
import struct

TX_MAX = (1 << 64) - 1
NS_ID_LEN = 4
TX_LEN = 8

#: Longest escaped key kept in the short form: 511 - ns_id - terminator - inv_tx.
SHORT_MAX = 511 - NS_ID_LEN - 2 - TX_LEN
#: Length of the escaped prefix that names a long key's bucket (one less if it would split a pair).
BUCKET_PREFIX = 481
HASH_LEN = 15

TERMINATOR = b"\x00\x00"
BUCKET_MARK = b"\x00\x01"
LONG_TAIL = b"\x01"
#: ``inv_tx`` of tx 0, which no version has: seeking ``keypart | NO_TX`` lands on the next keypart.
NO_TX = b"\xff" * TX_LEN

_u64 = struct.Struct(">Q")
_u32 = struct.Struct(">I")
pack_u64 = _u64.pack
unpack_u64_from = _u64.unpack_from


def ns_prefix(ns_id: int) -> bytes:
    """The 4-byte prefix of every version key of a namespace."""
    return _u32.pack(ns_id)


def inv_tx(tx: int) -> bytes:
    """``tx`` as the descending 8-byte suffix of a version key."""
    return _u64.pack(TX_MAX - tx)


def tx_of(version_key: bytes) -> int:
    """The tx of a version key (its last 8 bytes, inverted)."""
    tx: int = TX_MAX - _u64.unpack_from(version_key, len(version_key) - TX_LEN)[0]
    return tx


def escape(raw: bytes) -> bytes:
    """Order-preserving escape of UTF-8 bytes: ``00`` becomes ``00 FF``."""
    return raw.replace(b"\x00", b"\x00\xff") if 0 in raw else raw


def bucket_cut(escaped: bytes) -> bytes:
    """The bucket name of a long escaped key: its first 481 bytes, or 480 not to split ``00 FF``."""
    cut = escaped[:BUCKET_PREFIX]
    return cut[:-1] if cut[-1] == 0 else cut


def keypart(prefix: bytes, raw: bytes) -> bytes:
    """The keypart of a key given the namespace prefix and the key's UTF-8 bytes."""
    esc = raw.replace(b"\x00", b"\x00\xff") if 0 in raw else raw
    if len(esc) <= SHORT_MAX:
        return prefix + esc + TERMINATOR
    return prefix + bucket_cut(esc) + BUCKET_MARK + hashlib.sha256(raw).digest()[:HASH_LEN] + LONG_TAIL


def is_long(kp: bytes) -> bool:
    """Whether a keypart is in the long (bucket) form. Short keyparts end in the terminator."""
    return kp[-1] == 1


def key_of_short(kp: bytes) -> str:
    """The key of a short-form keypart (long keys are read from their version record)."""
    esc = kp[NS_ID_LEN:-2]
    return (esc.replace(b"\x00\xff", b"\x00") if 0 in esc else esc).decode("utf-8")


def range_start(prefix: bytes, raw_prefix: bytes) -> bytes:
    """Where a scan for keys starting with ``raw_prefix`` must begin, as encoded bytes.

    Every keypart of a matching key starts with this. For a prefix longer than a bucket name it is
    cut back like one, so long keys in buckets are not skipped; the scan then filters by true key.
    """
    esc = escape(raw_prefix)
    # Buckets are named by the first 480 or 481 escaped bytes: both start with esc[:480].
    return prefix + esc[: BUCKET_PREFIX - 1]
