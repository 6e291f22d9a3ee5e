"""Fixtures shared by every test package."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Store

# The suite starts hundreds of Python processes (gunicorn servers and workers, crash-test children, CLI
# runs). With PYTHONDONTWRITEBYTECODE set, as some CI images set it, each one compiled every module it
# imports from source again: about a third of those processes' CPU time. Let them use and write the
# bytecode cache (git ignores __pycache__). Loaded before pytest-xdist starts its workers, so they and
# everything they start inherit it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh store. ``sync=False``: these tests check semantics, not power-loss durability."""
    s = Store.open(tmp_path / "store", sync=False)
    yield s
    s.close()


def fingerprint(store: Store) -> str:
    """A hash of every byte in every database of the store: equal means nothing changed."""
    backend = store._backend

    def run(txn: object) -> str:
        h = hashlib.sha256()
        for name, db in sorted(backend.dbs.items()):
            h.update(name.encode())
            for k, v in txn.cursor(db=db):  # type: ignore[attr-defined]
                h.update(len(k).to_bytes(4, "big") + bytes(k) + len(v).to_bytes(4, "big") + bytes(v))
        return h.hexdigest()

    return backend.read(run)
