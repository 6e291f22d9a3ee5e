"""``strata serve``'s gunicorn application: gunicorn configured in code, run by Strata's arbiter.

A module of its own so that only ``serve`` imports gunicorn (a fifth of a second, with the ``ssl`` and
``email`` modules it pulls in): the other ``strata`` commands start without it.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]


class StrataGunicorn(BaseApplication):  # type: ignore[misc]
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

    def run(self) -> None:
        from server import arbiter

        arbiter.run(self)  # gunicorn's master, without its lost-signal race at a worker's birth
