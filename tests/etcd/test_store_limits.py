"""A store told its cluster's limits (``etcd://...?max_txn_ops=N&max_request_bytes=N``) on a real cluster run
with non-default ones, and the expiry sweep numbering txs as LMDB does whatever the limits.

The module's 3-member cluster runs with ``--max-txn-ops 256 --max-request-bytes 2097152``. A store told
so takes the writes etcd's defaults refuse; one told nothing refuses them itself (``BATCH_TOO_LARGE``,
``VALUE_TOO_LARGE`` before sending); one told more than the cluster allows gets etcd's refusal as
``BATCH_TOO_LARGE``, and nothing is written (the cluster's revision does not move: those stores run no
sealer thread, whose own writes would move it at any time). The same history
of expiring puts, across namespaces, with long keys and more expiries due at once than a sweep takes,
gives the same txs (number, time, note, operations, chain hash) on LMDB, on a store told nothing and on
one told the cluster's limits. ``strata serve --data`` takes the URL with its query (the start-up check,
each worker's app) and refuses a bad one in one line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine import Store, errors, expiry
from engine.etcd import EtcdClient
from engine.etcd.store import EtcdStore
from server.app import create_app
from tests.engine.clock import Clock
from tests.server.conftest import Client

from .cluster import EtcdCluster, free_port

MAX_TXN_OPS = 256
MAX_REQUEST_BYTES = 2 * 1024 * 1024
ETCD_ARGS = ["--max-txn-ops", str(MAX_TXN_OPS), "--max-request-bytes", str(MAX_REQUEST_BYTES)]
TOLD = f"?max_txn_ops={MAX_TXN_OPS}&max_request_bytes={MAX_REQUEST_BYTES}"
TOLD_TOO_MUCH = "?max_txn_ops=1024&max_request_bytes=10485760"


@pytest.fixture
def url(etcd_cluster: EtcdCluster, request: pytest.FixtureRequest) -> str:
    return etcd_cluster.store_url("limits/" + request.node.name)


def revision(etcd: EtcdClient) -> int:
    return etcd.range(b"limits/").revision


def test_a_store_told_the_clusters_limits_takes_writes_etcds_defaults_refuse(url: str, etcd: EtcdClient) -> None:
    many = {f"k{i:03}": i for i in range(200)}
    big = b"x" * 1_700_000
    with EtcdStore.open(url, seal_interval=None) as assumed:  # told nothing: etcd's defaults, checked before sending
        before = revision(etcd)
        with pytest.raises(errors.BatchTooLarge) as ops:
            assumed.namespace("a").put(many)
        assert ops.value.message == ("a write of 200 operations needs 206 etcd txn operations; the cluster allows "
                                     "128 (its --max-txn-ops)")
        assert ops.value.details == {"count": 200, "ops": 206, "limit": 128}
        with pytest.raises(errors.ValueTooLarge) as value:
            assumed.namespace("a").put({"big": big})
        assert value.value.details["limit"] == 1572864 - 8192
        assert revision(etcd) == before and assumed.latest_tx == 0
    with EtcdStore.open(url + TOLD, seal_interval=None) as told:
        assert told.path == url + TOLD
        assert told.namespace("a").put(many) == 1
        assert told.namespace("a").put({"big": big}) == 2
        assert told.namespace("a").get("big").value == big
        assert told.namespace_info("a").key_count == 201
        assert [len(e.operations) for e in told.changes(0)] == [200, 1]
        told.head()  # sealed (no sealer thread here: nothing but the store's calls writes)
        before = revision(etcd)
        with pytest.raises(errors.BatchTooLarge) as ops:  # over what it was told, refused before sending
            told.namespace("b").put({f"k{i:03}": i for i in range(251)})
        assert ops.value.details == {"count": 251, "ops": 257, "limit": MAX_TXN_OPS}
        with pytest.raises(errors.ValueTooLarge) as value:
            told.namespace("b").put({"big": b"x" * MAX_REQUEST_BYTES})
        assert value.value.details["limit"] == MAX_REQUEST_BYTES - 8192
        assert revision(etcd) == before and told.latest_tx == 2


def test_a_store_told_more_than_the_cluster_allows_gets_etcds_refusal_as_batch_too_large(
        url: str, etcd: EtcdClient) -> None:
    """etcd does not say its --max-txn-ops or --max-request-bytes (no API answers them), so a store cannot
    check what it is told: a txn over the cluster's real limit is refused by etcd, before raft, whole."""
    with EtcdStore.open(url + TOLD_TOO_MUCH, seal_interval=None) as store:
        store.namespace("a").put({"k": 1})
        store.head()  # sealed (no sealer thread here: nothing but the store's calls writes)
        before = revision(etcd)
        with pytest.raises(errors.BatchTooLarge) as ops:
            store.namespace("a").put({f"k{i:03}": i for i in range(300)})
        assert ops.value.message == ("etcd refused a txn of 307 operations: more than its --max-txn-ops allows (a "
                                     "store on etcd must not be told a higher max_txn_ops than the cluster's)")
        assert ops.value.details == {"ops": 307, "etcd": "etcdserver: too many operations in txn request"}
        with pytest.raises(errors.BatchTooLarge) as size:
            store.namespace("a").put({"big": b"x" * 3_000_000})
        details = size.value.details
        assert size.value.message == (
            f"etcd refused a txn of 8 operations and {details['size']:,} bytes of keys and values as too large, "
            "though it was to take 10,485,760 bytes: the cluster's --max-request-bytes is lower (a store on etcd "
            "must not be told a higher max_request_bytes than the cluster's)")
        assert details["ops"] == 8 and 3_000_000 < details["size"] < 3_001_000 and details["limit"] == 10485760
        assert "larger than max" in details["etcd"] or details["etcd"] == "etcdserver: request is too large"
        assert revision(etcd) == before and store.latest_tx == 1
        assert store.namespace("a").put({"k": 2}) == 2  # the store is as it was, and writes on


