""":func:`engine.txlog.entry_and_log`, which packs a bulk put's keys once, against the plain encodings."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.codec import packb_exact
from engine.txlog import COMPOSED_FROM, canonical_entry, entry_and_log

# A note's integers are msgpack's (the engine refuses wider ones before a tx is built).
_ints = st.integers(-(2**63), 2**64 - 1)
_notes = st.one_of(st.none(), st.dictionaries(st.text(max_size=5), _ints | st.text(max_size=5), max_size=3))


@st.composite
def _txs(draw: Any) -> tuple[int, int, Any, list[list[Any]], list[list[bytes]]]:
    runs: list[list[Any]] = []
    records: list[list[bytes]] = []
    for _ in range(draw(st.integers(0, 3))):
        n = draw(st.sampled_from([0, 1, 2, COMPOSED_FROM - 1, COMPOSED_FROM, COMPOSED_FROM + 17, 70_000]))
        keys = [f"k{i}" for i in range(n)]
        runs.append([draw(st.text(min_size=1, max_size=4)), draw(st.integers(0, 2)), keys])
        records.append([bytes([0x90 + i % 16]) * (i % 3 + 1) for i in range(n)])
    if draw(st.booleans()):  # a stream publish: [stream, 3, count]
        runs, records = [["s", 3, draw(st.integers(1, 2**40))]], [[]]
    tx = draw(st.integers(1, 2**64 - 1))
    return tx, draw(st.integers(0, 2**63)), draw(_notes), runs, records


@settings(max_examples=25, deadline=None)
@given(_txs())
def test_entry_and_log_are_the_canonical_entry_and_the_packed_runs(got: tuple[Any, ...]) -> None:
    tx, time_us, note, runs, records = got
    assert entry_and_log(tx, time_us, note, runs, records) == (canonical_entry(tx, time_us, note, runs, records),
                                                               packb_exact(runs))
