"""A tx's note: None or a JSON object whose encoding fits the limit; the exact error otherwise, and a
refused note leaves the store as it was."""

from __future__ import annotations

import pytest

from engine import Store
from engine.codec import pack_value
from engine.errors import InvalidParameters
from tests.conftest import fingerprint


@pytest.mark.parametrize(("note", "type_name"), [([1], "list"), ("hi", "str"), (3, "int")])
def test_a_note_that_is_not_an_object_is_refused_by_name(store: Store, note: object, type_name: str) -> None:
    before = fingerprint(store)
    with pytest.raises(InvalidParameters) as caught:
        store.namespace("n").put({"a": 1}, note=note)  # type: ignore[arg-type]
    assert str(caught.value) == f"note must be a JSON object (dict) or None, not {type_name}"
    assert caught.value.details == {"parameter": "note"}
    assert fingerprint(store) == before


def test_a_note_exactly_at_the_limit_is_kept_and_one_byte_more_is_refused(store: Store) -> None:
    limit = store.limits.max_note_bytes
    overhead = len(pack_value({"n": "x" * 300})) - 300  # map, field name and a 16-bit string header
    fits = {"n": "x" * (limit - overhead)}
    assert len(pack_value(fits)) == limit
    tx = store.namespace("n").put({"a": 1}, note=fits)
    assert store.tx_info(tx).note == fits  # type: ignore[union-attr]

    over = {"n": fits["n"] + "x"}
    before = fingerprint(store)
    with pytest.raises(InvalidParameters) as caught:
        store.namespace("n").put({"a": 2}, note=over)
    assert str(caught.value) == f"note is {limit + 1} bytes encoded; the limit is {limit}"
    assert caught.value.details == {"parameter": "note"}
    assert fingerprint(store) == before
