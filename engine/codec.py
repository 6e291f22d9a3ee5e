"""Values and version records: what is stored under a version key. Pure functions, no LMDB.

A value is a JSON type (None, bool, int within 64 bits, finite float, str, list, dict with str keys)
or ``bytes``. It is encoded with msgpack, which keeps ``bytes`` apart from ``str`` and ``int`` apart
from ``float``, so every value round-trips exactly (dict order included).

A *version record* is the LMDB value of a version key::

    put of a short key     msgpack(value)                       first byte is never C1
    clear of a short key   C1 01
    delete of a short key  C1 02
    anything else          C1 03 | msgpack([op, key | None, packed_value | None])
    put with expiry/metadata  C1 03 | msgpack([op, key | None, packed_value, expire_us | None,
                                               metadata | None, created_us])

``C1`` is the one byte msgpack never emits, so the hot path (a plain put) is a bare msgpack value,
read with a single ``unpackb``; the extended form carries what the key alone cannot say: the full
key of a long key (``None`` for short keys, whose key is in the version key) and, for puts that
carry an expiry or metadata, the expiry time (UTC microseconds), the metadata (any JSON) and the
key's creation time (UTC microseconds; see :mod:`engine.expiry`).
"""

from __future__ import annotations

import math
import threading
from itertools import repeat
from typing import Any

import msgpack
import orjson
import ormsgpack

from .errors import InvalidValue, StorageError

PUT = 0
CLEAR = 1
DELETE = 2
OP_NAMES = ("put", "clear", "delete")

MARK = 0xC1
CLEAR_RECORD = b"\xc1\x01"
DELETE_RECORD = b"\xc1\x02"
EXTENDED = b"\xc1\x03"

#: Values are msgpack, encoded and decoded with ormsgpack: decoding is the hottest call of every
#: read, and ormsgpack takes about half of msgpack-python's time (0.39 vs 0.8 us for a 70-byte
#: document here). It writes exactly the bytes msgpack-python writes (a property test checks it),
#: so stores written before read, verify and hash the same.
unpack_value = ormsgpack.unpackb


_packers = threading.local()


def packb_exact(obj: Any) -> bytes:
    """``msgpack.packb(obj, use_bin_type=True)``: the same bytes, from a packer kept per thread.

    ``msgpack.packb`` builds a ``Packer`` (and allocates its buffer) on every call, about 2 us of a
    one-item write, which calls it several times (the chain hash's entry, the tx log's two entries,
    the namespace's entry). A packer is not shared between threads; one that fails resets its
    buffer, so a failed call leaves nothing behind for the next.
    """
    try:
        packer = _packers.packer
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(obj)  # type: ignore[no-any-return]


def put_value(packed: bytes | None) -> Any:
    """The value in the ``packed`` field of a decoded put record (:func:`decode_rich`)."""
    if packed is None:  # only a damaged record has a put without a value
        raise StorageError("damaged version record: a put without a value")
    return unpack_value(packed)


def _reject(obj: object) -> Any:
    raise TypeError(f"{type(obj).__name__} is not a JSON type or bytes")


_dumps = orjson.dumps
_STRICT = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_packb = ormsgpack.packb
#: Everything that is not a JSON type or bytes goes to ``default`` (which refuses it) instead of
#: being converted: tuples, subclasses, integers beyond 64 bits, dataclasses, datetimes, enums, UUIDs.
_PACK_STRICT = (ormsgpack.OPT_PASSTHROUGH_TUPLE | ormsgpack.OPT_PASSTHROUGH_SUBCLASS | ormsgpack.OPT_PASSTHROUGH_BIG_INT
                | ormsgpack.OPT_PASSTHROUGH_DATACLASS | ormsgpack.OPT_PASSTHROUGH_DATETIME
                | ormsgpack.OPT_PASSTHROUGH_ENUM | ormsgpack.OPT_PASSTHROUGH_UUID)


def _check_floats(value: Any) -> None:
    """Reject NaN and infinity anywhere in a value (JSON cannot say them)."""
    t = type(value)
    if t is dict:
        for item in value.values():
            _check_floats(item)
    elif t is list:
        for item in value:
            _check_floats(item)
    elif t is float and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number (JSON has no NaN or infinity)")


