"""Checks on caller input that run before any transaction opens, so a rejected call changes nothing."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from .errors import InvalidKey, InvalidNamespace, InvalidParameters, KeyTooLong

_NS_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


#: Names :func:`check_namespace` has found valid: a namespace object's writes pass its (validated) name
#: again on every call, and the regular expression is most of a check. Exact ``str`` only (a subclass
#: could compare equal to a valid name); at most :data:`MAX_VALID_NAMES` kept, later ones checked each time.
_VALID_NAMES: set[str] = set()
MAX_VALID_NAMES = 4096


def check_namespace(name: Any) -> str:
    """Return ``name`` if it is a valid namespace name, else raise :class:`InvalidNamespace`."""
    if type(name) is str and name in _VALID_NAMES:
        return name
    if type(name) is not str or not _NS_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidNamespace(
            f"invalid namespace name {name!r}: use 1-64 characters of A-Z a-z 0-9 . _ - (not '.' or '..')",
            namespace=name if isinstance(name, str) else repr(name),
        )
    if len(_VALID_NAMES) < MAX_VALID_NAMES:
        _VALID_NAMES.add(name)
    return name


def key_bytes(key: Any, max_bytes: int) -> bytes:
    """The UTF-8 bytes of a key, or raise :class:`InvalidKey` / :class:`KeyTooLong`."""
    if type(key) is not str:
        raise InvalidKey(f"key must be a str, not {type(key).__name__}", key=repr(key))
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey("key is not valid Unicode (it holds a lone surrogate)", key=repr(key)) from None
    if not raw:
        raise InvalidKey("key must not be empty", key=key)
    if len(raw) > max_bytes:
        raise KeyTooLong(f"key is {len(raw)} bytes of UTF-8; the limit is {max_bytes}", key=key[:64] + "...")
    return raw


def check_prefix(prefix: Any) -> str:
    """``prefix`` if it is a str that encodes to UTF-8 (no lone surrogate), else ``INVALID_PARAMETERS``."""
    if type(prefix) is not str:
        raise InvalidParameters("prefix must be a str", parameter="prefix")
    try:
        prefix.encode()
    except UnicodeEncodeError:
        raise InvalidParameters("prefix is not valid Unicode (lone surrogate)", parameter="prefix") from None
    return prefix


def check_tx(tx: Any, name: str = "tx") -> int:
    """A tx argument: a non-negative int (bool is not an int here)."""
    if type(tx) is not int or tx < 0:
        raise InvalidParameters(f"{name} must be a non-negative integer, not {tx!r}", parameter=name)
    return tx


def finite_number(value: Any) -> bool:
    """Whether ``value`` is an int or a finite float (bool is not a number here).

    An int is always finite; ``math.isfinite`` would raise OverflowError on one beyond a double.
    """
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages (an int of thousands of digits
    would fill the message, and past 4,300 digits ``repr`` refuses it)."""
    if type(value) is int and not -10**limit < value < 10**limit:
        return f"an integer of {len(str(abs(value))) if abs(value) < 10**4000 else 'over 4000'} digits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def time_us(at: Any, name: str = "at") -> int:
    """A point in time as UTC microseconds: an aware ``datetime`` or epoch seconds (int or float)."""
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise InvalidParameters(f"{name} must carry a time zone (a naive datetime is ambiguous)", parameter=name)
        # Before 1970 nothing was committed: clamp to 0 rather than fail on a negative stamp.
        return max(0, round(at.timestamp() * 1_000_000))
    if finite_number(at) and at >= 0:
        us: int = round(at * 1_000_000)
        return us
    raise InvalidParameters(f"{name} must be an aware datetime or non-negative epoch seconds, not {short_repr(at)}",
                            parameter=name)
