"""``server.pid``: this process's id without a system call, right in a forked child too."""

from __future__ import annotations

import os

from server import pid


def test_current_is_this_process_id() -> None:
    assert pid.current() == os.getpid()


def test_a_forked_child_sees_its_own_id() -> None:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report what it sees, then leave without running pytest's teardown
        try:
            os.write(write, f"{pid.current()} {os.getpid()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        seen, actual = os.read(read, 100).decode().split()
    finally:
        os.close(read)
        os.waitpid(child, 0)
    assert int(seen) == int(actual) == child
    assert pid.current() == os.getpid() != child
