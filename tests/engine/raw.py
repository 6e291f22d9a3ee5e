"""The store's LMDB environment opened directly, as an attacker with file access would: for tests that
tamper with the stored bytes and check that ``verify`` (or a client) notices."""

from __future__ import annotations

from pathlib import Path

import lmdb

from engine.backend import DB_NAMES


def open_raw(path: str | Path) -> lmdb.Environment:
    """The environment of the store at ``path``, with room for every named database the engine has
    (a hard-coded count breaks the day a database is added)."""
    return lmdb.open(str(path), max_dbs=len(DB_NAMES) + 2, sync=False, subdir=True)
