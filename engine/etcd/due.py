"""The due range of the expiry index: what a write commits only if nothing in it exists.

Every write records the expiries due at its commit time ``now_us`` first (LMDB's rule,
:func:`engine.txn.sweep_due`); an expiry is due when its index entry ``P/x/<expire_us:016x>/...`` has
``expire_us <= now_us``, so the due entries are exactly the keys of ``[P/x/, P/x/<now_us + 1:016x>)``
(fixed-width hex: byte order is time order, and every entry key continues past the 16 digits with
``/``, so ``P/x/<expire_us:016x>/...`` sorts below ``P/x/<now_us + 1:016x>`` iff ``expire_us <= now_us``).

A write proves in its own txn that none is due rather than reading first: etcd (3.3 on) applies a
compare with a ``range_end`` to every key of the range, and to a range holding no key as to one missing
key (create revision 0). So ``create_revision([P/x/, P/x/<now_us + 1:016x>)) == 0`` holds iff no key is
in the range when the txn is applied, and the write costs one round trip when nothing is due. When the
compare fails, the failure branch's :func:`first_due` (one key, keys only) says it was this compare,
and the writer sweeps (:mod:`engine.etcd.sweep`) before sending again.
"""

from __future__ import annotations

import functools

from .kv import Compare, Range, RangeResult, Response, remember
from .layout import Layout


@functools.lru_cache(maxsize=64)
def _start(prefix: bytes) -> bytes:  # keyed by the prefix: a Layout's hash is a Python call
    return remember(prefix + b"/x/")  # in every write's compare: its base64 kept


def due_range(layout: Layout, now_us: int) -> tuple[bytes, bytes]:
    """``[start, end)``: the expiry index entries due at ``now_us``."""
    start = _start(layout.prefix)
    return start, start + b"%016x" % (now_us + 1)


def nothing_due(layout: Layout, now_us: int, due: tuple[bytes, bytes] | None = None) -> Compare:
    """The compare that holds iff no expiry index entry is due at ``now_us`` when the txn is applied
    (``due``: :func:`due_range` of the same, when the caller has it)."""
    start, end = due or due_range(layout, now_us)
    return Compare(start, "CREATE", "==", 0, end)


def first_due(layout: Layout, now_us: int, due: tuple[bytes, bytes] | None = None) -> Range:
    """The read (after a failed txn, or in a failure branch) of the first entry due at ``now_us``, key only."""
    start, end = due or due_range(layout, now_us)
    return Range(start, end, 0, 1, True)  # limit 1, keys only


def found_due(answer: Response) -> bool:
    """Whether :func:`first_due`'s answer found an entry."""
    assert isinstance(answer, RangeResult)
    return bool(answer.kvs)
