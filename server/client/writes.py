"""Write requests: engine-style arguments as the bodies of ``/write`` and ``/delete``.

A put of ``{key: value}`` (or :class:`~engine.records.Item` objects) becomes an array of
``{"key", "value", "binary"?, "expiration"?, "expiration_ttl"?, "metadata"?}``; ``bytes`` go as base64
with ``"binary": true``. ``expect={key: tx}`` becomes each item's ``"if_match": tx``, or
``"if_none_match": "*"`` for 0 (no record), as the server's conditions are spelled.

What JSON cannot carry is refused here, before anything is sent, with the engine's own checks and
messages (a lone surrogate in a key, NaN, an integer beyond 64 bits, a non-JSON type): orjson would
otherwise fail, or, for NaN, quietly send ``null``. Everything else (key length, empty keys,
duplicates, sizes, limits) is the server's to check, so its limits are the ones that apply.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Iterable, Mapping
from typing import Any

from engine import errors
from engine.codec import pack_value
from engine.records import Item

CLEAR_ITEM = object()  # a write item with no value: the key is cleared


def _key_problem(key: Any) -> errors.EngineError | None:
    if type(key) is str:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            return errors.InvalidKey("key is not valid Unicode (it holds a lone surrogate)", key=repr(key))
    return None  # the server checks the rest (and names non-str keys the way the engine does)


def _value_problem(value: Any) -> errors.EngineError | None:
    if type(value) is bytes or value is CLEAR_ITEM:
        return None
    try:
        pack_value(value)
    except errors.EngineError as exc:
        return exc
    return None


def raise_item_errors(problems: list[tuple[int, Any, errors.EngineError]]) -> None:
    """Raise as the engine does for a batch: the first problem's class, every bad item listed."""
    if not problems:
        return
    first = problems[0][2]
    entries = [{"index": i, "key": k if isinstance(k, str) else repr(k), "code": e.code, "message": e.message}
               for i, k, e in problems]
    message = first.message if len(entries) == 1 else f"{len(entries)} items are invalid; the first: {first.message}"
    raise type(first)(message, errors=entries)


def condition(tx: int) -> dict[str, Any]:
    """The write-item members of ``expect`` tx ``tx`` (0: the key must have no record)."""
    if type(tx) is not int or tx < 0:
        raise errors.InvalidParameters(f"an expected tx must be a non-negative integer, not {tx!r}",
                                       parameter="expect")
    return {"if_none_match": "*"} if tx == 0 else {"if_match": tx}


def put_items(items: Mapping[str, Any] | Iterable[Item | tuple[str, Any]], ttl: float | None,
              expiration: float | None, metadata: Any, expect: Mapping[str, int] | None) -> list[dict[str, Any]]:
    """The body of a put: one object per item, the batch options applied where an item has none."""
    pairs: list[Any] = list(items.items()) if isinstance(items, Mapping) else list(items)
    body: list[dict[str, Any]] = []
    problems: list[tuple[int, Any, errors.EngineError]] = []
    for index, pair in enumerate(pairs):
        if type(pair) is Item:
            key, value = pair.key, pair.value
            own = pair.ttl is not None or pair.expiration is not None
            item_ttl, item_exp = (pair.ttl, pair.expiration) if own else (ttl, expiration)
            item_meta = pair.metadata if pair.metadata is not None else metadata
        else:
            key, value = pair
            item_ttl, item_exp, item_meta = ttl, expiration, metadata
        problem = _key_problem(key) or _value_problem(value)
        if problem is not None:
            problems.append((index, key, problem))
            continue
        entry = encode_item(key, value)
        if item_ttl is not None:
            entry["expiration_ttl"] = item_ttl
        elif item_exp is not None:
            entry["expiration"] = item_exp
        if item_meta is not None:
            entry["metadata"] = item_meta
        body.append(entry)
    raise_item_errors(problems)
    return with_conditions(body, expect)


def encode_item(key: Any, value: Any) -> dict[str, Any]:
    if value is CLEAR_ITEM:
        return {"key": key}
    if type(value) is bytes:
        return {"key": key, "value": b64encode(value).decode("ascii"), "binary": True}
    return {"key": key, "value": value}


def key_items(keys: Iterable[str], expect: Mapping[str, int] | None, clear: bool) -> list[Any]:
    """The body of a clear (write items without a value) or of a delete (keys, or ``{"key", condition}``)."""
    listed = list(keys)
    raise_item_errors([(i, k, p) for i, k in enumerate(listed) if (p := _key_problem(k)) is not None])
    if clear:
        return with_conditions([{"key": k} for k in listed], expect)
    if not expect:
        return listed
    return with_conditions([{"key": k} for k in listed], expect)


def with_conditions(body: list[dict[str, Any]], expect: Mapping[str, int] | None) -> list[dict[str, Any]]:
    """``body`` with each expected key's condition; an expected key the body does not write is refused
    (over HTTP a condition rides on the item it guards)."""
    if not expect:
        return body
    written = {entry["key"] for entry in body if type(entry.get("key")) is str}
    missing = [k for k in expect if k not in written]
    if missing:
        raise errors.InvalidParameters(f"expect names {missing[0]!r}, which this write does not write; over HTTP a "
                                       "condition guards an item of the same write", parameter="expect")
    for entry in body:
        tx = expect.get(entry["key"]) if type(entry.get("key")) is str else None
        if tx is not None:
            entry.update(condition(tx))
    return body
