"""Replaying a tx (``import_history`` without ``renumber``): which tx numbers and commit times are
accepted, and the exact error, with its details, for those that are not. A refusal changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import engine
from engine import Store
from engine.errors import InvalidParameters
from engine.schema import MAX_TIME_US
from tests.conftest import fingerprint

from .clock import T0, Clock, clock, store  # noqa: F401  (fixtures)

U64_LIMIT = 1 << 64


def row(tx: int, time_us: int) -> dict[str, Any]:
    return {"tx": tx, "time_us": time_us, "note": None,
            "ops": [{"namespace": "t", "op": "put", "key": "a", "value": 2}]}


@pytest.fixture
def one_tx(store: Store) -> Store:
    """A store holding tx 1, committed at ``T0``."""
    store.namespace("t").put({"a": 1})
    return store


def refusal(store: Store, r: dict[str, Any]) -> InvalidParameters:
    before = fingerprint(store)
    with pytest.raises(InvalidParameters) as caught:
        engine.import_history(store, [r])
    assert fingerprint(store) == before
    return caught.value


def test_a_tx_that_is_not_the_next_is_refused_with_both_numbers(one_tx: Store) -> None:
    error = refusal(one_tx, row(5, round(T0 * 1_000_000) + 1))
    assert str(error) == ("row 0: cannot replay tx 5: the next tx of this store is 2 (import a history into an "
                          "empty store, or renumber it)")
    assert error.details == {"row": 0, "parameter": "tx", "tx": 5, "next_tx": 2}


def test_a_time_before_the_previous_tx_is_refused(one_tx: Store, clock: Clock) -> None:
    error = refusal(one_tx, row(2, clock.us - 1))
    assert str(error) == (f"row 0: cannot replay tx 2 at time {clock.us - 1}: it must be an integer no earlier "
                          f"than the previous tx's ({clock.us}) and no later than the year 9999 ({MAX_TIME_US})")
    assert error.details == {"row": 0, "parameter": "time_us", "tx": 2}


@pytest.mark.parametrize("time_us", [MAX_TIME_US + 1, U64_LIMIT - 1, U64_LIMIT, 2 * U64_LIMIT])
def test_a_time_past_the_year_9999_is_refused(one_tx: Store, clock: Clock, time_us: int) -> None:
    error = refusal(one_tx, row(2, time_us))
    assert str(error) == (f"row 0: cannot replay tx 2 at time {time_us}: it must be an integer no earlier "
                          f"than the previous tx's ({clock.us}) and no later than the year 9999 ({MAX_TIME_US})")
    assert error.details == {"row": 0, "parameter": "time_us", "tx": 2}


@pytest.mark.parametrize("offset", [0, 1])
def test_the_previous_time_itself_and_later_are_accepted(one_tx: Store, clock: Clock, offset: int) -> None:
    engine.import_history(one_tx, [row(2, clock.us + offset)])
    assert one_tx.tx_info(2).time_us == clock.us + offset  # type: ignore[union-attr]


def test_the_last_showable_time_is_accepted_shown_and_becomes_the_floor(one_tx: Store) -> None:
    engine.import_history(one_tx, [row(2, MAX_TIME_US)])
    info = one_tx.tx_info(2)
    assert info is not None and info.time_us == MAX_TIME_US
    assert info.time == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    # The floor moved with the replayed time: the next replay cannot go back below it.
    error = refusal(one_tx, row(3, MAX_TIME_US - 1))
    assert error.details == {"row": 0, "parameter": "time_us", "tx": 3}
