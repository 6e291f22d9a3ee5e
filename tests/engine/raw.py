"""The store's LMDB environment opened directly, as an attacker with file access would: for tests that
tamper with the stored bytes and check that ``verify`` (or a client) notices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb

from engine.backend import DB_NAMES


def open_raw(path: str | Path) -> lmdb.Environment:
    """The environment of the store at ``path``, with room for every named database the engine has
    (a hard-coded count breaks the day a database is added)."""
    return lmdb.open(str(path), max_dbs=len(DB_NAMES) + 2, sync=False, subdir=True)


def tamper(path: str | Path, change: Callable[[Any, lmdb.Environment], None]) -> None:
    """Run ``change(txn, env)`` in one write transaction on the closed store at ``path``, and close."""
    env = open_raw(path)
    try:
        with env.begin(write=True) as txn:
            change(txn, env)
    finally:
        env.close()
