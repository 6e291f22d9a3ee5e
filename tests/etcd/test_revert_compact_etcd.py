"""Revert, compaction and retention on etcd answer as on LMDB (engine/etcd/revert.py, compaction.py,
retention.py).

The differential test runs random histories (the writes of tests/etcd/test_differential.py: expiries,
metadata, conditions, drops, sweeps) on both backends, then random reverts (whole namespace, by prefix,
by keys, dry runs), compactions and retention passes with more writes in between, and compares every
answer: the revert's result and tx, the compaction's report (all but ``seconds``; ``chunks`` is how the
work was split: one call on etcd), ``horizon`` and ``compaction_status()``, then every read and scan at
every tx (``TX_COMPACTED`` below the horizon, with the same message and details), every tx's log entry and
hash, the feed, every key's history in both orders, diffs and ``verify()``.

etcd's compaction is cluster-wide: each example starts from an empty cluster (the previous example's
keys deleted, its store closed), as a store on its own cluster.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from engine import Limits, Retention, Store, errors
from engine.etcd import EtcdClient
from engine.etcd.store import EtcdStore
from engine.expiry import FIELDS
from engine.idempotency import Claim, Replay
from server.app import create_app
from tests.engine.clock import Clock
from tests.server.conftest import Client

from .cluster import EtcdCluster
from .test_differential import APPLY, KEYS, NAMESPACES, conditions, histories, outcome, timed

_prefixes = itertools.count()


def fresh(etcd: EtcdClient, cluster: EtcdCluster, clock: Clock, **options: Any) -> EtcdStore:
    """A store alone on the module's cluster (every other key deleted: compaction is cluster-wide), with
    no background sealer (readers seal what they ask for), on ``clock``."""
    etcd.delete_range(b"\0", b"\0")
    return EtcdStore.open(cluster.store_url(f"rc/{next(_prefixes)}"), clock=clock, seal_interval=None, **options)


@pytest.fixture
def pair(etcd: EtcdClient, etcd_cluster: EtcdCluster, clock: Clock, tmp_path: Path) -> Iterator[tuple[Store, EtcdStore]]:
    """An LMDB store and a store on etcd on one clock."""
    with Store.open(tmp_path / "lmdb", sync=False, clock=clock) as lmdb, fresh(etcd, etcd_cluster, clock) as on_etcd:
        yield lmdb, on_etcd


def report(call: Any) -> tuple[str, Any]:
    """A compaction's outcome without what differs by design (``seconds``; ``chunks``: one call on etcd)."""
    kind, got = outcome(call)
    if kind == "tx" and got is not None:
        got = {k: v for k, v in got.to_dict().items() if k not in ("seconds", "chunks")}
    return kind, got


