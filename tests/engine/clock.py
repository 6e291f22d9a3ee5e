"""A settable clock and a store that reads it, for tests of time-dependent behaviour (expiry,
created/updated times) without sleeping. Import the fixtures into a test module to use them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Store

T0 = 1_800_000_000.0  # an arbitrary epoch second, far from the real clock


class Clock:
    """A settable clock: ``store`` reads ``clock()``; tests move it with ``clock.now = ...``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    @property
    def us(self) -> int:
        """The time in integer microseconds, the engine's stored unit."""
        return round(self.now * 1_000_000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    s = Store.open(tmp_path / "store", sync=False, clock=clock)
    yield s
    s.close()
