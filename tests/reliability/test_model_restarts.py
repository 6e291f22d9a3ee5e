"""The model-based tests, longer and across process restarts.

* ``long``: the hypothesis state machine of tests/property/test_store_model.py (writes, failed
  writes, conflicts, close/reopen, reads at past txs, scans) with 1,000 examples of 50 steps.
* A sequence of random batches (hypothesis: awkward keys, every kind of value) is split in two:
  a child process applies the first part and then either exits or is SIGKILLed after a random
  number of acks; a second child applies the rest; the parent then compares every namespace at
  every tx with the model (reads and scans), every tx's log entry, and ``verify()``. CI: 12
  sequences; ``-m long``: 200.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from engine import Store
from tests.property import test_store_model as sm
from tests.property.model import CLEAR, DELETE, PUT, Model
from tests.property.strategies import NAMESPACES, keys, values
from tests.reliability.helpers import (
    LineReader,
    check_snapshot,
    check_tx,
    check_verify,
    effective_ops,
    feed,
    frame,
    spawn,
)


@pytest.mark.long
def test_state_machine_many_examples() -> None:
    run_state_machine_as_test(sm.StoreMachine, settings=settings(
        max_examples=1000, stateful_step_count=50, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]))


ns_ = st.sampled_from(NAMESPACES)
batches = st.one_of(
    st.builds(lambda ns, items: {"kind": "put", "ns": ns, "items": [[k, v] for k, v in items.items()]},
              ns_, st.dictionaries(keys(), values, min_size=1, max_size=5)),
    st.builds(lambda ns, ks, kind: {"kind": kind, "ns": ns, "keys": ks},
              ns_, st.lists(keys(), min_size=1, max_size=4, unique=True), st.sampled_from([CLEAR, DELETE])),
    st.builds(lambda ops: {"kind": "txn", "ops": ops, "expect": []},
              st.lists(st.tuples(ns_, keys(), st.sampled_from([PUT, CLEAR, DELETE]), values)
                       .map(lambda t: [t[0], t[1], t[2], t[3] if t[2] == PUT else None]), min_size=1, max_size=5)),
)


def run_child(path: Path, part: list[dict[str, Any]], kill_after: int | None) -> list[Any]:
    """Apply ``part`` in a child; SIGKILL it after ``kill_after`` acks (None: let it finish)."""
    proc = spawn("applier", str(path), str(1 << 30))
    threading.Thread(target=feed, args=(proc, [frame(b) for b in part]), daemon=True).start()
    lines = LineReader(proc)
    try:
        assert lines.read_n(1, 60) == [["open"]]
        acks = lines.read_n(len(part) if kill_after is None else kill_after, 60)
        if kill_after is not None:
            proc.kill()  # SIGKILL; by pidfd for a forked child, which may have exited and been reaped
    finally:
        proc.wait(timeout=60)
        acks += lines.drain()
        proc.stdout.close()  # type: ignore[union-attr]
    return acks


SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
SEQUENCES = st.lists(batches, min_size=2, max_size=14)


@settings(max_examples=12, deadline=None, suppress_health_check=SLOW)
@given(seq=SEQUENCES, data=st.data())
def test_restarts_keep_the_model(seq: list[dict[str, Any]], data: Any) -> None:
    restarts_keep_the_model(seq, data)


@pytest.mark.long
@settings(max_examples=200, deadline=None, suppress_health_check=SLOW)
@given(seq=SEQUENCES, data=st.data())
def test_restarts_keep_the_model_long(seq: list[dict[str, Any]], data: Any) -> None:
    restarts_keep_the_model(seq, data)


def restarts_keep_the_model(seq: list[dict[str, Any]], data: Any) -> None:
    split = data.draw(st.integers(1, len(seq) - 1))
    kill_after = data.draw(st.none() | st.integers(0, split))
    # What the model says each batch answers, and the ops of each tx taken (a batch of deletes of
    # absent keys changes nothing: it takes no tx and answers the latest).
    model, ops_by_tx, answers, latest_after = Model(), {}, [], [0]
    for batch in seq:
        ops = model.changes(effective_ops(batch))
        answers.append(model.commit(ops))
        if ops:
            ops_by_tx[model.latest_tx] = ops
        latest_after.append(model.latest_tx)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        acks = run_child(path, seq[:split], kill_after)
        done = len(acks)
        assert [a[1] for a in acks] == answers[:done]
        with Store.open(path) as store:  # a kill between commit and ack: the next batch is whole
            if done < split and store.latest_tx == latest_after[done + 1] != latest_after[done]:
                done += 1
            assert store.latest_tx == latest_after[done]
        rest = seq[done:]
        acks2 = run_child(path, rest, None)
        assert [a[1] for a in acks2] == answers[done:]
        with Store.open(path) as store:
            assert store.latest_tx == model.latest_tx
            for tx in range(model.latest_tx + 1):
                check_snapshot(store, model, tx)
                if tx:
                    check_tx(store, model, tx, ops_by_tx[tx])
            check_verify(store)
