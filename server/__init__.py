"""Strata's HTTP server: the Litebase-style v4 storage API as a framework-free WSGI app.

``create_app(data_dir, ...)`` builds the WSGI callable (see :mod:`server.app`); ``strata serve``
(:mod:`server.cli`) runs it under gunicorn.
"""

from server.app import App, create_app

__all__ = ["App", "create_app"]
