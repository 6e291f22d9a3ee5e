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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from engine import Limits, Record, Retention, Store, errors
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
def pair(etcd: EtcdClient, etcd_cluster: EtcdCluster, clock: Clock,
         tmp_path: Path) -> Iterator[tuple[Store, EtcdStore]]:
    """An LMDB store and a store on etcd on one clock."""
    with Store.open(tmp_path / "lmdb", sync=False, clock=clock) as lmdb, fresh(etcd, etcd_cluster, clock) as on_etcd:
        yield lmdb, on_etcd


def report(call: Any) -> tuple[str, Any]:
    """A compaction's outcome without what differs by design (``seconds``; ``chunks``: one call on etcd)."""
    kind, got = outcome(call)
    if kind == "tx" and got is not None:
        got = {k: v for k, v in got.to_dict().items() if k not in ("seconds", "chunks")}
    return kind, got


def compare_all(lmdb: Store, on_etcd: EtcdStore, every_tx: bool = True) -> None:
    """Every read and scan at every tx (``TX_COMPACTED`` below the horizon; with ``every_tx`` False, at the
    txs around the horizon and the latest), the log and its hashes, every key's history in both orders,
    diffs around the horizon and verify: the same answers."""
    latest, horizon = lmdb.latest_tx, lmdb.horizon
    assert on_etcd.latest_tx == latest
    assert (on_etcd.horizon, on_etcd.compaction_status()) == (horizon, lmdb.compaction_status())
    assert tuple(on_etcd.head())[:2] == tuple(lmdb.head())[:2]
    txs = range(latest + 2) if every_tx else sorted({0, max(0, horizon - 1), horizon, latest, latest + 1})
    for tx in txs:
        for ns in NAMESPACES:
            a, b = lmdb.namespace(ns), on_etcd.namespace(ns)
            assert outcome(lambda: b.read(KEYS, tx=tx, metadata=True, fields=FIELDS)) == outcome(  # noqa: B023
                lambda: a.read(KEYS, tx=tx, metadata=True, fields=FIELDS)), (ns, tx)  # noqa: B023
            if tx >= horizon - 1:
                assert outcome(lambda: list(b.scan(tx=tx))) == outcome(lambda: list(a.scan(tx=tx))), (ns, tx)  # noqa: B023
    for tx in {0, 1, max(0, horizon - 1), latest + 1}:
        info, entry = lmdb.tx_info(tx), on_etcd.tx_info(tx)
        assert (None if info is None else (info.tx, info.time, info.note, info.operations, info.hash)) == (
            None if entry is None else (entry.tx, entry.time, entry.note, entry.operations, entry.hash)), tx
    feed = [(e.tx, e.time, e.note, e.operations, e.hash) for e in on_etcd.changes(0)]
    assert feed == [(i.tx, i.time, i.note, i.operations, i.hash) for i in lmdb.changes(0)]
    for ns in NAMESPACES:
        a, b = lmdb.namespace(ns), on_etcd.namespace(ns)
        for key in KEYS:
            desc = a.history(key)
            assert b.history(key) == desc, (ns, key)
            if not desc:
                continue
            assert b.history(key, order="asc") == a.history(key, order="asc"), (ns, key)
            # the kept version (at or below the horizon) from both sides
            assert b.history(key, before=horizon) == a.history(key, before=horizon), (ns, key)
            assert b.history(key, after=max(0, horizon - 1), order="asc") == a.history(
                key, after=max(0, horizon - 1), order="asc"), (ns, key)
        for pair in {(0, latest), (max(0, horizon - 1), latest), (horizon, latest), (max(0, latest - 1), latest)}:
            assert outcome(lambda: list(b.diff(*pair))) == outcome(lambda: list(a.diff(*pair))), (ns, pair)  # noqa: B023
    assert [on_etcd.namespace_info(ns) for ns in NAMESPACES] == [lmdb.namespace_info(ns) for ns in NAMESPACES]
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


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.generate])  # no shrinking: each example runs on a 3-member cluster
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


def both(lmdb: Store, on_etcd: EtcdStore, call: Any) -> Any:
    """``call`` on each store: the same outcome (answer or error) on both, and that outcome."""
    expected = outcome(lambda: call(lmdb))
    assert outcome(lambda: call(on_etcd)) == expected
    return expected


