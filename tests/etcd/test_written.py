"""What a process's commits wrote, kept for its sealer (engine.etcd.written): bounds, hand-out, and the
commits in flight a seal waits for. Pure: no cluster."""

from __future__ import annotations

import threading

from engine.etcd.written import MAX_TX_BYTES, Written


def test_take_hands_out_held_txs_once_and_forgets_those_below_the_first_asked_for() -> None:
    written = Written()
    for revision in (10, 11, 13):
        written.add(revision, b"entry%d" % revision, [[b"r"]])
    written.add(14, b"x" * MAX_TX_BYTES, [[b"r"]])  # over the per-tx bound: not kept
    assert len(written) == 3
    assert written.take([11, 12, 13, 14]) == {11: (b"entry11", [[b"r"]]), 13: (b"entry13", [[b"r"]])}
    assert len(written) == 0  # 10 (below 11, sealed already) dropped, 11 and 13 handed out
    assert written.take([11]) == {}


def test_settle_returns_at_once_with_nothing_in_flight_and_not_before_the_commits_in_flight() -> None:
    written = Written()
    assert written.settle(0) is True
    first = written.sending()
    assert written.settle(0) is False  # the commit sent is not answered: a seal would wait for it
    written.answered(first)
    assert written.settle(0) is True


def test_settle_waits_for_the_commits_in_flight_when_called_not_for_those_sent_after() -> None:
    written = Written()
    first = written.sending()
    settled: list[bool] = []
    waiter = threading.Thread(target=lambda: settled.append(written.settle(30)))
    waiter.start()
    while not written._answered._waiters:  # type: ignore[attr-defined]  # the waiter took its snapshot
        threading.Event().wait(0)
    later = written.sending()  # sent after the look: it lands after the revision the seal looks at
    assert settled == []
    written.answered(first)
    waiter.join()
    assert settled == [True]
    assert written.settle(0) is False  # the later one is still in flight
    written.answered(later)
    assert written.settle(0) is True
