"""The ``strata`` command: ``strata serve`` (the default) and ``strata demo``.

Each subcommand is one ``add_<name>_arguments(parser)`` plus one ``cmd_<name>(args) -> int``,
registered in :data:`COMMANDS`; add a subcommand by adding a pair there.

``serve`` runs the WSGI app under gunicorn's sync workers, started programmatically. The app is
built in the master (``preload_app``) so workers share the metrics memory; each worker opens its
own LMDB store after the fork (``post_worker_init``) and closes it on exit. Without API keys the
server refuses a non-loopback address unless ``--insecure`` is given.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable
from typing import Any

from server.auth import KeysFileError


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="./data", help="store directory (created if missing; default ./data)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--workers", type=int, default=max(2, min(8, os.cpu_count() or 2)),
                   help="gunicorn worker processes (default: CPUs, 2 to 8)")
    p.add_argument("--keys", default=None, help="API keys file (default $STRATA_KEYS_FILE; none: auth off)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback address without API keys")
    p.add_argument("--no-sync", action="store_true",
                   help="do not fsync each commit (faster; a crash may lose the latest commits)")
    p.add_argument("--timeout", type=int, default=30, help="gunicorn worker timeout in seconds (default 30)")
    p.add_argument("--access-log", default=None, help="access log file ('-' for stderr; default: none)")


def cmd_serve(args: argparse.Namespace) -> int:
    from server.app import create_app

    keys_file = args.keys or os.environ.get("STRATA_KEYS_FILE") or None
    try:
        app = create_app(args.data, keys_file=keys_file, sync=not args.no_sync)
    except KeysFileError as exc:
        print(f"strata serve: {exc}", file=sys.stderr)
        return 2
    if not app.keyring.enabled and not args.insecure and not is_loopback(args.host):
        print(f"strata serve: refusing to listen on {args.host} without API keys; give --keys FILE "
              "(or STRATA_KEYS_FILE), or --insecure to accept that anyone who can reach it may write",
              file=sys.stderr)
        return 2
    os.makedirs(args.data, exist_ok=True)
    host = f"[{args.host}]" if ":" in args.host else args.host
    options = {
        "bind": f"{host}:{args.port}",
        "workers": args.workers,
        "worker_class": "sync",
        "preload_app": True,
        "timeout": args.timeout,
        "accesslog": args.access_log,
        "post_worker_init": lambda worker: app.warm(),
        "worker_exit": lambda server, worker: app.close(),
    }
    StrataGunicorn(app, options).run()
    return 0


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="store directory (default: a temporary one)")


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from engine import Store

    with tempfile.TemporaryDirectory() as tmp, Store.open(args.data or tmp, sync=False) as store:
        ns = store.namespace("demo")
        t1 = ns.put({"city:1": {"name": "Braavos"}, "city:2": {"name": "Oldtown"}, "logo": b"\x89PNG"})
        print(f"tx {t1}: put city:1, city:2, logo")
        t2 = ns.clear(["city:1"])
        print(f"tx {t2}: cleared city:1 (the key stays, without a value)")
        t3 = ns.delete(["city:2"])
        print(f"tx {t3}: deleted city:2 (gone from later snapshots)")
        keys = ["city:1", "city:2", "logo"]
        for tx in (t1, t3):
            print(f"read at tx {tx}:")
            for rec in ns.read(keys, tx=tx).records:
                print(f"  {rec.key}: {'(cleared)' if rec.cleared else repr(rec.value)} (tx {rec.tx})")
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {
    "serve": (add_serve_arguments, cmd_serve, "serve the HTTP API with gunicorn (the default)"),
    "demo": (add_demo_arguments, cmd_demo, "write, clear, delete and read at an old tx, printing records"),
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strata", description="Strata: a versioned key-value store on LMDB")
    sub = parser.add_subparsers(dest="command")
    for name, (add_arguments, _, help_text) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``strata`` console script; no subcommand means ``serve``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][1](args)


def _gunicorn_base() -> Any:
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    return BaseApplication


class StrataGunicorn(_gunicorn_base()):  # type: ignore[misc]
    """gunicorn, configured in code: ``options`` are gunicorn settings, ``app`` the WSGI app."""

    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if value is not None and key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


if __name__ == "__main__":
    sys.exit(main())
