"""Reads by time on etcd: the last tx committed at or before a time, by bisection over the sealed chain.

The LMDB engine answers :meth:`engine.Store.tx_at` with one seek in its ``txtime`` index, whose times are
clamped at commit (a tx's time never precedes its predecessor's). On etcd the writers cannot clamp (they
commit from several machines without a shared head); the clamped times exist only in the sealed segments of
the hash chain (:mod:`engine.etcd.chain`), in tx order and non-decreasing, so a bisection over them finds the
answer. :func:`tx_at` seals up to the latest tx first, as ``tx_info`` does, so an answer never rests on a
writer's unclamped time and equals the LMDB engine's for the same history.

Cost: one range of the latest tx, one of the sealed head (a seal first when the background sealer is behind),
and for a time before the latest tx's, a bisection over segments (``SEGMENT`` txs each): one range of one
segment per step, about ``log2(latest / SEGMENT) + 1`` ranges in all. A time at or after the latest tx's
(the common "now") answers from the head alone.
"""

from __future__ import annotations

from bisect import bisect_right

from .chain import SEGMENT, seal, segment_times
from .timeline import Timeline


def tx_at(timeline: Timeline, time_us: int) -> int:
    """The last tx whose clamped commit time is at or before ``time_us`` (UTC microseconds); 0 if none.
    Seals the chain up to the latest tx first if it is not yet (``STORAGE_ERROR`` if it cannot)."""
    latest = timeline.latest()[0]
    if latest == 0:
        return 0
    head = seal(timeline, latest)  # at or past latest: what is sealed by now
    if time_us >= head.time_us:
        return head.tx
    # Segment k holds txs k*SEGMENT+1 ..; find the last segment whose first time is at or before time_us.
    # Invariant: first time of segment lo <= time_us < first time of segment hi (-1: -inf, top + 1: +inf).
    lo, hi = -1, (head.tx - 1) // SEGMENT + 1
    found: list[int] = []
    while hi - lo > 1:
        mid = (lo + hi) // 2
        times = segment_times(timeline, mid * SEGMENT + 1)
        if times[0] <= time_us:
            lo, found = mid, times
        else:
            hi = mid
    if lo < 0:
        return 0  # before the first tx
    first = lo * SEGMENT + 1
    # Entries past the head (sealed since it was read) are cut off: the answer is the same either way,
    # since the head's time is above time_us and times never decrease.
    return first + bisect_right(found, time_us, 0, min(len(found), head.tx - first + 1)) - 1
