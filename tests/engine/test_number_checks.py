"""Numeric arguments beyond a double (Python ints of any size) get the engine's errors, never an
OverflowError, and messages stay short however long the number."""

from __future__ import annotations

from typing import Any

import pytest

from engine import Item, Store, errors
from tests.conftest import fingerprint

HUGE = [10**400, -(10**400), 10**5000, 2**64]
HUGE_IDS = ["1e400", "-1e400", "1e5000", "2**64"]


@pytest.mark.parametrize("number", HUGE, ids=HUGE_IDS)
@pytest.mark.parametrize(("option", "error", "message"), [
    ("ttl", errors.InvalidExpirationTtl, "ttl must be a number of seconds from 1 to"),
    ("expiration", errors.InvalidExpiration, "expiration must be epoch seconds at least 1 s in the future")])
def test_expiry_options_refuse_huge_integers(store: Store, number: int, option: str,
                                             error: type[errors.EngineError], message: str) -> None:
    store.namespace("n").put({"a": 1})
    before = fingerprint(store)
    kwargs: dict[str, Any] = {option: number}
    with pytest.raises(error, match=message) as info:
        store.namespace("n").put([Item("k", 1, **kwargs)])
    assert len(info.value.message) < 200
    with pytest.raises(error, match=message):
        store.namespace("n").put({"k": 1}, **kwargs)
    with pytest.raises(error, match=message):
        store.transaction().put("n", "k", 1, **kwargs)
    assert fingerprint(store) == before


def test_tx_at_takes_any_non_negative_integer(store: Store) -> None:
    tx = store.namespace("n").put({"a": 1})
    assert store.tx_at(10**400) == tx and store.tx_at(10**5000) == tx and store.tx_at(2**64) == tx
    with pytest.raises(errors.InvalidParameters, match="at must be an aware datetime or non-negative epoch") as info:
        store.tx_at(-(10**5000))
    assert len(info.value.message) < 200
