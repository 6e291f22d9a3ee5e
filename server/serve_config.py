"""What ``strata serve`` runs with, resolved and checked before anything is touched.

**Where each setting comes from.** A flag wins; else the environment (``STRATA_DATA``,
``STRATA_HOST``, ``STRATA_PORT``, ``STRATA_WORKERS``, as containers expect); else the default
(``./data``, ``127.0.0.1``, 8080, the CPU count clamped to 2..8). An empty variable counts as unset.

**What is checked, in order, before the data directory is created or gunicorn starts:** the
values (a port from 1 to 65535, at least one worker); that the data directory is a directory or
can be created as one (not a regular file, nor under one); and that the address can be bound
(free, permitted, an address of this machine). Each failure is a :class:`ServeConfigError` whose
message says what to do; ``strata serve`` prints it on one line and exits with status 2, instead of
a traceback or gunicorn's five seconds of bind retries.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DATA = "./data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
ENV = {"data": "STRATA_DATA", "host": "STRATA_HOST", "port": "STRATA_PORT", "workers": "STRATA_WORKERS"}


class ServeConfigError(ValueError):
    """A setting of ``strata serve`` that cannot work; the message says what to do."""


def default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """The resolved data directory, address and worker count, and where each came from."""

    data: str
    host: str
    port: int
    workers: int
    sources: dict[str, str]  # setting -> "flag", "STRATA_..." or "default"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _integer(text: str, what: str, low: int, high: int | None, hint: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"{low} to {high}" if high is not None else f"at least {low}"
        raise ServeConfigError(f"{what} must be a whole number {bound}, not {text!r}; {hint}")
    return value


def resolve(args: Any, environ: Mapping[str, str]) -> ServeConfig:
    """The settings from ``args`` (``data``, ``host``, ``port``, ``workers``: None when no flag
    was given) and ``environ``; :class:`ServeConfigError` for a value out of range."""
    sources: dict[str, str] = {}

    def pick(name: str, default: Any) -> Any:
        flag = getattr(args, name, None)
        if flag is not None:
            sources[name] = "flag"
            return flag
        env = environ.get(ENV[name], "").strip()
        if env:
            sources[name] = ENV[name]
            return env
        sources[name] = "default"
        return default

    data, host = str(pick("data", DEFAULT_DATA)), str(pick("host", DEFAULT_HOST))
    port_from = "--port" if getattr(args, "port", None) is not None else ENV["port"]
    port = _integer(str(pick("port", DEFAULT_PORT)), port_from, 1, 65535, "give a free port such as 8080")
    workers_from = "--workers" if getattr(args, "workers", None) is not None else ENV["workers"]
    workers = _integer(str(pick("workers", default_workers())), workers_from, 1, None,
                       "give the number of worker processes, such as 2")
    return ServeConfig(data, host, port, workers, sources)


def check_data_dir(data: str) -> None:
    """ServeConfigError unless ``data`` is a directory or can be created as one (nothing is created)."""
    path = Path(data)
    if path.exists():
        if not path.is_dir():
            raise ServeConfigError(f"--data {data} is a file, not a directory; give a directory for the store "
                                   "(it is created if missing)")
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise ServeConfigError(f"--data {data} is not readable and writable by this user; fix its permissions "
                                   "or give another directory")
        return
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ServeConfigError(f"--data {data} cannot be created: {parent} is a file; give a directory "
                                       "path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ServeConfigError(f"--data {data} cannot be created: {parent} is not writable by this user; "
                                       "give another directory")
            return


def check_etcd_store(url: str, retention: Any) -> None:
    """ServeConfigError unless the store ``url`` names (``etcd://...``) can be served: the URL is good and
    the cluster answers (the store is opened once, creating it if its prefix holds none, and closed: the
    workers open their own). ``retention`` is served as on LMDB (each worker runs the passes: compaction on
    etcd is guarded, so concurrent passes are safe; docs/scale-out.md)."""
    from engine import Store, errors

    try:
        Store.open(url).close()
    except errors.EngineError as exc:
        raise ServeConfigError(f"--data {url}: {exc.message}") from None


def check_bindable(host: str, port: int) -> None:
    """ServeConfigError unless ``host:port`` can be bound now (with the options gunicorn uses); the
    probe socket is closed again, so gunicorn binds it next."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeConfigError(f"--host {host} is not an address of this machine ({exc.strerror}); give an IP "
                               "address such as 127.0.0.1 or 0.0.0.0") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
            probe.listen(1)
        except OSError as exc:
            raise ServeConfigError(_bind_advice(host, port, exc)) from None


def _bind_advice(host: str, port: int, exc: OSError) -> str:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"{where} is already in use (another strata serve, or another program); give another --port "
                f"(or STRATA_PORT), or stop what listens there (for example: ss -ltnp 'sport = :{port}')")
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges); give a port of 1024 or above"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"--host {host} is not an address of this machine; give one of its addresses, or 0.0.0.0 for all"
    return f"cannot listen on {where}: {exc.strerror or exc}"
