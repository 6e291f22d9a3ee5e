"""Prometheus metrics shared by all gunicorn workers: request counts and a latency histogram.

The counters live in an anonymous shared memory map created where the app is built. Under
``strata serve`` the app is built in the gunicorn master (``preload_app``) before workers fork, so
every worker writes into the same map and any worker's ``/metrics`` shows the whole server. (An app
built inside each worker, e.g. plain ``gunicorn 'server:create_app(...)'`` without ``--preload``,
reports per-worker numbers instead; the ``strata_metrics_shared`` gauge says which.)

Workers never share a counter: each process claims a *slot* (a row of counters) on its first
request and is its only writer, so the hot path is a few integer additions with no cross-process
lock. A scrape sums the slots. A slot left by a dead worker is reused by the next new worker, which
keeps adding to it: the counters stay cumulative, as Prometheus expects. A per-process thread lock
keeps the additions whole under threaded servers; it is uncontended under sync workers.
"""

from __future__ import annotations

import bisect
import mmap
import multiprocessing
import os
import threading
from collections.abc import Sequence
from typing import Any

from server.pid import current as current_pid

#: Status codes with their own counter; anything else counts as status="other".
STATUSES: tuple[int, ...] = (200, 201, 400, 401, 403, 404, 405, 409, 410, 413, 415, 500, 503, 507)
#: Latency bucket upper bounds in seconds (``+Inf`` is implied).
BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BUCKET_NS = tuple(int(b * 1e9) for b in BUCKETS)
_STATUS_INDEX = {s: i for i, s in enumerate(STATUSES)}
_NSTATUS = len(STATUSES) + 1
_NBUCKET = len(BUCKETS) + 1
MAX_SLOTS = 64


class Metrics:
    """Counters by endpoint and status, a latency histogram per endpoint, rendered for Prometheus.

    ``endpoints`` is a list of ``(route, method)`` label pairs; ``observe(i, status, ns)`` counts a
    request to endpoint ``i`` answered with ``status`` after ``ns`` nanoseconds. ``render(gauges)``
    returns the text exposition format, with extra ``gauges`` (name -> (help, value)) appended.
    """

    def __init__(self, endpoints: Sequence[tuple[str, str]], slots: int = MAX_SLOTS) -> None:
        self.endpoints = list(endpoints)
        n = len(self.endpoints)
        self._hist_base = 1 + n * _NSTATUS
        self._sum_base = self._hist_base + n * _NBUCKET
        self._slot_len = self._sum_base + n
        self._slots = slots
        self._shared = True
        try:
            self._map = mmap.mmap(-1, 8 * self._slot_len * slots)
            self._claim_lock: Any = multiprocessing.Lock()
        except (OSError, ImportError):  # no shared memory: count per process
            self._map = mmap.mmap(-1, 8 * self._slot_len * slots, flags=mmap.MAP_PRIVATE)
            self._claim_lock = None
            self._shared = False
        self._cells = memoryview(self._map).cast("q")
        self._lock = threading.Lock()
        self._pid = 0
        self._base = 0

    @property
    def shared(self) -> bool:
        """Whether the counters are shared between processes forked after construction."""
        return self._shared

    def _claim(self) -> None:
        """Give this process a slot of its own (one whose owner is gone, or a fresh one)."""
        pid = os.getpid()
        cells, slot_len = self._cells, self._slot_len
        lock = self._claim_lock
        locked = lock.acquire(timeout=5) if lock is not None else False
        try:
            for slot in range(self._slots):
                base = slot * slot_len
                owner = cells[base]
                if owner == 0 or owner == pid or not _alive(owner):
                    cells[base] = pid
                    self._base, self._pid = base, pid
                    return
        finally:
            if locked and lock is not None:
                lock.release()
        # Every slot is held by a live process: share the last one (counts may race, rarely).
        self._base, self._pid = (self._slots - 1) * slot_len, pid

    def observe(self, endpoint: int, status: int, elapsed_ns: int) -> None:
        """Count one request to ``endpoint`` answered with ``status`` after ``elapsed_ns``."""
        with self._lock:
            if self._pid != current_pid():
                self._claim()
            cells, base = self._cells, self._base
            cells[base + 1 + endpoint * _NSTATUS + _STATUS_INDEX.get(status, _NSTATUS - 1)] += 1
            bucket = bisect.bisect_left(_BUCKET_NS, elapsed_ns)
            cells[base + self._hist_base + endpoint * _NBUCKET + bucket] += 1
            cells[base + self._sum_base + endpoint] += elapsed_ns

    def totals(self) -> list[int]:
        """Every counter summed over all slots (index layout as in one slot; index 0 unused)."""
        cells, slot_len = self._cells, self._slot_len
        out = [0] * slot_len
        for slot in range(self._slots):
            base = slot * slot_len
            if cells[base] == 0:
                continue
            for i in range(1, slot_len):
                out[i] += cells[base + i]
        return out

    def render(self, gauges: dict[str, tuple[str, float]]) -> bytes:
        """The Prometheus text exposition of every counter plus ``gauges``."""
        t = self.totals()
        lines = [
            "# HELP strata_http_requests_total HTTP requests answered, by route, method and status.",
            "# TYPE strata_http_requests_total counter",
        ]
        status_labels = [str(s) for s in STATUSES] + ["other"]
        for e, (route, method) in enumerate(self.endpoints):
            for s, label in enumerate(status_labels):
                count = t[1 + e * _NSTATUS + s]
                if count:
                    lines.append(
                        f'strata_http_requests_total{{route="{route}",method="{method}",status="{label}"}} {count}'
                    )
        lines += [
            "# HELP strata_http_request_duration_seconds Time from request arrival to response headers.",
            "# TYPE strata_http_request_duration_seconds histogram",
        ]
        bounds = [repr(b) for b in BUCKETS] + ["+Inf"]
        for e, (route, method) in enumerate(self.endpoints):
            hist = t[self._hist_base + e * _NBUCKET: self._hist_base + (e + 1) * _NBUCKET]
            count = sum(hist)
            if not count:
                continue
            labels = f'route="{route}",method="{method}"'
            cumulative = 0
            for bound, n in zip(bounds, hist, strict=True):
                cumulative += n
                lines.append(f'strata_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {cumulative}')
            lines.append(f"strata_http_request_duration_seconds_sum{{{labels}}} {t[self._sum_base + e] / 1e9}")
            lines.append(f"strata_http_request_duration_seconds_count{{{labels}}} {count}")
        gauges = {"strata_metrics_shared": ("1 if counters cover all workers, 0 if this worker only.",
                                            1 if self._shared else 0), **gauges}
        for name, (help_text, value) in gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
        return ("\n".join(lines) + "\n").encode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
