"""The shortened ordering of a plain run (:func:`engine.txn._sorted_plain`) against the general one.

A run of plain puts, clears or deletes of short NUL-free keys is sorted by its str keys and its
keyparts built in that order; every other run builds its keyparts and records in run order and
sorts the keyparts. Both must give the same keyparts, in the same order, with the same records
(the write order decides the B-tree's pages, the records in run order the chain hash).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.codec import CLEAR, DELETE, PUT
from engine.encoding import SHORT_MAX, ns_prefix
from engine.txn import Run, _keyparts_records, _sorted_plain

# Keys near each other in order: shared prefixes, one a prefix of another, non-ASCII, and now and
# then a NUL or a key too long for the short form (which the shortened ordering must refuse).
_chars = st.sampled_from(["a", "b", "\x01", "\x7f", "é", "€", "😀", "\uffff", "\x00"])
_short = st.text(_chars, min_size=1, max_size=6)
_keys = st.one_of(_short, st.builds(lambda pad, tail: "a" * pad + tail, st.integers(SHORT_MAX - 8, SHORT_MAX), _short))


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(_keys, min_size=2, max_size=12, unique=True), op=st.sampled_from([PUT, CLEAR, DELETE]),
       ns_id=st.integers(1, 2**32 - 1))
def test_sorted_plain_orders_and_records_as_the_general_path(keys: list[str], op: int, ns_id: int) -> None:
    raws = [key.encode() for key in keys]
    packed = [bytes([0x90 + i % 16]) + raw for i, raw in enumerate(raws)] if op == PUT else []
    run = Run("ns", op, keys, raws, packed)
    prefix = ns_prefix(ns_id)
    kps, records = _keyparts_records(None, {}, run, prefix, 0)
    order = sorted(range(len(kps)), key=kps.__getitem__)
    plain = _sorted_plain(run, prefix)
    if any(0 in raw or len(raw) > SHORT_MAX for raw in raws):
        assert plain is None
        return
    assert plain is not None
    sorted_kps, run_records, sorted_records = plain
    assert sorted_kps == [kps[i] for i in order]
    assert run_records == records
    assert sorted_records == [records[i] for i in order]


def test_sorted_plain_sorts_a_key_before_its_extensions() -> None:
    run = Run("ns", PUT, ["ab", "a", "a\x01", "b"], [b"ab", b"a", b"a\x01", b"b"], [b"\x01", b"\x02", b"\x03", b"\x04"])
    plain = _sorted_plain(run, b"\0\0\0\1")
    assert plain == ([b"\0\0\0\1a\0\0", b"\0\0\0\1a\x01\0\0", b"\0\0\0\1ab\0\0", b"\0\0\0\1b\0\0"],
                     [b"\x01", b"\x02", b"\x03", b"\x04"], [b"\x02", b"\x03", b"\x01", b"\x04"])
