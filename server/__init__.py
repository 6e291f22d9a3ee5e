"""Strata's HTTP server: the Litebase-style v4 storage API as a framework-free WSGI app.

``create_app(data_dir, ...)`` builds the WSGI callable (see :mod:`server.app`); ``strata serve``
(:mod:`server.cli`) runs it under gunicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.app import App, create_app

__all__ = ["App", "create_app"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, not with the package: every `strata` command imports server.cli, and most
    # of them (verify, export, keys, ...) never build the app, which costs a fifth of a second to import.
    if name in __all__:
        from server import app

        return getattr(app, name)
    raise AttributeError(f"module 'server' has no attribute {name!r}")