def pack_value(value: Any) -> bytes:
    """Encode a value, or raise :class:`InvalidValue` saying what is wrong with it.

    Containers are first serialised by orjson (in C) only to check what msgpack would accept but
    JSON cannot say: non-str dict keys, bytes inside a container, integers beyond 64 bits, lone
    surrogates, nesting deeper than 255 levels. It writes NaN as ``null``, so a ``null`` in its
    output sends the value through a float check. The encoder's passthrough options (see
    :data:`_PACK_STRICT`) reject the rest (tuples, sets, subclasses, other objects) so that every
    value round-trips exactly.
    """
    t = type(value)
    try:
        if t is dict or t is list:
            if _dumps(value, option=_STRICT).find(b"null") >= 0:  # find: twice as fast as `in` here
                _check_floats(value)
        elif t is float:
            if not math.isfinite(value):
                raise ValueError(f"{value} is not a finite number (JSON has no NaN or infinity)")
        elif t is int and not -(1 << 63) <= value < 1 << 64:
            raise OverflowError
        return _packb(value, _reject, _PACK_STRICT)  # positional: keywords cost ~0.5 us a call
    except (TypeError, ValueError, OverflowError, UnicodeError, RecursionError) as exc:
        reason = str(exc)
        if isinstance(exc, OverflowError):
            reason = "integer out of the 64-bit range"
        elif isinstance(exc, UnicodeError):
            reason = "string is not valid Unicode (lone surrogate?)"
        elif isinstance(exc, RecursionError):
            reason = "nested too deeply"
        raise InvalidValue(f"value is not storable: {reason}") from None


def pack_values(values: list[Any]) -> list[bytes]:
    """``[pack_value(value) for value in values]``: the same bytes, the same errors, checked in one pass.

    One orjson call validates every value at once (a put of 10,000 values paid about 0.3 us per
    value for the call per value). If it accepts them all and writes no ``null``, each value alone
    would pass :func:`pack_value`'s checks too (the list only adds one level of nesting), so each is
    just encoded; anything else (a ``None``, a NaN, bytes, a value orjson or the encoder refuses)
    sends the values through :func:`pack_value` one by one, which names what is wrong. The encoder
    is mapped with its arguments positional: keyword arguments cost it about 0.5 us a call.
    """
    try:
        if _dumps(values, option=_STRICT).find(b"null") < 0:
            return list(map(_packb, values, repeat(_reject), repeat(_PACK_STRICT)))
    except (TypeError, ValueError, OverflowError, UnicodeError, RecursionError):
        pass
    return [pack_value(value) for value in values]


def extended_record(op: int, key: str, packed: bytes | None) -> bytes:
    """The extended version record (used for long keys)."""
    return EXTENDED + packb_exact([op, key, packed])


def rich_record(key: str | None, packed: bytes, expire_us: int | None, metadata: Any,
                created_us: int) -> bytes:
    """The extended record of a put with an expiry and/or metadata (6 fields)."""
    return EXTENDED + packb_exact([PUT, key, packed, expire_us, metadata, created_us])


def decode_rich(raw: bytes) -> tuple[int, bytes | None, str | None, int | None, Any, int | None]:
    """``(op, packed, full key, expire_us, metadata, created_us)`` of any version record (the last
    three None when the record does not carry them)."""
    if raw[0] != MARK or raw[1] != EXTENDED[1]:
        op, packed, key = decode_record(raw)
        return op, packed, key, None, None, None
    fields = msgpack.unpackb(raw[2:], raw=False)
    if len(fields) == 3:
        return fields[0], fields[2], fields[1], None, None, None
    op, key, packed, expire_us, metadata, created_us = fields
    return op, packed, key, expire_us, metadata, created_us


def expire_of(raw: bytes) -> int | None:
    """The expiry time (UTC microseconds) a version record carries, or None."""
    if raw[0] != MARK or raw[1] != EXTENDED[1]:
        return None
    fields = msgpack.unpackb(raw[2:], raw=False)
    return fields[3] if len(fields) > 3 else None


def simple_record(op: int, packed: bytes | None) -> bytes:
    """The compact version record of a short key."""
    if op == PUT:
        assert packed is not None
        return packed
    return CLEAR_RECORD if op == CLEAR else DELETE_RECORD


def decode_record(raw: bytes) -> tuple[int, bytes | None, str | None]:
    """``(op, packed value or None, full key or None)`` of any version record."""
    if raw[0] != MARK:
        return PUT, raw, None
    kind = raw[1]
    if kind == 1:
        return CLEAR, None, None
    if kind == 2:
        return DELETE, None, None
    fields = msgpack.unpackb(raw[2:], raw=False)
    return fields[0], fields[2], fields[1]


def is_delete(raw: bytes) -> bool:
    """Whether a version record is a delete (a tombstone)."""
    if raw[0] != MARK:
        return False
    return raw == DELETE_RECORD or (raw[1] == EXTENDED[1] and decode_record(raw)[0] == DELETE)