def expiring_history(store: Any, clock: Clock) -> list[tuple[Any, ...]]:
    """Expiring puts in three namespaces at one clock reading, so 64 entries share one microsecond (the
    sweep's cut falls inside it: by namespace number, then the engine's key order, long keys in their
    buckets), others due earlier; the sweep of the next writes and ``expire()``; the whole log."""
    long = "L" * 500
    store.namespace("b").put({"early": 1}, ttl=1)
    clock.now += 1
    store.namespace("c").put({f"c{i:02}": i for i in range(20)}, ttl=5)
    store.namespace("b").put({f"{long}{i:02}": i for i in range(30)} | {"b": 0}, ttl=5)
    store.namespace("a").put({f"a{i}": i for i in range(23)}, ttl=5)
    store.namespace("a").put({"a3": "again"}, ttl=9)  # its first entry is stale now
    clock.now += 10
    writes = [store.namespace("a").put({"w1": 1}), store.namespace("c").put({"w": 1})]
    count = store.expire()
    writes.append(store.namespace("a").put({"w2": 2}))
    assert (writes, count) == ([8, 10, 13], 26)
    return [(e.tx, e.time_us, e.note, [(o.namespace, o.key, o.op) for o in e.operations], e.hash)
            for e in store.changes(0)]


@pytest.fixture
def lmdb_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The history on LMDB, with ``expire()`` txs of 24 entries on both backends (for this test's run too):
    LMDB's own 1,000 is more than one etcd txn holds, which splits a larger ``expire()`` differently."""
    monkeypatch.setattr(expiry, "SWEEP_PER_TX", 24)
    clock = Clock()
    with Store.open(tmp_path / "lmdb", clock=clock) as store:
        return expiring_history(store, clock)


@pytest.mark.parametrize("query", ["", TOLD], ids=["etcds-defaults", "the-clusters-limits"])
def test_a_history_of_expiries_takes_the_same_txs_on_lmdb_and_on_etcd_whatever_its_limits(
        url: str, query: str, lmdb_history: list[tuple[Any, ...]]) -> None:
    clock = Clock()
    with Store.open(url + query, clock=clock) as store:
        assert expiring_history(store, clock) == lmdb_history
    swept = [(tx, [(ns, len(keys)) for ns, keys in grouped(ops)]) for tx, _, note, ops, _ in lmdb_history
             if note == {"expired": True}]
    assert swept == [(2, [("b", 1)]),  # before tx 3: "early" is due
                     (7, [("b", 24)]),  # before w1: 24 of b's 30 long keys (by their hash) and "b"
                     (9, [("b", 7), ("c", 17)]),  # before w: the rest of b, then c (its namespace number)
                     (11, [("c", 3), ("a", 20)]),  # expire(): 24 entries, a3's first one stale
                     (12, [("a", 3)])]  # and the rest, a3's second expiry among them
    long_keys = [key for _, key, _ in lmdb_history[6][3]]
    assert long_keys == sorted(long_keys, key=lambda k: hashlib.sha256(k.encode()).digest())  # LMDB's bucket order


def grouped(ops: list[tuple[str, str, str]]) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for ns, key, _ in ops:
        if not out or out[-1][0] != ns:
            out.append((ns, []))
        out[-1][1].append(key)
    return out



def test_strata_serve_takes_the_limits_in_its_data_url(url: str, tmp_path: Path) -> None:
    """What ``strata serve --data URL`` does with the URL: the start-up check opens it, each worker's app
    opens it (``create_app``, in-process here); a bad query is refused in one line before start-up."""
    from server.serve_config import ServeConfigError, check_etcd_store
    from tests.server.test_serve_config import refused, run_serve

    check_etcd_store(url + TOLD, None)
    many = [{"key": f"k{i:03}", "value": i} for i in range(200)]
    for query, status, code in (("", 400, "BATCH_TOO_LARGE"), (TOLD, 200, None)):
        app = create_app(url + query)
        try:
            response = Client(app).request("POST", "/v4/storage/a/write", json=many)
            assert response.status == status
            assert (orjson.loads(response.body).get("code"), orjson.loads(response.body).get("tx")) == (
                (code, None) if code else (None, 1))
        finally:
            app.close()
    bad = url + "?max_txn_ops=64"
    with pytest.raises(ServeConfigError) as raised:
        check_etcd_store(bad, None)
    why = (f"--data {bad}: {bad!r} is not an etcd store URL: max_txn_ops must be from 126 to 2147483647, not 64: a "
           "store needs 126 operations in one txn (an expiry sweep of 24 keys in as many namespaces); the form is "
           "etcd://HOST:PORT,HOST:PORT,.../PREFIX?max_txn_ops=N&max_request_bytes=N (either or both)")
    assert str(raised.value) == why
    assert refused(run_serve(tmp_path, "--data", bad, "--port", str(free_port()))) == f"strata serve: {why}\n"
