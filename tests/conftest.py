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

# The modules that take longest, heaviest first (seconds of test time each, summed from `--durations=0`
# on a quiet machine; re-derive when the suite changes). pytest-xdist's loadscope runs a module on one
# worker, and by default queues modules by their number of tests, so these modules of one or a few
# long tests ran last: one worker went on alone for half a minute while the other sat idle. Queued
# first (addopts: --no-loadscope-reorder), they run beside the many short modules instead.
HEAVY_MODULES = (
    "tests/reliability/test_schemathesis.py",
    "tests/reliability/test_stall_attacks.py",
    "tests/etcd/test_differential.py",
    "tests/test_bench_harness.py",
    "tests/test_docs.py",
    "tests/browser/test_console.py",
    "tests/property/test_store_model.py",
    "tests/reliability/test_crash_groups.py",
    "tests/etcd/test_transfer_etcd.py",
    "tests/reliability/test_soak.py",
    "tests/reliability/test_map_growth.py",
    "tests/etcd/test_store_open.py",
    "tests/etcd/test_storage.py",
    "tests/reliability/test_crash.py",
    "tests/etcd/test_backup_etcd.py",
)


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle, which it keeps for everything else
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(HEAVY_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))


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