def test_a_fixed_history_compacts_as_on_lmdb_and_a_new_process_reads_it(
        pair: tuple[Store, EtcdStore], etcd_cluster: EtcdCluster, clock: Clock) -> None:
    """Each case of LMDB's rule (engine/compaction.py): a delete at exactly the horizon (kept), one below
    it (freed), an expired value (a version like any other), a drop at the horizon (its deletes kept, the
    log says which keys), then a second compaction from the first horizon on; a store opened afresh on
    the compacted prefix (its tx numbering rebuilt from the compaction's index) answers alike too."""
    lmdb, on_etcd = pair

    def writes(store: Any) -> list[int]:
        a, b = store.namespace("a"), store.namespace("b")
        txs = [a.put({"k": 1, "kk": 1, "ké": 1}), a.put({"k": 2}), a.put({"ké": 2}, ttl=1), a.delete(["kk"])]
        clock.now += 2  # ké expires; the next write sweeps it (a tx of its own)
        txs += [b.put({"kk": 1, "ké": 2}), a.put({"k": 3}), a.delete(["k"]), b.delete(["ké"])]
        txs += [store.drop_namespace("b"), a.put({"k": 4, "kk": 4})]
        clock.now -= 2
        return txs

    start = clock.now
    txs = writes(lmdb)
    clock.now = start
    assert writes(on_etcd) == txs == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11]  # 5: the sweep of ké
    clock.now += 3
    assert report(lambda: on_etcd.compact(8)) == report(lambda: lmdb.compact(8)) == (
        "tx", {"horizon": 8, "freed": 8, "txs": 9, "pending": False})
    for call in (lambda s: s.namespace("a").history("k"), lambda s: s.namespace("b").history("kk", order="asc"),
                 lambda s: s.namespace("a").read(KEYS, tx=8, fields=FIELDS),
                 lambda s: s.namespace("a").read(KEYS, tx=7),
                 lambda s: list(s.namespace("a").diff(7, 9)), lambda s: s.verify(), lambda s: s.compaction_status()):
        assert outcome(lambda: call(on_etcd)) == outcome(lambda: call(lmdb))  # noqa: B023
    assert [v.op for v in on_etcd.namespace("a").history("k")] == ["put", "delete"]  # the delete at the horizon
    assert report(lambda: on_etcd.compact(10)) == report(lambda: lmdb.compact(10)) == (
        "tx", {"horizon": 10, "freed": 4, "txs": 3, "pending": False})
    assert both(lmdb, on_etcd, lambda s: s.namespace("a").history("k")) == ("tx", lmdb.namespace("a").history("k"))
    compare_all(lmdb, on_etcd)
    for again in (lambda s: s.compact(), lambda s: s.compact(10), lambda s: s.compact(3)):  # nothing left to do
        assert report(lambda: again(on_etcd)) == report(lambda: again(lmdb)) == (  # noqa: B023
            "tx", {"horizon": 10, "freed": 0, "txs": 0, "pending": False})
    with EtcdStore.open(str(on_etcd.url), clock=clock, seal_interval=None) as reopened:
        for call in (lambda s: s.namespace("a").read(["k", "kk"], tx=10, fields=FIELDS),
                     lambda s: s.namespace("a").read(["k"], tx=9), lambda s: s.namespace("a").history("kk"),
                     lambda s: [(e.tx, e.time, e.note, e.operations, e.hash) for e in s.changes(0)],
                     lambda s: s.verify(), lambda s: s.namespace("a").put({"n": 1}), lambda s: s.tx_info(12).hash):
            assert outcome(lambda: call(reopened)) == outcome(lambda: call(lmdb))  # noqa: B023


