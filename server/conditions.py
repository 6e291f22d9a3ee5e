"""Conditional writes over HTTP: ``if_match`` / ``if_none_match`` on write items, ``If-Match`` /
``If-None-Match`` and ``ETag`` on single keys, and the 412 problems of failed conditions.

A key's **ETag** is ``"<tx>"``, the tx of its record at the latest tx (a cleared key has one; a
deleted, expired or never-written key has none). A condition names what the writer last saw:

* ``"if_match": TX`` (an item) or ``If-Match: "TX"`` (a header): the key's record must have tx TX;
* ``"if_none_match": "*"`` or ``If-None-Match: *``: the key must have no record.

They become the engine's ``expect={key: TX or 0}`` (:mod:`engine.conditions`), checked inside the
write transaction. A failed one is 412 ``CONFLICT`` listing each failed item with its ``index``,
``key``, ``location`` (the condition's member or header), ``expected`` (the tx, or ``"*"``) and
``found`` (the key's tx, or null when it has no record). ``GET .../key`` with ``If-None-Match``
holding the record's ETag (or ``*``) answers 304 without a body.
"""

from __future__ import annotations

import re
from typing import Any

from engine import errors
from server.problems import INVALID_PARAMETERS, HTTPProblem, bad_request
from server.validation import MAX_TX, echo

IF_MATCH, IF_NONE_MATCH = "if_match", "if_none_match"
ANY = "*"
_ETAG = re.compile(r'(?:W/)?"(\d{1,19})"')
_STRONG = re.compile(r'"(\d{1,19})"')


def etag(tx: int) -> str:
    """The ETag of a record of tx ``tx``."""
    return f'"{tx}"'


def item_condition(item: dict[str, Any], index: int) -> tuple[int | None, dict[str, Any] | None]:
    """``(expected tx or 0, None)`` for an item's condition (``(None, None)``: it has none), or
    ``(None, error)`` with the per-item error (``index``, ``key``, ``code``, ``location``, ...)."""
    has_match, has_none = IF_MATCH in item, IF_NONE_MATCH in item
    if not has_match and not has_none:
        return None, None
    key = item.get("key")
    if has_match and has_none:
        return None, _error(index, key, f"give {IF_MATCH} or {IF_NONE_MATCH}, not both", IF_NONE_MATCH,
                            item[IF_NONE_MATCH])
    if has_none:
        if item[IF_NONE_MATCH] != ANY:
            return None, _error(index, key, f'{IF_NONE_MATCH} must be "*" (the key has no record)', IF_NONE_MATCH,
                                item[IF_NONE_MATCH])
        return 0, None
    tx = item[IF_MATCH]
    if type(tx) is not int or not 1 <= tx <= MAX_TX:
        return None, _error(index, key, f"{IF_MATCH} must be the tx of the key's record, an integer from 1 to "
                            f"{MAX_TX} (for \"no record\", give {IF_NONE_MATCH}: \"*\")", IF_MATCH, tx)
    return tx, None


def _error(index: int, key: Any, message: str, member: str, value: Any) -> dict[str, Any]:
    return {"index": index, "key": key if type(key) is str else None, "code": INVALID_PARAMETERS,
            "message": message, "location": f"/{index}/{member}", "value": echo(value)}


def item_conflicts(exc: errors.Conflict, index_of: dict[str, int], location_of: dict[str, str]
                   ) -> list[dict[str, Any]]:
    """The per-item errors of a failed condition: ``index_of`` maps each key to its index in the
    request, ``location_of`` to where its condition was given."""
    out = []
    for c in exc.details.get("conflicts") or ():
        key = c["key"]
        expected = c["expected"] or ANY
        found = c["actual"] or None
        out.append({"index": index_of[key], "key": key, "code": errors.Conflict.code,
                    "message": _message(expected, found), "location": location_of[key], "value": expected,
                    "expected": expected, "found": found})
    return sorted(out, key=lambda e: int(e["index"]))


def _message(expected: int | str, found: int | None) -> str:
    now = "it has no record" if found is None else f"its record is at tx {found}"
    if expected == ANY:
        return f"the key was to have no record, but {now}"
    return f"the key's record was to be at tx {expected}, but {now}"


def precondition_failed(entries: list[dict[str, Any]], total: int) -> HTTPProblem:
    """The 412 problem of an atomic write whose conditions failed: nothing was written."""
    return HTTPProblem(412, errors.Conflict.code,
                       f"{len(entries)} of {total} items failed their condition; nothing was written", entries)


# -- headers of the single-key routes -----------------------------------------------------------

def header_condition(environ: dict[str, Any]) -> tuple[int, str] | None:
    """The expected tx (0: no record) of a single-key write's ``If-Match: "TX"`` or
    ``If-None-Match: *``, with the header's name; None without either. Other forms are 400."""
    match, none = environ.get("HTTP_IF_MATCH"), environ.get("HTTP_IF_NONE_MATCH")
    if match is not None and none is not None:
        raise bad_request(INVALID_PARAMETERS, "give If-Match or If-None-Match, not both", "header.If-None-Match",
                          none[:200])
    if match is not None:
        m = _STRONG.fullmatch(match.strip())
        if m is None or not 1 <= int(m.group(1)) <= MAX_TX:
            raise bad_request(INVALID_PARAMETERS, 'If-Match must be one ETag of this API, "<tx>" (a record\'s tx, '
                              "as GET .../key answers it in ETag)", "header.If-Match", match[:200])
        return int(m.group(1)), "If-Match"
    if none is not None:
        if none.strip() != ANY:
            raise bad_request(INVALID_PARAMETERS, "a write's If-None-Match must be * (the key has no record)",
                              "header.If-None-Match", none[:200])
        return 0, "If-None-Match"
    return None


def header_conflict(exc: errors.Conflict, key: str, header: str, sent: str) -> HTTPProblem:
    """The 412 problem of a single-key write whose header condition failed."""
    c = exc.details["conflicts"][0]
    expected, found = c["expected"] or ANY, c["actual"] or None
    return HTTPProblem(412, errors.Conflict.code, f"the {header} condition failed; nothing was written",
                       [{"location": f"header.{header}", "message": _message(expected, found), "value": sent[:200],
                         "key": key, "code": errors.Conflict.code, "expected": expected, "found": found}])


def not_modified(environ: dict[str, Any], tx: int) -> bool:
    """Whether a GET's ``If-None-Match`` (ETags, weak ones too, or ``*``) names the record of tx ``tx``."""
    raw = environ.get("HTTP_IF_NONE_MATCH")
    if raw is None:
        return False
    text = raw.strip()
    if text == ANY:
        return True
    tags = [part.strip() for part in text.split(",")]
    matches = [_ETAG.fullmatch(tag) for tag in tags]
    if not tags or any(m is None for m in matches):
        raise bad_request(INVALID_PARAMETERS, 'If-None-Match must be * or ETags of this API ("<tx>", comma '
                          "separated)", "header.If-None-Match", raw[:200])
    return any(m is not None and int(m.group(1)) == tx for m in matches)
