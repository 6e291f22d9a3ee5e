"""Fixtures for the pytest-benchmark micro-benchmarks (``pytest benchmarks/``).

These are not tests of correctness: ``pytest benchmarks/`` measures. Plain ``pytest`` (testpaths is
tests/) runs them once each, unmeasured, in a child ``pytest benchmarks/ --benchmark-disable`` on a
small data set (tests/test_bench_harness.py), so they cannot rot unnoticed. Set-up (loading stores)
happens in session-scoped fixtures so only the operation is timed. The data set
is smaller than the harness's (10,000 keys x 10 versions by default, ``STRATA_BENCH_KEYS`` to change)
so the suite runs in about a minute; the harness (``python -m benchmarks``) publishes the real figures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb
import msgpack
import pytest

from benchmarks.datasets import Dataset, Workload, key
from benchmarks.targets.lmdb_floor import MAP_SIZE
from benchmarks.targets.strata_embedded import engine_skip_reason, load, open_store

N_KEYS = int(os.environ.get("STRATA_BENCH_KEYS", "10000"))
VERSIONS = 10
DEEP_VERSIONS = 1_000


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return Dataset(N_KEYS, VERSIONS, load_batch=min(10_000, N_KEYS))


@pytest.fixture(scope="session")
def workload(dataset: Dataset) -> Workload:
    return Workload(dataset)


@pytest.fixture(scope="session")
def floor_env(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset) -> Iterator[Any]:
    path: Path = tmp_path_factory.mktemp("floor")
    env = lmdb.open(str(path), map_size=MAP_SIZE, sync=False)
    with env.begin(write=True) as txn:
        for k, v in dataset.latest():
            txn.put(k.encode(), msgpack.packb(v))
    yield env
    env.close()


def _need_engine() -> None:
    reason = engine_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def strata_ns(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset) -> Iterator[Any]:
    """Namespace 'bench' holding the data set (all versions), loaded with sync=False."""
    _need_engine()
    store = open_store(tmp_path_factory.mktemp("strata"))
    ns = store.namespace("bench")
    load(ns, dataset)
    yield ns
    store.close()


@pytest.fixture(scope="session")
def deep_ns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """16 keys with 1,000 versions each, one tx per version: tx 1 holds every key's oldest version."""
    _need_engine()
    ds = Dataset(16, 1)
    store = open_store(tmp_path_factory.mktemp("deep"))
    ns = store.namespace("deep")
    for v in range(DEEP_VERSIONS):
        ns.put({key(i): ds.value(i, v) for i in range(16)}, sync=False)
    yield ns
    store.close()


@pytest.fixture
def fresh_ns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An empty namespace per test, for write benchmarks."""
    _need_engine()
    store = open_store(tmp_path_factory.mktemp("write"))
    yield store.namespace("bench")
    store.close()
