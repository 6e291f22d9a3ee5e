"""pytest-benchmark micro-benchmarks: engine operations next to the raw-LMDB floor.

Each Strata benchmark shares a ``group`` with its floor counterpart, so pytest-benchmark's table shows
them side by side; compare the two rows of a group, not absolute numbers across machines. Fixtures
(conftest.py) do all set-up; the timed functions only perform the operation.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgpack
import ormsgpack
import pytest

from benchmarks.datasets import Dataset, Workload, key

pytestmark = pytest.mark.benchmark(warmup=True, min_rounds=20)


# ----------------------------------------------------------------------------------------- reads
@pytest.mark.benchmark(group="read 100 keys")
def test_floor_read100(benchmark: Any, floor_env: Any, workload: Workload) -> None:
    batches = itertools.cycle([[k.encode() for k in ks] for ks in workload.hundreds])
    unpackb = ormsgpack.unpackb  # the engine's decoder (engine/codec.py)

    def read() -> list[Any]:
        with floor_env.begin() as txn:
            return [unpackb(txn.get(k)) for k in next(batches)]

    assert len(benchmark(read)) == 100


@pytest.mark.benchmark(group="read 100 keys")
def test_strata_read100_latest(benchmark: Any, strata_ns: Any, workload: Workload) -> None:
    batches = itertools.cycle(workload.hundreds)
    res = benchmark(lambda: strata_ns.read(next(batches)))
    assert len(res.records) == 100


@pytest.mark.benchmark(group="read 100 keys")
def test_strata_read100_past(benchmark: Any, strata_ns: Any, workload: Workload) -> None:
    args = itertools.cycle(list(zip(workload.hundreds, workload.past_txs, strict=True)))

    def read() -> Any:
        keys, tx = next(args)
        return strata_ns.read(keys, tx=tx)

    assert len(benchmark(read).records) == 100


@pytest.mark.benchmark(group="get 1 key")
def test_floor_get(benchmark: Any, floor_env: Any, workload: Workload) -> None:
    keys = itertools.cycle([k.encode() for k in workload.singles])

    def get() -> Any:
        with floor_env.begin() as txn:
            return ormsgpack.unpackb(txn.get(next(keys)))

    assert benchmark(get) is not None


@pytest.mark.benchmark(group="get 1 key")
def test_strata_get_latest(benchmark: Any, strata_ns: Any, workload: Workload) -> None:
    keys = itertools.cycle(workload.singles)
    assert benchmark(lambda: strata_ns.get(next(keys))) is not None


@pytest.mark.benchmark(group="get, key with 1,000 versions")
def test_strata_deep_newest(benchmark: Any, deep_ns: Any) -> None:
    keys = itertools.cycle([key(i) for i in range(16)])
    assert benchmark(lambda: deep_ns.get(next(keys))) is not None


@pytest.mark.benchmark(group="get, key with 1,000 versions")
def test_strata_deep_oldest(benchmark: Any, deep_ns: Any) -> None:
    keys = itertools.cycle([key(i) for i in range(16)])
    rec = benchmark(lambda: deep_ns.get(next(keys), tx=1))
    assert rec is not None and rec.tx == 1


@pytest.mark.benchmark(group="scan 1,000 keys")
def test_strata_scan1000(benchmark: Any, strata_ns: Any, dataset: Dataset) -> None:
    expected = min(1000, dataset.n_keys)  # STRATA_BENCH_KEYS may make the data set smaller
    assert len(benchmark(lambda: list(strata_ns.scan(prefix="k:", limit=1000)))) == expected


# ---------------------------------------------------------------------------------------- writes
def _batch(ds: Dataset, size: int, version: int) -> list[tuple[str, Any]]:
    return [(key(i), ds.value(i, version)) for i in range(size)]


@pytest.mark.benchmark(group="put 10,000 items, sync=False")
def test_floor_put10000(benchmark: Any, floor_env: Any, dataset: Dataset) -> None:
    batch = [(k.encode(), v) for k, v in _batch(dataset, 10_000, 99)]
    packb = msgpack.packb

    def put() -> None:
        with floor_env.begin(write=True) as txn:
            for k, v in batch:
                txn.put(k, packb(v))

    benchmark.pedantic(put, rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="put 10,000 items, sync=False")
def test_strata_put10000_nosync(benchmark: Any, fresh_ns: Any, dataset: Dataset) -> None:
    batch = dict(_batch(dataset, 10_000, 99))
    benchmark.pedantic(lambda: fresh_ns.put(batch, sync=False), rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="put 100 items, sync=True")
def test_strata_put100_sync(benchmark: Any, fresh_ns: Any, dataset: Dataset) -> None:
    batch = dict(_batch(dataset, 100, 7))
    benchmark.pedantic(lambda: fresh_ns.put(batch, sync=True), rounds=30, warmup_rounds=2)