def test_compaction_errors_and_a_shared_cluster_refused(pair: tuple[Store, EtcdStore], etcd: EtcdClient) -> None:
    lmdb, on_etcd = pair
    for store in (lmdb, on_etcd):
        store.namespace("a").put({"k": 1})
    for before in (2, -1, "1", True):
        assert report(lambda: on_etcd.compact(before)) == report(lambda: lmdb.compact(before))  # noqa: B023
    assert report(lambda: on_etcd.compact(2))[1][1] == "cannot compact before tx 2: the latest committed tx is 1"
    assert both(lmdb, on_etcd, lambda s: s.apply_retention())[1][0] is errors.InvalidParameters
    etcd.put(b"another-store/meta", b"x")  # etcd compacts the whole cluster: refused, nothing written
    revision = etcd.range(b"x").revision
    refused = outcome(lambda: on_etcd.compact(1))
    assert refused == ("error", (errors.NotSupported, (
        "compaction on etcd is cluster-wide, and the cluster holds 1 keys outside this store's prefix "
        f"{on_etcd.url.prefix!r}: their history would be lost; give the store a cluster of its own"),
        {"operation": "compact", "backend": "etcd", "foreign_keys": 1}))
    assert (on_etcd.horizon, on_etcd.compaction_status()) == (0, {"horizon": 0, "freed_versions": 0, "pending": None})
    assert etcd.range(b"x").revision == revision
    app = create_app(str(on_etcd.url))  # over HTTP: 501, the same code and details (as docs/openapi.json says)
    try:
        r = Client(app).post("/v4/admin/compact", json={"before_tx": 1})
        assert (r.status, r.code, r.json()["foreign_keys"], r.json()["operation"]) == (501, "NOT_SUPPORTED", 1,
                                                                                        "compact")
        assert (app.store.horizon, app.store.latest_tx) == (0, on_etcd.latest_tx)
    finally:
        app.close()
    etcd.delete_range(b"another-store/meta")


def test_revert_errors_limits_and_idempotency_as_on_lmdb(etcd: EtcdClient, etcd_cluster: EtcdCluster, clock: Clock,
                                                         tmp_path: Path) -> None:
    """Every refusal of a revert (the same error, details included, nothing written), the tx limit
    (``BATCH_TOO_LARGE`` from the plan), a dry run, a no-op revert (no tx), and an idempotency key: the
    retry replays the first answer and writes nothing, a refusal is recorded and replayed too."""
    limits = Limits(max_batch=2)
    with Store.open(tmp_path / "lmdb", sync=False, clock=clock, limits=limits) as lmdb, \
            fresh(etcd, etcd_cluster, clock, limits=limits) as on_etcd:
        for store in (lmdb, on_etcd):
            a = store.namespace("a")
            a.put({"k": 1, "j": 1}, metadata={"m": 1})
            a.put({"k": 2}, ttl=30)
            a.put({"x": 3, "y": 3})
            a.delete(["j"])
        store_a = {id(s): s.namespace("a") for s in (lmdb, on_etcd)}

        def revert(*args: Any, **options: Any) -> Any:
            return both(lmdb, on_etcd, lambda s: store_a[id(s)].revert(*args, **options))

        def claim(key: str, **options: Any) -> Claim:
            return Claim(key, bytes(32), lambda result, exc: repr((result, exc)).encode(), **options)

        latest = lmdb.latest_tx
        for args, options in [((5,), {}), ((-1,), {}), (("1",), {}), ((1,), {"keys": ["k"], "prefix": "k"}),
                              ((1,), {"keys": "k"}), ((1,), {"keys": []}), ((1,), {"keys": ["k", "j", "x"]}),
                              ((1,), {"prefix": "\ud800"}), ((1,), {"dry_run": 1}), ((1,), {"note": {"revert": 1}}),
                              ((0,), {}), ((1,), {"dry_run": True, "idempotency": claim("r-0")})]:
            assert revert(*args, **options)[0] == "error", (args, options)
        assert lmdb.latest_tx == on_etcd.latest_tx == latest
        assert revert(1)[1][:2] == (errors.BatchTooLarge, "the revert would write more than 2 keys, the most one "
                                    "tx may hold; nothing was written: revert in parts, by prefix or keys")
        dry = revert(1, prefix="x", dry_run=True)
        assert (dry[1].tx, [c.key for c in dry[1].changes], dry[1].committed) == (latest, ["x"], False)
        assert revert(1, keys=["k", "j"], note={"who": "ops"})[1].tx == latest + 1
        noop = revert(1, keys=["k", "j"])[1]
        assert (noop.tx, noop.changes, noop.committed) == (latest + 1, [], False)  # nothing left to change: no tx
        assert revert(latest, idempotency=claim("r-1"))[1].tx == latest + 2
        assert revert(99, idempotency=claim("r-2", recorded=(errors.FutureTx,)))[0] == "error"
        for key, to_tx in (("r-1", latest), ("r-2", 99)):  # retries: the first answer, nothing written
            replays = []
            for store in (lmdb, on_etcd):
                with pytest.raises(Replay) as replayed:
                    store.namespace("a").revert(to_tx, idempotency=claim(key))
                replays.append(replayed.value.answer)
            assert replays[0] == replays[1], key
        assert lmdb.latest_tx == on_etcd.latest_tx == latest + 2
        assert on_etcd.tx_info(latest + 1).note == lmdb.tx_info(latest + 1).note == {  # type: ignore[union-attr]
            "who": "ops", "revert": {"to_tx": 1, "keys": 2}}
        for call in (lambda s: s.namespace("a").read(["k", "j", "x", "y"], metadata=True, fields=FIELDS),
                     lambda s: s.namespace("a").history("k"), lambda s: s.verify()):
            assert outcome(lambda: call(on_etcd)) == outcome(lambda: call(lmdb))  # noqa: B023


