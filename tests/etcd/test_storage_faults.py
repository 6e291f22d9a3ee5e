"""EtcdStorage under a leader kill: 16 writers committing Strata txs on a real 3-member cluster while the
leader is SIGKILLed and restarted. What must hold: every acknowledged write is there at its tx, the txs
are exactly 1..N (no gap, none twice: a retry of a commit whose answer was lost returns that commit's tx),
and every member holds the same store after the restart. ``-m long``: it kills and restarts a member.
"""

from __future__ import annotations

import threading
import time

import pytest

from engine import errors
from engine.etcd import EtcdClient
from engine.etcd.storage import EtcdStorage
from engine.records import Limits
from engine.txn import prepare_puts

from .cluster import EtcdCluster


@pytest.mark.long
def test_strata_txs_under_a_leader_kill_with_16_writers(etcd_cluster: EtcdCluster) -> None:
    leader = etcd_cluster.leader()
    endpoints = [leader.client_url, *(m.client_url for m in etcd_cluster.members if m is not leader)]
    client = EtcdClient(endpoints, pool_size=24, request_timeout=2.0)
    storage = EtcdStorage.open(client, "faults")
    acked: dict[str, int] = {}
    unknown = [0]
    stop = threading.Event()
    changed = threading.Condition()

    def write(n: int) -> None:
        j = 0
        while not stop.is_set():
            key = f"{n:02d}/{j:05d}"
            batch = prepare_puts("ns", {key: j}, Limits())
            while True:  # the same request id until acknowledged: a caller that must not lose a write
                try:
                    tx = storage.commit(batch, note={"w": n}, request_id=key.encode())
                    break
                except errors.StorageUnavailable:
                    with changed:
                        unknown[0] += 1
            with changed:
                acked[key] = tx
                changed.notify_all()
            j += 1

    def wait_for(count: int) -> None:
        with changed:
            assert changed.wait_for(lambda: len(acked) >= count, timeout=120), len(acked)

    pool = [threading.Thread(target=write, args=(n,)) for n in range(16)]
    for t in pool:
        t.start()
    try:
        wait_for(48)
        victim = etcd_cluster.leader()
        killed_at = time.monotonic()
        etcd_cluster.kill(victim)
        wait_for(len(acked) + 48)
        resumed = time.monotonic() - killed_at
        etcd_cluster.restart(victim)
    finally:
        stop.set()
        for t in pool:
            t.join(timeout=120)
    txs = sorted(acked.values())
    assert txs == list(range(1, len(txs) + 1))  # dense, each tx exactly once
    assert storage.latest_tx == len(txs)
    for key, tx in acked.items():
        assert storage.get("ns", key, tx=tx).tx == tx  # type: ignore[union-attr]
        assert storage.get("ns", key, tx=tx - 1) is None
    for m in etcd_cluster.members:  # every member, the restarted one included, holds the same store
        with EtcdClient([m.client_url]) as alone:
            copy = EtcdStorage.open(alone, "faults")
            assert copy.latest_tx == len(txs)
            assert len(copy.scan("ns").records) == len(txs)
    client.close()
    print(f"\n{len(txs)} txs by 16 writers, a leader kill: {unknown[0]} unknown outcomes retried, "
          f"48 more writes acknowledged {resumed:.2f} s after the kill")
