"""Several processes on one store: one timeline, whole commits, map growth seen by everyone."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from engine import Store

BATCHES = 60
KEYS = 5


def _writer(path: str, worker: int, out: mp.Queue[list[int]]) -> None:
    txs = []
    with Store.open(path, sync=False, map_size=1 << 20) as store:
        ns = store.namespace("shared")
        for b in range(BATCHES):
            # A value big enough that the small map must grow while the other process writes.
            value = {"worker": worker, "batch": b, "pad": "p" * 300}
            txs.append(ns.put({f"w{worker}:k{i}": value for i in range(KEYS)}))
    out.put(txs)


def test_two_writers_share_one_gapless_timeline(tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    Store.open(path, sync=False, map_size=1 << 20).close()
    ctx = mp.get_context("spawn")
    out: mp.Queue[list[int]] = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, w, out)) for w in (0, 1)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    all_txs = sorted(tx for txs in results for tx in txs)
    assert all_txs == list(range(1, 2 * BATCHES + 1))  # consecutive, no gaps, no duplicates
    for txs in results:
        assert txs == sorted(txs)  # each writer's txs increase

    with Store.open(path, sync=False) as store:
        ns = store.namespace("shared")
        assert store.latest_tx == 2 * BATCHES
        assert store.stats()["map_size"] > 1 << 20  # the map grew while both had it open
        for tx in range(1, 2 * BATCHES + 1):
            info = store.tx_info(tx)
            assert info is not None
            # Each commit is whole: exactly one writer's KEYS keys, all with one batch number.
            writers = {op.key.split(":")[0] for op in info.operations}
            assert len(writers) == 1 and len(info.operations) == KEYS
            worker = int(writers.pop()[1:])
            records = ns.read([f"w{worker}:k{i}" for i in range(KEYS)], tx=tx).records
            assert len(records) == KEYS
            assert {r.tx for r in records} == {tx}
            assert len({r.value["batch"] for r in records}) == 1


def test_a_store_does_not_cross_fork(tmp_path: Path) -> None:
    """A child that inherited an open store gets STORE_CLOSED (saying why) instead of using the
    parent's LMDB environment, and closing it there leaves the parent's store working."""
    import os

    from engine import errors

    with Store.open(tmp_path / "s") as store:
        ns = store.namespace("n")
        tx = ns.put({"a": 1})
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what each call did, then leave without cleanup handlers
            outcome = []
            for call in (lambda: ns.read(["a"]), lambda: ns.put({"b": 2}), lambda: store.latest_tx):
                try:
                    call()
                    outcome.append("worked")
                except errors.StoreClosed as exc:
                    outcome.append(f"{exc.code}:{'fork' in exc.message}")
                except BaseException as exc:
                    outcome.append(repr(exc))
            store.close()
            os.write(write_fd, ",".join(outcome).encode())
            os._exit(0)
        os.close(write_fd)
        _, status = os.waitpid(pid, 0)
        report = os.read(read_fd, 4096).decode()
        os.close(read_fd)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert report == "STORE_CLOSED:True,STORE_CLOSED:True,STORE_CLOSED:True", report
        # The parent's store is untouched by the child's close.
        assert [r.value for r in ns.read(["a"], tx=tx).records] == [1]
        assert ns.put({"c": 3}) == tx + 1
