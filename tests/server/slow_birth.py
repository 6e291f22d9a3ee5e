"""``python -m tests.server.slow_birth DATA PORT WORKER_CLASS``: ``strata serve``'s gunicorn (the same
application class and master), one worker of ``WORKER_CLASS`` (``threads`` or ``sync``) that
takes a second between its ``fork`` and its own signal handlers: a window wide enough to send the
master's stop signal into, for tests/server/test_arbiter.py."""

from __future__ import annotations

import sys
import time

from server.app import create_app
from server.arbiter import StrataSyncWorker
from server.gunicorn_app import StrataGunicorn
from server.worker import StrataWorker

GRACEFUL_TIMEOUT = 20  # a worker that lost the signal is killed after this long (the default is 30)


def main() -> None:
    data, port, kind = sys.argv[1:4]
    app = create_app(data, sync=False)
    options = {
        "bind": f"127.0.0.1:{port}",
        "workers": 1,
        "worker_class": StrataWorker if kind == "threads" else StrataSyncWorker,
        "threads": 4 if kind == "threads" else 1,
        "preload_app": True,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "control_socket_disable": True,
        "post_fork": lambda server, worker: time.sleep(1.0),  # runs in the child, before init_process
        "worker_exit": lambda server, worker: app.close(),
    }
    StrataGunicorn(app, options).run()


if __name__ == "__main__":
    main()