def test_revert_compact_and_reads_below_the_horizon_over_http_as_on_lmdb(etcd: EtcdClient, etcd_cluster: EtcdCluster,
                                                                          clock: Clock, tmp_path: Path) -> None:
    """The in-process app over a store on etcd answers the revert, compact and compaction routes, and a
    read below the horizon (problem+json ``TX_COMPACTED``), as over LMDB: statuses and bodies alike but
    for the timings."""
    etcd.delete_range(b"\0", b"\0")
    start = clock.now
    answers = []
    for data in (etcd_cluster.store_url(f"rc/http-{next(_prefixes)}"), str(tmp_path / "lmdb")):
        clock.now = start
        app = create_app(data, store_options={"clock": clock}, retention=Retention(txs=2, interval=3600))
        try:
            client = Client(app)
            out = []
            for body in ([{"key": "k", "value": 1}, {"key": "j", "value": 1}], [{"key": "k", "value": 2}],
                         [{"key": "j", "value": 3}]):
                clock.now += 1
                out.append(client.write("a", body).status)
            for method, path, body in (
                    ("POST", "/v4/storage/a/revert", {"to_tx": 1, "dry_run": True}),
                    ("POST", "/v4/storage/a/revert", {"to_tx": 1, "_key": "rv-1"}),
                    ("POST", "/v4/storage/a/revert", {"to_tx": 1, "_key": "rv-1"}),  # replayed: nothing written
                    ("POST", "/v4/storage/a/revert", {"to_tx": 9}),
                    ("POST", "/v4/admin/compact", {"before_tx": 2}),
                    ("POST", "/v4/admin/compact", {"before_tx": 99}),
                    ("GET", "/v4/admin/compaction", None),
                    ("POST", "/v4/storage/a/read", {"keys": ["k", "j"], "tx": 1}),
                    ("POST", "/v4/storage/a/read", {"keys": ["k", "j"], "tx": 2}),
                    ("POST", "/v4/storage/a/revert", {"to_tx": 1}),
                    ("POST", "/v4/admin/compact", {}),  # the server's retention: keep the last 2 txs
                    ("GET", "/v4/storage/a/history", None),
                    ("GET", "/v4/verify", None)):
                kwargs: dict[str, Any] = {}
                if body is not None:
                    body = dict(body)
                    if "_key" in body:
                        kwargs["headers"] = {"Idempotency-Key": body.pop("_key")}
                    kwargs["json"] = body
                if path.endswith("history"):
                    kwargs["query"] = {"key": "k"}
                response = client.request(method, path, **kwargs)
                parsed = response.json()
                for timing in ("duration", "seconds", "chunks"):
                    parsed.pop(timing, None)
                out.append((method, path, response.status, response.headers["content-type"], parsed))
            answers.append(out)
        finally:
            app.close()
    assert answers[0] == answers[1]
    assert [a[2] for a in answers[0][3:]] == [200, 200, 200, 400, 200, 400, 200, 410, 200, 410, 200, 200, 200]


