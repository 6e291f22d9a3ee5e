"""Instructions per 1-item HTTP write answered through the write batcher, by group size: stable on a shared machine.

``python -m benchmarks.batch_instructions [--groups 1,6,16] [--batches N]``

The same request as :mod:`benchmarks.app_instructions` (``POST /v4/storage/bench/write`` of one new
key, the worker's fast-path environ), but run as ``strata serve`` runs it at concurrency: handed to
a :class:`server.write_batch.WriteBatcher` in groups of G requests at once, each group run in the
batcher's greenlets, committed together (:meth:`engine.Store.commit_parked`, one commit) on a store
opened as the server opens it (``sync=True``: the flush too), answered through
:class:`server.fast_http.FastResponse`. Each group is handed over while the batcher runs a gate
request that waits until all of them are queued, so it is taken whole, as one batch.

Runs under ``valgrind --tool=callgrind`` twice (N and 0 groups after the same setup and warm-up)
and prints the difference divided by the writes: user-space instructions per write at group size G,
start-up cancelled out. From two group sizes, ``per write = fixed / G + marginal`` gives the
per-group (fixed) and per-write (marginal) shares. Kernel work (the flush, the page writes) is not
counted: callgrind sees user space only. The event loop's share (reading, parsing, sending) is not
here either: see :mod:`benchmarks.request_cpu`.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import threading
from typing import Any

from benchmarks.app_instructions import _write_raw
from benchmarks.callgrind import instructions

WARM = 8  # groups run before the measured ones: first-call caches, imports, greenlets, the namespace


def _setup(path: str, group: int, groups: int) -> Any:
    """``(run, batcher, app)``: a batcher over the app at ``path``; ``run(n)`` hands over ``n`` groups of
    ``group`` writes, one by one (at most ``WARM + groups`` groups in all)."""
    from server import fast_http
    from server.app import create_app
    from server.write_batch import WriteBatcher

    app = create_app(path)
    app.warm()
    base = fast_http.base_environ(io.StringIO(), True)
    done = threading.Condition()
    answered = [0]
    counter = [0]

    def answer(conn: Any, req: Any) -> tuple[bytearray, bool]:
        if callable(req):  # the gate
            req()
            return bytearray(), True
        out = bytearray()

        def send_parts(parts: list[bytes]) -> None:  # as the worker's ConnSocket collects an answer
            nonlocal out
            for part in parts:
                out += part
        resp = fast_http.FastResponse(req, send_parts, False)
        env = fast_http.environ(req, None, ("127.0.0.1", 40000), ("127.0.0.1", 8000), base)
        assert resp.answer(app, env)
        assert out.startswith(b"HTTP/1.1 200 OK"), bytes(out[:300])
        return out, True

    def deliver(answers: list[Any]) -> None:
        with done:
            answered[0] += len(answers)
            done.notify_all()

    batcher = WriteBatcher(lambda: app.store, answer, deliver)
    requests = [fast_http.parse(_write_raw(i)) for i in range((WARM + groups) * group)]  # parsed in both runs

    def one_group() -> None:
        started, queued = threading.Event(), threading.Event()

        def gate() -> None:  # holds the batcher until the whole group is queued
            started.set()
            queued.wait(60)
        want = answered[0] + group + 1
        batcher.submit("gate", gate)
        started.wait(60)
        for _ in range(group):
            batcher.submit("conn", requests[counter[0]])
            counter[0] += 1
        queued.set()
        with done:
            assert done.wait_for(lambda: answered[0] >= want, timeout=120)

    def run(n: int) -> None:
        for _ in range(n):
            one_group()
    return run, batcher, app


def inner(group: int, groups: int, total: int) -> None:
    work = tempfile.mkdtemp(prefix="strata-bip-")
    try:
        run, batcher, app = _setup(os.path.join(work, "data"), group, total)
        run(WARM)
        run(groups)
        batcher.stop(30)
        app.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def count(group: int, groups: int, total: int) -> int:
    return instructions("benchmarks.batch_instructions", ["--groups", str(group), "--batches", str(groups),
                                                          "--total", str(total)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.batch_instructions", description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", default="1,6,16", help="comma-separated group sizes")
    p.add_argument("--batches", type=int, default=40, help="groups measured per size")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--total", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    sizes = [int(g) for g in a.groups.split(",")]
    if a.inner:
        inner(sizes[0], a.batches, a.total if a.total is not None else a.batches)
        return 0
    figures = {}
    for group in sizes:
        many, none = count(group, a.batches, a.batches), count(group, 0, a.batches)
        figures[group] = (many - none) / (a.batches * group)
        print(f"group {group:3}: {figures[group]:12,.0f} instructions per write", flush=True)
    if len(figures) >= 2:
        small, large = min(figures), max(figures)
        marginal = (figures[large] * large - figures[small] * small) / (large - small)
        fixed = (figures[small] - marginal) * small
        print(f"fit over groups {small} and {large}: {fixed:,.0f} per group + {marginal:,.0f} per write")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
