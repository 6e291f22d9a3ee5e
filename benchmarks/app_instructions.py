"""Instructions per 1-item HTTP write answered by the WSGI app in-process: stable figures on a shared machine.

``python -m benchmarks.app_instructions [--requests N] [--system app,engine] [--profile]``
runs under ``valgrind --tool=callgrind`` twice (N and 0 requests after the same setup, the N
requests' environs built in both) and prints the difference divided by N: the instructions one
request costs, start-up and loading cancelled out. CPU time moves with the machine's load;
instruction counts do not.

Systems: ``app`` (the request ``benchmarks.request_cpu`` and ``benchmarks.durable_writes`` send,
``POST /v4/storage/bench/write`` of ``[{"key": NEW KEY, "value": 96 v's}]``, run through the app as
the worker's fast path runs it: :meth:`server.fast_http.FastResponse.answer` on the environ
:func:`server.fast_http.environ` builds, on a store opened ``sync=False``; the commit is the
engine's own, not the write batcher's group commit), ``engine`` (the engine's share:
``Namespace.put({key: value})`` of the same keys and values, the same store options), and
``app_key`` (``POST /v4/storage/bench/key?key=KEY`` with the value as its JSON body).

``--profile`` runs the app system in this process under cProfile instead and prints the top of it.
``--inner`` runs one measurement in this process (what the outer run starts under valgrind).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from benchmarks.callgrind import instructions

VALUE = "v" * 96


def _key(i: int) -> str:
    return f"strata0x{i}"


def _requests(n: int, raw: Callable[[int], bytes]) -> list[dict[str, Any]]:
    """The environs of ``n`` requests as the worker's fast path builds them (``raw(i)``: the i-th request)."""
    from server import fast_http

    base = fast_http.base_environ(io.StringIO(), True)
    out = []
    for i in range(n):
        req = fast_http.parse(raw(i))
        assert req is not None
        out.append((req, fast_http.environ(req, None, ("127.0.0.1", 40000), ("127.0.0.1", 8000), base)))
    return out  # type: ignore[return-value]


def _write_raw(i: int) -> bytes:
    body = b'[{"key":"%s","value":"%s"}]' % (_key(i).encode(), VALUE.encode())
    return (b"POST /v4/storage/bench/write HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def _key_raw(i: int) -> bytes:
    body = b'"%s"' % VALUE.encode()
    return (b"POST /v4/storage/bench/key?key=%s HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (_key(i).encode(), len(body), body))


def _app(path: str, total: int, raw: Callable[[int], bytes]) -> Callable[[int, int], None]:
    from server import fast_http
    from server.app import create_app

    app = create_app(path, sync=False)
    app.warm()
    prepared = _requests(total, raw)
    sent: list[bytes] = []

    def run(start: int, n: int) -> None:
        for req, env in prepared[start:start + n]:  # type: ignore[misc]
            sent.clear()
            resp = fast_http.FastResponse(req, sent.extend, False)
            assert resp.answer(app, env)
        assert b" 200 OK" in sent[0], sent
    return run


def _engine(path: str, total: int, raw: Callable[[int], bytes]) -> Callable[[int, int], None]:
    import engine

    ns = engine.Store.open(path, sync=False).namespace("bench")
    items = [{_key(i): VALUE} for i in range(total)]

    def run(start: int, n: int) -> None:
        for item in items[start:start + n]:
            ns.put(item)
    return run


SYSTEMS: dict[str, tuple[Any, Callable[[int], bytes]]] = {
    "app": (_app, _write_raw), "engine": (_engine, _write_raw), "app_key": (_app, _key_raw)}
WARM = 16


def inner(system: str, requests: int, total: int) -> None:
    work = tempfile.mkdtemp(prefix="strata-aip-")
    try:
        build, raw = SYSTEMS[system]
        run = build(os.path.join(work, "data"), WARM + total, raw)
        run(0, WARM)  # warm: first-call caches, imports, the namespace
        run(WARM, requests)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def count(args: list[str]) -> int:
    return instructions("benchmarks.app_instructions", args)


def profile(system: str, requests: int) -> None:
    import cProfile
    import pstats

    work = tempfile.mkdtemp(prefix="strata-aip-")
    try:
        build, raw = SYSTEMS[system]
        run = build(os.path.join(work, "data"), WARM + requests, raw)
        run(0, WARM)
        prof = cProfile.Profile()
        prof.enable()
        run(WARM, requests)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(40)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.app_instructions", description=__doc__.split("\n\n")[0])
    p.add_argument("--system", default="app,engine", help=f"comma-separated, from {','.join(SYSTEMS)}")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--profile", action="store_true", help="cProfile the first system in-process instead")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--total", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    systems = a.system.split(",")
    if a.profile:
        profile(systems[0], a.requests)
        return 0
    if a.inner:
        for system in systems:
            inner(system, a.requests, a.total if a.total is not None else a.requests)
        return 0
    figures = {}
    for system in systems:
        common = ["--system", system, "--total", str(a.requests)]
        many, none = count([*common, "--requests", str(a.requests)]), count([*common, "--requests", "0"])
        figures[system] = (many - none) / a.requests
        print(f"{system:8} {figures[system]:12,.0f} instructions per request", flush=True)
    if "app" in figures and "engine" in figures:
        print(f"app - engine {figures['app'] - figures['engine']:8,.0f} instructions per request (the server's share)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
