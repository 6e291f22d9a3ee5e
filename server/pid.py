"""This process's id, without a system call each time it is asked.

``os.getpid()`` is a system call on Linux (glibc stopped caching it), and the server asks on every
request: the app checks that its store was opened by this process (an LMDB environment must not
cross a ``fork``), the metrics that their slot is this process's. :func:`current` answers from a
value refreshed in the child after every ``fork`` (``os.register_at_fork``), which is when it
changes. A process made another way (``posix_spawn``, ``exec``) starts this module afresh.
"""

from __future__ import annotations

import os

_pid = os.getpid()


def current() -> int:
    """This process's id (as ``os.getpid()``)."""
    return _pid


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)
