"""The read gate of engine/backend.py with real threads: a resize waits for the threads inside, a
thread entering during a resize (or while a writer waits to be alone) waits for it to end, and
tokens always balance. Each wait is detected on the gate's condition, never by sleeping."""

from __future__ import annotations

import threading
from collections.abc import Callable

from engine.backend import Gate


def _until(cond: Callable[[], bool]) -> None:
    """Spin (yielding the GIL) until ``cond()``: the other thread's next step is one C call away."""
    while not cond():
        threading.Event().wait(0)  # a zero-timeout wait only yields


def _waiters(gate: Gate) -> int:
    return len(gate._cond._waiters)  # type: ignore[attr-defined]  # CPython's Condition keeps its waiters here


def _resize_waiting_for(gate: Gate) -> tuple[threading.Thread, threading.Event]:
    """Start a resize in a thread and return once it waits for the threads inside: the thread, and
    the event it sets once it ran alone (no token left inside)."""
    done = threading.Event()

    def resize() -> None:
        with gate.exclusive():
            assert not gate._inside
            done.set()

    t = threading.Thread(target=resize)
    t.start()
    _until(lambda: _waiters(gate) == 1)
    return t, done


def test_a_resize_waits_for_the_threads_inside() -> None:
    gate = Gate()
    gate.enter()
    t, done = _resize_waiting_for(gate)
    assert gate._resizing and not done.is_set()
    gate.leave()
    t.join(timeout=30)
    assert done.is_set() and not gate._resizing and not gate._inside


def test_a_thread_entering_during_a_resize_waits_for_its_end() -> None:
    gate = Gate()
    release, resized, entered = threading.Event(), threading.Event(), threading.Event()

    def resize() -> None:
        with gate.exclusive():
            resized.set()
            release.wait(30)

    def reader() -> None:
        gate.enter()
        entered.set()
        gate.leave()

    r = threading.Thread(target=resize)
    r.start()
    resized.wait(30)
    t = threading.Thread(target=reader)
    t.start()
    _until(lambda: _waiters(gate) == 1)  # the reader backed out and waits
    assert not entered.is_set() and not gate._inside
    release.set()
    r.join(timeout=30)
    t.join(timeout=30)
    assert entered.is_set() and not gate._inside


def test_alone_waits_for_the_other_threads_and_keeps_newcomers_out() -> None:
    gate = Gate()
    gate.enter()  # the other thread already inside
    alone, release, entered = threading.Event(), threading.Event(), threading.Event()

    def writer() -> None:
        gate.enter()
        with gate.alone():
            assert len(gate._inside) == 1
            alone.set()
            release.wait(30)
        gate.leave()

    def newcomer() -> None:
        gate.enter()
        entered.set()
        gate.leave()

    w = threading.Thread(target=writer)
    w.start()
    _until(lambda: _waiters(gate) == 1)
    assert not alone.is_set()
    gate.leave()
    alone.wait(30)
    n = threading.Thread(target=newcomer)
    n.start()
    _until(lambda: _waiters(gate) == 1)
    assert not entered.is_set()
    release.set()
    for t in (w, n):
        t.join(timeout=30)
    assert entered.is_set() and not gate._inside and not gate._alone


def test_many_threads_entering_and_leaving_leave_no_token_behind() -> None:
    gate = Gate()

    def churn() -> None:
        for _ in range(2000):
            gate.enter()
            gate.leave()

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(20):
        with gate.exclusive():
            assert not gate._inside
    for t in threads:
        t.join(timeout=60)
    assert not gate._inside


def test_the_writer_reads_while_a_resize_waits_for_it() -> None:
    """The thread holding the write transaction (``writer``) is inside; code it runs meanwhile (a
    scheduler's late parked writes) may enter again while a resize waits for it: it gets in at
    once (waiting would wait for itself), and the resize goes ahead once it has left twice."""
    gate = Gate()
    gate.enter()
    gate.writer = threading.get_ident()
    t, done = _resize_waiting_for(gate)
    gate.enter()  # a read by the writer's thread: in at once, with a second token
    assert len(gate._inside) == 2 and gate._resizing and not done.is_set()
    gate.leave()
    gate.writer = 0
    gate.leave()
    t.join(timeout=30)
    assert done.is_set() and not gate._inside
