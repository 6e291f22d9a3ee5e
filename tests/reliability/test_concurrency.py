"""Concurrency: 4 writer and 4 reader processes on one store with a small map that keeps growing.

Injects: contention for LMDB's writer lock from 4 processes, compare-and-set races on one counter
(``expect`` + retry on CONFLICT), and map growth (the store opens with a 1 MiB map and takes
megabytes of padded values) while readers are in the middle of reads and slow scans.
Checks:

* the txs the writers got are unique and exactly ``fixed+1 .. latest``: one gapless timeline;
* the counter ends at exactly the number of successful increments (no lost update), and each
  increment's tx reads the value it wrote;
* each put tx holds exactly its two keys with its values (``tx_info`` and reads at that tx);
* every reader's repeated reads and scans at a fixed past tx equal its first one, while the
  latest tx and the counter never go backwards.

CI: 4 s of load. ``-m long``: 60 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine import Store
from tests.reliability.helpers import LineReader, check_verify, spawn
from tests.reliability.load_worker import COUNTER, PRELOAD_KEYS, PRELOAD_NS

MAP_SIZE = 1 << 20


def run_load(tmp_path: Path, seconds: float) -> dict[str, int]:
    path = tmp_path / "store"
    with Store.open(path, map_size=MAP_SIZE) as store:
        store.namespace(PRELOAD_NS).put({f"p{i}": {"i": i} for i in range(PRELOAD_KEYS)})
        store.namespace(PRELOAD_NS).clear([f"p{i}" for i in range(0, PRELOAD_KEYS, 10)])
        store.namespace(COUNTER[0]).put({COUNTER[1]: 0})
        fixed = store.latest_tx
        store.namespace(PRELOAD_NS).delete([f"p{i}" for i in range(0, PRELOAD_KEYS, 3)])  # after fixed
        start = store.latest_tx
    args = [str(path), "", str(seconds), str(MAP_SIZE), str(fixed)]
    procs = [spawn("load_worker", role, args[0], str(i), *args[2:], stderr=subprocess.PIPE)
             for role in ("writer", "reader") for i in range(4)]
    readers = [LineReader(proc) for proc in procs]
    for lines in readers:
        assert lines.read_n(1, 60) == ["ready"], "a worker did not open the store"
    for proc in procs:
        proc.stdin.write(b"go\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
    results = []
    for proc, lines in zip(procs, readers, strict=True):
        got = lines.read_n(1, seconds + 120)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and got, err.decode()[-3000:]
        results.append(got[0])
    writers, readers = results[:4], results[4:]

    txs = sorted([tx for w in writers for tx, _ in w["puts"]] + [tx for w in writers for tx in w["incs"]])
    with Store.open(path, map_size=MAP_SIZE) as store:
        latest = store.latest_tx
        assert txs == list(range(start + 1, latest + 1)), "txs are not unique and consecutive"
        incs = sum(len(w["incs"]) for w in writers)
        counter = store.namespace(COUNTER[0])
        assert counter.get(COUNTER[1]).value == incs  # type: ignore[union-attr]
        inc_txs = sorted(tx for w in writers for tx in w["incs"])
        for n, tx in enumerate(inc_txs, start=1):
            assert counter.get(COUNTER[1], tx=tx).value == n  # type: ignore[union-attr]
        ns = store.namespace("w")
        for ident, w in enumerate(writers):
            for tx, i in w["puts"]:
                info = store.tx_info(tx)
                assert info is not None
                assert sorted(o.key for o in info.operations) == [f"w{ident}:{i}", f"w{ident}:last"]
                recs = ns.read([f"w{ident}:{i}", f"w{ident}:last"], tx=tx).records
                assert [r.tx for r in recs] == [tx, tx] and recs[0].value["i"] == i and recs[1].value == i
        for r in readers:
            assert r["bad"] == [] and r["reads"] > 0 and r["first_len"] > PRELOAD_KEYS / 2
        check_verify(store)
        stats = {"txs": latest - start, "increments": incs, "conflicts": sum(w["conflicts"] for w in writers),
                 "reader_rounds": sum(r["reads"] for r in readers), "map_size": store.stats()["map_size"]}
    assert stats["map_size"] > MAP_SIZE  # the map grew under the readers
    print(f"concurrency: {stats}")
    return stats


def test_four_writers_four_readers(tmp_path: Path) -> None:
    run_load(tmp_path, seconds=4)


@pytest.mark.long
def test_four_writers_four_readers_long(tmp_path: Path) -> None:
    run_load(tmp_path, seconds=60)


if __name__ == "__main__":  # pragma: no cover - a convenience for running the load by hand
    run_load(Path(sys.argv[1]), float(sys.argv[2]))
