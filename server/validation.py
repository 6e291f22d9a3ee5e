"""Checks on request bodies and parameters, done before the engine is called.

The engine validates again (it is the authority); the server checks first so that it can name
*where* in the body a problem is (a JSON Pointer such as ``/3/key``), report every bad item of a
batch at once, and, in ``?atomic=false`` mode, set bad items aside and still write the good ones.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from engine import errors
from engine.txlog import check_note
from server.exact_json import OutOfRange, find_out_of_range, loads
from server.problems import INVALID_PARAMETERS, HTTPProblem, bad_request

MAX_TX = 2**63 - 1
MAX_KEY_BYTES = 512
SCAN_LIMIT_DEFAULT = 1000
SCAN_LIMIT_MAX = 10_000
_STORAGE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: RFC 3339 date-time (section 5.6): a full date, a time, optional fraction, and a mandatory offset.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WRITE_FIELDS = frozenset({"key", "value", "binary", "expiration", "expiration_ttl", "ttl", "metadata", "if_match",
                           "if_none_match"})
#: Cloudflare's bulk write names the binary flag ``base64``: the same flag, under either name.
_WRITE_ALIASES = frozenset({"base64"})
#: Forge's ``"ttl": {"value": N, "unit": ...}`` units, in seconds.
TTL_UNITS = {"SECONDS": 1, "MINUTES": 60, "HOURS": 3600, "DAYS": 86400}
READ_FIELDS = ("created_at", "updated_at", "expire_time")
_ONLY_STR = {str}


class WriteItem(NamedTuple):
    """A checked write item: its position in the request, the key, the value and whether it clears.

    ``options`` is ``(expiration, ttl_seconds, metadata)`` when the item carries any of them (the
    engine checks their ranges); ``ttl_field`` names the member the ttl came from, and ``sent`` is
    the item as the request gave it, so an error the engine finds can echo what was sent.
    ``condition`` is the tx its ``if_match`` names (0 for ``if_none_match``), None without one
    (see :mod:`server.conditions`).
    """

    request_index: int
    key: str
    value: Any
    clear: bool
    options: tuple[Any, Any, Any] | None = None
    ttl_field: str = "expiration_ttl"
    sent: dict[str, Any] | None = None
    condition: int | None = None


def check_storage(name: str, location: str = "path.storage") -> str:
    """``name`` if it is a valid namespace name, else a 400 ``INVALID_NAMESPACE`` problem."""
    if name in _CHECKED_NAMES:  # every request names one: a set look-up instead of a regex match
        return name
    if not _STORAGE_NAME.fullmatch(name) or name in (".", ".."):
        raise bad_request(
            errors.InvalidNamespace.code,
            f"invalid storage name {name[:80]!r}: use 1-64 characters of A-Z a-z 0-9 . _ - (not '.' or '..')",
            location,
            name[:80],
        )
    if len(_CHECKED_NAMES) < _MAX_CHECKED_NAMES:
        _CHECKED_NAMES.add(name)
    return name


#: Valid namespace names already checked (at most :data:`_MAX_CHECKED_NAMES`, then the rest are matched each time).
_CHECKED_NAMES: set[str] = set()
_MAX_CHECKED_NAMES = 4096


def check_tx(value: Any, location: str = "/tx") -> int | None:
    """An optional tx: absent/None, or an int in 0..2**63-1 (bool, float, str are 400 problems)."""
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= MAX_TX:
        raise bad_request(INVALID_PARAMETERS, f"tx must be an integer from 0 to {MAX_TX}", location, echo(value))
    return value


def query_tx(text: str | None) -> int | None:
    """An optional tx from the query string (decimal digits only)."""
    if text is None:
        return None
    if not text.isdigit() or not text.isascii() or int(text) > MAX_TX:
        raise bad_request(INVALID_PARAMETERS, f"tx must be an integer from 0 to {MAX_TX}", "query.tx", text)
    return int(text)


def query_tx_param(text: str | None, name: str) -> int | None:
    """An optional tx-valued query parameter ``name`` (decimal digits, 0 to 2**63-1)."""
    if text is None:
        return None
    if not text.isdigit() or not text.isascii() or int(text) > MAX_TX:
        raise bad_request(INVALID_PARAMETERS, f"{name} must be an integer from 0 to {MAX_TX}", f"query.{name}", text)
    return int(text)


def query_int(text: str | None, name: str, low: int, high: int, default: int) -> int:
    """An optional integer query parameter in ``low..high``."""
    if text is None:
        return default
    if not text.isdigit() or not text.isascii() or not low <= int(text) <= high:
        raise bad_request(INVALID_PARAMETERS, f"{name} must be an integer from {low} to {high}", f"query.{name}",
                          text[:200])
    return int(text)


def parse_time(value: Any, location: str) -> datetime:
    """An RFC 3339 date-time such as ``2026-11-23T07:31:47.945064Z`` (offset required) as an aware
    datetime; anything else (no offset, a number, a date alone) is a 400 problem at ``location``."""
    if type(value) is not str or not _RFC3339.fullmatch(value):
        raise bad_request(INVALID_PARAMETERS, "a time must be an RFC 3339 date-time with an offset, such as "
                          "2026-11-23T07:31:47Z or 2026-11-23T09:31:47.5+02:00", location, echo(value))
    text = value.upper()
    head, dot, rest = text.partition(".")
    if dot:  # Python keeps microseconds: cut a longer fraction (RFC 3339 allows any number of digits)
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = f"{head}.{digits.group()[:6]}{rest[digits.end():]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(INVALID_PARAMETERS, f"{value!r} is not a valid date-time (month 1-12, day in month, "
                          "hour 0-23, ...)", location, value) from None


def is_before_epoch(when: datetime) -> bool:
    """Whether ``when`` is before 1970 (no tx can be that old: the tx at such a time is 0)."""
    return when < _EPOCH


NOTE_HEADER = "X-Strata-Note"
NOTE_ENVIRON = "HTTP_X_STRATA_NOTE"
_NOTE_LOCATION = "header.X-Strata-Note"


def note_header(environ: dict[str, Any], max_bytes: int) -> dict[str, Any] | None:
    """The optional note of a write: the ``X-Strata-Note`` header, a JSON object (UTF-8, at most
    ``max_bytes`` encoded; the engine measures it exactly). Anything else is a 400 problem."""
    raw = environ.get(NOTE_ENVIRON)
    if raw is None:
        return None
    try:  # WSGI hands header bytes over as latin-1 text; recover UTF-8 (or plain ASCII JSON escapes)
        text = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise bad_request(INVALID_PARAMETERS, f"{NOTE_HEADER} is not UTF-8", _NOTE_LOCATION, raw[:200]) from None
    if len(text) > 4 * max_bytes:
        raise bad_request(INVALID_PARAMETERS, f"{NOTE_HEADER} is over {max_bytes} bytes", _NOTE_LOCATION,
                          len(text))
    try:
        note, out_of_range = loads(text.encode("utf-8"))
    except HTTPProblem:
        raise bad_request(INVALID_PARAMETERS, f"{NOTE_HEADER} is not valid JSON", _NOTE_LOCATION,
                          echo(text)) from None
    if type(note) is not dict:
        raise bad_request(INVALID_PARAMETERS, f"{NOTE_HEADER} must be a JSON object, such as "
                          '{"by": "alice", "ticket": "OPS-42"}', _NOTE_LOCATION, _kind(note))
    found = find_out_of_range(note, "") if out_of_range else None
    if found is not None:  # the engine's code for a value it cannot store; the pointer is within the note
        raise bad_request(errors.InvalidValue.code, f"{NOTE_HEADER}: {found[1].reason()} at {found[0]}",
                          _NOTE_LOCATION, echo(found[1]))
    try:
        return check_note(note, max_bytes)  # the engine's own check, so the problem can point here
    except errors.EngineError as exc:
        raise bad_request(exc.code, f"{NOTE_HEADER}: {exc.message}", _NOTE_LOCATION, echo(text)) from None


def query_bool(text: str | None, name: str, default: bool) -> bool:
    """An optional boolean query parameter: ``true``/``false`` (or ``1``/``0``)."""
    if text is None:
        return default
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise bad_request(INVALID_PARAMETERS, f"{name} must be true or false", f"query.{name}", text)


def check_fields(body: Any, allowed: frozenset[str], what: str) -> dict[str, Any]:
    """``body`` as a dict with no fields outside ``allowed`` (else a 400 problem listing each)."""
    if not isinstance(body, dict):
        raise bad_request(INVALID_PARAMETERS, f"the body must be a JSON object ({what})", "", _kind(body))
    unknown = [name for name in body if name not in allowed]
    if unknown:
        raise HTTPProblem(
            400,
            INVALID_PARAMETERS,
            f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}",
            [{"location": f"/{name}", "message": "unknown field", "value": echo(body[name])} for name in unknown],
        )
    return body


def check_keys(value: Any, location: str) -> list[str]:
    """A list of string keys (content is checked by the engine, which knows its limits)."""
    if type(value) is not list:
        raise bad_request(INVALID_PARAMETERS, "keys must be an array of strings", location, _kind(value))
    if value and set(map(type, value)) != _ONLY_STR:  # one C-speed pass for the usual all-str case
        bad = [i for i, key in enumerate(value) if type(key) is not str]
        raise HTTPProblem(
            400,
            INVALID_PARAMETERS,
            "every key must be a string",
            [{"location": f"{location}/{i}", "message": "not a string", "value": echo(value[i])} for i in bad[:100]],
        )
    return value


def check_string(body: dict[str, Any], name: str) -> str | None:
    """An optional string field of ``body``."""
    value = body.get(name)
    if value is not None and type(value) is not str:
        raise bad_request(INVALID_PARAMETERS, f"{name} must be a string", f"/{name}", echo(value))
    return value


def check_limit(value: Any) -> int:
    """The scan page size: 1..10,000, default 1,000."""
    if value is None:
        return SCAN_LIMIT_DEFAULT
    if type(value) is not int or not 1 <= value <= SCAN_LIMIT_MAX:
        raise bad_request(INVALID_PARAMETERS, f"limit must be an integer from 1 to {SCAN_LIMIT_MAX}", "/limit",
                          echo(value))
    return value


def key_error(key: Any, max_key_bytes: int = MAX_KEY_BYTES) -> tuple[str, str] | None:
    """Why ``key`` cannot be stored, as ``(code, message)``, or None if it can."""
    if type(key) is not str:
        return errors.InvalidKey.code, "key must be a string"
    if not key:
        return errors.InvalidKey.code, "key must not be empty"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return errors.InvalidKey.code, "key is not valid Unicode (it holds a lone surrogate)"
    if size > max_key_bytes:
        return errors.KeyTooLong.code, f"key is {size} bytes of UTF-8; the limit is {max_key_bytes}"
    return None


def check_batch_size(body: Any, max_batch: int, noun: str) -> None:
    """Refuse a write's array that is empty or holds more than ``max_batch`` ``noun`` (items, events);
    anything else is left to the item checks."""
    if type(body) is list and not body:
        raise bad_request(errors.EmptyBatch.code, f"the write has no {noun}", "", "array")
    if type(body) is list and len(body) > max_batch:
        raise bad_request(errors.BatchTooLarge.code, f"a write may hold at most {max_batch} {noun}", "", len(body))


def check_write_items(body: Any, max_key_bytes: int = MAX_KEY_BYTES, out_of_range: bool = False
                      ) -> tuple[list[WriteItem], list[dict[str, Any]]]:
    """Split a write body into good items and per-item errors.

    Each error is ``{"index", "key", "code", "message", "location", "value"}``. Of two items with
    the same key, the later one is the error (the earlier one may still be written).
    ``out_of_range`` says the body holds :class:`~server.exact_json.OutOfRange` numbers: an item
    with one in its value or metadata is an error pointing at it (never a rounded number).
    """
    if type(body) is not list:
        raise bad_request(INVALID_PARAMETERS, "the write body must be a JSON array of items", "", _kind(body))
    good: list[WriteItem] = []
    bad: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(body):
        problem = _item_problem(item, index, max_key_bytes, seen)
        if problem is not None:
            bad.append(problem)
            continue
        key = item["key"]
        options, ttl_field = None, "expiration_ttl"
        if len(item) > 1 and not _WRITE_FIELDS_PLAIN.issuperset(item):
            parsed = _item_options(item, index, key)
            if isinstance(parsed, dict):
                bad.append(parsed)
                continue
            options, ttl_field = parsed
        if out_of_range:
            number = _number_problem(item, index, key)
            if number is not None:
                bad.append(number)
                continue
        if "value" not in item:
            good.append(WriteItem(index, key, None, True, sent=item))
        elif item.get("binary", item.get("base64")) is True:
            raw = _base64(item["value"])
            if raw is None:
                value = item["value"]
                bad.append(_item_error(index, key, errors.InvalidValue.code, "a binary value must be a base64 string",
                                       f"/{index}/value", echo(value)))
                continue
            good.append(WriteItem(index, key, raw, False, options, ttl_field, item))
        else:
            good.append(WriteItem(index, key, item["value"], False, options, ttl_field, item))
        seen.add(key)
    return good, bad


_WRITE_FIELDS_PLAIN = frozenset({"key", "value", "binary", "base64"})
#: Where an out-of-range number makes an item unstorable, and the engine's code for it there.
_NUMBER_FIELDS = (("value", errors.InvalidValue.code), ("metadata", errors.InvalidMetadata.code))


def _number_problem(item: dict[str, Any], index: int, key: str) -> dict[str, Any] | None:
    """The error of an item whose value or metadata holds a number no record can store, or None."""
    for field, code in _NUMBER_FIELDS:
        if field in item:
            found = find_out_of_range(item[field], f"/{index}/{field}")
            if found is not None:
                return _item_error(index, key, code, f"{field} is not storable: {found[1].reason()}", found[0],
                                   echo(found[1]))
    return None


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def _not_a_number(message: str, value: Any) -> str:
    """``message``, or why ``value`` is a number no option can take (beyond 64 bits or a double)."""
    return value.reason() if type(value) is OutOfRange else message


def _item_options(item: dict[str, Any], index: int, key: str) -> tuple[tuple[Any, Any, Any] | None, str] | dict[
        str, Any]:
    """``((expiration, ttl_seconds, metadata) or None, ttl field)`` of a write item, or its error.

    Types are checked here; ranges (minimum ttl, expiration in the future, metadata size) by the
    engine. ``expiration_ttl`` and Forge's ``ttl`` object are two spellings of one option.
    """
    expiration = item.get("expiration")
    if expiration is not None and not _number(expiration):
        return _item_error(index, key, errors.InvalidExpiration.code,
                           _not_a_number("expiration must be epoch seconds (a number)", expiration),
                           f"/{index}/expiration", echo(expiration))
    ttl, ttl_field = item.get("expiration_ttl"), "expiration_ttl"
    if ttl is not None and not _number(ttl):
        return _item_error(index, key, errors.InvalidExpirationTtl.code,
                           _not_a_number("expiration_ttl must be a number of seconds", ttl),
                           f"/{index}/expiration_ttl", echo(ttl))
    forge = item.get("ttl")
    if forge is not None:
        if ttl is not None:
            return _item_error(index, key, INVALID_PARAMETERS, "give expiration_ttl or ttl, not both",
                               f"/{index}/ttl", echo(forge))
        unit = forge.get("unit", "SECONDS") if type(forge) is dict else None
        amount: Any = forge.get("value") if type(forge) is dict else None
        if (type(forge) is not dict or set(forge) - {"value", "unit"} or not _number(amount)
                or type(unit) is not str or unit not in TTL_UNITS):
            return _item_error(index, key, errors.InvalidExpirationTtl.code,
                               'ttl must be {"value": number, "unit": "SECONDS" | "MINUTES" | "HOURS" | "DAYS"}',
                               f"/{index}/ttl", echo(forge))
        ttl, ttl_field = amount * TTL_UNITS[unit], "ttl"
    metadata = item.get("metadata")
    if expiration is None and ttl is None and metadata is None:
        return None, ttl_field
    if "value" not in item:
        return _item_error(index, key, INVALID_PARAMETERS, "a clear (an item without value) takes no expiration, "
                           "ttl or metadata", f"/{index}", "object")
    return (expiration, ttl, metadata), ttl_field


def check_read_options(body: dict[str, Any]) -> tuple[bool, list[str] | None]:
    """``(metadata, fields)`` of a read or scan body: ``"metadata": true`` and ``"fields": [...]``."""
    metadata = body.get("metadata", False)
    if type(metadata) is not bool:
        raise bad_request(INVALID_PARAMETERS, "metadata must be true or false", "/metadata", echo(metadata))
    fields = body.get("fields")
    if fields is None:
        return metadata, None
    if type(fields) is not list or any(f not in READ_FIELDS for f in fields):
        raise bad_request(INVALID_PARAMETERS, f"fields must be an array of {', '.join(READ_FIELDS)}", "/fields",
                          echo(fields))
    return metadata, fields


def _item_problem(item: Any, index: int, max_key_bytes: int, seen: set[str]) -> dict[str, Any] | None:
    """The error for one write item, or None if the server finds nothing wrong with it."""
    if type(item) is not dict:
        return _item_error(index, None, INVALID_PARAMETERS, "an item must be an object", f"/{index}", _kind(item))
    key = item.get("key")
    unknown = [name for name in item if name not in _WRITE_FIELDS and name not in _WRITE_ALIASES]
    if unknown:
        return _item_error(index, key, INVALID_PARAMETERS, f"unknown field {unknown[0]!r}",
                           f"/{index}/{unknown[0]}", echo(item[unknown[0]]))
    if "key" not in item:
        return _item_error(index, None, errors.InvalidKey.code, "key is required", f"/{index}/key", None)
    why = key_error(key, max_key_bytes)
    if why is not None:
        return _item_error(index, key, why[0], why[1], f"/{index}/key", echo(key))
    if key in seen:
        return _item_error(index, key, errors.DuplicateKey.code, "key appears earlier in the same write",
                           f"/{index}/key", key)
    for flag in ("binary", "base64"):
        if flag in item and type(item[flag]) is not bool:
            return _item_error(index, key, INVALID_PARAMETERS, f"{flag} must be true or false", f"/{index}/{flag}",
                               echo(item[flag]))
    if "binary" in item and "base64" in item and item["binary"] is not item["base64"]:
        return _item_error(index, key, INVALID_PARAMETERS, "binary and base64 are one flag under two names "
                           "(base64 is Cloudflare's); they disagree here: give one of them", f"/{index}/base64",
                           item["base64"])
    return None


def _base64(value: Any) -> bytes | None:
    """The bytes of a strict base64 string, or None if ``value`` is not one."""
    if type(value) is not str:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _item_error(index: int, key: Any, code: str, message: str, location: str, value: Any) -> dict[str, Any]:
    return {"index": index, "key": key if type(key) is str else None, "code": code, "message": message,
            "location": location, "value": value}


def echo(value: Any) -> Any:
    """The offending value for an error entry: scalars as they are, containers by their type name."""
    if isinstance(value, (dict, list)):
        return _kind(value)
    if type(value) is OutOfRange:  # a number JSON cannot carry back: its text as sent
        value = value.text
    if type(value) is str and len(value) > 200:
        return value[:200] + "..."
    return value


def _kind(value: Any) -> str:
    """A short description of a JSON value's type, for error messages about the wrong type."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", OutOfRange: "number", type(None): "null"}.get(type(value), type(value).__name__)
