"""Fixtures shared by every test package."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Store


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
