"""What a process's commits wrote, kept for its sealer (engine.etcd.written): bounds and hand-out. Pure:
no cluster."""

from __future__ import annotations

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