def compare_all(lmdb: Store, on_etcd: EtcdStore) -> None:
    """Every read at every tx, the log, history, diffs and verify: the same answers (errors included)."""
    latest = lmdb.latest_tx
    assert on_etcd.latest_tx == latest
    assert (on_etcd.horizon, on_etcd.compaction_status()) == (lmdb.horizon, lmdb.compaction_status())
    assert tuple(on_etcd.head())[:2] == tuple(lmdb.head())[:2]
    for tx in range(latest + 2):
        for ns in NAMESPACES:
            a, b = lmdb.namespace(ns), on_etcd.namespace(ns)
            assert outcome(lambda: b.read(KEYS, tx=tx, metadata=True, fields=FIELDS)) == outcome(  # noqa: B023
                lambda: a.read(KEYS, tx=tx, metadata=True, fields=FIELDS)), (ns, tx)  # noqa: B023
            assert outcome(lambda: list(b.scan(tx=tx))) == outcome(lambda: list(a.scan(tx=tx))), (ns, tx)  # noqa: B023
        info, entry = lmdb.tx_info(tx), on_etcd.tx_info(tx)
        assert (None if info is None else (info.tx, info.time, info.note, info.operations, info.hash)) == (
            None if entry is None else (entry.tx, entry.time, entry.note, entry.operations, entry.hash)), tx
    feed = [(e.tx, e.time, e.note, e.operations, e.hash) for e in on_etcd.changes(0)]
    assert feed == [(i.tx, i.time, i.note, i.operations, i.hash) for i in lmdb.changes(0)]
    for ns in NAMESPACES:
        a, b = lmdb.namespace(ns), on_etcd.namespace(ns)
        for key in KEYS:
            assert b.history(key) == a.history(key), (ns, key)
            assert b.history(key, order="asc") == a.history(key, order="asc"), (ns, key)
        for pair in {(0, latest), (latest // 2, latest), *((t, t + 1) for t in range(latest))}:
            assert outcome(lambda: list(b.diff(*pair))) == outcome(lambda: list(a.diff(*pair))), (ns, pair)  # noqa: B023
    assert on_etcd.verify() == lmdb.verify()


# Txs as a percentage of the latest tx when the step runs (101: one past it, FUTURE_TX).
points = st.one_of(st.integers(20, 100), st.integers(0, 101))
reverts = st.tuples(st.just("revert"), st.sampled_from(NAMESPACES), points,
                    st.sampled_from([{}, {"prefix": "k"}, {"prefix": "kk"}, {"keys": ["k", "ké", "zz"]},
                                     {"dry_run": True}, {"note": {"who": "x"}}]))
compactions = st.tuples(st.just("compact"), points)
retentions = st.tuples(st.just("retain"), st.sampled_from([Retention(txs=2), Retention(txs=5), Retention(seconds=3),
                                                           Retention(txs=3, seconds=2)]))
later = st.tuples(st.just("write"), histories)
steps = st.lists(st.one_of(reverts, reverts, compactions, compactions, retentions, later), min_size=2, max_size=5)


def tx_at(store: Store, percent: int) -> int:
    latest = store.latest_tx
    return latest + 1 if percent > 100 else latest * percent // 100


def run_history(lmdb: Store, on_etcd: EtcdStore, clock: Clock, history: list[Any]) -> None:
    for i, (kind, raw_ops, wanted) in enumerate(history):
        clock.now += 1.5 if i % 2 else 0.5
        ops = timed(raw_ops, clock.now)
        conds = conditions(lmdb, wanted)
        expected = outcome(lambda: APPLY[kind](lmdb, ops, conds, {"i": i}))  # noqa: B023
        storage = on_etcd.storage()  # the writes of test_differential take the storage underneath
        assert outcome(lambda: APPLY[kind](storage, ops, conds, {"i": i})) == expected  # noqa: B023


def apply_step(lmdb: Store, on_etcd: EtcdStore, clock: Clock, step: Any) -> None:
    clock.now += 1
    if step[0] == "revert":
        _, ns, percent, options = step
        to_tx = tx_at(lmdb, percent)
        got = outcome(lambda: on_etcd.namespace(ns).revert(to_tx, **options))
        assert got == outcome(lambda: lmdb.namespace(ns).revert(to_tx, **options)), step
        event(f"revert: {got[1][0].__name__ if got[0] == 'error' else ('wrote' if got[1].committed else 'no tx')}")
    elif step[0] == "compact":
        before = tx_at(lmdb, step[1])
        assert report(lambda: on_etcd.compact(before)) == report(lambda: lmdb.compact(before)), step
    elif step[0] == "retain":
        assert report(lambda: on_etcd.apply_retention(step[1])) == report(lambda: lmdb.apply_retention(step[1])), step
    else:
        run_history(lmdb, on_etcd, clock, step[1])


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], phases=[Phase.generate])
@given(history=histories, then=steps)
def test_random_reverts_and_compactions_answer_alike_on_lmdb_and_etcd(etcd: EtcdClient, etcd_cluster: EtcdCluster,
                                                                      history: list[Any], then: list[Any]) -> None:
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp, Store.open(tmp, sync=False, clock=clock) as lmdb, \
            fresh(etcd, etcd_cluster, clock) as on_etcd:
        run_history(lmdb, on_etcd, clock, history)
        for step in then:
            apply_step(lmdb, on_etcd, clock, step)
        event(f"horizon > 0: {lmdb.horizon > 0}, freed > 0: {lmdb.compaction_status()['freed_versions'] > 0}")
        compare_all(lmdb, on_etcd)
