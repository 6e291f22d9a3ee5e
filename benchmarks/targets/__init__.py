"""Comparison targets: one module per system, all exposing the ``Target`` interface below.

Contract for a target:
- ``skip_reason()`` returns a human sentence when the system cannot run here (binary missing, engine
  not written yet), else None. The harness prints it as "<name>: skipped: <reason>".
- ``setup(dataset, workload, workdir)`` loads the data set (untimed for the tables, but the load time is
  recorded) into a fresh directory under ``workdir``.
- ``ops()`` returns the operations it supports as ``measure.Op`` (ops it cannot do come back with a
  ``skip`` reason so the table says so).
- ``close()`` releases files, servers and processes; it must be safe to call twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import ormsgpack

from ..datasets import Dataset, Workload
from ..measure import Op

T = TypeVar("T")

#: How the systems Strata is compared with decode the msgpack bytes they store: with the decoder
#: Strata's engine reads with (ormsgpack, about twice msgpack's speed), so none of them is charged
#: more than Strata for decoding. The floor decodes with it too (see lmdb_floor).
decode = ormsgpack.unpackb


class Target:
    name = "?"
    description = ""

    def skip_reason(self) -> str | None:
        return None

    def setup(self, ds: Dataset, wl: Workload, workdir: Path) -> None:
        raise NotImplementedError

    def ops(self) -> list[Op]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def cycle(pool: list[T]) -> Callable[[], T]:
    """Round-robin over a pre-drawn argument pool. Every target uses this one helper, so each timed
    call pays the same (tiny) argument-fetching overhead on every system."""
    return itertools.cycle(pool).__next__