def test_a_history_export_below_the_horizon_is_refused_as_on_lmdb(pair: tuple[Store, EtcdStore]) -> None:
    from engine import export_history

    lmdb, on_etcd = pair
    for store in (lmdb, on_etcd):
        for i in range(4):
            store.namespace("a").put({"k": i})
        store.compact(3)
    for options in ({}, {"since": 1}, {"since": 2}, {"until": 2}, {"since": 2, "until": 3}):
        assert outcome(lambda: list(export_history(on_etcd, **options))) == outcome(  # noqa: B023
            lambda: list(export_history(lmdb, **options))), options  # noqa: B023
    assert outcome(lambda: list(export_history(on_etcd, since=2)))[0] == "tx"


def test_strata_compact_on_etcd(etcd: EtcdClient, etcd_cluster: EtcdCluster,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """``strata compact --data etcd://...``: a horizon, a refusal (exit 2, the engine's error), a retention
    pass, as on a directory."""
    from server.cli import main

    with fresh(etcd, etcd_cluster, Clock()) as store:
        for i in range(5):
            store.namespace("a").put({"k": i})
        url = str(store.url)
    assert main(["compact", "--before", "9", "--data", url, "--quiet"]) == 2
    assert "FUTURE_TX" in capsys.readouterr().err
    assert main(["compact", "--before", "3", "--data", url, "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("horizon 3: freed 2 version(s) visiting 4 tx(s) in 1 chunk(s), ")
    assert main(["compact", "--retain-txs", "1", "--data", url]) == 0
    with EtcdStore.open(url, seal_interval=None) as store:
        assert (store.horizon, store.compaction_status()["freed_versions"], store.verify().ok) == (5, 4, True)


def test_store_open_with_retention_compacts_etcd_in_the_background(etcd: EtcdClient,
                                                                   etcd_cluster: EtcdCluster) -> None:
    """``Store.open("etcd://...", retention=...)``: the LMDB store's background thread, applying the policy
    to etcd; closing the store stops it."""
    etcd.delete_range(b"\0", b"\0")
    url = etcd_cluster.store_url(f"rc/{next(_prefixes)}")
    with Store.open(url, retention=Retention(txs=2, interval=0.01)) as store:
        assert store.retention == Retention(txs=2, interval=0.01)
        ns = store.namespace("t")
        for i in range(5):
            ns.put({"k": i})
        deadline = time.monotonic() + 30
        while store.compaction_status() != {"horizon": 4, "freed_versions": 3, "pending": None} and (
                time.monotonic() < deadline):
            time.sleep(0.01)
        assert store.compaction_status() == {"horizon": 4, "freed_versions": 3, "pending": None}
        assert [v.tx for v in ns.history("k")] == [5, 4]
        thread = store._retention_thread  # type: ignore[attr-defined]
    assert not thread.is_alive()


def test_a_revert_planned_before_another_tx_writes_nothing_and_plans_again(pair: tuple[Store, EtcdStore]) -> None:
    """The revert's txn is guarded by the log index as the plan saw it: a tx committed in between makes it
    fail (nothing written), and the revert plans again from the new state."""
    from engine.etcd import commit as etcd_commit
    from engine.etcd.revert import Pinned, _Moved, batch_of, plan

    _, on_etcd = pair
    ns = on_etcd.namespace("a")
    ns.put({"k": 1})
    ns.put({"k": 2, "j": 2})
    storage = on_etcd.storage()
    planned = plan(storage, "a", 1, None, None, None, storage._now_us())
    assert [s.key for s in planned.steps] == ["j", "k"]
    ns.put({"m": 3})  # tx 3, after the plan
    with pytest.raises(_Moved):
        etcd_commit.commit(storage.timeline, batch_of("a", planned.steps), {"revert": {"to_tx": 1}},
                           storage._now_us(), storage.etcd_limits, claim=Pinned(storage.timeline, planned.log, None,
                                                                                 lambda tx: None))  # type: ignore
    assert on_etcd.latest_tx == 3
    result = ns.revert(1)
    assert (result.tx, [c.key for c in result.changes]) == (4, ["j", "k", "m"])
    assert ns.read(["k", "j", "m"]).records == [Record("k", 1, 4, False, False)]


def test_compactions_across_index_segments_and_a_reopened_store(pair: tuple[Store, EtcdStore], clock: Clock,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Index segments of 3 entries (engine/etcd/compacted.py), so that three compactions fill, extend and
    start segments of both indexes (request ids per tx, housekeeping revisions: namespace creations and
    seals are housekeeping txns); a store opened afresh rebuilds its tx numbering from them."""
    from engine.etcd import compacted

    monkeypatch.setattr(compacted, "SEGMENT", 3)
    lmdb, on_etcd = pair

    def writes(store: Any, first: int, last: int) -> None:
        for i in range(first, last):
            if i % 4 == 0:
                store.create_namespace(f"n{i}")
            store.namespace("a" if i % 3 else "b").put({KEYS[i % len(KEYS)]: i})

    for first, last, horizon in ((0, 6, 4), (6, 10, 6), (10, 14, 12)):
        for store in (lmdb, on_etcd):
            writes(store, first, last)
        on_etcd.head()  # a seal: one more housekeeping revision
        assert report(lambda: on_etcd.compact(horizon)) == report(lambda: lmdb.compact(horizon))  # noqa: B023
    with EtcdStore.open(str(on_etcd.url), clock=clock, seal_interval=None) as reopened:
        compare_all(lmdb, reopened, every_tx=False)


def test_a_compaction_stopped_after_raising_the_horizon_is_finished_by_the_next_call(
        pair: tuple[Store, EtcdStore]) -> None:
    """Stopped once the horizon is raised (as a process killed there, or a retention thread at close):
    reads below it are refused already, ``pending`` says what is left, and ``compact()`` finishes it,
    with LMDB's answers at each step (LMDB stopped before its first chunk)."""
    from engine import compaction as lmdb_compaction
    from engine.etcd import compaction as etcd_compaction

    lmdb, on_etcd = pair
    for store in (lmdb, on_etcd):
        for i in range(4):
            store.namespace("a").put({"k": i})
    stopped = (report(lambda: etcd_compaction.compact(on_etcd.storage(), 3, should_stop=lambda: True)),
               report(lambda: lmdb_compaction.compact(lmdb, 3, should_stop=lambda: True)))
    assert stopped[0] == stopped[1] == ("tx", {"horizon": 3, "freed": 0, "txs": 0, "pending": True})
    assert on_etcd.compaction_status() == lmdb.compaction_status() == {
        "horizon": 3, "freed_versions": 0, "pending": [0, 3]}
    assert both(lmdb, on_etcd, lambda s: s.namespace("a").get("k", tx=2))[1][0] is errors.TxCompacted
    assert report(lambda: on_etcd.compact()) == report(lambda: lmdb.compact()) == (
        "tx", {"horizon": 3, "freed": 2, "txs": 4, "pending": False})
    compare_all(lmdb, on_etcd, every_tx=False)


def test_a_backup_of_a_store_compacted_past_its_first_tx_is_refused_writing_nothing(
        etcd: EtcdClient, etcd_cluster: EtcdCluster, tmp_path: Path) -> None:
    """A backup replays the whole history, which a horizon above 1 has freed: ``NOT_SUPPORTED`` naming the
    horizon, over HTTP too (501), with no backup directory, partial or not, left behind; a horizon of 1
    (nothing below tx 1 to free) backs up."""
    with fresh(etcd, etcd_cluster, Clock()) as store:
        for i in range(4):
            store.namespace("a").put({"k": i})
        store.compact(1)
        assert store.backup(tmp_path / "at-1").tx == 4
        store.compact(3)
        with pytest.raises(errors.NotSupported) as raised:
            store.backup(tmp_path / "b")
        assert raised.value.to_dict() == {
            "code": "NOT_SUPPORTED",
            "message": "backup of a compacted store is not supported on the etcd backend yet; it needs the LMDB "
                       "backend (a store opened on a directory): a backup holds the whole history, and the txs "
                       "before the horizon (tx 3) are gone; export a snapshot at the horizon instead",
            "operation": "backup of a compacted store", "backend": "etcd", "horizon": 3}
        url = str(store.url)
    app = create_app(url, backup_dir=tmp_path / "backups")
    try:
        r = Client(app).post("/v4/admin/backup", json={"path": "b"})
        assert (r.status, r.code, r.json()["horizon"]) == (501, "NOT_SUPPORTED", 3)
        assert app.store.latest_tx == 4
    finally:
        app.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["at-1"]  # no "b", no "backups/b", no partial
